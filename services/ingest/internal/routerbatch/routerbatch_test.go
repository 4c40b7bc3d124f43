package routerbatch

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	heraldv1 "github.com/herald-push/herald/proto/herald/v1"
)

// fakeRouter answers each message with its own channel id as the id, fails the ones
// whose channel id is "full" or "limited" (a rate limit, with a retry-after of
// 1.5 s), and records the batch sizes. release, when set, holds
// every call until it is closed.
type fakeRouter struct {
	mu      sync.Mutex
	sizes   []int
	release chan struct{}
	err     error
}

func (f *fakeRouter) RouteBatch(_ context.Context, in *heraldv1.RouteBatchRequest, _ ...grpc.CallOption) (*heraldv1.RouteBatchResponse, error) {
	f.mu.Lock()
	f.sizes = append(f.sizes, len(in.Requests))
	f.mu.Unlock()
	if f.release != nil {
		<-f.release
	}
	if f.err != nil {
		return nil, f.err
	}
	out := &heraldv1.RouteBatchResponse{}
	for _, r := range in.Requests {
		ch := r.GetMessage().GetChannelId()
		if ch == "full" {
			out.Results = append(out.Results, &heraldv1.RouteResult{Code: int32(codes.ResourceExhausted), Error: "full"})
			continue
		}
		if ch == "limited" {
			out.Results = append(out.Results, &heraldv1.RouteResult{Code: int32(codes.ResourceExhausted), Error: "limited", RetryAfterMs: 1500})
			continue
		}
		out.Results = append(out.Results, &heraldv1.RouteResult{Response: &heraldv1.RouteResponse{Id: ch, Stored: true}})
	}
	return out, nil
}

func (f *fakeRouter) DeleteMessage(context.Context, *heraldv1.DeleteMessageRequest, ...grpc.CallOption) (*heraldv1.DeleteMessageResponse, error) {
	return &heraldv1.DeleteMessageResponse{Deleted: true}, nil
}

func start(t *testing.T, f *fakeRouter, maxBatch, inflight int) *Batcher {
	t.Helper()
	b := New(f, maxBatch, inflight)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after its context ended")
		}
	})
	return b
}

func route(b *Batcher, ch string) (*heraldv1.RouteResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return b.Route(ctx, &heraldv1.RouteRequest{Message: &heraldv1.Message{ChannelId: ch}})
}

func TestEachMessageGetsItsOwnResult(t *testing.T) {
	f := &fakeRouter{release: make(chan struct{})}
	b := start(t, f, 64, 1)
	const n = 50
	var wg sync.WaitGroup
	errs := make([]error, n)
	send := func(i int) {
		wg.Go(func() {
			ch := strconv.Itoa(i)
			switch i % 10 {
			case 0:
				ch = "full"
			case 5:
				ch = "limited"
			}
			resp, err := route(b, ch)
			wait, limited := heraldv1.RetryAfter(err)
			switch {
			case ch == "full" && (status.Code(err) != codes.ResourceExhausted || limited):
				errs[i] = errors.New("full message: " + status.Convert(err).Message())
			case ch == "limited" && (status.Code(err) != codes.ResourceExhausted || wait != 1500*time.Millisecond):
				errs[i] = errors.New("rate-limited message: " + status.Convert(err).Message() + ", retry after " + wait.String())
			case ch != "full" && ch != "limited" && (err != nil || resp.GetId() != ch):
				errs[i] = errors.New("message " + ch + " got " + resp.GetId())
			}
		})
	}
	// The first message's call is held; the others queue up behind it, and are
	// released together.
	send(0)
	waitQueued(t, f, b, 1)
	for i := 1; i < n; i++ {
		send(i)
	}
	waitQueued(t, f, b, n)
	close(f.release)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.sizes) < 2 || f.sizes[1] < 2 {
		t.Fatalf("batch sizes %v: messages queued behind a busy call were not sent together", f.sizes)
	}
}

func TestCallErrorReachesEveryMessage(t *testing.T) {
	f := &fakeRouter{err: status.Error(codes.Unavailable, "router down")}
	b := start(t, f, 8, 2)
	if _, err := route(b, "x"); status.Code(err) != codes.Unavailable {
		t.Fatalf("err = %v, want Unavailable", err)
	}
}

func TestRunSendsWhatIsQueuedWhenStopping(t *testing.T) {
	f := &fakeRouter{release: make(chan struct{})}
	b := New(f, 4, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.Run(ctx); close(done) }()
	results := make(chan error, 3)
	for i := range 3 {
		go func() { _, err := route(b, strconv.Itoa(i)); results <- err }()
	}
	waitQueued(t, f, b, 3)
	cancel()
	close(f.release)
	for range 3 {
		if err := <-results; err != nil {
			t.Fatalf("a message queued before the stop failed: %v", err)
		}
	}
	<-done
}

// waitQueued waits until the first (held) call started and each of the n messages
// is in it or queued.
func waitQueued(t *testing.T, f *fakeRouter, b *Batcher, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		f.mu.Lock()
		queued := len(f.sizes) == 1 && len(b.queue) == n-f.sizes[0]
		f.mu.Unlock()
		if queued {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("messages did not queue up behind the held call")
		}
		time.Sleep(time.Millisecond)
	}
}
