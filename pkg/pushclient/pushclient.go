// Package pushclient is a user agent of the Mozilla Push Service protocol: it
// connects to a gateway, says hello, registers channels, receives notifications and
// acknowledges them. heraldctl, the tests and the load tool use it. Client speaks
// over WebSocket; HTTPConn over the gateway's HTTP transports (Server-Sent Events
// and long-polling).
package pushclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/coder/websocket"

	"github.com/herald-push/herald/pkg/mozproto"
)

// ErrClosed is returned once the connection has ended; Err says why.
var ErrClosed = errors.New("connection closed")

// ErrPingTooSoon is returned by Ping when the gateway says the client pings more
// often than it allows; pinging again before the interval closes the connection.
var ErrPingTooSoon = errors.New("ping too soon")

// Client is one connection to a gateway. Requests (Hello, Register, Unregister,
// Ping) must not be issued concurrently; notifications arrive on their own.
type Client struct {
	ws *websocket.Conn
	// notes holds the notifications that arrived and were not taken yet, at most
	// maxBacklog, and noteReady gets a token when one is added. A slice that grows
	// as they come, rather than a channel of maxBacklog: a load tool holds tens of
	// thousands of clients, and a channel's buffer is allocated, and scanned by the
	// collector, whole.
	notesMu   sync.Mutex
	notes     []mozproto.Notification
	noteReady chan struct{}
	// replies carries every frame that is not a notification, in order.
	replies chan []byte
	done    chan struct{}
	// onNote, when set, takes the notifications on the reader's goroutine instead
	// of notes (see OnNotification).
	onNote atomic.Pointer[func(mozproto.Notification)]

	mu  sync.Mutex
	err error
}

// Dial connects to the gateway at url (ws:// or wss://).
func Dial(ctx context.Context, url string) (*Client, error) { return DialWith(ctx, url, nil) }

// DialWith is Dial over the given HTTP client (nil: the default one).
func DialWith(ctx context.Context, url string, hc *http.Client) (*Client, error) {
	ws, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{
		HTTPClient:   hc,
		Subprotocols: []string{"push-notification"},
		HTTPHeader:   http.Header{"User-Agent": []string{"herald-pushclient"}},
	})
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", url, err)
	}
	ws.SetReadLimit(1 << 20)
	c := &Client{
		ws:        ws,
		noteReady: make(chan struct{}, 1),
		replies:   make(chan []byte, 16),
		done:      make(chan struct{}),
	}
	go c.read()
	return c, nil
}

func (c *Client) read() {
	defer close(c.done)
	for {
		_, data, err := c.ws.Read(context.Background())
		if err != nil {
			c.mu.Lock()
			c.err = err
			c.mu.Unlock()
			return
		}
		var head struct {
			Type string `json:"messageType"`
		}
		if err := json.Unmarshal(data, &head); err != nil {
			c.fail(fmt.Errorf("server sent a malformed frame: %w", err))
			return
		}
		if head.Type == mozproto.TypeNotification {
			var n mozproto.Notification
			if err := json.Unmarshal(data, &n); err != nil {
				c.fail(fmt.Errorf("server sent a malformed notification: %w", err))
				return
			}
			if f := c.onNote.Load(); f != nil {
				(*f)(n)
				continue
			}
			if !c.addNote(n) {
				c.fail(errors.New("notification backlog full: the reader is too slow"))
				return
			}
			continue
		}
		select {
		case c.replies <- data:
		default:
			c.fail(errors.New("unexpected frames from the server"))
			return
		}
	}
}

func (c *Client) fail(err error) {
	c.mu.Lock()
	c.err = err
	c.mu.Unlock()
	_ = c.ws.Close(websocket.StatusProtocolError, "bad frame") // closing anyway
}

// Err returns why the connection ended, or nil while it is open.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Done is closed when the connection has ended.
func (c *Client) Done() <-chan struct{} { return c.done }

// CloseStatus returns the WebSocket close code the server ended the connection
// with, or -1.
func (c *Client) CloseStatus() int { return int(websocket.CloseStatus(c.Err())) }

// Close closes the connection normally.
func (c *Client) Close() error {
	return c.ws.Close(websocket.StatusNormalClosure, "")
}

// Drop closes the connection without the closing handshake: for a connection the
// server already dropped (its process died), where Close would send a close frame
// nobody reads.
func (c *Client) Drop() error {
	return c.ws.CloseNow()
}

// Send writes one frame as JSON, as is.
func (c *Client) Send(ctx context.Context, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return c.SendRaw(ctx, b)
}

// SendRaw writes one text frame with the given bytes, for tests of bad input.
func (c *Client) SendRaw(ctx context.Context, b []byte) error {
	if err := c.ws.Write(ctx, websocket.MessageText, b); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	return nil
}

