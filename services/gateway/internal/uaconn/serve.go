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

// Frame is what a transport hands the connection's loop: a frame the user agent
// sent, or the reason the transport gave up.
type Frame struct {
	// Msg is the parsed frame.
	Msg mozproto.ClientMessage
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

// Transport frames one connection of a user agent.
type Transport interface {
	// Frames delivers what the user agent sends, in order, until a Frame with
	// Close set.
	Frames() <-chan Frame
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

// serve answers hello, then hands the connection to its loop, on goroutines of
// its own; every path ends in end.
func (c *Conn) serve(ctx context.Context, t Transport) {
	sess, code := c.waitHello(ctx, t)
	if sess == nil || code != 0 {
		c.end(ctx, t, sess, code)
		return
	}
	l := &loop{
		c: c, ctx: ctx, t: t, sess: sess,
		// Read once: ctx.Done may allocate, which wait must not (see wait).
		done:   ctx.Done(),
		frames: t.Frames(),
		idle:   time.NewTimer(time.Hour),
	}
	l.armIdle()
	go l.wait()
}

// waitHello waits for the hello frame and answers it. It returns the session, nil
// if there is none, and the close code to end the connection with, 0 to go on.
func (c *Conn) waitHello(ctx context.Context, t Transport) (*session.Session, int) {
	hello := time.NewTimer(c.srv.cfg.HelloTimeout)
	defer hello.Stop()
	var f Frame
	select {
	case f = <-t.Frames():
	case <-hello.C:
		return nil, mozproto.CloseIdle
	case <-c.goAway:
		return nil, mozproto.CloseGoingAway
	case <-ctx.Done():
		return nil, mozproto.CloseGoingAway
	}
	if f.Close != 0 {
		return nil, f.Close
	}
	sess, code, ok := c.hello(ctx, t, f)
	if ok {
		code = 0
	}
	return sess, code
}

// end releases the session, if any, and closes the connection with code.
func (c *Conn) end(ctx context.Context, t Transport, sess *session.Session, code int) {
	defer c.srv.forget(c)
	if sess != nil {
		// Release with a fresh context: the connection's is usually done by now.
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), c.srv.cfg.OpTimeout)
		if err := sess.Close(rctx); err != nil {
			c.log.Warn("release lease", "err", err)
		}
		rcancel()
	}
	if code == mozproto.CloseSlowConsumer {
		c.log.Info("closing a slow consumer")
	}
	c.srv.metrics.closed.Add(context.WithoutCancel(ctx), 1, c.srv.metrics.closeAttrs(c.transport, code))
	t.Close(context.WithoutCancel(ctx), code)
}

// loop answers an identified connection's frames and delivers its messages.
//
// It hops goroutines: wait runs on a new goroutine each time, waits for one event,
// handles it, and starts the next wait. A goroutine's stack grows to the deepest
// call it made (Redis, Postgres, JSON, logging: 8 to 16 KiB) and shrinks only at
// garbage collections, by half each time; an idle connection's waiting goroutine
// has made no call and keeps the 2 KiB it started with. Stacks were most of a
// gateway's memory per idle connection. The cost is a goroutine start (about a
// microsecond) per event. The Server's WaitGroup, held from Open to end, is what
// owns this chain of goroutines: exactly one of them runs at a time.
type loop struct {
	c    *Conn
	ctx  context.Context
	t    Transport
	sess *session.Session

	done   <-chan struct{}
	frames <-chan Frame
	// idle fires when a user agent with nothing to receive has been quiet for the
	// backoff delay: it is told not to come back until it has something to send.
	idle *time.Timer

	// The event wait received, for the handling after it.
	f Frame
	m *heraldv1.Message
}

// loop events.
const (
	evFrame = iota
	evMessage
	evResync
	evIdle
	evKicked
	evGoAway
)

// wait waits for one event and handles it. It must stay shallow and must not
// allocate before its select: its stack is what an idle connection holds.
func (l *loop) wait() {
	var ev int
	select {
	case l.f = <-l.frames:
		ev = evFrame
	case l.m = <-l.sess.Inbox():
		ev = evMessage
	case <-l.sess.Resync():
		ev = evResync
	case <-l.idle.C:
		ev = evIdle
	case <-l.sess.Kicked():
		ev = evKicked
	case <-l.c.goAway:
		ev = evGoAway
	case <-l.done:
		ev = evGoAway
	}
	l.handle(ev)
}

