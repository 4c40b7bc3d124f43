// Package rpcstream carries many request/response calls on one long-lived gRPC
// bidirectional stream: herald.v1's RouteStream (ingest → router) and DeliverStream
// (router → gateway). A unary call costs both sides a new HTTP/2 stream (headers
// encoded and parsed, a server goroutine, stats-handler calls, a context with its
// deadline); a call on an open stream costs a DATA frame each way.
//
// The protocol is StreamControl's in herald.proto: the client numbers its requests
// from 1; the server answers each once, in any order, with the request's number; a
// response numbered 0 is a control message. When the server drains it says so; the
// client half-closes that stream and takes new calls to another, and the server
// answers every request it received before it ends the stream, so that a drain
// fails no call. Clients also move to a new stream now and then (Options.Rotate), so
// that streams spread over servers added by a scale-up and no stream outlives the
// grace period of the server's connection age limit.
package rpcstream

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"google.golang.org/grpc"

	heraldv1 "github.com/herald-push/herald/proto/herald/v1"
)

// Request is a stream's request message: *heraldv1.RouteBatchRequest or
// *heraldv1.DeliverBatchRequest.
type Request[T any] interface {
	*T
	GetSeq() uint64
	GetTimeoutMs() int64
	SetCall(seq uint64, timeoutMs int64)
}

// Response is a stream's response message: *heraldv1.RouteBatchResponse or
// *heraldv1.DeliverBatchResponse.
type Response[T any] interface {
	*T
	GetSeq() uint64
	SetSeq(seq uint64)
	GetControl() heraldv1.StreamControl
	SetControl(c heraldv1.StreamControl)
}

// ServeOptions tune Serve.
type ServeOptions struct {
	// Parallel is how many requests are handled at once; 1 (or less) handles them
	// one after another, on the goroutine that reads them.
	Parallel int
	// Drain, when closed, makes Serve tell the client to half-close the stream.
	Drain <-chan struct{}
	// Observe, if set, is called after each call with the time it took, for the
	// metrics a unary call would have had.
	Observe func(ctx context.Context, took time.Duration)
}

// Serve answers the requests of one stream with handle. Each call runs under the
// stream's context, bounded by the request's timeout_ms.
//
// Serve returns nil once the client has half-closed the stream and every request it
// read is answered, or the stream's error; in both cases no handler is still running.
func Serve[Req, Resp any, PReq Request[Req], PResp Response[Resp]](
	stream grpc.BidiStreamingServer[Req, Resp], opts ServeOptions,
	handle func(context.Context, PReq) PResp,
) error {
	parallel := opts.Parallel
	ctx := stream.Context()
	var (
		sendMu  sync.Mutex
		sendErr error
		wg      sync.WaitGroup
	)
	// grpc-go allows one SendMsg at a time per stream.
	send := func(r PResp) {
		sendMu.Lock()
		defer sendMu.Unlock()
		if sendErr == nil {
			sendErr = stream.Send((*Resp)(r))
		}
	}
	read := make(chan struct{})
	wg.Go(func() {
		select {
		case <-opts.Drain:
			notice := PResp(new(Resp))
			notice.SetControl(heraldv1.StreamControl_STREAM_CONTROL_DRAIN)
			send(notice)
		case <-read:
		case <-ctx.Done():
		}
	})
	// Requests go to long-lived workers, started as needed up to parallel: a worker's
	// stack grows once, in its first calls, where a goroutine per request would grow
	// a fresh one through the handler's deep calls (Redis, gRPC) every time.
	work := make(chan PReq)
	workers := 0
	var err error
	for {
		in, rerr := stream.Recv()
		if rerr != nil {
			if !errors.Is(rerr, io.EOF) {
				err = rerr
			}
			break
		}
		req := PReq(in)
		if parallel <= 1 {
			send(answer(ctx, req, handle, opts.Observe))
			continue
		}
		select {
		case work <- req: // an idle worker took it
			continue
		default:
		}
		if workers < parallel {
			workers++
			wg.Go(func() {
				for r, ok := req, true; ok; r, ok = <-work {
					send(answer(ctx, r, handle, opts.Observe))
				}
			})
			continue
		}
		work <- req // every worker is busy; handlers end by their timeout or the stream's end
	}
	close(work)
	close(read)
	wg.Wait()
	if err == nil {
		err = sendErr
	}
	return err
}

// answer runs handle for one request and numbers its response.
func answer[Req, Resp any, PReq Request[Req], PResp Response[Resp]](ctx context.Context, req PReq, handle func(context.Context, PReq) PResp, observe func(context.Context, time.Duration)) PResp {
	if observe != nil {
		defer func(start time.Time) { observe(ctx, time.Since(start)) }(time.Now())
	}
	if ms := req.GetTimeoutMs(); ms > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(ms)*time.Millisecond)
		defer cancel()
	}
	resp := handle(ctx, req)
	resp.SetSeq(req.GetSeq())
	return resp
}
