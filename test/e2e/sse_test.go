package e2e

import (
	"context"
	"crypto/ecdh"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/herald-push/herald/pkg/ece"
	"github.com/herald-push/herald/pkg/ids"
	"github.com/herald-push/herald/pkg/mozproto"
	"github.com/herald-push/herald/pkg/pushclient"
	"github.com/herald-push/herald/pkg/sender"
	"github.com/herald-push/herald/test/internal/cluster"
)

// gatewayHTTP is the base URL of gateway i's HTTP transports (the WebSocket's
// listener).
func gatewayHTTP(c *cluster.Cluster, i int) string {
	return "http://" + c.Gateways[i].Addr("websocket")
}

// httpAgent is a user agent with one subscription over the HTTP transports.
type httpAgent struct {
	uaid      string
	channelID string
	priv      *ecdh.PrivateKey
	auth      []byte
	sub       sender.Subscription
	conn      *pushclient.HTTPConn
}

// newHTTPAgent says hello to the gateway at base over HTTP and registers a channel.
func newHTTPAgent(t testing.TB, base string) *httpAgent {
	t.Helper()
	priv, auth, err := ece.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	a := &httpAgent{channelID: ids.NewChannelID().String(), priv: priv, auth: auth}
	a.hello(t, base)
	reg, err := a.conn.Register(ctxT(t), a.channelID, "")
	if err != nil || reg.Status != 200 {
		t.Fatalf("register: %+v, %v", reg, err)
	}
	a.sub = subscription(reg.PushEndpoint, priv, auth)
	return a
}

// hello opens a new connection, resuming the agent's uaid if it has one.
func (a *httpAgent) hello(t testing.TB, base string) {
	t.Helper()
	m := mozproto.ClientMessage{UAID: a.uaid}
	if a.uaid != "" {
		m.ChannelIDs = []string{a.channelID}
	}
	conn, reply, err := pushclient.HelloHTTP(ctxT(t), base, nil, m)
	if err != nil {
		t.Fatalf("hello over HTTP: %v", err)
	}
	if a.uaid != "" && reply.UAID != a.uaid {
		t.Fatalf("hello gave uaid %s, want %s resumed", reply.UAID, a.uaid)
	}
	a.uaid, a.conn = reply.UAID, conn
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = a.conn.Leave(ctx) // may have ended already
	})
}

// open decrypts a notification for the agent's channel.
func (a *httpAgent) open(t testing.TB, n mozproto.Notification) string {
	t.Helper()
	if n.ChannelID != a.channelID {
		t.Fatalf("notification for channel %s, want %s", n.ChannelID, a.channelID)
	}
	body, err := base64.RawURLEncoding.DecodeString(n.Data)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := ece.Decrypt(body, a.priv, a.auth)
	if err != nil {
		t.Fatalf("decrypt: %v", err)
	}
	return string(plain)
}

// eventStream reads an event stream in the background, so that tests wait for
// events with a deadline.
type eventStream struct {
	events chan pushclient.Event
	err    chan error
	cancel context.CancelFunc
}

// openStream opens the agent's event stream, after lastID unless "".
func (a *httpAgent) openStream(t testing.TB, lastID string) *eventStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st, err := a.conn.Stream(ctx, lastID)
	if err != nil {
		cancel()
		t.Fatalf("open the event stream: %v", err)
	}
	es := &eventStream{events: make(chan pushclient.Event, 64), err: make(chan error, 1), cancel: cancel}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			e, err := st.Next()
			if err != nil {
				es.err <- err
				return
			}
			es.events <- e
		}
	}()
	t.Cleanup(func() {
		cancel()
		_ = st.Close() // ends the reader
		<-done
	})
	return es
}

// next waits for the next event.
func (es *eventStream) next(t testing.TB) pushclient.Event {
	t.Helper()
	select {
	case e := <-es.events:
		return e
	case err := <-es.err:
		// The reader queues every event before the stream's end.
		select {
		case e := <-es.events:
			es.err <- err
			return e
		default:
		}
		t.Fatalf("the event stream ended: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no event in 10s")
	}
	return pushclient.Event{}
}

// note waits for the next event and decodes it as a notification.
func (es *eventStream) note(t testing.TB) mozproto.Notification {
	t.Helper()
	e := es.next(t)
	n, err := e.Notification()
	if err != nil {
		t.Fatalf("event %q: %v", e.Data, err)
	}
	if e.ID != n.Version {
		t.Fatalf("event id %q, want the version %q", e.ID, n.Version)
	}
	return n
}