// handle handles one event, then ends the connection or starts the next wait.
func (l *loop) handle(ev int) {
	code, ok := 0, true
	switch ev {
	case evFrame:
		f := l.f
		l.f = Frame{} // nothing is held while waiting
		if f.Close != 0 {
			code, ok = f.Close, false
			break
		}
		if code, ok = l.c.handle(l.ctx, l.t, l.sess, f); ok {
			l.armIdle()
		}
	case evMessage:
		m := l.m
		l.m = nil
		if n, taken := l.sess.Take(l.ctx, m); taken {
			if err := l.t.Send(l.ctx, n); err != nil {
				code, ok = sendErrorCode(err), false
			}
		}
	case evResync:
		code, ok = l.c.drain(l.ctx, l.t, l.sess)
	case evIdle:
		l.c.log.Debug("nothing to receive: backing off")
		code, ok = mozproto.CloseBackoff, false
	case evKicked:
		code, ok = l.sess.KickReason(), false
	case evGoAway:
		code, ok = mozproto.CloseGoingAway, false
	}
	if ok {
		go l.wait()
		return
	}
	l.idle.Stop()
	l.c.end(l.ctx, l.t, l.sess, code)
}

func (l *loop) armIdle() {
	if after := l.c.srv.cfg.BackoffAfter; after > 0 && l.sess.Idle() {
		l.idle.Reset(after)
	} else {
		l.idle.Stop()
	}
}

// hello answers the hello frame f and sends the waiting messages. It returns the
// session, nil if hello failed; ok is false when the connection is to end with
// code.
func (c *Conn) hello(ctx context.Context, t Transport, f Frame) (sess *session.Session, code int, ok bool) {
	cfg := c.srv.cfg
	log := c.log
	opCtx, opCancel := context.WithTimeout(ctx, cfg.OpTimeout)
	sess, reply, err := c.srv.hub.Hello(opCtx, f.Msg)
	opCancel()
	if errors.Is(err, session.ErrProtocol) {
		log.Debug("protocol error", "err", err)
		return nil, mozproto.CloseProtocolError, false
	}
	if err != nil {
		log.Error("hello failed", "err", err)
		return nil, mozproto.CloseInternal, false
	}
	c.log = log.With("uaid", sess.UAID().String())
	if code, ok := c.answer(ctx, t, f, []any{reply}); !ok {
		return sess, code, false
	}
	if code, ok := c.drain(ctx, t, sess); !ok {
		return sess, code, false
	}
	return sess, 0, true
}

// handle answers one frame of an identified connection.
func (c *Conn) handle(ctx context.Context, t Transport, sess *session.Session, f Frame) (int, bool) {
	opCtx, cancel := context.WithTimeout(ctx, c.srv.cfg.OpTimeout)
	res, err := sess.Handle(opCtx, f.Msg)
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
			if code, ok := c.answer(ctx, t, f, res.Replies); !ok {
				return code, false
			}
		}
		c.log.Debug("closing", "type", f.Msg.Type, "code", res.Close)
		return res.Close, false
	}
	if code, ok := c.answer(ctx, t, f, res.Replies); !ok {
		return code, false
	}
	if res.Drain {
		return c.drain(ctx, t, sess)
	}
	return 0, true
}

// answer gives the replies to a frame to its Answer, or sends them.
func (c *Conn) answer(ctx context.Context, t Transport, f Frame, replies []any) (int, bool) {
	if f.Answer != nil {
		f.Answer(replies)
		return 0, true
	}
	for _, r := range replies {
		if err := t.Send(ctx, r); err != nil {
			return sendErrorCode(err), false
		}
	}
	return 0, true
}

// drain sends every waiting message, page by page.
func (c *Conn) drain(ctx context.Context, t Transport, sess *session.Session) (int, bool) {
	for {
		opCtx, cancel := context.WithTimeout(ctx, c.srv.cfg.OpTimeout)
		notes, more, err := sess.Drain(opCtx)
		cancel()
		if err != nil {
			c.log.Error("drain failed", "err", err)
			return mozproto.CloseInternal, false
		}
		for _, n := range notes {
			if err := t.Send(ctx, n); err != nil {
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
