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

// serve runs the protocol over t and returns the close code to end it with.
func (c *Conn) serve(ctx context.Context, t Transport) int {
	cfg := c.srv.cfg
	log := c.log
	frames := t.Frames()
	hello := time.NewTimer(cfg.HelloTimeout)
	defer hello.Stop()

	var f Frame
	select {
	case f = <-frames:
	case <-hello.C:
		return mozproto.CloseIdle
	case <-c.goAway:
		return mozproto.CloseGoingAway
	case <-ctx.Done():
		return mozproto.CloseGoingAway
	}
	if f.Close != 0 {
		return f.Close
	}
	opCtx, opCancel := context.WithTimeout(ctx, cfg.OpTimeout)
	sess, reply, err := c.srv.hub.Hello(opCtx, f.Msg)
	opCancel()
	if errors.Is(err, session.ErrProtocol) {
		log.Debug("protocol error", "err", err)
		return mozproto.CloseProtocolError
	}
	if err != nil {
		log.Error("hello failed", "err", err)
		return mozproto.CloseInternal
	}
	log = log.With("uaid", sess.UAID().String())
	c.log = log
	defer func() {
		// Release with a fresh context: the connection's is usually done by now.
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.OpTimeout)
		defer rcancel()
		if err := sess.Close(rctx); err != nil {
			log.Warn("release lease", "err", err)
		}
	}()
	if code, ok := c.answer(ctx, t, f, []any{reply}); !ok {
		return code
	}
	if code, ok := c.drain(ctx, t, sess); !ok {
		return code
	}
	// idle fires when a user agent with nothing to receive has been quiet for the
	// backoff delay: it is told not to come back until it has something to send.
	idle := time.NewTimer(time.Hour)
	idle.Stop()
	defer idle.Stop()
	armIdle := func() {
		if cfg.BackoffAfter > 0 && sess.Idle() {
			idle.Reset(cfg.BackoffAfter)
		} else {
			idle.Stop()
		}
	}
	armIdle()
	for {
		select {
		case f := <-frames:
			if f.Close != 0 {
				return f.Close
			}
			if code, ok := c.handle(ctx, t, sess, f); !ok {
				return code
			}
			armIdle()
		case m := <-sess.Inbox():
			if n, ok := sess.Take(ctx, m); ok {
				if err := t.Send(ctx, n); err != nil {
					return sendErrorCode(err)
				}
			}
		case <-sess.Resync():
			if code, ok := c.drain(ctx, t, sess); !ok {
				return code
			}
		case <-idle.C:
			log.Debug("nothing to receive: backing off")
			return mozproto.CloseBackoff
		case <-sess.Kicked():
			return sess.KickReason()
		case <-c.goAway:
			return mozproto.CloseGoingAway
		case <-ctx.Done():
			return mozproto.CloseGoingAway
		}
	}
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
