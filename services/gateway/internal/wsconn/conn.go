package wsconn

import (
	"context"
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
//
// An idle connection costs one goroutine, the reader (uaconn runs none while the
// connection is idle): goroutine stacks are most of a gateway's memory per
// connection. A writer goroutine runs only while frames are queued, and a ping's
// round trip runs on the goroutine of its timer.
type conn struct {
	cfg Config
	log *slog.Logger
	ws  *websocket.Conn
	// netConn is the hijacked TCP connection under ws, closed directly once a close
	// frame has had its time: Firefox does not answer close frames promptly, and
	// the library would wait for its answer.
	netConn net.Conn
	// ioCtx carries the request's values to the library's calls and is never
	// cancelled: a cancellable context costs each blocked call a context.AfterFunc.
	// Closing netConn is what ends a blocked read, write or ping.
	ioCtx context.Context
	// uc takes the frames the user agent sends.
	uc *uaconn.Conn

	// dequeued gets a token when the writer takes a frame off a full queue.
	dequeued chan struct{}
	// writeFailed is closed by the writer when a write fails or times out.
	writeFailed chan struct{}

	// mu guards the fields below, and orders starting a goroutine (wg.Add) before
	// Close's wg.Wait.
	mu sync.Mutex
	// closed is set by Close: no goroutine starts after it, and the writer drops
	// what is queued.
	closed bool
	// out is the bounded queue (cfg.OutboxSize) of frames waiting for the writer;
	// nil when empty, so that an idle connection holds no queue.
	out [][]byte
	// writing is set while a writer goroutine runs; writerDone is closed when it
	// ends.
	writing    bool
	writerDone chan struct{}
	pinger     *time.Timer

	wg sync.WaitGroup
}

// start runs the reader, and schedules the first ping.
func (c *conn) start() {
	// The pinger is set before the reader starts: a frame the reader takes may end
	// the connection at once, and Close stops the pinger.
	c.mu.Lock()
	c.pinger = time.AfterFunc(c.cfg.PingInterval, c.ping)
	c.mu.Unlock()
	c.wg.Go(c.read)
}

// Close implements uaconn.Transport: it flushes what is queued (not to a slow
// consumer), sends the close frame, and drops the TCP connection once the peer
// answered or the linger passed, whichever comes first.
func (c *conn) Close(_ context.Context, code int) {
	c.mu.Lock()
	writing, writerDone := c.writing, c.writerDone
	c.mu.Unlock()
	if code != mozproto.CloseSlowConsumer && writing {
		// Let the writer flush what is queued, for at most the linger: a notification
		// that does not go out is sent again on the next connection. Send is not
		// called any more, so the writer ends once the queue is empty.
		t := time.NewTimer(c.cfg.CloseLinger)
		select {
		case <-writerDone:
		case <-t.C:
		}
		t.Stop()
	}
	c.mu.Lock()
	c.closed = true
	c.pinger.Stop() // a ping under way sees closed, or ends when netConn does
	c.mu.Unlock()
	status, reason := closeStatus(code)
	linger := time.AfterFunc(c.cfg.CloseLinger, func() {
		_ = c.netConn.Close() // unblocks Close below; the error only says it was closed
	})
	_ = c.ws.Close(status, reason) // the peer may already be gone; nothing to do
	linger.Stop()
	_ = c.netConn.Close() // already closed when the handshake completed
	c.wg.Wait()
}

// Send implements uaconn.Transport: it queues one frame for the writer. A user
// agent whose queue stays full for the write timeout is a slow consumer. Only the
// connection (uaconn) calls Send, never concurrently with itself or Close.
func (c *conn) Send(ctx context.Context, v any) error {
	b, err := mozproto.Marshal(v)
	if err != nil {
		return err
	}
	var t *time.Timer
	for {
		c.mu.Lock()
		if len(c.out) < c.cfg.OutboxSize {
			c.out = append(c.out, b)
			c.startWriterLocked()
			c.mu.Unlock()
			if t != nil {
				t.Stop()
			}
			return nil
		}
		c.mu.Unlock()
		// The queue is full, so a writer runs (or failed).
		if t == nil {
			t = time.NewTimer(c.cfg.WriteTimeout)
			defer t.Stop()
		}
		select {
		case <-c.dequeued:
		case <-t.C:
			return uaconn.ErrSlow
		case <-c.writeFailed:
			return uaconn.ErrSlow
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// startWriterLocked starts a writer goroutine unless one runs; c.mu is held. The
// writer ends only when it finds the queue empty under c.mu, so a frame queued
// under c.mu is sent by the running writer or by the one started here.
func (c *conn) startWriterLocked() {
	if c.writing || c.closed {
		return
	}
	c.writing = true
	c.writerDone = make(chan struct{})
	done := c.writerDone
	c.wg.Go(func() { defer close(done); c.write() })
}

// write sends queued frames, each bounded by the write timeout, until the queue is
// empty, the connection closes, or a write fails. After a failure writing stays
// set: nothing more is written.
func (c *conn) write() {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return
		}
		if len(c.out) == 0 {
			c.out = nil // give the backing array back
			c.writing = false
			// No deadline for what others write (pings, the close frame) until
			// the next writer, which starts under c.mu.
			_ = c.netConn.SetWriteDeadline(time.Time{}) // fails only once closed
			c.mu.Unlock()
			return
		}
		b := c.out[0]
		c.out[0] = nil
		c.out = c.out[1:]
		c.mu.Unlock()
		select {
		case c.dequeued <- struct{}{}:
		default: // a token is already waiting, or nobody waits
		}
		// A deadline on the socket, not a context: the library would give a
		// cancellable context a timer and an AfterFunc on every write.
		_ = c.netConn.SetWriteDeadline(time.Now().Add(c.cfg.WriteTimeout)) // fails only once closed
		err := c.ws.Write(c.ioCtx, websocket.MessageText, b)
		if err != nil {
			close(c.writeFailed)
			c.lost(mozproto.CloseSlowConsumer)
			return
		}
	}
}

// lost tells the connection that the transport gave up on the user agent. The
// connection may have ended already: then it has no more use for it.
func (c *conn) lost(code int) {
	c.uc.Frame(c.ioCtx, uaconn.Frame{Close: code})
}

// read parses frames until the socket fails or the connection closes.
func (c *conn) read() {
	for {
		typ, data, err := c.ws.Read(c.ioCtx)
		var f uaconn.Frame
		switch {
		case err != nil:
			f.Close = c.readErrorCode(err)
		case typ != websocket.MessageText:
			c.log.Debug("protocol error", "err", "binary frame")
			f.Close = mozproto.CloseProtocolError
		default:
			// Parsed by uaconn, on a worker: parsing JSON is deep, and done on the
			// reader's own stack it would hold that stack for the connection's life.
			f.Data = data
		}
		if !c.uc.Frame(c.ioCtx, f) || f.Close != 0 {
			return // the connection ended, or ends with this frame
		}
	}
}

// ping runs on its timer's goroutine: it sends a WebSocket ping and waits for the
// pong, which the reader receives; a peer that does not answer within the ping
// interval is dead. The next ping is scheduled once this one is answered.
func (c *conn) ping() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.wg.Add(1)
	c.mu.Unlock()
	defer c.wg.Done()

	pctx, cancel := context.WithTimeout(c.ioCtx, c.cfg.PingInterval)
	err := c.ws.Ping(pctx)
	cancel()
	c.mu.Lock()
	closed := c.closed
	if err == nil && !closed {
		c.pinger.Reset(c.cfg.PingInterval)
	}
	c.mu.Unlock()
	if err != nil && !closed {
		c.log.Debug("no answer to pings")
		c.lost(mozproto.CloseIdle)
	}
}

// readErrorCode maps a read failure to the close code to answer with.
func (c *conn) readErrorCode(err error) int {
	switch {
	case errors.Is(err, websocket.ErrMessageTooBig):
		c.log.Debug("frame over the read limit")
		return mozproto.CloseTooBig
	case websocket.CloseStatus(err) != -1:
		return mozproto.CloseGoingAway // the peer closed; the code is not sent anyway
	default:
		return mozproto.CloseProtocolError
	}
}
