package wsconn

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
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
	// netConn is the hijacked TCP connection under ws, closed directly once a close
	// frame has had its time: Firefox does not answer close frames promptly, and
	// the library would wait for its answer.
	netConn net.Conn

	// out is the bounded queue of frames waiting for the writer goroutine.
	out chan []byte
	// writeFailed is closed by the writer when a write fails or times out.
	writeFailed chan struct{}
	// stopWriting tells the writer to drop what is queued and end.
	stopWriting chan struct{}

	goAwayOnce sync.Once
	goAway     chan struct{}

	// log carries the uaid once the user agent said hello.
	log *slog.Logger
}

func (c *conn) sayGoAway() { c.goAwayOnce.Do(func() { close(c.goAway) }) }

// frame is what the reader goroutine hands to the connection's loop.
type frame struct {
	msg mozproto.ClientMessage
	err error
}

// errSlow says the user agent does not read its frames fast enough.
var errSlow = errors.New("slow consumer")

// run owns the connection: a reader goroutine parses frames, a writer goroutine
// sends the queued ones, a pinger keeps the socket alive, and this goroutine does
// everything else, so session state needs no locks.
func (c *conn) run(parent context.Context) {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	c.log = c.srv.log

	frames := make(chan frame)
	dead := make(chan struct{})
	writerDone := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { c.read(ctx, frames) })
	wg.Go(func() { c.ping(ctx, dead) })
	wg.Go(func() { defer close(writerDone); c.write(ctx) })
	defer wg.Wait()

	code := c.serve(ctx, frames, dead)
	if code == mozproto.CloseSlowConsumer {
		c.log.Info("closing a slow consumer")
	} else {
		// Let the writer flush what is queued, for at most the linger: a notification
		// that does not go out is sent again on the next connection.
		close(c.out)
		select {
		case <-writerDone:
		case <-time.After(c.srv.cfg.CloseLinger):
		}
	}
	close(c.stopWriting)
	c.close(ctx, code)
	cancel()
}

// close sends the close frame and drops the TCP connection once the peer answered
// or the linger passed, whichever comes first.
func (c *conn) close(ctx context.Context, code int) {
	c.srv.metrics.closed.Add(ctx, 1, closeReason(code))
	status, reason := closeStatus(code)
	linger := time.AfterFunc(c.srv.cfg.CloseLinger, func() {
		_ = c.netConn.Close() // unblocks Close below; the error only says it was closed
	})
	defer linger.Stop()
	_ = c.ws.Close(status, reason) // the peer may already be gone; nothing to do
	_ = c.netConn.Close()          // already closed when the handshake completed
}

// serve runs the protocol and returns the close code to end the connection with.
func (c *conn) serve(ctx context.Context, frames <-chan frame, dead <-chan struct{}) int {
	cfg := c.srv.cfg
	log := c.log
	hello := time.NewTimer(cfg.HelloTimeout)
	defer hello.Stop()

	var f frame
	select {
	case f = <-frames:
	case <-hello.C:
		return mozproto.CloseIdle
	case <-dead:
		return mozproto.CloseIdle
	case <-c.goAway:
		return mozproto.CloseGoingAway
	case <-ctx.Done():
		return mozproto.CloseGoingAway
	}
	if f.err != nil {
		return c.readErrorCode(f.err, log)
	}
	opCtx, opCancel := context.WithTimeout(ctx, cfg.OpTimeout)
	sess, reply, err := c.srv.hub.Hello(opCtx, f.msg)
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
	if err := c.send(ctx, reply); err != nil {
		return c.sendErrorCode(err)
	}
	if code, ok := c.drain(ctx, sess, log); !ok {
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
			if f.err != nil {
				return c.readErrorCode(f.err, log)
			}
			if code, ok := c.handle(ctx, sess, f.msg, log); !ok {
				return code
			}
			armIdle()
		case m := <-sess.Inbox():
			if n, ok := sess.Take(ctx, m); ok {
				if err := c.send(ctx, n); err != nil {
					return c.sendErrorCode(err)
				}
			}
		case <-sess.Resync():
			if code, ok := c.drain(ctx, sess, log); !ok {
				return code
			}
		case <-idle.C:
			log.Debug("nothing to receive: backing off")
			return mozproto.CloseBackoff
		case <-sess.Kicked():
			return sess.KickReason()
		case <-c.writeFailed:
			return mozproto.CloseSlowConsumer
		case <-dead:
			log.Debug("no answer to pings")
			return mozproto.CloseIdle
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
	res, err := sess.Handle(opCtx, m)
	cancel()
	if errors.Is(err, session.ErrProtocol) {
		log.Debug("protocol error", "err", err)
		return mozproto.CloseProtocolError, false
	}
	if err != nil {
		log.Error("frame failed", "type", m.Type, "err", err)
		return mozproto.CloseInternal, false
	}
	for _, r := range res.Replies {
		if err := c.send(ctx, r); err != nil {
			return c.sendErrorCode(err), false
		}
	}
	if res.Close != 0 {
		log.Debug("closing", "type", m.Type, "code", res.Close)
		return res.Close, false
	}
	if res.Drain {
		return c.drain(ctx, sess, log)
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
			if err := c.send(ctx, n); err != nil {
				return c.sendErrorCode(err), false
			}
		}
		if !more {
			return 0, true
		}
	}
}

// send queues one frame for the writer. A user agent whose queue stays full for the
// write timeout is a slow consumer.
func (c *conn) send(ctx context.Context, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	select {
	case c.out <- b:
		return nil
	default:
	}
	t := time.NewTimer(c.srv.cfg.WriteTimeout)
	defer t.Stop()
	select {
	case c.out <- b:
		return nil
	case <-t.C:
		return errSlow
	case <-c.writeFailed:
		return errSlow
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *conn) sendErrorCode(err error) int {
	if errors.Is(err, errSlow) {
		return mozproto.CloseSlowConsumer
	}
	if errors.Is(err, context.Canceled) {
		return mozproto.CloseGoingAway
	}
	return mozproto.CloseInternal
}

// write sends queued frames, each bounded by the write timeout, until the queue is
// closed, the connection told it to stop, or a write fails.
func (c *conn) write(ctx context.Context) {
	for {
		var (
			b  []byte
			ok bool
		)
		select {
		case b, ok = <-c.out:
			if !ok {
				return
			}
		case <-c.stopWriting:
			return
		case <-ctx.Done():
			return
		}
		wctx, cancel := context.WithTimeout(ctx, c.srv.cfg.WriteTimeout)
		err := c.ws.Write(wctx, websocket.MessageText, b)
		cancel()
		if err != nil {
			close(c.writeFailed)
			return
		}
	}
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

// ping sends WebSocket pings; a peer that does not answer within the ping interval
// is dead, and dead is closed.
func (c *conn) ping(ctx context.Context, dead chan<- struct{}) {
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
				close(dead)
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
	case errors.Is(err, websocket.ErrMessageTooBig):
		log.Debug("frame over the read limit")
		return mozproto.CloseTooBig
	case websocket.CloseStatus(err) != -1:
		return mozproto.CloseGoingAway // the peer closed; the code is not sent anyway
	default:
		return mozproto.CloseProtocolError
	}
}
