package queue

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/herald-push/herald/pkg/ids"
	"github.com/herald-push/herald/pkg/rkey"
)

// pipelineGate is a Redis hook that records the size of each pipeline of XDELs and, while
// hold is set, keeps the first one from reaching Redis until release is closed.
type pipelineGate struct {
	mu      sync.Mutex
	sizes   []int
	hold    bool
	held    chan struct{} // closed once the first pipeline is held
	release chan struct{}
}

func newPipelineGate(hold bool) *pipelineGate {
	return &pipelineGate{hold: hold, held: make(chan struct{}), release: make(chan struct{})}
}

func (g *pipelineGate) DialHook(next redis.DialHook) redis.DialHook { return next }
func (g *pipelineGate) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return next
}

func (g *pipelineGate) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) == 0 || cmds[0].Name() != "xdel" {
			return next(ctx, cmds) // the client's own, such as a new connection's setup
		}
		g.mu.Lock()
		g.sizes = append(g.sizes, len(cmds))
		first := len(g.sizes) == 1
		g.mu.Unlock()
		if first && g.hold {
			close(g.held)
			<-g.release
		}
		return next(ctx, cmds)
	}
}

func (g *pipelineGate) pipelines() []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]int(nil), g.sizes...)
}

// startDeleter runs d until the test ends, and fails the test if Run does not
// return then.
func startDeleter(t *testing.T, d *Deleter) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	stop = func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after its context ended")
		}
	}
	t.Cleanup(stop)
	return stop
}

// waitPending waits until n deletes wait for the next pipeline.
func waitPending(t *testing.T, d *Deleter, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		d.mu.Lock()
		got := len(d.pending)
		d.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d deletes pending, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// fill appends n messages to u's queue and returns their entry ids.
func fill(t *testing.T, q *Queue, u ids.UAID, n int) []string {
	t.Helper()
	ch := ids.NewChannelID()
	var out []string
	for i := range n {
		id, err := q.Append(context.Background(), u, entry(ch, fmt.Sprint(i), time.Hour, time.Now()))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, id)
	}
	return out
}

// nodes returns how many Redis servers hold the queues of uaids: one on a single
// Redis, each master that holds one of them on a Cluster.
func nodes(t *testing.T, rdb redis.UniversalClient, keys rkey.Keys, uaids []ids.UAID) int {
	t.Helper()
	cluster, ok := rdb.(*redis.ClusterClient)
	if !ok {
		return 1
	}
	addrs := map[string]bool{}
	for _, u := range uaids {
		node, err := cluster.MasterForKey(context.Background(), keys.Queue(u))
		if err != nil {
			t.Fatal(err)
		}
		addrs[node.Options().Addr] = true
	}
	return len(addrs)
}

