package pushclient

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/herald-push/herald/pkg/mozproto"
)

// HTTPConn is a user agent's connection over the gateway's HTTP transports
// (docs/protocol.md): hello and every other frame by POST, notifications over
// Server-Sent Events (Stream) or long-polling (Poll).
type HTTPConn struct {
	base string
	hc   *http.Client
	// UAID and Token identify the connection in every request after hello.
	UAID  string
	Token string
}

// ClosedError is a gateway's answer that the connection ended, or that the request
// named no connection (403): the close frame, and the HTTP status it came with.
type ClosedError struct {
	Status int
	Frame  mozproto.CloseFrame
}

func (e *ClosedError) Error() string {
	return fmt.Sprintf("connection closed: status %d, code %d (%s)", e.Status, e.Frame.Code, e.Frame.Reason)
}

// HelloHTTP says hello to the gateway at base (http:// or https://, the gateway's
// origin) over HTTP, with hc (nil: the default client), and returns the connection.
func HelloHTTP(ctx context.Context, base string, hc *http.Client, m mozproto.ClientMessage) (*HTTPConn, mozproto.HelloReply, error) {
	if hc == nil {
		hc = http.DefaultClient
	}
	c := &HTTPConn{base: strings.TrimRight(base, "/"), hc: hc}
	m.Type = mozproto.TypeHello
	m.UseWebPush = true
	var r struct {
		mozproto.HelloReply
		Token string `json:"token"`
	}
	if err := c.do(ctx, http.MethodPost, c.base+"/ua", m, &r); err != nil {
		return nil, r.HelloReply, fmt.Errorf("hello: %w", err)
	}
	if r.Type != mozproto.TypeHello || r.Status != http.StatusOK || r.Token == "" {
		return nil, r.HelloReply, fmt.Errorf("hello refused: type %q status %d", r.Type, r.Status)
	}
	c.UAID, c.Token = r.UAID, r.Token
	return c, r.HelloReply, nil
}

// URL returns the URL of the connection's resource at path ("", "/sse", "/poll")
// with the token and the given query parameters.
func (c *HTTPConn) URL(path string, params url.Values) string {
	q := url.Values{"token": {c.Token}}
	for k, v := range params {
		q[k] = v
	}
	return c.base + "/ua/" + c.UAID + path + "?" + q.Encode()
}

// Post sends one frame and decodes its reply into reply (nil: none expected); a
// frame without a reply is answered 204.
func (c *HTTPConn) Post(ctx context.Context, frame, reply any) error {
	return c.do(ctx, http.MethodPost, c.URL("", nil), frame, reply)
}

// Register subscribes channelID; key is the application server's public key, or "".
func (c *HTTPConn) Register(ctx context.Context, channelID, key string) (mozproto.RegisterReply, error) {
	var r mozproto.RegisterReply
	err := c.Post(ctx, mozproto.ClientMessage{Type: mozproto.TypeRegister, ChannelID: channelID, Key: key}, &r)
	return r, err
}

// Ack acknowledges notifications.
func (c *HTTPConn) Ack(ctx context.Context, notes ...mozproto.Notification) error {
	ups := make([]mozproto.Update, len(notes))
	for i, n := range notes {
		ups[i] = mozproto.Update{ChannelID: n.ChannelID, Version: n.Version}
	}
	return c.Post(ctx, mozproto.ClientMessage{Type: mozproto.TypeAck, Updates: ups}, nil)
}

// Leave closes the connection.
func (c *HTTPConn) Leave(ctx context.Context) error {
	return c.do(ctx, http.MethodDelete, c.URL("", nil), nil, nil)
}

// Event is one frame the gateway sent over an event stream or a poll.
type Event struct {
	// ID is the event id of a stream's event: a notification's version.
	ID   string
	Type string
	Data json.RawMessage
}

// Notification decodes a notification event.
func (e Event) Notification() (mozproto.Notification, error) {
	var n mozproto.Notification
	if e.Type != mozproto.TypeNotification {
		return n, fmt.Errorf("event %q is not a notification", e.Type)
	}
	return n, json.Unmarshal(e.Data, &n)
}

