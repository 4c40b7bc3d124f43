package httpconn

import (
	"context"
	"sync"
	"time"

	"github.com/herald-push/herald/pkg/mozproto"
	"github.com/herald-push/herald/services/gateway/internal/uaconn"
)

// conn is one connection of a user agent over the HTTP transports: a
// uaconn.Transport that lives from hello until it is closed, across the requests
// that carry it. Frames come in POSTs; what the session sends goes into a log that
// the event stream or the polls read.
//
// The log keeps every notification until it is acknowledged (at most
// Config.Backlog), so that a stream or poll that broke is resumed after the last
// event the user agent received (Last-Event-ID) without losing one; other frames
// leave the log once read.
type conn struct {
	srv   *Server
	token string
	// uc takes the frames the user agent sends (nil in tests of the log alone).
	uc *uaconn.Conn

	// done is closed by Close, after code is set.
	done chan struct{}
	code int

	mu sync.Mutex
	// uaid is set once hello is answered; until then no request finds the conn.
	uaid   string
	events []event
	seq    uint64
	// grown is closed, and replaced, whenever events grows.
	grown chan struct{}
	// room gets a token whenever events shrinks.
	room chan struct{}
	// reader is the request reading the log now (a stream or a poll), or nil;
	// idle runs while there is none.
	reader *reader
	idle   *time.Timer
}

// event is one frame in the log.
type event struct {
	seq uint64
	// id is the notification's version, the event id; "" for other frames, which
	// leave the log once read.
	id   string
	data []byte
}

// reader is one request reading the log; stop is closed when a newer one replaces it.
type reader struct {
	stop chan struct{}
}

func newConn(srv *Server, token string, uc *uaconn.Conn) *conn {
	c := &conn{
		srv:   srv,
		token: token,
		uc:    uc,
		done:  make(chan struct{}),
		grown: make(chan struct{}),
		room:  make(chan struct{}, 1),
	}
	c.idle = time.AfterFunc(srv.cfg.IdleTimeout, c.expire)
	return c
}

// expire ends a connection that nobody read for the idle timeout.
func (c *conn) expire() {
	c.mu.Lock()
	reading := c.reader != nil
	c.mu.Unlock()
	if !reading {
		c.lost(mozproto.CloseIdle)
	}
}

// lost tells the connection that the transport gave up on the user agent. The
// connection may have ended already: then it has no more use for it.
func (c *conn) lost(code int) {
	if c.uc != nil {
		c.uc.Frame(context.Background(), uaconn.Frame{Close: code})
	}
}

// Send implements uaconn.Transport: it appends a frame to the log. A user agent
// whose log stays full (Backlog notifications not acknowledged) for the write
// timeout is a slow consumer.
func (c *conn) Send(ctx context.Context, v any) error {
	b, err := mozproto.Marshal(v)
	if err != nil {
		return err
	}
	var id string
	if n, ok := v.(mozproto.Notification); ok {
		id = n.Version
	}
	var timeout <-chan time.Time
	for {
		c.mu.Lock()
		if len(c.events) < c.srv.cfg.Backlog {
			c.seq++
			c.events = append(c.events, event{seq: c.seq, id: id, data: b})
			close(c.grown)
			c.grown = make(chan struct{})
			c.mu.Unlock()
			return nil
		}
		c.mu.Unlock()
		if timeout == nil {
			t := time.NewTimer(c.srv.cfg.WriteTimeout)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-c.room:
		case <-timeout:
			return uaconn.ErrSlow
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Close implements uaconn.Transport. Readers write what is left in the log and the
// close frame; requests that come later are told the close code until the
// connection is forgotten, an idle timeout later.
func (c *conn) Close(_ context.Context, code int) {
	c.mu.Lock()
	c.code = code
	close(c.done)
	c.idle.Stop()
	c.mu.Unlock()
	time.AfterFunc(c.srv.cfg.IdleTimeout, func() { c.srv.forget(c) })
}

// closed returns the close code once the connection has ended.
func (c *conn) closed() (int, bool) {
	select {
	case <-c.done:
		return c.code, true
	default:
		return 0, false
	}
}

// attach makes a request the log's reader, replacing the one before (a stream
// that broke without the gateway noticing, a poll that was given up). It returns
// the position after which the request reads: after the event whose id is
// lastID, or the start of the log when lastID is not in it (acknowledged, or
// never seen), so that every unacknowledged notification is sent again.
func (c *conn) attach(lastID string) (*reader, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.reader != nil {
		close(c.reader.stop)
	}
	r := &reader{stop: make(chan struct{})}
	c.reader = r
	c.idle.Stop()
	var pos uint64
	if lastID != "" {
		for _, e := range c.events {
			if e.id == lastID {
				pos = e.seq
				break
			}
		}
	}
	return r, pos
}

// detach ends a request's reading; the idle timeout starts unless a newer reader
// took over.
func (c *conn) detach(r *reader) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.reader == r {
		c.reader = nil
		c.idle.Reset(c.srv.cfg.IdleTimeout)
	}
}

// read returns the events after pos, the new position, and a channel closed when
// more arrive. Frames that are not notifications leave the log as they are read.
func (c *conn) read(pos uint64) ([]event, uint64, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []event
	kept := c.events[:0]
	for _, e := range c.events {
		if e.seq > pos {
			out = append(out, e)
			pos = e.seq
			if e.id == "" {
				continue
			}
		}
		kept = append(kept, e)
	}
	if len(kept) < len(c.events) {
		clear(c.events[len(kept):])
		c.events = kept
		c.signalRoom()
	}
	return out, pos, c.grown
}

// acked removes acknowledged notifications from the log. It runs as the ack
// arrives, before the connection deletes them from the queue: a connection
// waiting for room in a full log must not wait for the frame behind it.
func (c *conn) acked(updates []mozproto.Update) {
	if len(updates) == 0 {
		return
	}
	versions := make(map[string]struct{}, len(updates))
	for _, u := range updates {
		versions[u.Version] = struct{}{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	kept := c.events[:0]
	for _, e := range c.events {
		if _, ok := versions[e.id]; !ok || e.id == "" {
			kept = append(kept, e)
		}
	}
	if len(kept) < len(c.events) {
		clear(c.events[len(kept):])
		c.events = kept
		c.signalRoom()
	}
}

func (c *conn) signalRoom() {
	select {
	case c.room <- struct{}{}:
	default:
	}
}

// post hands a frame to the connection and waits for its replies. closed reports
// that the connection ended instead, with code.
func (c *conn) post(ctx context.Context, f uaconn.Frame) (replies []any, code int, closed bool, err error) {
	answer := make(chan []any, 1)
	f.Answer = func(r []any) { answer <- r }
	if !c.uc.Frame(ctx, f) {
		if err := ctx.Err(); err != nil {
			return nil, 0, false, err
		}
		<-c.done // the connection ended, and closes its transport next
		return nil, c.code, true, nil
	}
	if f.Close != 0 {
		<-c.done // the connection ends at once
		return nil, c.code, true, nil
	}
	select {
	case r := <-answer:
		return r, 0, false, nil
	case <-c.done:
		// The connection answers before it closes: an answer that raced the close wins.
		select {
		case r := <-answer:
			return r, 0, false, nil
		default:
		}
		return nil, c.code, true, nil
	case <-ctx.Done():
		return nil, 0, false, ctx.Err()
	}
}
