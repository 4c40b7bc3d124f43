// Package uaconn runs the user-agent protocol over one connection, whatever its
// transport: it waits for hello, answers frames through the session, sends waiting
// and live messages, and ends the connection with a close code. A transport
// (WebSocket, Server-Sent Events with POSTs, long-polling with POSTs) only frames:
// it turns what the user agent sends into Frames, and what the session says into
// its own wire format. Server tracks the connections of every transport, so that a
// drain closes them all.
package uaconn

import (
	"context"
	"errors"
	"time"

	"github.com/herald-push/herald/pkg/mozproto"
	heraldv1 "github.com/herald-push/herald/proto/herald/v1"
	"github.com/herald-push/herald/services/gateway/internal/session"
)

// Frame is what a transport hands the connection (Conn.Frame): a frame the user
// agent sent, or the reason the transport gave up.
type Frame struct {
	// Msg is the parsed frame.
	Msg mozproto.ClientMessage
	// Data, when not nil, is the frame as the user agent sent it, not parsed yet:
	// the connection parses it into Msg on a worker (see package workers). Parsing
	// JSON is deep, and done on the goroutine that reads the socket, it would grow
	// the stack that goroutine holds for the connection's life.
	Data []byte
	// Close, when not zero, ends the connection with this close code instead: the
	// transport could not read a frame (malformed, too big), or lost the user agent
	// (no answer to pings, no stream or poll in time, a failed write).
	Close int
	// Answer, when not nil, takes the replies to this frame instead of Send: the
	// HTTP transports answer a POSTed frame in the POST's response. It is called at
	// most once, and not at all when the frame ends the connection; it must not
	// block.
	Answer func(replies []any)
}

// Transport frames one connection of a user agent. What the user agent sends it
// hands to Conn.Frame.
type Transport interface {
	// Send hands one frame to the user agent. It returns ErrSlow when the user agent
	// does not take its frames in time.
	Send(ctx context.Context, v any) error
	// Close ends the connection with a close code (mozproto.Close…), telling the
	// user agent when the transport can. It returns when the connection is closed.
	Close(ctx context.Context, code int)
}

// ErrSlow says a user agent does not take its frames fast enough: the connection
// is closed with mozproto.CloseSlowConsumer.
var ErrSlow = errors.New("slow consumer")

// A connection has no goroutine of its own. Each of its events (a frame, a live
// message, a resync, a kick, a drain, a timeout) wakes it: a wake while it sleeps
// hands run to one of the Server's workers (see package workers), which handles
// every event there is, then lets the connection sleep again. A goroutine waiting
// for the events instead would be a goroutine and a stack per idle connection,
// most of a gateway's memory for it; and one that handled them too would keep the
// stack its deepest call grew (Redis, Postgres, JSON, logging: 8 to 16 KiB), where
// the workers' stacks are grown already. Events are handled one at a time, in the
// order next finds them.

// The states of a connection, in Conn.state.
const (
	asleep  = iota // no run is scheduled
	running        // run is scheduled or runs
	again          // run runs, and must look for events once more before it sleeps
)

// Serve runs the protocol over t, whose frames come to Frame, until the connection
// ends: it closes t with the close code, and forgets the connection. Serve returns
// at once; the connection goes on on the Server's workers, and Drain waits for it.
func (c *Conn) Serve(ctx context.Context, t Transport) {
	c.srv.metrics.opened.Add(ctx, 1, c.srv.metrics.transportAttr(c.transport))
	c.ctx, c.t = ctx, t
	c.helloTimer = time.AfterFunc(c.srv.cfg.HelloTimeout, func() {
		c.helloLate.Store(true)
		c.wake()
	})
	c.stopCtx = func() bool { return false }
	if ctx.Done() != nil {
		c.stopCtx = context.AfterFunc(ctx, c.wake)
	}
	// Open left the connection running, so that what woke it meanwhile waited
	// for the fields above.
	if !c.state.CompareAndSwap(running, asleep) {
		c.state.Store(running)
		c.srv.workers.Go(c.process)
	}
}

// Frame hands the connection a frame, to be handled after those handed before it.
// It returns once the frame is queued, which is at once unless the one before it
// still waits to be taken; false if the connection ended first, or ctx did. A
// transport may call it from any goroutine.
func (c *Conn) Frame(ctx context.Context, f Frame) bool {
	select {
	case <-c.ended:
		return false
	default:
	}
	select {
	case c.frames <- &f:
		c.wake()
		return true
	case <-c.ended:
		return false
	case <-ctx.Done():
		return false
	}
}