// Close decodes a close event.
func (e Event) Close() (mozproto.CloseFrame, error) {
	var f mozproto.CloseFrame
	if e.Type != mozproto.TypeClose {
		return f, fmt.Errorf("event %q is not a close frame", e.Type)
	}
	return f, json.Unmarshal(e.Data, &f)
}

func newEvent(id string, data []byte) (Event, error) {
	var head struct {
		Type string `json:"messageType"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return Event{}, fmt.Errorf("malformed frame %q: %w", data, err)
	}
	return Event{ID: id, Type: head.Type, Data: append(json.RawMessage(nil), data...)}, nil
}

// Poll asks for what waits after the notification last (the last version
// received; "" for every unacknowledged one), holding for at most wait (a negative
// wait: the gateway's poll timeout).
func (c *HTTPConn) Poll(ctx context.Context, last string, wait time.Duration) ([]Event, error) {
	q := url.Values{}
	if last != "" {
		q.Set("last", last)
	}
	if wait >= 0 {
		q.Set("timeout", strconv.FormatFloat(wait.Seconds(), 'f', -1, 64))
	}
	var frames []json.RawMessage
	if err := c.do(ctx, http.MethodGet, c.URL("/poll", q), nil, &frames); err != nil {
		return nil, err
	}
	events := make([]Event, 0, len(frames))
	for _, f := range frames {
		e, err := newEvent("", f)
		if err != nil {
			return nil, err
		}
		events = append(events, e)
	}
	return events, nil
}

// Stream is an open event stream; Next reads its events, Close ends it.
type Stream struct {
	resp *http.Response
	sc   *bufio.Scanner
	// Retry is the reconnection delay the stream asked for, once read.
	Retry time.Duration
}

// Stream opens the connection's event stream, resuming after the event lastID
// (Last-Event-ID) unless it is "". The stream ends with ctx.
func (c *HTTPConn) Stream(ctx context.Context, lastID string) (*Stream, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL("/sse", nil), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("event stream: %w", err)
	}
	if err := answerError(resp); err != nil {
		return nil, err
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		resp.Body.Close()
		return nil, fmt.Errorf("event stream: content type %q", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	return &Stream{resp: resp, sc: sc}, nil
}

// Next reads the next event; keepalive comments are skipped. It returns io.EOF
// when the gateway ended the stream.
func (s *Stream) Next() (Event, error) {
	var id string
	var data []byte
	for s.sc.Scan() {
		line := s.sc.Text()
		switch {
		case line == "":
			if data != nil {
				return newEvent(id, data)
			}
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "id: "):
			id = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "data: "):
			data = append(data, strings.TrimPrefix(line, "data: ")...)
		case strings.HasPrefix(line, "retry: "):
			if ms, err := strconv.Atoi(strings.TrimPrefix(line, "retry: ")); err == nil {
				s.Retry = time.Duration(ms) * time.Millisecond
			}
		}
	}
	if err := s.sc.Err(); err != nil {
		return Event{}, err
	}
	return Event{}, io.EOF
}

// Close ends the stream.
func (s *Stream) Close() error { return s.resp.Body.Close() }

// do sends a request with body v as JSON (unless nil) and decodes the answer into
// out (unless nil). A close frame answer is a *ClosedError.
func (c *HTTPConn) do(ctx context.Context, method, target string, v, out any) error {
	var body io.Reader
	if v != nil {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return err
	}
	if v != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := answerError(resp); err != nil {
		return err
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s answer: %w", method, err)
	}
	return nil
}

// answerError reads an error answer, and closes its body.
func answerError(resp *http.Response) error {
	if resp.StatusCode < 300 {
		return nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10)) // only for the error
	var f mozproto.CloseFrame
	if json.Unmarshal(b, &f) == nil && f.Type == mozproto.TypeClose {
		return &ClosedError{Status: resp.StatusCode, Frame: f}
	}
	return fmt.Errorf("status %d: %s", resp.StatusCode, bytes.TrimSpace(b))
}

// AsClosed returns the close frame of an error from HTTPConn, if it is one.
func AsClosed(err error) (*ClosedError, bool) {
	var ce *ClosedError
	ok := errors.As(err, &ce)
	return ce, ok
}
