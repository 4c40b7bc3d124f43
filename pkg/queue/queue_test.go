package queue

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/herald-push/herald/pkg/ids"
	"github.com/herald-push/herald/pkg/rkey"
	"github.com/herald-push/herald/pkg/testenv"
)

// eachQueue runs f on a single Redis and on a Redis Cluster.
func eachQueue(t *testing.T, maxLen int64, f func(t *testing.T, q *Queue, keys rkey.Keys)) {
	testenv.EachRedis(t, func(t *testing.T, rdb redis.UniversalClient, prefix string) {
		keys := rkey.New(prefix)
		f(t, New(rdb, keys, maxLen), keys)
	})
}

func entry(ch ids.ChannelID, data string, ttl time.Duration, received time.Time) Entry {
	return Entry{
		ChannelID: ch, Data: []byte(data), TTL: ttl, Received: received,
		Headers: map[string]string{"encoding": "aes128gcm"}, Urgency: 3,
	}
}

func TestAppendRangeDelete(t *testing.T) {
	eachQueue(t, 100, func(t *testing.T, q *Queue, _ rkey.Keys) {
		ctx := context.Background()
		u, ch := ids.NewUAID(), ids.NewChannelID()
		now := time.Now()
		var idsIn []string
		for _, d := range []string{"one", "two", "three"} {
			id, err := q.Append(ctx, u, entry(ch, d, time.Hour, now))
			if err != nil {
				t.Fatal(err)
			}
			idsIn = append(idsIn, id)
		}
		got, err := q.Range(ctx, u, "", 10, now)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 3 || string(got[0].Data) != "one" || string(got[2].Data) != "three" {
			t.Fatalf("Range = %+v", got)
		}
		if got[0].ChannelID != ch || got[0].Headers["encoding"] != "aes128gcm" || got[0].TTL != time.Hour || got[0].Urgency != 3 {
			t.Fatalf("entry fields lost: %+v", got[0])
		}
		after, err := q.Range(ctx, u, idsIn[0], 10, now)
		if err != nil || len(after) != 2 || after[0].ID != idsIn[1] {
			t.Fatalf("Range after first = %+v, %v", after, err)
		}
		if n, err := q.Delete(ctx, u, idsIn[1], "u-not-an-entry"); err != nil || n != 1 {
			t.Fatalf("Delete = %d, %v", n, err)
		}
		if n, _ := q.Delete(ctx, u, idsIn[1]); n != 0 {
			t.Fatal("deleted the same entry twice")
		}
		left, _ := q.Range(ctx, u, "", 10, now)
		if len(left) != 2 {
			t.Fatalf("%d left, want 2", len(left))
		}
	})
}

func TestExpiredAreRemoved(t *testing.T) {
	eachQueue(t, 100, func(t *testing.T, q *Queue, keys rkey.Keys) {
		ctx := context.Background()
		u, ch := ids.NewUAID(), ids.NewChannelID()
		now := time.Now()
		if _, err := q.Append(ctx, u, entry(ch, "short", time.Second, now)); err != nil {
			t.Fatal(err)
		}
		if _, err := q.Append(ctx, u, entry(ch, "long", time.Hour, now)); err != nil {
			t.Fatal(err)
		}
		got, err := q.Range(ctx, u, "", 10, now.Add(2*time.Second))
		if err != nil || len(got) != 1 || string(got[0].Data) != "long" {
			t.Fatalf("Range after expiry = %+v, %v", got, err)
		}
		if n, _ := q.Len(ctx, u); n != 1 {
			t.Fatalf("expired message still stored: len %d", n)
		}
		// The stream key lives as long as its longest-lived message.
		pttl, err := q.rdb.PTTL(ctx, keys.Queue(u)).Result()
		if err != nil || pttl <= 59*time.Minute || pttl > time.Hour {
			t.Fatalf("queue key TTL = %v, %v; want about an hour", pttl, err)
		}
	})
}