// wake makes sure run runs after this call, to find the event the caller just
// made. It never blocks, and is shallow.
func (c *Conn) wake() {
	for {
		switch c.state.Load() {
		case asleep:
			if c.state.CompareAndSwap(asleep, running) {
				c.srv.workers.Go(c.process)
				return
			}
		case running:
			if c.state.CompareAndSwap(running, again) {
				return
			}
		default: // again
			return
		}
	}
}

// run handles every event there is, then sleeps, unless one was made meanwhile.
// One run at a time: wake's states order each run after the one before, and what
// it did before what the next does.
func (c *Conn) run() {
	for {
		for !c.over {
			ev, f, m := c.next()
			if ev == evNone {
				break
			}
			c.handle(ev, f, m)
		}
		if c.state.CompareAndSwap(running, asleep) {
			return
		}
		c.state.Store(running) // again: look once more
	}
}

// Events, in the order next looks for them: those that end the connection first.
const (
	evNone = iota
	evKicked
	evGoAway
	evHelloLate
	evFrame
	evResync
	evMessage
	evIdle
)

// next returns the next event, without waiting: evNone when there is none.
func (c *Conn) next() (ev int, f *Frame, m *heraldv1.Message) {
	if c.sess != nil {
		select {
		case <-c.sess.Kicked():
			return evKicked, nil, nil
		default:
		}
	}
	if c.goAway.Load() || c.ctx.Err() != nil {
		return evGoAway, nil, nil
	}
	if c.sess == nil && c.helloLate.Load() {
		return evHelloLate, nil, nil
	}
	select {
	case f := <-c.frames:
		return evFrame, f, nil
	default:
	}
	if c.sess == nil {
		return evNone, nil, nil
	}
	// A resync before the inbox: it was asked for when a stored message found the
	// inbox full, and the inbox may since hold newer ones. Its drain sends the
	// dropped message before them, in the queue's order, and the session then skips
	// the inbox's copies of what the drain sent. Taken the other way round, the
	// dropped message would still go (a drain reads from where the drains got to,
	// not from the newest message sent live), but after newer ones.
	select {
	case <-c.sess.Resync():
		return evResync, nil, nil
	default:
	}
	select {
	case m := <-c.sess.Inbox():
		return evMessage, nil, m
	default:
	}
	// A stale firing (the timer was reset meanwhile) finds the deadline ahead,
	// and the timer fires again at it.
	if c.idleDue.Swap(false) && !c.idleAt.IsZero() && !time.Now().Before(c.idleAt) {
		return evIdle, nil, nil
	}
	return evNone, nil, nil
}

// handle handles one event; the connection ends when the event says so.
func (c *Conn) handle(ev int, f *Frame, m *heraldv1.Message) {
	code, ok := 0, true
	switch ev {
	case evFrame:
		c.parse(f)
		switch {
		case f.Close != 0:
			code, ok = f.Close, false
		case c.sess == nil:
			c.helloTimer.Stop()
			c.helloTimer = nil
			code, ok = c.hello(*f)
		default:
			code, ok = c.frame(*f)
		}
		if ok {
			c.armIdle()
		}
	case evMessage:
		if n, taken := c.sess.Take(c.ctx, m); taken {
			if err := c.t.Send(c.ctx, n); err != nil {
				code, ok = sendErrorCode(err), false
			}
		}
	case evResync:
		code, ok = c.drain()
	case evIdle:
		c.log.Debug("nothing to receive: backing off")
		code, ok = mozproto.CloseBackoff, false
	case evHelloLate:
		code, ok = mozproto.CloseIdle, false
	case evKicked:
		code, ok = c.sess.KickReason(), false
	case evGoAway:
		code, ok = mozproto.CloseGoingAway, false
	}
	if !ok {
		c.end(code)
	}
}

// parse parses a frame the transport left unparsed; one that does not parse ends
// the connection with a protocol error.
func (c *Conn) parse(f *Frame) {
	if f.Data == nil || f.Close != 0 {
		return
	}
	var err error
	if f.Msg, err = mozproto.Parse(f.Data); err != nil {
		c.log.Debug("protocol error", "err", err)
		f.Close = mozproto.CloseProtocolError
	}
	f.Data = nil
}