// reply waits for the next non-notification frame and decodes it into v.
func (c *Client) reply(ctx context.Context, v any) error {
	select {
	case b := <-c.replies:
		return json.Unmarshal(b, v)
	case <-c.done:
		return fmt.Errorf("%w: %v", ErrClosed, c.Err())
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Hello identifies the user agent; uaid and channelIDs are empty for a new one.
func (c *Client) Hello(ctx context.Context, uaid string, channelIDs []string) (mozproto.HelloReply, error) {
	var r mozproto.HelloReply
	err := c.Send(ctx, mozproto.ClientMessage{Type: mozproto.TypeHello, UAID: uaid, ChannelIDs: channelIDs, UseWebPush: true})
	if err == nil {
		err = c.reply(ctx, &r)
	}
	if err == nil && (r.Type != mozproto.TypeHello || r.Status != http.StatusOK) {
		err = fmt.Errorf("hello refused: type %q status %d", r.Type, r.Status)
	}
	return r, err
}

// Register subscribes channelID; key is the application server's public key in
// base64url, or "".
func (c *Client) Register(ctx context.Context, channelID, key string) (mozproto.RegisterReply, error) {
	var r mozproto.RegisterReply
	err := c.Send(ctx, mozproto.ClientMessage{Type: mozproto.TypeRegister, ChannelID: channelID, Key: key})
	if err == nil {
		err = c.reply(ctx, &r)
	}
	if err == nil && r.Type != mozproto.TypeRegister {
		err = fmt.Errorf("register: got %q", r.Type)
	}
	return r, err
}

// Unregister removes channelID.
func (c *Client) Unregister(ctx context.Context, channelID string) (mozproto.UnregisterReply, error) {
	var r mozproto.UnregisterReply
	err := c.Send(ctx, mozproto.ClientMessage{Type: mozproto.TypeUnregister, ChannelID: channelID})
	if err == nil {
		err = c.reply(ctx, &r)
	}
	if err == nil && r.Type != mozproto.TypeUnregister {
		err = fmt.Errorf("unregister: got %q", r.Type)
	}
	return r, err
}

// Ping sends the protocol's keepalive and waits for its answer.
func (c *Client) Ping(ctx context.Context) error {
	if err := c.SendRaw(ctx, []byte("{}")); err != nil {
		return err
	}
	var r struct {
		Type       string `json:"messageType"`
		Status     int    `json:"status"`
		RetryAfter int64  `json:"retry_after"`
	}
	if err := c.reply(ctx, &r); err != nil {
		return err
	}
	switch {
	case r.Status == http.StatusTooManyRequests:
		return fmt.Errorf("%w: retry after %ds", ErrPingTooSoon, r.RetryAfter)
	case r.Type != "" && r.Type != mozproto.TypePing, r.Status != 0:
		return fmt.Errorf("ping answered with type %q status %d", r.Type, r.Status)
	}
	return nil
}

// OnNotification hands every notification that arrives from now on to f, on the
// goroutine that reads the connection, instead of to Next: a receiver that only
// records and acknowledges (the load tool) then costs no goroutine of its own and
// no hand-off per notification. f must not block for long: the connection is not
// read while it runs. Notifications that arrived before stay for Next.
func (c *Client) OnNotification(f func(mozproto.Notification)) { c.onNote.Store(&f) }

// maxBacklog is how many notifications may wait for Next before the client gives
// up on the connection.
const maxBacklog = 256

// addNote queues n for Next; false when maxBacklog are already waiting.
func (c *Client) addNote(n mozproto.Notification) bool {
	c.notesMu.Lock()
	if len(c.notes) >= maxBacklog {
		c.notesMu.Unlock()
		return false
	}
	c.notes = append(c.notes, n)
	c.notesMu.Unlock()
	select {
	case c.noteReady <- struct{}{}:
	default: // a token is already waiting
	}
	return true
}

// Next waits for the next notification. Notifications that arrived before the
// connection ended are still returned.
func (c *Client) Next(ctx context.Context) (mozproto.Notification, error) {
	for {
		if n, ok := c.TryNext(); ok {
			return n, nil
		}
		select {
		case <-c.noteReady:
		case <-c.done:
			if n, ok := c.TryNext(); ok {
				return n, nil
			}
			return mozproto.Notification{}, fmt.Errorf("%w: %v", ErrClosed, c.Err())
		case <-ctx.Done():
			return mozproto.Notification{}, ctx.Err()
		}
	}
}

// Ack acknowledges notifications.
func (c *Client) Ack(ctx context.Context, notes ...mozproto.Notification) error {
	ups := make([]mozproto.Update, len(notes))
	for i, n := range notes {
		ups[i] = mozproto.Update{ChannelID: n.ChannelID, Version: n.Version}
	}
	return c.Send(ctx, mozproto.ClientMessage{Type: mozproto.TypeAck, Updates: ups})
}