// closed waits for the close event and then the end of the stream; it returns the
// close code.
func (es *eventStream) closed(t testing.TB) int {
	t.Helper()
	e := es.next(t)
	f, err := e.Close()
	if err != nil {
		t.Fatalf("event %q, want a close frame: %v", e.Data, err)
	}
	select {
	case err := <-es.err:
		if !errors.Is(err, io.EOF) {
			t.Fatalf("after the close frame the stream failed: %v", err)
		}
	case e := <-es.events:
		t.Fatalf("event %q after the close frame", e.Data)
	case <-time.After(10 * time.Second):
		t.Fatal("the stream did not end after its close frame")
	}
	return f.Code
}

// wantHTTPClosed checks that err is the gateway's answer that the connection ended
// with code, with the HTTP status given.
func wantHTTPClosed(t testing.TB, err error, status, code int) {
	t.Helper()
	ce, ok := pushclient.AsClosed(err)
	if !ok || ce.Status != status || ce.Frame.Code != code {
		t.Fatalf("got %v, want status %d with close code %d", err, status, code)
	}
}

func TestSSE(t *testing.T) {
	c := cluster.Start(t)
	base := gatewayHTTP(c, 0)

	t.Run("resume with Last-Event-ID, redeliver what was not acknowledged", func(t *testing.T) {
		a := newHTTPAgent(t, base)
		es := a.openStream(t, "")
		send(t, a.sub, "one", 60)
		send(t, a.sub, "two", 60)
		n1, n2 := es.note(t), es.note(t)
		if got := a.open(t, n1) + "," + a.open(t, n2); got != "one,two" {
			t.Fatalf("received %s", got)
		}
		if err := a.conn.Ack(ctxT(t), n1); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the ack to delete one message", func() bool { return c.QueueLen(t, a.uaid) == 1 })
		// The stream breaks; a message comes meanwhile; the user agent resumes after
		// the last event it got and receives only what followed it.
		es.cancel()
		send(t, a.sub, "three", 60)
		es = a.openStream(t, n2.Version)
		n3 := es.note(t)
		if got := a.open(t, n3); got != "three" {
			t.Fatalf("resumed with %q, want three", got)
		}
		// Resuming after an event the gateway no longer holds (acknowledged) sends
		// every unacknowledged notification again, in order.
		es.cancel()
		es = a.openStream(t, n1.Version)
		if again := es.note(t); again.Version != n2.Version {
			t.Fatalf("redelivered %s, want %s", again.Version, n2.Version)
		}
		if again := es.note(t); again.Version != n3.Version {
			t.Fatalf("redelivered %s, want %s", again.Version, n3.Version)
		}
		// A new connection gets them again too, from the queue.
		if err := a.conn.Leave(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		a.hello(t, base)
		es = a.openStream(t, "")
		r2, r3 := es.note(t), es.note(t)
		if r2.Version != n2.Version || r3.Version != n3.Version {
			t.Fatalf("after a new hello got %s, %s; want %s, %s", r2.Version, r3.Version, n2.Version, n3.Version)
		}
		if err := a.conn.Ack(ctxT(t), r2, r3); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the queue to empty", func() bool { return c.QueueLen(t, a.uaid) == 0 })
		send(t, a.sub, "four", 60)
		if got := a.open(t, es.note(t)); got != "four" {
			t.Fatalf("received %q, want four and nothing acknowledged", got)
		}
	})

	t.Run("requests without the connection's token are refused", func(t *testing.T) {
		a := newHTTPAgent(t, base)
		other := newHTTPAgent(t, base)
		send(t, a.sub, "mine", 60)
		eventually(t, "the message to wait", func() bool { return c.QueueLen(t, a.uaid) == 1 })
		ack := `{"messageType":"ack","updates":[{"channelID":"` + a.channelID + `","version":"0-0"}]}`
		for _, tt := range []struct{ name, method, url, auth string }{
			{"no token", "POST", base + "/ua/" + a.uaid, ""},
			{"a wrong token", "POST", base + "/ua/" + a.uaid + "?token=" + strings.Repeat("A", 43), ""},
			{"another connection's token", "POST", base + "/ua/" + a.uaid + "?token=" + other.conn.Token, ""},
			{"its token for another uaid", "POST", base + "/ua/" + other.uaid + "?token=" + a.conn.Token, ""},
			{"a wrong bearer token", "POST", base + "/ua/" + a.uaid, "Bearer " + other.conn.Token},
			{"a stream without a token", "GET", base + "/ua/" + a.uaid + "/sse", ""},
			{"a poll without a token", "GET", base + "/ua/" + a.uaid + "/poll?timeout=0", ""},
			{"a leave without a token", "DELETE", base + "/ua/" + a.uaid, ""},
		} {
			var body io.Reader
			if tt.method == "POST" {
				body = strings.NewReader(ack)
			}
			req, err := http.NewRequestWithContext(ctxT(t), tt.method, tt.url, body)
			if err != nil {
				t.Fatal(err)
			}
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body) // checked below
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(b), `"messageType":"close"`) {
				t.Errorf("%s: status %d %s, want 403 with a close frame", tt.name, resp.StatusCode, b)
			}
		}
		// Nothing changed: the message waits, and the connection goes on.
		if n := c.QueueLen(t, a.uaid); n != 1 {
			t.Fatalf("%d messages wait, want 1", n)
		}
		es := a.openStream(t, "")
		if got := a.open(t, es.note(t)); got != "mine" {
			t.Fatalf("received %q", got)
		}
	})

	t.Run("a new connection of the same uaid takes over", func(t *testing.T) {
		a := newHTTPAgent(t, base)
		es := a.openStream(t, "")
		old := a.conn
		a.hello(t, base)
		if code := es.closed(t); code != mozproto.CloseTakenOver {
			t.Fatalf("old stream closed with %d, want %d", code, mozproto.CloseTakenOver)
		}
		// The old connection's requests learn why it ended.
		err := old.Post(ctxT(t), mozproto.ClientMessage{Type: mozproto.TypeAck}, nil)
		wantHTTPClosed(t, err, http.StatusGone, mozproto.CloseTakenOver)
		es = a.openStream(t, "")
		send(t, a.sub, "to the new one", 60)
		if got := a.open(t, es.note(t)); got != "to the new one" {
			t.Fatalf("received %q", got)
		}
		// A WebSocket of the same uaid takes over from the event stream.
		ws := cluster.DialURL(t, c.GatewayURL(0))
		if _, err := ws.Hello(ctxT(t), a.uaid, []string{a.channelID}); err != nil {
			t.Fatal(err)
		}
		if code := es.closed(t); code != mozproto.CloseTakenOver {
			t.Fatalf("stream closed with %d, want %d", code, mozproto.CloseTakenOver)
		}
	})

	t.Run("frames the protocol does not allow close the connection", func(t *testing.T) {
		for _, tt := range []struct {
			name   string
			frame  any
			status int
			code   int
		}{
			{"not JSON", "hello there", http.StatusBadRequest, mozproto.CloseProtocolError},
			{"a second hello", mozproto.ClientMessage{Type: mozproto.TypeHello}, http.StatusBadRequest, mozproto.CloseProtocolError},
			{"unknown type", map[string]string{"messageType": "subscribe"}, http.StatusBadRequest, mozproto.CloseProtocolError},
			{"oversized", map[string]string{"messageType": "ack", "x": strings.Repeat("a", 70<<10)}, http.StatusRequestEntityTooLarge, mozproto.CloseTooBig},
		} {
			a := newHTTPAgent(t, base)
			es := a.openStream(t, "")
			err := a.conn.Post(ctxT(t), tt.frame, nil)
			wantHTTPClosed(t, err, tt.status, tt.code)
			if code := es.closed(t); code != tt.code {
				t.Fatalf("%s: stream closed with %d, want %d", tt.name, code, tt.code)
			}
			err = a.conn.Post(ctxT(t), mozproto.ClientMessage{Type: mozproto.TypeAck}, nil)
			wantHTTPClosed(t, err, http.StatusGone, tt.code)
		}
	})

	t.Run("CORS", func(t *testing.T) {
		req, err := http.NewRequestWithContext(ctxT(t), http.MethodOptions, base+"/ua/x", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Origin", "https://app.example")
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "content-type")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != "*" ||
			!strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Content-Type") {
			t.Fatalf("preflight: %d %v", resp.StatusCode, resp.Header)
		}
		resp, err = http.Post(base+"/ua", "text/plain", strings.NewReader(`{"messageType":"hello","use_webpush":true}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Fatalf("hello: %d %v", resp.StatusCode, resp.Header)
		}
	})
}

// TestSSEDrain checks that a draining gateway ends event streams with 1001, and that
// the user agent finds its messages on another gateway.
func TestSSEDrain(t *testing.T) {
	c := cluster.Start(t)
	c.AddGateway()
	a := newHTTPAgent(t, gatewayHTTP(c, 0))
	es := a.openStream(t, "")
	if err := c.Gateways[0].Stop(20 * time.Second); err != nil {
		t.Fatalf("gateway did not drain cleanly: %v", err)
	}
	if code := es.closed(t); code != mozproto.CloseGoingAway {
		t.Fatalf("stream closed with %d, want %d", code, mozproto.CloseGoingAway)
	}
	send(t, a.sub, "after the drain", 300)
	a.hello(t, gatewayHTTP(c, 1))
	es = a.openStream(t, "")
	if got := a.open(t, es.note(t)); got != "after the drain" {
		t.Fatalf("received %q", got)
	}
}
