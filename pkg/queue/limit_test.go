package queue

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/herald-push/herald/pkg/ids"
	"github.com/herald-push/herald/pkg/rkey"
)

// limited is an entry of channel ch, with a TTL unless ttl is 0, under limit lim.
func limited(ch ids.ChannelID, ttl time.Duration, lim Limit) Entry {
	e := entry(ch, "x", ttl, time.Now())
	e.Limit = lim
	return e
}

// admit runs AdmitIn in a pipeline, as the router does.
func admit(t *testing.T, q *Queue, u ids.UAID, e Entry) error {
	t.Helper()
	p := q.rdb.Pipeline()
	c := q.AdmitIn(context.Background(), p, u, e)
	_, _ = p.Exec(context.Background()) // c reports its own error
	return c.Err()
}

// wantLimited checks that err is a *RateLimitError with a RetryAfter in (min, max].
func wantLimited(t *testing.T, err error, minWait, maxWait time.Duration) time.Duration {
	t.Helper()
	var rl *RateLimitError
	if !errors.As(err, &rl) {
		t.Fatalf("err %v, want a RateLimitError", err)
	}
	if rl.RetryAfter <= minWait || rl.RetryAfter > maxWait {
		t.Fatalf("retry after %v, want in (%v, %v]", rl.RetryAfter, minWait, maxWait)
	}
	return rl.RetryAfter
}

// state returns the limit's stored theoretical arrival time, "" when there is none.
func state(t *testing.T, q *Queue, keys rkey.Keys, u ids.UAID, ch ids.ChannelID) string {
	t.Helper()
	v, err := q.rdb.Get(context.Background(), keys.RateSubscription(u, ch)).Result()
	if errors.Is(err, redis.Nil) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestLimit checks the subscription's rate limit where messages are stored and,
// for TTL 0, admitted: a burst of Count passes, the next is refused with the wait
// until one would pass, and a refused message stores and counts nothing.
func TestLimit(t *testing.T) {
	lim := Limit{Count: 3, Period: time.Minute}
	for _, tc := range []struct {
		name string
		send func(t *testing.T, q *Queue, u ids.UAID, ch ids.ChannelID) error
		want int64 // messages stored after the burst
	}{
		{"stored", func(t *testing.T, q *Queue, u ids.UAID, ch ids.ChannelID) error {
			_, err := q.Append(context.Background(), u, limited(ch, time.Hour, lim))
			return err
		}, 3},
		{"stored, pipelined", func(t *testing.T, q *Queue, u ids.UAID, ch ids.ChannelID) error {
			p := q.rdb.Pipeline()
			c := q.AppendIn(context.Background(), p, u, limited(ch, time.Hour, lim))
			_, _ = p.Exec(context.Background())
			_, err := c.Result()
			if errors.Is(err, ErrNoScript) {
				// The first use on this Redis (or cluster node).
				_, err = q.Append(context.Background(), u, limited(ch, time.Hour, lim))
			}
			return err
		}, 3},
		{"TTL 0", func(t *testing.T, q *Queue, u ids.UAID, ch ids.ChannelID) error {
			return q.Admit(context.Background(), u, limited(ch, 0, lim))
		}, 0},
		{"TTL 0, pipelined", func(t *testing.T, q *Queue, u ids.UAID, ch ids.ChannelID) error {
			err := admit(t, q, u, limited(ch, 0, lim))
			if errors.Is(err, ErrNoScript) {
				err = q.Admit(context.Background(), u, limited(ch, 0, lim))
			}
			return err
		}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eachQueue(t, 100, func(t *testing.T, q *Queue, keys rkey.Keys) {
				u, ch, other := ids.NewUAID(), ids.NewChannelID(), ids.NewChannelID()
				for i := range 3 {
					if err := tc.send(t, q, u, ch); err != nil {
						t.Fatalf("message %d of the burst: %v", i+1, err)
					}
				}
				before := state(t, q, keys, u, ch)
				wait := wantLimited(t, tc.send(t, q, u, ch), 19*time.Second, 20*time.Second)
				// A refused message counts nothing: the state and the wait stay.
				if after := state(t, q, keys, u, ch); after != before {
					t.Fatalf("a refused message moved the state from %s to %s", before, after)
				}
				wantLimited(t, tc.send(t, q, u, ch), 0, wait)
				if n, err := q.Len(context.Background(), u); err != nil || n != tc.want {
					t.Fatalf("queue holds %d (%v), want %d", n, err, tc.want)
				}
				// Another subscription of the same user agent has its own count.
				if err := tc.send(t, q, u, other); err != nil {
					t.Fatalf("another channel: %v", err)
				}
				// The state expires once it equals a fresh one's: within the period.
				life, err := q.rdb.PTTL(context.Background(), keys.RateSubscription(u, ch)).Result()
				if err != nil || life <= 0 || life > time.Minute {
					t.Fatalf("limit state lives %v (%v), want (0, 1m]", life, err)
				}
			})
		})
	}
}

