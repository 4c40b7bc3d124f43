package subcache

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/herald-push/herald/pkg/ids"
	"github.com/herald-push/herald/pkg/store"
)

// fakeStore holds subscriptions by channel and counts queries; a query may move
// the clock, as a slow one would.
type fakeStore struct {
	mu      sync.Mutex
	keys    map[ids.ChannelID][]byte
	queries int
	during  func()
}

func (f *fakeStore) Subscription(_ context.Context, u ids.UAID, ch ids.ChannelID) (store.Subscription, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queries++
	if f.during != nil {
		f.during()
	}
	key, ok := f.keys[ch]
	if !ok {
		return store.Subscription{}, store.ErrNotFound
	}
	return store.Subscription{UAID: u, ChannelID: ch, AppServerKey: key}, nil
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newCache(ttl time.Duration, size int) (*Cache, *fakeStore, *clock) {
	st := &fakeStore{keys: map[ids.ChannelID][]byte{}}
	c := New(st, ttl, size)
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	c.now = clk.now
	return c, st, clk
}

func lookup(t *testing.T, c *Cache, u ids.UAID, ch ids.ChannelID) (store.Subscription, error) {
	t.Helper()
	return c.Subscription(context.Background(), u, ch)
}

func TestCache(t *testing.T) {
	c, st, clk := newCache(4*time.Second, 1000)
	u, ch, unknown := ids.NewUAID(), ids.NewChannelID(), ids.NewChannelID()
	st.keys[ch] = []byte("key")

	for range 3 {
		sub, err := lookup(t, c, u, ch)
		if err != nil || string(sub.AppServerKey) != "key" || sub.UAID != u || sub.ChannelID != ch {
			t.Fatalf("lookup = %+v, %v", sub, err)
		}
	}
	if st.queries != 1 {
		t.Fatalf("%d queries for 3 lookups, want 1", st.queries)
	}

	t.Run("not found is not cached", func(t *testing.T) {
		for range 2 {
			if _, err := lookup(t, c, u, unknown); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("unknown channel: %v", err)
			}
		}
		if st.queries != 3 {
			t.Fatalf("%d queries, want each lookup of an unknown channel to ask", st.queries)
		}
		// Registered now: found at once.
		st.keys[unknown] = nil
		if _, err := lookup(t, c, u, unknown); err != nil {
			t.Fatalf("after register: %v", err)
		}
	})

	t.Run("entries expire", func(t *testing.T) {
		before := st.queries
		clk.advance(4 * time.Second)
		if _, err := lookup(t, c, u, ch); err != nil || st.queries != before+1 {
			t.Fatalf("lookup after the TTL: %v, %d queries, want a new one", err, st.queries-before)
		}
	})

	t.Run("forget", func(t *testing.T) {
		before := st.queries
		c.Forget(u, ch)
		delete(st.keys, ch)
		if _, err := lookup(t, c, u, ch); !errors.Is(err, store.ErrNotFound) || st.queries != before+1 {
			t.Fatalf("lookup after Forget: %v after %d queries", err, st.queries-before)
		}
	})
}

// TestExpiryCountsFromTheQuery: an entry's life starts before its query, so that a
// slow query cannot stretch it past the router's record of a change made meanwhile.
func TestExpiryCountsFromTheQuery(t *testing.T) {
	c, st, clk := newCache(4*time.Second, 1000)
	u, ch := ids.NewUAID(), ids.NewChannelID()
	st.keys[ch] = nil
	st.during = func() { clk.advance(3 * time.Second) }
	if _, err := lookup(t, c, u, ch); err != nil {
		t.Fatal(err)
	}
	st.during = nil
	clk.advance(time.Second) // 4 s after the query started
	if _, err := lookup(t, c, u, ch); err != nil || st.queries != 2 {
		t.Fatalf("lookup 4 s after the first query started: %v, %d queries, want 2", err, st.queries)
	}
}

func TestBounded(t *testing.T) {
	const size = 2 * shards
	c, st, _ := newCache(time.Minute, size)
	u := ids.NewUAID() // one uaid: one shard
	for range 10 * size {
		ch := ids.NewChannelID()
		st.keys[ch] = nil
		if _, err := lookup(t, c, u, ch); err != nil {
			t.Fatal(err)
		}
	}
	total := 0
	for i := range c.shards {
		total += len(c.shards[i].m)
	}
	if total > size/shards {
		t.Fatalf("%d entries cached, want at most %d in the one shard used", total, size/shards)
	}
}

func TestDisabled(t *testing.T) {
	c, st, _ := newCache(0, 1000)
	u, ch := ids.NewUAID(), ids.NewChannelID()
	st.keys[ch] = nil
	for range 2 {
		if _, err := lookup(t, c, u, ch); err != nil {
			t.Fatal(err)
		}
	}
	if st.queries != 2 {
		t.Fatalf("%d queries with the cache off, want 2", st.queries)
	}
}

func TestConcurrent(t *testing.T) {
	c, st, _ := newCache(time.Minute, 64)
	chs := make([]ids.ChannelID, 16)
	for i := range chs {
		chs[i] = ids.NewChannelID()
		st.keys[chs[i]] = []byte{byte(i)}
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			u := ids.NewUAID()
			for i := range 200 {
				ch := chs[(g+i)%len(chs)]
				sub, err := c.Subscription(context.Background(), u, ch)
				if err != nil || sub.AppServerKey[0] != st.keys[ch][0] {
					t.Errorf("lookup: %+v, %v", sub, err)
					return
				}
				if i%7 == 0 {
					c.Forget(u, ch)
				}
			}
		})
	}
	wg.Wait()
}
