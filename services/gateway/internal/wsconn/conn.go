package wsconn

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/herald-push/herald/pkg/mozproto"
	"github.com/herald-push/herald/services/gateway/internal/session"
)

// conn is one WebSocket connection.
type conn struct {
	srv *Server
	ws  *websocket.Conn

	goAwayOnce sync.Once
	goAway     chan struct{}
}

func (c *conn) sayGoAway() { c.goAwayOnce.Do(func() { close(c.goAway) }) }

// frame is what the reader goroutine hands to the connection's loop.
type frame struct {
	msg mozproto.ClientMessage
	err error
}

// run owns the connection: a reader goroutine parses frames, a pinger keeps the
// socket alive, and this goroutine does everything else, so session state needs no
// locks.
func (c *conn) run(parent context.Context) {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	log := c.srv.log

	frames := make(chan frame)
	var wg sync.WaitGroup
	wg.Go(func() { c.read(ctx, frames) })
	wg.Go(func() { c.ping(ctx, cancel) })
	defer wg.Wait()

	code := c.serve(ctx, frames, log)
	status, reason := closeStatus(code)
	// Close waits (bounded by the library) for the peer's close frame; the reader
	// goroutine ends when the socket does.
	_ = c.ws.Close(status, reason) // the peer may already be gone; nothing to do
	cancel()
}

// serve runs the protocol and returns the close code to end the connection with.
func (c *conn) serve(ctx context.Context, frames <-chan frame, log *slog.Logger) int {
	cfg := c.srv.cfg
	hello := time.NewTimer(cfg.HelloTimeout)
	defer hello.Stop()

	var f frame
	select {
	case f = <-frames:
	case <-hello.C:
		return mozproto.CloseIdle
	case <-c.goAway:
		return mozproto.CloseGoingAway
	case <-ctx.Done():
		return mozproto.CloseGoingAway
	}
	if f.err != nil {
		return c.readErrorCode(f.err, log)
	}
	if f.msg.Type != mozproto.TypeHello {
		log.Debug("frame before hello", "type", f.msg.Type)
		return mozproto.CloseProtocolError
	}
	opCtx, opCancel := context.WithTimeout(ctx, cfg.OpTimeout)
	sess, reply, err := c.srv.hub.Hello(opCtx, f.msg)
	opCancel()
	if err != nil {
		log.Error("hello failed", "err", err)
		return mozproto.CloseInternal
	}
	log = log.With("uaid", sess.UAID().String())
	defer func() {
		// Release with a fresh context: the connection's is usually done by now.
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.OpTimeout)
		defer rcancel()
		if err := sess.Close(rctx); err != nil {
			log.Warn("release lease", "err", err)
		}
	}()
	if !c.write(ctx, reply) {
		return mozproto.CloseSlowConsumer
	}
	if code, ok := c.drain(ctx, sess, log); !ok {
		return code
	}
	for {
		select {
		case f := <-frames:
			if f.err != nil {
				return c.readErrorCode(f.err, log)
			}
			if code, ok := c.handle(ctx, sess, f.msg, log); !ok {
				return code
			}
		case m := <-sess.Inbox():
			if n, ok := sess.Take(m); ok && !c.write(ctx, n) {
				return mozproto.CloseSlowConsumer
			}
		case <-sess.Resync():
			if code, ok := c.drain(ctx, sess, log); !ok {
				return code
			}
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
func (c *conn) handle(ctx context.Context, sess *session.Session, m mozproto.ClientMessage, log *slog.Logger) (int, bool) {
	opCtx, cancel := context.WithTimeout(ctx, c.srv.cfg.OpTimeout)
	defer cancel()
	var (
		reply any
		err   error
	)
	switch m.Type {
	case mozproto.TypeHello:
		log.Debug("second hello")
		return mozproto.CloseProtocolError, false
	case mozproto.TypeRegister:
		reply, err = sess.Register(opCtx, m)
	case mozproto.TypeUnregister:
		reply, err = sess.Unregister(opCtx, m)
	case mozproto.TypeAck:
		err = sess.Ack(opCtx, m)
	case mozproto.TypePing:
		reply = mozproto.Ping{}
	case mozproto.TypeNack, mozproto.TypeBroadcastSubscribe:
		// Nothing to do yet: an unacknowledged message is redelivered on the next
		// connection, and Herald defines no broadcasts.
	default:
		return mozproto.CloseProtocolError, false
	}
	if err != nil {
		log.Error("frame failed", "type", m.Type, "err", err)
		return mozproto.CloseInternal, false
	}
	if reply != nil && !c.write(ctx, reply) {
		return mozproto.CloseSlowConsumer, false
	}
	return 0, true
}

// drain sends every waiting message, page by page.
func (c *conn) drain(ctx context.Context, sess *session.Session, log *slog.Logger) (int, bool) {
	for {
		opCtx, cancel := context.WithTimeout(ctx, c.srv.cfg.OpTimeout)
		notes, more, err := sess.Drain(opCtx)
		cancel()
		if err != nil {
			log.Error("drain failed", "err", err)
			return mozproto.CloseInternal, false
		}
		for _, n := range notes {
			if !c.write(ctx, n) {
				return mozproto.CloseSlowConsumer, false
			}
		}
		if !more {
			return 0, true
		}
	}
}

// write sends one frame, bounded by the write timeout.
func (c *conn) write(ctx context.Context, v any) bool {
	b, err := json.Marshal(v)
	if err != nil {
		return false
	}
	wctx, cancel := context.WithTimeout(ctx, c.srv.cfg.WriteTimeout)
	defer cancel()
	return c.ws.Write(wctx, websocket.MessageText, b) == nil
}

// read parses frames until the socket fails or ctx ends.
func (c *conn) read(ctx context.Context, frames chan<- frame) {
	for {
		typ, data, err := c.ws.Read(ctx)
		var f frame
		switch {
		case err != nil:
			f.err = err
		case typ != websocket.MessageText:
			f.err = mozproto.ErrMalformed
		default:
			f.msg, f.err = mozproto.Parse(data)
		}
		select {
		case frames <- f:
		case <-ctx.Done():
			return
		}
		if f.err != nil {
			return
		}
	}
}

// ping sends WebSocket pings; a peer that does not answer in time is cut off.
func (c *conn) ping(ctx context.Context, cancel context.CancelFunc) {
	interval := c.srv.cfg.PingInterval
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			pctx, pcancel := context.WithTimeout(ctx, interval)
			err := c.ws.Ping(pctx)
			pcancel()
			if err != nil && ctx.Err() == nil {
				cancel()
				return
			}
		}
	}
}

// readErrorCode maps a read failure to the close code to answer with.
func (c *conn) readErrorCode(err error, log *slog.Logger) int {
	switch {
	case errors.Is(err, mozproto.ErrMalformed), errors.Is(err, mozproto.ErrUnknownType):
		log.Debug("protocol error", "err", err)
		return mozproto.CloseProtocolError
	case websocket.CloseStatus(err) != -1:
		return mozproto.CloseGoingAway // the peer closed; the code is not sent anyway
	default:
		// Too big frames: the library has already closed with 1009.
		return mozproto.CloseProtocolError
	}
}