// TestLimitRefusedCountsNothing checks that a message the scripts refuse for
// another reason than the limit (queue full, unregistered, registered again) is
// not counted, and that a message the limit refuses replaces no waiting message
// of its Topic.
func TestLimitRefusedCountsNothing(t *testing.T) {
	eachQueue(t, 2, func(t *testing.T, q *Queue, keys rkey.Keys) {
		ctx := context.Background()
		lim := Limit{Count: 10, Period: time.Minute}
		u, ch := ids.NewUAID(), ids.NewChannelID()
		for i := range 2 {
			if _, err := q.Append(ctx, u, limited(ch, time.Hour, lim)); err != nil {
				t.Fatalf("append %d: %v", i+1, err)
			}
		}
		before := state(t, q, keys, u, ch)
		if _, err := q.Append(ctx, u, limited(ch, time.Hour, lim)); !errors.Is(err, ErrFull) {
			t.Fatalf("append to a full queue: %v, want ErrFull", err)
		}
		if after := state(t, q, keys, u, ch); after != before {
			t.Fatalf("a message refused as the queue is full counted: %s → %s", before, after)
		}

		gone, rekeyed := ids.NewChannelID(), ids.NewChannelID()
		if err := q.Unsubscribed(ctx, u, gone); err != nil {
			t.Fatal(err)
		}
		if err := q.Subscribed(ctx, u, rekeyed, []byte("\x04new")); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			ch   ids.ChannelID
			want error
		}{{gone, ErrGone}, {rekeyed, ErrKeyChanged}} {
			if _, err := q.Append(ctx, u, limited(c.ch, time.Hour, lim)); !errors.Is(err, c.want) {
				t.Fatalf("append: %v, want %v", err, c.want)
			}
			if err := q.Admit(ctx, u, limited(c.ch, 0, lim)); !errors.Is(err, c.want) {
				t.Fatalf("admit: %v, want %v", err, c.want)
			}
			if s := state(t, q, keys, u, c.ch); s != "" {
				t.Fatalf("a message refused with %v counted: state %s", c.want, s)
			}
		}

		// A message of a Topic over the limit leaves the waiting one of that Topic.
		topical, score := ids.NewUAID(), Limit{Count: 1, Period: time.Hour}
		first := limited(ch, time.Hour, score)
		first.Topic, first.Data = "score", []byte("1:0")
		if _, err := q.Append(ctx, topical, first); err != nil {
			t.Fatal(err)
		}
		second := first
		second.Data = []byte("2:0")
		if _, err := q.Append(ctx, topical, second); !errors.As(err, new(*RateLimitError)) {
			t.Fatalf("second message of the topic: %v, want a RateLimitError", err)
		}
		got, err := q.Range(ctx, topical, "", 10, time.Now())
		if err != nil || len(got) != 1 || string(got[0].Data) != "1:0" {
			t.Fatalf("queue after a refused replacement: %+v, %v", got, err)
		}
	})
}

// TestNoLimit checks that without a limit nothing is counted or kept.
func TestNoLimit(t *testing.T) {
	eachQueue(t, 100, func(t *testing.T, q *Queue, keys rkey.Keys) {
		u, ch := ids.NewUAID(), ids.NewChannelID()
		for range 5 {
			if _, err := q.Append(context.Background(), u, limited(ch, time.Hour, Limit{})); err != nil {
				t.Fatal(err)
			}
			if err := admit(t, q, u, limited(ch, 0, Limit{})); err != nil {
				t.Fatal(err)
			}
		}
		if s := state(t, q, keys, u, ch); s != "" {
			t.Fatalf("counted without a limit: state %s", s)
		}
	})
}