// end releases the session, if any, closes the connection with code, and forgets
// it. Frame refuses frames from here on; events that still wake the connection
// find it over.
func (c *Conn) end(code int) {
	c.over = true
	close(c.ended)
	if c.helloTimer != nil {
		c.helloTimer.Stop()
	}
	if c.idleTimer != nil {
		c.idleTimer.Stop()
	}
	c.stopCtx()
	ctx := context.WithoutCancel(c.ctx)
	if c.sess != nil {
		// Release with a fresh context: the connection's is usually done by now.
		rctx, rcancel := context.WithTimeout(ctx, c.srv.cfg.OpTimeout)
		if err := c.sess.Close(rctx); err != nil {
			c.log.Warn("release lease", "err", err)
		}
		rcancel()
	}
	if code == mozproto.CloseSlowConsumer {
		c.log.Info("closing a slow consumer")
	}
	c.srv.metrics.closed.Add(ctx, 1, c.srv.metrics.closeAttrs(c.transport, code))
	c.t.Close(ctx, code)
	c.srv.forget(c)
}

// armIdle starts the backoff timer of a user agent with nothing to receive, which
// is closed with mozproto.CloseBackoff once it has been quiet that long, and stops
// it for the others.
func (c *Conn) armIdle() {
	after := c.srv.cfg.BackoffAfter
	if after <= 0 || !c.sess.Idle() {
		if c.idleTimer != nil {
			c.idleTimer.Stop()
		}
		c.idleAt = time.Time{}
		return
	}
	c.idleAt = time.Now().Add(after)
	if c.idleTimer == nil {
		c.idleTimer = time.AfterFunc(after, func() {
			c.idleDue.Store(true)
			c.wake()
		})
		return
	}
	c.idleTimer.Reset(after)
}

// hello answers the hello frame f and sends the waiting messages; ok is false
// when the connection is to end with code.
func (c *Conn) hello(f Frame) (code int, ok bool) {
	opCtx, opCancel := context.WithTimeout(c.ctx, c.srv.cfg.OpTimeout)
	sess, reply, err := c.srv.hub.Hello(opCtx, f.Msg, c.wake)
	opCancel()
	if errors.Is(err, session.ErrProtocol) {
		c.log.Debug("protocol error", "err", err)
		return mozproto.CloseProtocolError, false
	}
	if err != nil {
		c.log.Error("hello failed", "err", err)
		return mozproto.CloseInternal, false
	}
	c.sess = sess
	c.log = c.log.With("uaid", sess.UAID().String())
	if code, ok := c.answer(f, []any{reply}); !ok {
		return code, false
	}
	return c.drain()
}

// frame answers one frame of an identified connection.
func (c *Conn) frame(f Frame) (int, bool) {
	opCtx, cancel := context.WithTimeout(c.ctx, c.srv.cfg.OpTimeout)
	res, err := c.sess.Handle(opCtx, f.Msg)
	cancel()
	if errors.Is(err, session.ErrProtocol) {
		c.log.Debug("protocol error", "err", err)
		return mozproto.CloseProtocolError, false
	}
	if err != nil {
		c.log.Error("frame failed", "type", f.Msg.Type, "err", err)
		return mozproto.CloseInternal, false
	}
	if res.Close != 0 {
		if len(res.Replies) > 0 {
			if code, ok := c.answer(f, res.Replies); !ok {
				return code, false
			}
		}
		c.log.Debug("closing", "type", f.Msg.Type, "code", res.Close)
		return res.Close, false
	}
	if code, ok := c.answer(f, res.Replies); !ok {
		return code, false
	}
	if res.Drain {
		return c.drain()
	}
	return 0, true
}

// answer gives the replies to a frame to its Answer, or sends them.
func (c *Conn) answer(f Frame, replies []any) (int, bool) {
	if f.Answer != nil {
		f.Answer(replies)
		return 0, true
	}
	for _, r := range replies {
		if err := c.t.Send(c.ctx, r); err != nil {
			return sendErrorCode(err), false
		}
	}
	return 0, true
}

// drain sends every waiting message, page by page.
func (c *Conn) drain() (int, bool) {
	for {
		opCtx, cancel := context.WithTimeout(c.ctx, c.srv.cfg.OpTimeout)
		notes, more, err := c.sess.Drain(opCtx)
		cancel()
		if err != nil {
			c.log.Error("drain failed", "err", err)
			return mozproto.CloseInternal, false
		}
		for _, n := range notes {
			if err := c.t.Send(c.ctx, n); err != nil {
				return sendErrorCode(err), false
			}
		}
		if !more {
			return 0, true
		}
	}
}

func sendErrorCode(err error) int {
	if errors.Is(err, ErrSlow) {
		return mozproto.CloseSlowConsumer
	}
	if errors.Is(err, context.Canceled) {
		return mozproto.CloseGoingAway
	}
	return mozproto.CloseInternal
}
