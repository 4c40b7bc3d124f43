package main

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"

	"github.com/herald-push/herald/pkg/gwpool"
	"github.com/herald-push/herald/pkg/rpccodec"
	"github.com/herald-push/herald/pkg/rpcstream"
	heraldv1 "github.com/herald-push/herald/proto/herald/v1"
)

// floorGateway answers DeliverStream batches as a gateway would, accepting every
// message, with nothing behind it: the gRPC hop alone.
type floorGateway struct {
	heraldv1.UnimplementedGatewayServer
}

// DeliverStream answers each batch on the goroutine that read it, as the gateway does.
func (floorGateway) DeliverStream(stream grpc.BidiStreamingServer[heraldv1.DeliverBatchRequest, heraldv1.DeliverBatchResponse]) error {
	return rpcstream.Serve(stream, rpcstream.ServeOptions{Parallel: 1}, func(_ context.Context, req *heraldv1.DeliverBatchRequest) *heraldv1.DeliverBatchResponse {
		accepted := make([]bool, len(req.GetRequests()))
		for i := range accepted {
			accepted[i] = true
		}
		return &heraldv1.DeliverBatchResponse{Accepted: accepted}
	})
}

// serveBatches serves herald.v1's Gateway service on ln with Herald's codec until
// ctx ends.
func serveBatches(ctx context.Context, ln net.Listener) error {
	srv := grpc.NewServer(rpccodec.ServerOption())
	heraldv1.RegisterGatewayServer(srv, floorGateway{})
	stopped := context.AfterFunc(ctx, srv.Stop)
	defer stopped()
	if err := srv.Serve(ln); ctx.Err() == nil {
		return err
	}
	return nil
}

// floorBatch is a DeliverBatchRequest of n messages shaped as the router's for a
// 64-byte message (aes128gcm): a 230-byte body, ids and headers of their real lengths.
func floorBatch(n int) *heraldv1.DeliverBatchRequest {
	req := &heraldv1.DeliverBatchRequest{Requests: make([]*heraldv1.DeliverRequest, n)}
	for i := range req.Requests {
		req.Requests[i] = &heraldv1.DeliverRequest{Epoch: 7, Message: &heraldv1.Message{
			Uaid:           fmt.Sprintf("%032x", i+1),
			ChannelId:      "3f0c8d52-6a53-4c5e-9d61-0a3c2f8e4b7d",
			Id:             fmt.Sprintf("1764000000000-%d", i),
			Data:           []byte(strings.Repeat("b", 230)),
			Headers:        map[string]string{"encoding": "aes128gcm"},
			TtlSeconds:     60,
			ReceivedUnixMs: 1764000000000,
			Urgency:        heraldv1.Urgency_URGENCY_NORMAL,
			Stored:         true,
			Trace:          map[string]string{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		}}
	}
	return req
}

// floorCall keeps cfg.conns calls in flight on one connection, through the pool the
// router delivers with, each carrying cfg.batch messages; it closes ready once the
// stream answers, and counts the answered messages in done.
func floorCall(ctx context.Context, cfg floorConfig, addr string, ready chan<- struct{}, done *atomic.Int64) error {
	pool := gwpool.New()
	defer pool.Close()
	first := floorBatch(1)
	if _, err := pool.DeliverBatch(ctx, addr, first); err != nil {
		return fmt.Errorf("first call: %w", err)
	}
	close(ready)
	tokens := floorPacer(ctx, cfg)
	errs := make(chan error, cfg.conns)
	var wg sync.WaitGroup
	for range cfg.conns {
		wg.Go(func() {
			req := floorBatch(cfg.batch)
			for range tokens {
				for range cfg.batch - 1 { // a call waits for a batch's worth of tokens
					if _, ok := <-tokens; !ok {
						return
					}
				}
				callCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
				resp, err := pool.DeliverBatch(callCtx, addr, req)
				cancel()
				if err != nil {
					if ctx.Err() == nil {
						errs <- err
					}
					return
				}
				if len(resp.GetAccepted()) != cfg.batch {
					errs <- fmt.Errorf("%d answers to %d messages", len(resp.GetAccepted()), cfg.batch)
					return
				}
				done.Add(int64(cfg.batch))
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}
