package rpcstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	heraldv1 "github.com/herald-push/herald/proto/herald/v1"
)

// Options tune a Client.
type Options struct {
	// Streams is how many streams the client keeps open at once; calls take them in
	// turn. Each new stream is balanced like a unary call, so with several servers
	// behind one address, several streams spread the load. At least 1.
	Streams int
	// Rotate is the age after which a stream takes no new calls and is replaced;
	// 0 keeps streams until they fail or their server drains.
	Rotate time.Duration
	// Unsupported is how long the client calls unary after a server answered that it
	// has no such stream (an older server during a rolling upgrade). Default: 1 minute.
	Unsupported time.Duration
}

// Client makes calls over long-lived streams, falling back to the unary call when
// the server does not implement the stream.
type Client[Req, Resp any, PReq Request[Req], PResp Response[Resp]] struct {
	open  func(context.Context) (grpc.BidiStreamingClient[Req, Resp], error)
	unary func(context.Context, PReq) (PResp, error)
	opts  Options

	ctx    context.Context // streams live under it; Close ends it
	cancel context.CancelFunc
	wg     sync.WaitGroup // receivers

	mu        sync.Mutex
	slots     []*stream[Req, Resp]
	turn      int
	unaryTill time.Time
	closed    bool
}

// NewClient returns a Client that opens streams with open and, when the server does
// not implement them, calls unary instead.
func NewClient[Req, Resp any, PReq Request[Req], PResp Response[Resp]](
	open func(context.Context) (grpc.BidiStreamingClient[Req, Resp], error),
	unary func(context.Context, PReq) (PResp, error),
	opts Options,
) *Client[Req, Resp, PReq, PResp] {
	opts.Streams = max(opts.Streams, 1)
	if opts.Unsupported <= 0 {
		opts.Unsupported = time.Minute
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Client[Req, Resp, PReq, PResp]{
		open: open, unary: unary, opts: opts, ctx: ctx, cancel: cancel,
		slots: make([]*stream[Req, Resp], opts.Streams),
	}
}

// errRetired is what a call meets on a stream that took its last call, or ended,
// before the call was sent: it goes to another stream, up to maxTries in all.
var errRetired = errors.New("rpcstream: stream retired")

const maxTries = 3

// Call sends req and waits for its response, until ctx ends. ctx's deadline goes
// with the request as its timeout. An error is a gRPC status: Unavailable when the
// stream broke or its server went away before answering (the request may or may not
// have been handled), the code of ctx's end when ctx ended first.
func (c *Client[Req, Resp, PReq, PResp]) Call(ctx context.Context, req PReq) (PResp, error) {
	for try := 1; ; try++ {
		st, err := c.stream()
		if errors.Is(err, errUnsupported) {
			return c.unary(ctx, req)
		}
		if err != nil {
			return nil, err
		}
		resp, err := c.callOn(ctx, st, req)
		switch {
		case errors.Is(err, errRetired) && try < maxTries:
			continue
		case status.Code(err) == codes.Unimplemented:
			// The stream failed before the server read anything: nothing was handled.
			return c.unary(ctx, req)
		}
		return resp, err
	}
}

func (c *Client[Req, Resp, PReq, PResp]) callOn(ctx context.Context, st *stream[Req, Resp], req PReq) (PResp, error) {
	done := make(chan reply[Resp], 1)
	seq, err := st.await(done)
	if err != nil {
		// The stream ended after the call took it: nothing was sent.
		return nil, fmt.Errorf("%w: %w", errRetired, err)
	}
	var timeout int64
	if d, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(d).Milliseconds(), 1)
	}
	req.SetCall(seq, timeout)
	if err := st.send((*Req)(req)); err != nil {
		st.forget(seq)
		if errors.Is(err, errRetired) {
			return nil, err
		}
		// grpc-go's Send reports a broken stream as io.EOF; Recv has the reason, and
		// the receiver hands it to every waiting call.
		if errors.Is(err, io.EOF) {
			if rerr := st.wait(); rerr != nil {
				return nil, rerr
			}
		}
		return nil, unavailable(err)
	}
	select {
	case r := <-done:
		return PResp(r.resp), r.err
	case <-ctx.Done():
		st.forget(seq)
		return nil, status.FromContextError(ctx.Err()).Err()
	}
}

// errUnsupported says the server has no such stream; Call goes unary.
var errUnsupported = errors.New("rpcstream: stream not implemented by the server")

// stream returns the next slot's stream, opening one if the slot is empty or its
// stream is past Options.Rotate.
func (c *Client[Req, Resp, PReq, PResp]) stream() (*stream[Req, Resp], error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, status.Error(codes.Unavailable, "rpcstream: client closed")
	}
	if time.Now().Before(c.unaryTill) {
		return nil, errUnsupported
	}
	i := c.turn % len(c.slots)
	c.turn++
	if st := c.slots[i]; st != nil {
		if c.opts.Rotate <= 0 || time.Since(st.opened) < c.opts.Rotate {
			return st, nil
		}
		c.slots[i] = nil
		// Half-closing waits for a Send in progress: not under c.mu.
		go st.retire()
	}
	sctx, cancel := context.WithCancel(c.ctx)
	s, err := c.open(sctx)
	if err != nil {
		cancel()
		return nil, unavailable(err)
	}
	st := &stream[Req, Resp]{s: s, cancel: cancel, opened: time.Now(), waiting: map[uint64]chan reply[Resp]{}, ended: make(chan struct{})}
	c.slots[i] = st
	c.wg.Go(func() { c.receive(st) })
	return st, nil
}

