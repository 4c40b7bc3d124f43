package connects

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/herald-push/herald/pkg/ids"
	"github.com/herald-push/herald/pkg/store"
)

// fakeStore knows the user agents in known, each with one subscription whose channel
// id is its uaid's bytes; it records each statement's user agents, and holds each
// statement until release gets a token (when hold is set).
type fakeStore struct {
	known   map[ids.UAID]bool
	hold    bool
	release chan struct{}
	started chan int
	err     error

	mu      sync.Mutex
	batches [][]ids.UAID
}

func (f *fakeStore) ConnectMany(ctx context.Context, us []ids.UAID, _ time.Time) (map[ids.UAID][]store.Subscription, error) {
	f.mu.Lock()
	f.batches = append(f.batches, us)
	f.mu.Unlock()
	if f.started != nil {
		f.started <- len(us)
	}
	if f.hold {
		select {
		case <-f.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if f.err != nil {
		return nil, f.err
	}
	out := map[ids.UAID][]store.Subscription{}
	for _, u := range us {
		if f.known[u] {
			out[u] = []store.Subscription{{UAID: u, ChannelID: ids.ChannelID(u)}}
		}
	}
	return out, nil
}

func (f *fakeStore) sizes() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []int
	for _, b := range f.batches {
		out = append(out, len(b))
	}
	return out
}

// Hellos that arrive while a statement is in flight share the next one, up to the
// most it carries, and each gets its own user agent's answer.
func TestHellosShareStatements(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f := &fakeStore{known: map[ids.UAID]bool{}, hold: true, release: make(chan struct{}), started: make(chan int, 100)}
	b := New(f, 1, 10)
	us := make([]ids.UAID, 26)
	for i := range us {
		us[i] = ids.NewUAID()
		f.known[us[i]] = i%2 == 0
	}
	type result struct {
		i    int
		subs []store.Subscription
		err  error
	}
	results := make(chan result, len(us))
	connect := func(i int) {
		subs, err := b.Connect(ctx, us[i], time.Now())
		results <- result{i, subs, err}
	}
	go connect(0)
	if n := <-f.started; n != 1 {
		t.Fatalf("the first statement carries %d hellos, want 1", n)
	}
	for i := 1; i < len(us); i++ {
		go connect(i)
	}
	// The queue holds what one statement carries (10); the other hellos wait to
	// queue. Each statement is let go once the next one's hellos are all queued.
	queued := func(n int) {
		t.Helper()
		for len(b.queue) < n {
			select {
			case <-ctx.Done():
				t.Fatalf("%d hellos queued, want %d", len(b.queue), n)
			case <-time.After(time.Millisecond):
			}
		}
	}
	for _, next := range []int{10, 10, 5} {
		queued(next)
		f.release <- struct{}{}
		if n := <-f.started; n != next {
			t.Fatalf("a statement carries %d hellos, want %d", n, next)
		}
	}
	f.release <- struct{}{}
	for range us {
		r := <-results
		switch {
		case f.known[us[r.i]] && (r.err != nil || len(r.subs) != 1 || r.subs[0].ChannelID != ids.ChannelID(us[r.i])):
			t.Errorf("hello %d: %v, %v", r.i, r.subs, r.err)
		case !f.known[us[r.i]] && !errors.Is(r.err, store.ErrNotFound):
			t.Errorf("hello %d of an unknown user agent: %v, %v", r.i, r.subs, r.err)
		}
	}
	got := f.sizes()
	if len(got) != 4 || got[0] != 1 || got[1] != 10 || got[2] != 10 || got[3] != 5 {
		t.Fatalf("statements carried %v hellos, want [1 10 10 5]", got)
	}
}

// A hello whose context ends while it waits returns at once and is left out of the
// next statement; a statement's failure is every hello's in it.
func TestHelloEnds(t *testing.T) {
	f := &fakeStore{known: map[ids.UAID]bool{}, hold: true, release: make(chan struct{}), started: make(chan int, 10)}
	b := New(f, 1, 10)
	first, waiting := ids.NewUAID(), ids.NewUAID()
	f.known[first] = true
	sent := make(chan error, 1)
	go func() {
		_, err := b.Connect(context.Background(), first, time.Now())
		sent <- err
	}()
	<-f.started // first's caller sends, and its statement is held
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := b.Connect(ctx, waiting, time.Now())
		done <- err
	}()
	for len(b.queue) == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled hello: %v", err)
	}
	close(f.release)
	if err := <-sent; err != nil {
		t.Fatalf("the held statement's hello: %v", err)
	}
	// The next statement, for another hello, does not carry the cancelled one.
	other := ids.NewUAID()
	if _, err := b.Connect(context.Background(), other, time.Now()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another hello: %v", err)
	}
	f.mu.Lock()
	for _, batch := range f.batches {
		for _, u := range batch {
			if u == waiting {
				t.Errorf("the cancelled hello was sent: %v", f.batches)
			}
		}
	}
	f.mu.Unlock()

	f2 := &fakeStore{err: errors.New("postgres is down")}
	b2 := New(f2, 2, 10)
	if _, err := b2.Connect(context.Background(), ids.NewUAID(), time.Now()); err == nil || err.Error() != "postgres is down" {
		t.Fatalf("a failed statement: %v", err)
	}
}
