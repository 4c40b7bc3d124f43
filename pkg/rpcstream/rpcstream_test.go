package rpcstream_test

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/herald-push/herald/pkg/rpcstream"
	heraldv1 "github.com/herald-push/herald/proto/herald/v1"
)

// gateway serves DeliverStream (unless unaryOnly) and DeliverBatch. Each answer
// says, for every request, whether its epoch is odd, so that a call can check that
// it got its own answer.
type gateway struct {
	heraldv1.UnimplementedGatewayServer
	unaryOnly bool
	drain     chan struct{}
	streams   atomic.Int64  // streams opened
	active    atomic.Int64  // streams not yet ended
	observed  atomic.Int64  // calls Observe saw
	unary     atomic.Int64  // unary calls
	hold      chan struct{} // when set, each handler waits for it to close
	deaf      bool          // handlers waiting on hold ignore their context's end
	deadline  atomic.Int64  // the last handler's remaining time, in ms
	running   atomic.Int64  // handlers running now
	most      atomic.Int64  // the most handlers that ran at once
}

func (g *gateway) answer(ctx context.Context, req *heraldv1.DeliverBatchRequest) *heraldv1.DeliverBatchResponse {
	if d, ok := ctx.Deadline(); ok {
		g.deadline.Store(time.Until(d).Milliseconds())
	}
	n := g.running.Add(1)
	defer g.running.Add(-1)
	for m := g.most.Load(); n > m && !g.most.CompareAndSwap(m, n); m = g.most.Load() {
	}
	if g.hold != nil {
		done := ctx.Done()
		if g.deaf {
			done = nil
		}
		select {
		case <-g.hold:
		case <-done:
		}
	}
	out := &heraldv1.DeliverBatchResponse{}
	for _, r := range req.GetRequests() {
		out.Accepted = append(out.Accepted, r.GetEpoch()%2 == 1)
	}
	return out
}

func (g *gateway) DeliverBatch(ctx context.Context, req *heraldv1.DeliverBatchRequest) (*heraldv1.DeliverBatchResponse, error) {
	g.unary.Add(1)
	return g.answer(ctx, req), nil
}

func (g *gateway) DeliverStream(s grpc.BidiStreamingServer[heraldv1.DeliverBatchRequest, heraldv1.DeliverBatchResponse]) error {
	if g.unaryOnly {
		return status.Error(codes.Unimplemented, "method DeliverStream not implemented")
	}
	g.streams.Add(1)
	g.active.Add(1)
	defer g.active.Add(-1)
	return rpcstream.Serve(s, rpcstream.ServeOptions{Parallel: 8, Drain: g.drain, Observe: func(context.Context, time.Duration) { g.observed.Add(1) }}, g.answer)
}

type client = rpcstream.Client[heraldv1.DeliverBatchRequest, heraldv1.DeliverBatchResponse, *heraldv1.DeliverBatchRequest, *heraldv1.DeliverBatchResponse]