func TestTopicReplaces(t *testing.T) {
	eachQueue(t, 100, func(t *testing.T, q *Queue, _ rkey.Keys) {
		ctx := context.Background()
		u, ch, other := ids.NewUAID(), ids.NewChannelID(), ids.NewChannelID()
		now := time.Now()
		for _, e := range []Entry{
			{ChannelID: ch, Data: []byte("v1"), TTL: time.Hour, Received: now, Topic: "score"},
			{ChannelID: other, Data: []byte("other"), TTL: time.Hour, Received: now, Topic: "score"},
			{ChannelID: ch, Data: []byte("v2"), TTL: time.Hour, Received: now, Topic: "score"},
		} {
			if _, err := q.Append(ctx, u, e); err != nil {
				t.Fatal(err)
			}
		}
		got, _ := q.Range(ctx, u, "", 10, now)
		if len(got) != 2 || string(got[0].Data) != "other" || string(got[1].Data) != "v2" {
			t.Fatalf("after replacing by topic: %+v", got)
		}
	})
}

func TestFull(t *testing.T) {
	eachQueue(t, 2, func(t *testing.T, q *Queue, _ rkey.Keys) {
		ctx := context.Background()
		u, ch := ids.NewUAID(), ids.NewChannelID()
		now := time.Now()
		for i := range 2 {
			if _, err := q.Append(ctx, u, entry(ch, "x", time.Hour, now)); err != nil {
				t.Fatalf("append %d: %v", i, err)
			}
		}
		if _, err := q.Append(ctx, u, entry(ch, "x", time.Hour, now)); !errors.Is(err, ErrFull) {
			t.Fatalf("third append err = %v, want ErrFull", err)
		}
		// A message replacing one by topic does not grow the queue.
		if _, err := q.Append(ctx, u, Entry{ChannelID: ch, TTL: time.Hour, Received: now, Topic: "t"}); !errors.Is(err, ErrFull) {
			t.Fatalf("topic append to a full queue without a match: %v", err)
		}
	})
}

// A queue emptied by acknowledgements is kept only IdleLife once its user agent
// leaves, without its topics; one with messages waiting keeps its life, and the next
// message gives an emptied queue its life back, with a later entry id.
func TestIdle(t *testing.T) {
	eachQueue(t, 100, func(t *testing.T, q *Queue, keys rkey.Keys) {
		ctx := context.Background()
		u, ch := ids.NewUAID(), ids.NewChannelID()
		now := time.Now()
		life := func() time.Duration {
			t.Helper()
			d, err := q.rdb.PTTL(ctx, keys.Queue(u)).Result()
			if err != nil {
				t.Fatal(err)
			}
			return d
		}
		idle := func(want bool) {
			t.Helper()
			if empty, err := q.Idle(ctx, u); err != nil || empty != want {
				t.Fatalf("Idle = %v, %v; want %v", empty, err, want)
			}
		}
		exists := func(key string) bool {
			t.Helper()
			n, err := q.rdb.Exists(ctx, key).Result()
			if err != nil {
				t.Fatal(err)
			}
			return n == 1
		}

		idle(true) // no queue at all
		if exists(keys.Queue(u)) || exists(keys.Topics(u)) {
			t.Fatal("Idle created a key")
		}
		first, err := q.Append(ctx, u, Entry{ChannelID: ch, Data: []byte("a"), TTL: 48 * time.Hour, Received: now, Topic: "t"})
		if err != nil {
			t.Fatal(err)
		}
		idle(false)
		if d := life(); d < 47*time.Hour {
			t.Fatalf("with a message waiting the queue lives %s, want its message's 48h", d)
		}
		if !exists(keys.Topics(u)) {
			t.Fatal("the topics of a waiting message were dropped")
		}

		if n, err := q.Delete(ctx, u, first); err != nil || n != 1 {
			t.Fatalf("Delete = %d, %v", n, err)
		}
		idle(true)
		if d := life(); d <= 0 || d > IdleLife {
			t.Fatalf("the emptied queue lives %s, want at most %s", d, IdleLife)
		}
		if exists(keys.Topics(u)) {
			t.Fatal("the emptied queue's topics stayed")
		}
		idle(true) // again: the life only ever shortens
		if d := life(); d <= 0 || d > IdleLife {
			t.Fatalf("after a second Idle the queue lives %s", d)
		}

		next, err := q.Append(ctx, u, entry(ch, "b", 48*time.Hour, now))
		if err != nil {
			t.Fatal(err)
		}
		if d := life(); d < 47*time.Hour {
			t.Fatalf("after the next message the queue lives %s, want 48h", d)
		}
		if !EntryAfter(next, first) {
			t.Fatalf("entry id %s after %s: ids went back", next, first)
		}
	})
}
