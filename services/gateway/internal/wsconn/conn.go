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
	"github.com/herald-push/herald/services/gateway/internal/uaconn"
)

// conn is one WebSocket connection: the uaconn.Transport of the protocol over it.
// A reader goroutine parses frames, a writer goroutine sends the queued ones, and a
// pinger keeps the socket alive; the protocol runs in uaconn.
type conn struct {
	cfg Config
	log *slog.Logger
	ws  *websocket.Conn
	// netConn is the hijacked TCP connection under ws, closed directly once a close
	// frame has had its time: Firefox does not answer close frames promptly, and
	// the library would wait for its answer.
	netConn net.Conn

	frames chan uaconn.Frame
	// out is the bounded queue of frames waiting for the writer goroutine.
	out chan []byte
	// writeFailed is closed by the writer when a write fails or times out.
	writeFailed chan struct{}
	// stopWriting tells the writer to drop what is queued and end.
	stopWriting chan struct{}
	writerDone  chan struct{}

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// start runs the reader, the writer and the pinger until Close.
func (c *conn) start(parent context.Context) {
	ctx, cancel := context.WithCancel(parent)
	c.cancel = cancel
	c.wg.Go(func() { c.read(ctx) })
	c.wg.Go(func() { c.ping(ctx) })
	c.wg.Go(func() { defer close(c.writerDone); c.write(ctx) })
}

// Frames implements uaconn.Transport.
func (c *conn) Frames() <-chan uaconn.Frame { return c.frames }

// Close implements uaconn.Transport: it flushes what is queued (not to a slow
// consumer), sends the close frame, and drops the TCP connection once the peer
// answered or the linger passed, whichever comes first.
func (c *conn) Close(_ context.Context, code int) {
	if code != mozproto.CloseSlowConsumer {
		// Let the writer flush what is queued, for at most the linger: a notification
		// that does not go out is sent again on the next connection.
		close(c.out)
		select {
		case <-c.writerDone:
		case <-time.After(c.cfg.CloseLinger):
		}
	}
	close(c.stopWriting)
	status, reason := closeStatus(code)
	linger := time.AfterFunc(c.cfg.CloseLinger, func() {
		_ = c.netConn.Close() // unblocks Close below; the error only says it was closed
	})
	_ = c.ws.Close(status, reason) // the peer may already be gone; nothing to do
	linger.Stop()
	_ = c.netConn.Close() // already closed when the handshake completed
	c.cancel()
	c.wg.Wait()
}

// Send implements uaconn.Transport: it queues one frame for the writer. A user
// agent whose queue stays full for the write timeout is a slow consumer.
func (c *conn) Send(ctx context.Context, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	select {
	case c.out <- b:
		return nil
	default:
	}
	t := time.NewTimer(c.cfg.WriteTimeout)
	defer t.Stop()
	select {
	case c.out <- b:
		return nil
	case <-t.C:
		return uaconn.ErrSlow
	case <-c.writeFailed:
		return uaconn.ErrSlow
	case <-ctx.Done():
		return ctx.Err()
	}
}

// lost tells the loop that the transport gave up on the user agent.
func (c *conn) lost(ctx context.Context, code int) {
	select {
	case c.frames <- uaconn.Frame{Close: code}:
	case <-ctx.Done():
	}
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
		wctx, cancel := context.WithTimeout(ctx, c.cfg.WriteTimeout)
		err := c.ws.Write(wctx, websocket.MessageText, b)
		cancel()
		if err != nil {
			close(c.writeFailed)
			c.lost(ctx, mozproto.CloseSlowConsumer)
			return
		}
	}
}

// read parses frames until the socket fails or ctx ends.
func (c *conn) read(ctx context.Context) {
	for {
		typ, data, err := c.ws.Read(ctx)
		var f uaconn.Frame
		switch {
		case err != nil:
			f.Close = c.readErrorCode(err)
		case typ != websocket.MessageText:
			c.log.Debug("protocol error", "err", "binary frame")
			f.Close = mozproto.CloseProtocolError
		default:
			if f.Msg, err = mozproto.Parse(data); err != nil {
				f.Close = c.readErrorCode(err)
			}
		}
		select {
		case c.frames <- f:
		case <-ctx.Done():
			return
		}
		if f.Close != 0 {
			return
		}
	}
}

// ping sends WebSocket pings; a peer that does not answer within the ping interval
// is dead.
func (c *conn) ping(ctx context.Context) {
	interval := c.cfg.PingInterval
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
				c.log.Debug("no answer to pings")
				c.lost(ctx, mozproto.CloseIdle)
				return
			}
		}
	}
}

// readErrorCode maps a read failure to the close code to answer with.
func (c *conn) readErrorCode(err error) int {
	switch {
	case errors.Is(err, mozproto.ErrMalformed), errors.Is(err, mozproto.ErrUnknownType):
		c.log.Debug("protocol error", "err", err)
		return mozproto.CloseProtocolError
	case errors.Is(err, websocket.ErrMessageTooBig):
		c.log.Debug("frame over the read limit")
		return mozproto.CloseTooBig
	case websocket.CloseStatus(err) != -1:
		return mozproto.CloseGoingAway // the peer closed; the code is not sent anyway
	default:
		return mozproto.CloseProtocolError
	}
}