// start serves g on a loopback port and returns a client of it.
func start(t *testing.T, g *gateway, opts rpcstream.Options) (*client, *grpc.Server) {
	t.Helper()
	if g.drain == nil {
		g.drain = make(chan struct{})
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	heraldv1.RegisterGatewayServer(srv, g)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Stop()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	cc, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	gc := heraldv1.NewGatewayClient(cc)
	c := rpcstream.NewClient(
		func(ctx context.Context) (grpc.BidiStreamingClient[heraldv1.DeliverBatchRequest, heraldv1.DeliverBatchResponse], error) {
			return gc.DeliverStream(ctx)
		},
		func(ctx context.Context, req *heraldv1.DeliverBatchRequest) (*heraldv1.DeliverBatchResponse, error) {
			return gc.DeliverBatch(ctx, req)
		}, opts)
	t.Cleanup(c.Close)
	return c, srv
}

// call makes one call of n requests whose epochs start at first, and checks that
// its answer is its own.
func call(ctx context.Context, c *client, first uint64, n int) error {
	req := &heraldv1.DeliverBatchRequest{}
	for i := range n {
		req.Requests = append(req.Requests, &heraldv1.DeliverRequest{Epoch: first + uint64(i)})
	}
	resp, err := c.Call(ctx, req)
	if err != nil {
		return err
	}
	if len(resp.GetAccepted()) != n {
		return status.Errorf(codes.Internal, "got %d answers for %d requests", len(resp.GetAccepted()), n)
	}
	for i, ok := range resp.GetAccepted() {
		if want := (first+uint64(i))%2 == 1; ok != want {
			return status.Errorf(codes.Internal, "answer %d of the call from %d is %v: another call's", i, first, ok)
		}
	}
	return nil
}

// callMany makes calls from workers goroutines until stop closes, and returns how
// many calls succeeded and the first error.
func callMany(c *client, workers int, stop <-chan struct{}) (int64, error) {
	var (
		ok       atomic.Int64
		firstErr error
		mu       sync.Mutex
		wg       sync.WaitGroup
	)
	for w := range workers {
		wg.Go(func() {
			for i := uint64(0); ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				err := call(ctx, c, uint64(w)*1_000_000+i*7, 1+int(i%5))
				cancel()
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	return ok.Load(), firstErr
}

func TestCallsGetTheirOwnAnswers(t *testing.T) {
	g := &gateway{}
	c, _ := start(t, g, rpcstream.Options{Streams: 2})
	stop := make(chan struct{})
	time.AfterFunc(300*time.Millisecond, func() { close(stop) })
	n, err := callMany(c, 16, stop)
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no call succeeded")
	}
	if s, u := g.streams.Load(), g.unary.Load(); s != 2 || u != 0 {
		t.Fatalf("%d streams and %d unary calls, want 2 streams and no unary call", s, u)
	}
	if o := g.observed.Load(); o != n {
		t.Fatalf("Observe saw %d calls of %d", o, n)
	}
}

// A stream's requests are handled at most Parallel (8) at once, and that many do run
// at once; those past it wait for a handler to end, and are all answered.
func TestParallelBoundsHandlers(t *testing.T) {
	g := &gateway{hold: make(chan struct{})}
	c, _ := start(t, g, rpcstream.Options{Streams: 1})
	const calls = 20
	errs := make(chan error, calls)
	for i := range calls {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			errs <- call(ctx, c, uint64(i)*10, 3)
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for g.running.Load() < 8 {
		if time.Now().After(deadline) {
			t.Fatalf("%d handlers running, want 8", g.running.Load())
		}
		time.Sleep(time.Millisecond)
	}
	close(g.hold)
	for range calls {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if m := g.most.Load(); m != 8 {
		t.Fatalf("at most %d handlers ran at once, want 8", m)
	}
	if o := g.observed.Load(); o != calls {
		t.Fatalf("Observe saw %d calls of %d", o, calls)
	}
}

func TestDeadlineTravelsWithTheRequest(t *testing.T) {
	g := &gateway{}
	c, _ := start(t, g, rpcstream.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := call(ctx, c, 1, 1); err != nil {
		t.Fatal(err)
	}
	if d := g.deadline.Load(); d <= 2000 || d > 3000 {
		t.Fatalf("handler had %d ms left, want the caller's 3 s less the trip", d)
	}
}

func TestCallerGivesUpAtItsDeadline(t *testing.T) {
	// The handler outlives the call's deadline, as a stuck server would.
	g := &gateway{hold: make(chan struct{}), deaf: true}
	defer close(g.hold)
	c, _ := start(t, g, rpcstream.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := call(ctx, c, 1, 1); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("got %v, want DeadlineExceeded", err)
	}
}

// A draining server tells its clients, which half-close their streams and move
// their calls to new ones without a call failing; the drained streams end.
func TestDrainFailsNoCall(t *testing.T) {
	g := &gateway{}
	c, _ := start(t, g, rpcstream.Options{Streams: 2})
	stop := make(chan struct{})
	result := make(chan error, 1)
	var n int64
	go func() {
		var err error
		n, err = callMany(c, 16, stop)
		result <- err
	}()
	waitFor(t, "calls on the first streams", func() bool { return g.streams.Load() >= 2 })
	// Every stream, the new ones too, is told to drain at once: calls keep moving
	// to new streams.
	close(g.drain)
	waitFor(t, "calls on new streams", func() bool { return g.streams.Load() >= 6 })
	close(stop)
	if err := <-result; err != nil {
		t.Fatalf("a call failed during the drain: %v", err)
	}
	if n == 0 {
		t.Fatal("no call succeeded")
	}
	waitFor(t, "drained streams to end", func() bool { return g.active.Load() == 0 })
}

// waitFor polls cond until it holds, or fails the test after 5 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 5 s for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling
	}
}

func TestRotateOpensNewStreams(t *testing.T) {
	g := &gateway{}
	c, _ := start(t, g, rpcstream.Options{Rotate: 20 * time.Millisecond})
	stop := make(chan struct{})
	time.AfterFunc(300*time.Millisecond, func() { close(stop) })
	if _, err := callMany(c, 8, stop); err != nil {
		t.Fatal(err)
	}
	if s := g.streams.Load(); s < 3 {
		t.Fatalf("%d streams in 300 ms with Rotate 20 ms", s)
	}
}

// A server without the stream (an older one during a rolling upgrade) is called
// unary, and the client stops trying the stream for a while.
func TestFallsBackToUnary(t *testing.T) {
	g := &gateway{unaryOnly: true}
	c, _ := start(t, g, rpcstream.Options{})
	for i := range 5 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := call(ctx, c, uint64(i), 3)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	if u := g.unary.Load(); u != 5 {
		t.Fatalf("%d unary calls, want 5", u)
	}
}

// Calls waiting on a server that dies fail with Unavailable rather than hang.
func TestServerGoneFailsWaitingCalls(t *testing.T) {
	g := &gateway{hold: make(chan struct{})}
	c, srv := start(t, g, rpcstream.Options{})
	errs := make(chan error, 4)
	for i := range 4 {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			errs <- call(ctx, c, uint64(i), 1)
		}()
	}
	waitFor(t, "a stream", func() bool { return g.streams.Load() > 0 })
	srv.Stop()
	close(g.hold)
	for range 4 {
		select {
		case err := <-errs:
			if status.Code(err) != codes.Unavailable {
				t.Fatalf("got %v, want Unavailable", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a call still waits on a stopped server")
		}
	}
}
