package queue

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/herald-push/herald/pkg/ids"
	"github.com/herald-push/herald/pkg/rkey"
)

func TestSubscriptionChanges(t *testing.T) {
	eachQueue(t, 100, func(t *testing.T, q *Queue, keys rkey.Keys) {
		ctx := context.Background()
		now := time.Now()
		k1, k2 := []byte("\x04key-one"), []byte("\x04key-two")
		withKey := func(ch ids.ChannelID, key []byte) Entry {
			e := entry(ch, "x", time.Hour, now)
			e.AppServerKey = key
			return e
		}
		// check runs the TTL-0 check in a pipeline, as the router does.
		check := func(u ids.UAID, ch ids.ChannelID, key []byte) error {
			p := q.rdb.Pipeline()
			c := q.CheckIn(ctx, p, u, ch, key)
			_, _ = p.Exec(ctx) // c reports its own error
			return c.Err()
		}
		u, ch, other := ids.NewUAID(), ids.NewChannelID(), ids.NewChannelID()

		// No change recorded: whatever key the sender was checked against.
		for _, key := range [][]byte{nil, k1} {
			if _, err := q.Append(ctx, u, withKey(ch, key)); err != nil {
				t.Fatalf("append with no change recorded: %v", err)
			}
			if err := check(u, ch, key); err != nil {
				t.Fatalf("check with no change recorded: %v", err)
			}
		}

		if err := q.Unsubscribed(ctx, u, ch); err != nil {
			t.Fatal(err)
		}
		if _, err := q.Append(ctx, u, withKey(ch, k1)); !errors.Is(err, ErrGone) {
			t.Fatalf("append after unsubscribe: %v, want ErrGone", err)
		}
		if err := check(u, ch, k1); !errors.Is(err, ErrGone) {
			t.Fatalf("check after unsubscribe: %v, want ErrGone", err)
		}
		if n, _ := q.Len(ctx, u); n != 2 {
			t.Fatalf("queue holds %d messages, want the 2 from before the unsubscribe", n)
		}
		if _, err := q.Append(ctx, u, withKey(other, nil)); err != nil {
			t.Fatalf("another channel of the same user agent: %v", err)
		}
		life, err := q.rdb.PTTL(ctx, keys.Changes(u)).Result()
		if err != nil || life <= 0 || life > ChangeMemory {
			t.Fatalf("changes hash lives %v (%v), want (0, %v]", life, err, ChangeMemory)
		}

		// Registered again with another key: a sender checked against the old
		// key is refused, one checked against the new key is not.
		if err := q.Subscribed(ctx, u, ch, k2); err != nil {
			t.Fatal(err)
		}
		for _, key := range [][]byte{k1, nil} {
			if _, err := q.Append(ctx, u, withKey(ch, key)); !errors.Is(err, ErrKeyChanged) {
				t.Fatalf("append checked against %q: %v, want ErrKeyChanged", key, err)
			}
			if err := check(u, ch, key); !errors.Is(err, ErrKeyChanged) {
				t.Fatalf("check against %q: %v, want ErrKeyChanged", key, err)
			}
		}
		if _, err := q.Append(ctx, u, withKey(ch, k2)); err != nil {
			t.Fatalf("append checked against the new key: %v", err)
		}
		if err := check(u, ch, k2); err != nil {
			t.Fatalf("check against the new key: %v", err)
		}

		// Unrestricted again.
		if err := q.Subscribed(ctx, u, ch, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := q.Append(ctx, u, withKey(ch, nil)); err != nil {
			t.Fatalf("append to an unrestricted subscription: %v", err)
		}
		if _, err := q.Append(ctx, u, withKey(ch, k2)); !errors.Is(err, ErrKeyChanged) {
			t.Fatalf("append checked against a dropped key: %v, want ErrKeyChanged", err)
		}
	})
}

func TestUnsubscribedNothing(t *testing.T) {
	eachQueue(t, 1, func(t *testing.T, q *Queue, keys rkey.Keys) {
		u := ids.NewUAID()
		if err := q.Unsubscribed(context.Background(), u); err != nil {
			t.Fatal(err)
		}
		if n, err := q.rdb.Exists(context.Background(), keys.Changes(u)).Result(); err != nil || n != 0 {
			t.Fatalf("changes hash exists: %d, %v", n, err)
		}
	})
}
