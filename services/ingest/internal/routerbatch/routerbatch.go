// Package routerbatch gathers the messages ingest receives at the same moment into
// one RouteBatch call, so that the router stores them in one Redis round trip. It
// adds no waiting: a message goes at once when a call slot is free, and messages
// that arrive while every slot is busy ride together in the next call.
package routerbatch

import (
	"context"
	"errors"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	heraldv1 "github.com/herald-push/herald/proto/herald/v1"
)

// ErrStopped is returned for a message offered after Run ended.
var ErrStopped = errors.New("routerbatch: stopped")

// Client is the router client the batcher calls.
type Client interface {
	RouteBatch(ctx context.Context, in *heraldv1.RouteBatchRequest, opts ...grpc.CallOption) (*heraldv1.RouteBatchResponse, error)
	DeleteMessage(ctx context.Context, in *heraldv1.DeleteMessageRequest, opts ...grpc.CallOption) (*heraldv1.DeleteMessageResponse, error)
}

// Batcher routes messages in batches. Its Route and DeleteMessage have the shape of
// the generated router client's, so callers need not know about batching.
type Batcher struct {
	client   Client
	maxBatch int
	senders  int
	queue    chan *pending
	stopped  chan struct{}
	wg       sync.WaitGroup
}

type pending struct {
	ctx  context.Context
	req  *heraldv1.RouteRequest
	done chan result
}

type result struct {
	resp *heraldv1.RouteResponse
	err  error
}

// New returns a Batcher sending at most maxBatch messages per call and at most
// inflight calls at once.
func New(client Client, maxBatch, inflight int) *Batcher {
	return &Batcher{
		client:   client,
		maxBatch: maxBatch,
		senders:  inflight,
		queue:    make(chan *pending, maxBatch*inflight),
		stopped:  make(chan struct{}),
	}
}

// Route routes one message and waits for its own result.
func (b *Batcher) Route(ctx context.Context, req *heraldv1.RouteRequest, _ ...grpc.CallOption) (*heraldv1.RouteResponse, error) {
	p := &pending{ctx: ctx, req: req, done: make(chan result, 1)}
	select {
	case b.queue <- p:
	case <-b.stopped:
		return nil, status.Error(codes.Unavailable, ErrStopped.Error())
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	// Once queued, the message is sent whatever happens to ctx: its result must be
	// waited for, or a stored message could be answered as failed.
	r := <-p.done
	return r.resp, r.err
}

// DeleteMessage passes through.
func (b *Batcher) DeleteMessage(ctx context.Context, req *heraldv1.DeleteMessageRequest, opts ...grpc.CallOption) (*heraldv1.DeleteMessageResponse, error) {
	return b.client.DeleteMessage(ctx, req, opts...)
}

// Run sends batches until ctx ends, then sends what is still queued and waits for
// every call in flight. Call it once, and end its ctx only when no more Route calls
// can start (after the HTTP server shut down): a Route racing the end may otherwise
// be left waiting.
//
// Each of the inflight senders takes the first message queued and whatever queued
// behind it, and makes the call itself: messages that arrive while every sender is
// busy ride together in the next call. Senders live as long as Run, so that the
// stack their deep calls (protobuf, gRPC) grew is kept rather than grown afresh for
// every call.
func (b *Batcher) Run(ctx context.Context) {
	for range b.senders {
		b.wg.Go(func() {
			for {
				select {
				case first := <-b.queue:
					b.send(context.WithoutCancel(ctx), b.gather(first))
				case <-ctx.Done():
					return
				}
			}
		})
	}
	<-ctx.Done()
	b.wg.Wait()
	close(b.stopped)
	// Route calls that got in before stopped was closed are still served.
	for {
		select {
		case p := <-b.queue:
			b.send(context.WithoutCancel(ctx), b.gather(p))
		default:
			return
		}
	}
}

// gather takes first and whatever else is queued, up to maxBatch.
func (b *Batcher) gather(first *pending) []*pending {
	batch := []*pending{first}
	for len(batch) < b.maxBatch {
		select {
		case p := <-b.queue:
			batch = append(batch, p)
		default:
			return batch
		}
	}
	return batch
}

// send makes one RouteBatch call and hands each message its result. The call runs
// under the first message's deadline.
func (b *Batcher) send(base context.Context, batch []*pending) {
	ctx := base
	if d, ok := batch[0].ctx.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(base, d)
		defer cancel()
	}
	req := &heraldv1.RouteBatchRequest{Requests: make([]*heraldv1.RouteRequest, len(batch))}
	for i, p := range batch {
		req.Requests[i] = p.req
	}
	resp, err := b.client.RouteBatch(ctx, req)
	for i, p := range batch {
		switch {
		case err != nil:
			p.done <- result{err: err}
		case i >= len(resp.GetResults()):
			p.done <- result{err: status.Error(codes.Internal, "router answered fewer results than messages")}
		default:
			// Err keeps a rate-limit refusal's retry-after, as Route would.
			r := resp.GetResults()[i]
			if err := r.Err(); err != nil {
				p.done <- result{err: err}
			} else {
				p.done <- result{resp: r.GetResponse()}
			}
		}
	}
}