func TestDeleterGivesEachCallerItsOwnResult(t *testing.T) {
	eachQueue(t, 100, func(t *testing.T, q *Queue, keys rkey.Keys) {
		gate := newPipelineGate(true)
		q.rdb.AddHook(gate)
		d := NewDeleter(q, 64, 0)
		startDeleter(t, d)
		ctx := context.Background()

		// The first delete goes alone, at once, and is held in Redis's doorway…
		first := ids.NewUAID()
		firstIDs := fill(t, q, first, 1)
		firstDone := make(chan error, 1)
		go func() {
			n, err := d.Delete(ctx, first, firstIDs...)
			if err == nil && n != 1 {
				err = fmt.Errorf("deleted %d, want 1", n)
			}
			firstDone <- err
		}()
		select {
		case <-gate.held:
		case <-time.After(5 * time.Second):
			t.Fatal("the first delete did not start a pipeline")
		}

		// …while the others, each for its own user agent (spread over a Cluster's
		// nodes), queue up behind it. Caller i has i%3+2 messages and deletes all but
		// the last, with one malformed id and one never stored; caller 0 deleted its
		// first already; the one whose queue is not a stream fails alone.
		const callers = 24
		uaids := make([]ids.UAID, callers)
		stored := make([][]string, callers)
		for i := range uaids {
			uaids[i] = ids.NewUAID()
			stored[i] = fill(t, q, uaids[i], i%3+2)
		}
		if n := nodes(t, q.rdb, keys, uaids); n < 2 && isCluster(q.rdb) {
			t.Fatalf("the user agents' queues are on %d node of the Cluster, want several", n)
		}
		const wrongType = 5
		if err := q.rdb.Del(ctx, keys.Queue(uaids[wrongType])).Err(); err != nil {
			t.Fatal(err)
		}
		if err := q.rdb.Set(ctx, keys.Queue(uaids[wrongType]), "not a stream", time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		if _, err := q.Delete(ctx, uaids[0], stored[0][0]); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make([]error, callers)
		for i, u := range uaids {
			wg.Go(func() {
				del := append(stored[i][:len(stored[i])-1:len(stored[i])-1], "12-0", "not-an-id")
				want := int64(len(stored[i]) - 1)
				if i == 0 {
					want--
				}
				n, err := d.Delete(ctx, u, del...)
				switch {
				case i == wrongType:
					if err == nil {
						errs[i] = errors.New("a delete on a key that is not a stream succeeded")
					}
				case err != nil:
					errs[i] = fmt.Errorf("caller %d: %w", i, err)
				case n != want:
					errs[i] = fmt.Errorf("caller %d deleted %d, want %d", i, n, want)
				}
			})
		}
		waitPending(t, d, callers)
		close(gate.release)
		wg.Wait()
		if err := <-firstDone; err != nil {
			t.Fatal(err)
		}
		for _, err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
		if got := gate.pipelines(); len(got) != 2 || got[0] != 1 || got[1] != callers {
			t.Fatalf("pipelines of %v deletes, want [1 %d]: those queued behind a pipeline go together", got, callers)
		}
		// What is left in each queue is exactly its last message.
		for i, u := range uaids {
			if i == wrongType {
				continue
			}
			left, err := q.Range(ctx, u, "", 10, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if len(left) != 1 || left[0].ID != stored[i][len(stored[i])-1] {
				t.Fatalf("caller %d: %d left, want its last message only", i, len(left))
			}
		}
	})
}

func isCluster(rdb redis.UniversalClient) bool {
	_, ok := rdb.(*redis.ClusterClient)
	return ok
}

func TestDeleterCallerGivesUpAtItsDeadline(t *testing.T) {
	eachQueue(t, 100, func(t *testing.T, q *Queue, _ rkey.Keys) {
		gate := newPipelineGate(true)
		q.rdb.AddHook(gate)
		d := NewDeleter(q, 64, 0)
		startDeleter(t, d)
		u := ids.NewUAID()
		entries := fill(t, q, u, 2)
		firstDone := make(chan error, 1)
		go func() {
			_, err := d.Delete(context.Background(), u, entries[0])
			firstDone <- err
		}()
		<-gate.held
		// A caller behind a stuck pipeline returns at its own deadline.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		if _, err := d.Delete(ctx, u, entries[1]); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want the deadline's", err)
		}
		close(gate.release)
		if err := <-firstDone; err != nil {
			t.Fatal(err)
		}
	})
}

func TestDeleterDeletesWhatIsPendingWhenStopping(t *testing.T) {
	eachQueue(t, 100, func(t *testing.T, q *Queue, _ rkey.Keys) {
		gate := newPipelineGate(true)
		q.rdb.AddHook(gate)
		d := NewDeleter(q, 2, 0) // the three pending take two pipelines
		stop := startDeleter(t, d)
		ctx := context.Background()
		u := ids.NewUAID()
		entries := fill(t, q, u, 5)
		results := make(chan error, 4)
		deleteOne := func(id string) {
			n, err := d.Delete(ctx, u, id)
			if err == nil && n != 1 {
				err = fmt.Errorf("deleted %d, want 1", n)
			}
			results <- err
		}
		go deleteOne(entries[0])
		<-gate.held
		for _, id := range entries[1:4] {
			go deleteOne(id)
		}
		waitPending(t, d, 3)
		stopped := make(chan struct{})
		go func() { stop(); close(stopped) }()
		close(gate.release)
		for range 4 {
			if err := <-results; err != nil {
				t.Fatalf("a delete pending at the stop: %v", err)
			}
		}
		<-stopped
		// After Run returned, a delete goes straight to Redis.
		if n, err := d.Delete(ctx, u, entries[4]); err != nil || n != 1 {
			t.Fatalf("Delete after the stop = %d, %v", n, err)
		}
		if n, err := q.Len(ctx, u); err != nil || n != 0 {
			t.Fatalf("%d messages left, %v", n, err)
		}
	})
}

// With a linger, deletes that come one after another within it share a pipeline,
// and a full pipeline goes without waiting the linger out.
func TestDeleterLingers(t *testing.T) {
	eachQueue(t, 100, func(t *testing.T, q *Queue, _ rkey.Keys) {
		for _, tc := range []struct {
			name      string
			maxBatch  int
			linger    time.Duration
			callers   int
			pipelines []int
		}{
			// Without a linger the first goes alone (see
			// TestDeleterGivesEachCallerItsOwnResult); with one, all five wait for
			// the last. The linger is long, so that a slow machine does not split them.
			{name: "within the linger", maxBatch: 64, linger: time.Second, callers: 5, pipelines: []int{5}},
			// A linger of an hour: the test ends long before unless a full pipeline
			// goes at once.
			{name: "full pipeline", maxBatch: 4, linger: time.Hour, callers: 4, pipelines: []int{4}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				gate := newPipelineGate(false)
				q.rdb.AddHook(gate)
				d := NewDeleter(q, tc.maxBatch, tc.linger)
				startDeleter(t, d)
				u := ids.NewUAID()
				entries := fill(t, q, u, tc.callers)
				results := make(chan error, tc.callers)
				for i, id := range entries {
					go func() {
						n, err := d.Delete(context.Background(), u, id)
						if err == nil && n != 1 {
							err = fmt.Errorf("delete %d removed %d, want 1", i, n)
						}
						results <- err
					}()
					if i < tc.callers-1 {
						// Each joins the pipeline the first is waiting to fill.
						waitPending(t, d, i+1)
					}
				}
				for range tc.callers {
					select {
					case err := <-results:
						if err != nil {
							t.Fatal(err)
						}
					case <-time.After(10 * time.Second):
						t.Fatal("a delete did not return")
					}
				}
				if got := gate.pipelines(); fmt.Sprint(got) != fmt.Sprint(tc.pipelines) {
					t.Fatalf("pipelines of %v deletes, want %v", got, tc.pipelines)
				}
				if n, err := q.Len(context.Background(), u); err != nil || n != 0 {
					t.Fatalf("%d messages left, %v", n, err)
				}
			})
		}
	})
}