// receive hands each response to its call until the stream ends.
func (c *Client[Req, Resp, PReq, PResp]) receive(st *stream[Req, Resp]) {
	defer st.cancel()
	for {
		in, err := st.s.Recv()
		if err != nil {
			if status.Code(err) == codes.Unimplemented {
				c.mu.Lock()
				c.unaryTill = time.Now().Add(c.opts.Unsupported)
				c.mu.Unlock()
			}
			c.drop(st)
			st.fail(err)
			return
		}
		resp := PResp(in)
		if resp.GetSeq() == 0 {
			if resp.GetControl() == heraldv1.StreamControl_STREAM_CONTROL_DRAIN {
				c.drop(st)
				// On its own goroutine: retire waits for a Send in progress, which may
				// wait for flow control that only this loop's reading releases.
				go st.retire()
			}
			continue
		}
		st.answer(resp.GetSeq(), reply[Resp]{resp: in})
	}
}

// drop takes st out of its slot, so that the next call there opens a new stream.
func (c *Client[Req, Resp, PReq, PResp]) drop(st *stream[Req, Resp]) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, s := range c.slots {
		if s == st {
			c.slots[i] = nil
		}
	}
}

// Close ends every stream; calls waiting on them fail with Unavailable.
func (c *Client[Req, Resp, PReq, PResp]) Close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
}

type reply[Resp any] struct {
	resp *Resp
	err  error
}

// stream is one open stream and the calls waiting on it.
type stream[Req, Resp any] struct {
	s      grpc.BidiStreamingClient[Req, Resp]
	cancel context.CancelFunc
	opened time.Time

	sendMu  sync.Mutex // one Send at a time; CloseSend after the last
	retired bool       // half-closed; guarded by sendMu

	mu      sync.Mutex
	seq     uint64
	waiting map[uint64]chan reply[Resp]
	err     error         // why the stream ended, once it has
	ended   chan struct{} // closed once err is set
}

// await numbers a new call and registers where its reply goes.
func (st *stream[Req, Resp]) await(done chan reply[Resp]) (uint64, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.err != nil {
		return 0, st.err
	}
	st.seq++
	st.waiting[st.seq] = done
	return st.seq, nil
}

func (st *stream[Req, Resp]) forget(seq uint64) {
	st.mu.Lock()
	delete(st.waiting, seq)
	st.mu.Unlock()
}

func (st *stream[Req, Resp]) send(req *Req) error {
	st.sendMu.Lock()
	defer st.sendMu.Unlock()
	if st.retired {
		return errRetired
	}
	return st.s.Send(req)
}

// retire half-closes the stream: no new call goes on it, and the server ends it
// once it has answered the calls it has.
func (st *stream[Req, Resp]) retire() {
	st.sendMu.Lock()
	defer st.sendMu.Unlock()
	if !st.retired {
		st.retired = true
		_ = st.s.CloseSend() // a broken stream is seen by its receiver
	}
}

func (st *stream[Req, Resp]) answer(seq uint64, r reply[Resp]) {
	st.mu.Lock()
	done, ok := st.waiting[seq]
	delete(st.waiting, seq)
	st.mu.Unlock()
	if ok {
		done <- r // buffered, and answered once
	}
}

// fail ends every waiting call with the stream's error.
func (st *stream[Req, Resp]) fail(err error) {
	if errors.Is(err, io.EOF) {
		err = errors.New("stream ended before answering")
	}
	err = unavailable(err)
	st.mu.Lock()
	st.err = err
	waiting := st.waiting
	st.waiting = nil
	close(st.ended)
	st.mu.Unlock()
	for _, done := range waiting {
		done <- reply[Resp]{err: err}
	}
}

// wait returns the stream's error once its receiver saw it end, or nil if that
// takes longer than a second (the caller then reports its own error).
func (st *stream[Req, Resp]) wait() error {
	t := time.NewTimer(time.Second)
	defer t.Stop()
	select {
	case <-st.ended:
		st.mu.Lock()
		defer st.mu.Unlock()
		return st.err
	case <-t.C:
		return nil
	}
}

// unavailable keeps a gRPC status's Unimplemented (the caller goes unary) and
// reports any other failure of the stream as Unavailable.
func unavailable(err error) error {
	if s, ok := status.FromError(err); ok && s.Code() == codes.Unimplemented {
		return err
	}
	return status.Error(codes.Unavailable, fmt.Sprintf("rpcstream: %v", err))
}
