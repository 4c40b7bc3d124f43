package e2e

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/herald-push/herald/pkg/ece"
	"github.com/herald-push/herald/pkg/ids"
	"github.com/herald-push/herald/pkg/mozproto"
	"github.com/herald-push/herald/pkg/pushclient"
	"github.com/herald-push/herald/pkg/sender"
	"github.com/herald-push/herald/pkg/vapid"
	"github.com/herald-push/herald/test/internal/cluster"
)

// waitClosed waits for the gateway to end cl's connection and returns the close code.
func waitClosed(t testing.TB, cl *pushclient.Client) int {
	t.Helper()
	select {
	case <-cl.Done():
		return cl.CloseStatus()
	case <-time.After(10 * time.Second):
		t.Fatal("the gateway did not close the connection")
		return 0
	}
}

func TestProtocol(t *testing.T) {
	c := cluster.Start(t)
	gw := c.GatewayURL(0)
	// A bystander whose service must not suffer from anyone else's bad frames.
	bystander := newAgent(t, gw)

	t.Run("ping", func(t *testing.T) {
		a := newAgent(t, gw)
		if err := a.cl.Ping(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		// Sooner than the minimum interval (30 s): told once, then closed.
		if err := a.cl.Ping(ctxT(t)); !errors.Is(err, pushclient.ErrPingTooSoon) {
			t.Fatalf("second ping: %v, want ErrPingTooSoon", err)
		}
		_ = a.cl.SendRaw(ctxT(t), []byte("{}")) // the gateway closes as it reads it
		if got := waitClosed(t, a.cl); got != mozproto.CloseTooManyPings {
			t.Fatalf("close code %d, want %d", got, mozproto.CloseTooManyPings)
		}
	})

	bad := []struct {
		name      string
		hello     bool
		frame     string
		wantClose int
	}{
		{name: "not JSON", frame: "hello there", wantClose: mozproto.CloseProtocolError},
		{name: "register before hello", frame: `{"messageType":"register","channelID":"5d6a1c3e-4c1b-4b0e-9a7a-2b1f0f9c8d7e"}`, wantClose: mozproto.CloseProtocolError},
		{name: "unknown type", hello: true, frame: `{"messageType":"subscribe"}`, wantClose: mozproto.CloseProtocolError},
		{name: "second hello", hello: true, frame: `{"messageType":"hello","use_webpush":true}`, wantClose: mozproto.CloseProtocolError},
		{name: "malformed after hello", hello: true, frame: `{"messageType":"ack","updates":"all"}`, wantClose: mozproto.CloseProtocolError},
		{name: "oversized frame", hello: true, frame: `{"messageType":"ack","updates":[],"x":"` + strings.Repeat("a", 70<<10) + `"}`, wantClose: mozproto.CloseTooBig},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			cl := cluster.DialURL(t, gw)
			if tt.hello {
				if _, err := cl.Hello(ctxT(t), "", nil); err != nil {
					t.Fatal(err)
				}
			}
			// The write of an oversized frame may fail once the gateway closes.
			_ = cl.SendRaw(ctxT(t), []byte(tt.frame))
			if got := waitClosed(t, cl); got != tt.wantClose {
				t.Fatalf("close code %d, want %d (%v)", got, tt.wantClose, cl.Err())
			}
		})
	}

	t.Run("register with a bad channel id or key", func(t *testing.T) {
		a := newAgent(t, gw)
		for _, tt := range []struct{ ch, key string }{
			{ch: "not-a-uuid"},
			{ch: "5d6a1c3e-4c1b-4b0e-9a7a-2b1f0f9c8d7e", key: "bm90IGEga2V5"},
		} {
			r, err := a.cl.Register(ctxT(t), tt.ch, tt.key)
			if err != nil || r.Status != 400 || r.PushEndpoint != "" {
				t.Fatalf("register %q key %q: %+v, %v", tt.ch, tt.key, r, err)
			}
		}
		// The connection survives a refused register.
		if err := a.cl.Ping(ctxT(t)); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("no hello in time", func(t *testing.T) {
		c2 := cluster.Start(t, cluster.WithEnv("HERALD_WS_HELLO_TIMEOUT=200ms"))
		cl := cluster.DialURL(t, c2.GatewayURL(0))
		if got := waitClosed(t, cl); got != mozproto.CloseIdle {
			t.Fatalf("close code %d, want %d", got, mozproto.CloseIdle)
		}
	})

	t.Run("a new connection of the same uaid takes over", func(t *testing.T) {
		a := newAgent(t, gw)
		first := a.cl
		a.connect(t, gw)
		if got := waitClosed(t, first); got != mozproto.CloseTakenOver {
			t.Fatalf("old connection closed with %d, want %d", got, mozproto.CloseTakenOver)
		}
		send(t, a.sub, "to the new one", 60)
		a.expect(t, "to the new one")
	})

	send(t, bystander.sub, "still served", 60)
	bystander.expect(t, "still served")
}

func TestTwoGateways(t *testing.T) {
	c := cluster.Start(t)
	c.AddGateway()
	a := newAgent(t, c.GatewayURL(0))
	send(t, a.sub, "via gateway 0", 60)
	a.expect(t, "via gateway 0")

	// The same user agent reconnects through the other gateway: the first gateway
	// closes its socket, and messages now go to the second.
	first := a.cl
	a.connect(t, c.GatewayURL(1))
	if got := waitClosed(t, first); got != mozproto.CloseTakenOver {
		t.Fatalf("connection on gateway 0 closed with %d, want %d", got, mozproto.CloseTakenOver)
	}
	send(t, a.sub, "via gateway 1", 60)
	a.expect(t, "via gateway 1")
}

func TestGatewayDrain(t *testing.T) {
	c := cluster.Start(t)
	c.AddGateway()
	a := newAgent(t, c.GatewayURL(0))
	b := newAgent(t, c.GatewayURL(0))

	// SIGTERM: user agents are told to go away, and the gateway exits cleanly.
	if err := c.Gateways[0].Stop(20 * time.Second); err != nil {
		t.Fatalf("gateway did not drain cleanly: %v", err)
	}
	for _, ua := range []*agent{a, b} {
		if got := waitClosed(t, ua.cl); got != mozproto.CloseGoingAway {
			t.Fatalf("close code %d, want %d", got, mozproto.CloseGoingAway)
		}
	}
	// Messages sent meanwhile wait; the user agents find them on the other gateway.
	send(t, a.sub, "after the drain", 300)
	a.connect(t, c.GatewayURL(1))
	a.expect(t, "after the drain")
	b.connect(t, c.GatewayURL(1))
	send(t, b.sub, "b too", 300)
	b.expect(t, "b too")
}

func TestProtocolRegister(t *testing.T) {
	c := cluster.Start(t, cluster.WithEnv("HERALD_MAX_CHANNELS=2"))
	a := newAgent(t, c.GatewayURL(0))
	key, err := vapid.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := vapid.EncodePublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base64.RawURLEncoding.DecodeString(pub)
	if err != nil {
		t.Fatal(err)
	}
	// Firefox sends the key base64url with '=' padding.
	padded := base64.URLEncoding.EncodeToString(raw)
	ch := ids.NewChannelID().String()
	for _, tt := range []struct {
		name, ch, key string
		want          int
	}{
		{name: "padded key", ch: ch, key: padded, want: 200},
		{name: "the same again", ch: ch, key: padded, want: 200},
		{name: "another key", ch: ch, key: "", want: 409},
		{name: "uppercase channel id", ch: strings.ToUpper(ids.NewChannelID().String()), want: 400},
		{name: "past the channel limit", ch: ids.NewChannelID().String(), want: 413},
	} {
		r, err := a.cl.Register(ctxT(t), tt.ch, tt.key)
		if err != nil || r.Status != tt.want || r.ChannelID != tt.ch {
			t.Fatalf("%s: %+v, %v; want status %d", tt.name, r, err, tt.want)
		}
		if tt.want == 200 {
			// The endpoint is restricted to the key: a push signed with it is taken.
			sub := sender.Subscription{Endpoint: r.PushEndpoint, Keys: a.sub.Keys}
			res, err := sender.Send(ctxT(t), sub, nil, sender.Options{TTL: 60, VAPIDKey: key, Subject: "mailto:ops@example.com"})
			if err != nil || res.Status != 201 {
				t.Fatalf("%s: push to the restricted endpoint: %+v, %v", tt.name, res, err)
			}
		}
	}
	un, err := a.cl.Unregister(ctxT(t), "nope")
	if err != nil || un.Status != 400 {
		t.Fatalf("unregister a bad id: %+v, %v", un, err)
	}
	un, err = a.cl.Unregister(ctxT(t), ids.NewChannelID().String())
	if err != nil || un.Status != 200 {
		t.Fatalf("unregister an unknown channel: %+v, %v", un, err)
	}
}

func TestProtocolHello(t *testing.T) {
	c := cluster.Start(t)
	gw := c.GatewayURL(0)

	t.Run("broadcasts Herald does not define are told unknown", func(t *testing.T) {
		cl := cluster.DialURL(t, gw)
		r, err := cl.HelloWith(ctxT(t), mozproto.ClientMessage{UseWebPush: true, Broadcasts: map[string]string{"remote-settings/monitor_changes": `"0"`}})
		if err != nil {
			t.Fatal(err)
		}
		if errs, _ := r.Broadcasts[mozproto.BroadcastErrors].(map[string]any); errs["remote-settings/monitor_changes"] == nil {
			t.Fatalf("hello broadcasts %v: want the id under errors", r.Broadcasts)
		}
		b, err := cl.SubscribeBroadcasts(ctxT(t), map[string]string{"megaphone": "v1"})
		if err != nil {
			t.Fatal(err)
		}
		if errs, _ := b.Broadcasts[mozproto.BroadcastErrors].(map[string]any); errs["megaphone"] == nil {
			t.Fatalf("broadcast reply %v: want megaphone under errors", b.Broadcasts)
		}
	})

	t.Run("a uaid the server cannot honour is reassigned", func(t *testing.T) {
		a := newAgent(t, gw)
		old := a.uaid
		a.disconnect(t)
		// The user agent believes in a channel the server does not hold.
		cl := cluster.DialURL(t, gw)
		r, err := cl.Hello(ctxT(t), old, []string{a.channelID, ids.NewChannelID().String()})
		if err != nil {
			t.Fatal(err)
		}
		if r.UAID == old {
			t.Fatal("the gateway resumed a uaid whose channels it does not all hold")
		}
		// The old uaid's subscriptions are gone: its endpoint answers 410.
		res, err := sender.Send(ctxT(t), a.sub, []byte("x"), sender.Options{TTL: 60})
		if err != nil || res.Status != 410 {
			t.Fatalf("push to the old uaid's endpoint: %+v, %v; want 410", res, err)
		}
	})

	t.Run("a new uaid with nothing to receive", func(t *testing.T) {
		c2 := cluster.Start(t, cluster.WithEnv("HERALD_WS_BACKOFF_AFTER=300ms"))
		busy := newAgent(t, c2.GatewayURL(0))
		idle := cluster.DialURL(t, c2.GatewayURL(0))
		if _, err := idle.Hello(ctxT(t), "", nil); err != nil {
			t.Fatal(err)
		}
		// Firefox's "do not reconnect until you have something to send".
		if got := waitClosed(t, idle); got != mozproto.CloseBackoff {
			t.Fatalf("close code %d, want %d", got, mozproto.CloseBackoff)
		}
		// The agent with a subscription, connected longer, stays.
		if err := busy.cl.Ping(ctxT(t)); err != nil {
			t.Fatalf("the subscribed agent was closed: %v", err)
		}
	})
}

func TestProtocolAck(t *testing.T) {
	c := cluster.Start(t)
	gw := c.GatewayURL(0)

	t.Run("unacknowledged come again, acknowledged never", func(t *testing.T) {
		a := newAgent(t, gw)
		send(t, a.sub, "one", 60)
		send(t, a.sub, "two", 60)
		one, n1 := a.next(t)
		two, n2 := a.next(t)
		if one != "one" || two != "two" {
			t.Fatalf("got %q, %q", one, two)
		}
		if err := a.cl.AckCode(ctxT(t), n1, mozproto.AckDelivered); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the ack to delete one message", func() bool { return c.QueueLen(t, a.uaid) == 1 })
		a.disconnect(t)
		a.connect(t, gw)
		again, n := a.next(t)
		if again != "two" || n.Version != n2.Version {
			t.Fatalf("redelivered %q (%s), want %q (%s)", again, n.Version, "two", n2.Version)
		}
		// 101: the browser could not decrypt it; sending it again would not help.
		if err := a.cl.AckCode(ctxT(t), n, mozproto.AckDecryptionError); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the queue to empty", func() bool { return c.QueueLen(t, a.uaid) == 0 })
		a.disconnect(t)
		a.connect(t, gw)
		send(t, a.sub, "three", 60)
		a.expect(t, "three") // and not "one" or "two" first
	})

	t.Run("nack is recorded and changes nothing", func(t *testing.T) {
		a := newAgent(t, gw)
		send(t, a.sub, "fails in the worker", 60)
		n := a.expect(t, "fails in the worker")
		if err := a.cl.Nack(ctxT(t), n, mozproto.NackUncaughtException); err != nil {
			t.Fatal(err)
		}
		if err := a.cl.Ping(ctxT(t)); err != nil {
			t.Fatalf("after a nack: %v", err)
		}
	})
}

func TestProtocolUrgency(t *testing.T) {
	c := cluster.Start(t)
	a := newAgent(t, c.GatewayURL(0))
	r, err := a.cl.SetUrgency(ctxT(t), mozproto.UrgencyHigh)
	if err != nil || r.Status != 200 || r.Min != mozproto.UrgencyHigh {
		t.Fatalf("urgency high: %+v, %v", r, err)
	}
	sendUrgent(t, a.sub, "low", "low")
	sendUrgent(t, a.sub, "high", "high")
	a.expect(t, "high")
	queueSettles(t, c, a.uaid, 1, "the low one")
	// A bad name changes nothing; lowering the bar lets the low one out.
	if r, err := a.cl.SetUrgency(ctxT(t), "urgent"); err != nil || r.Status != 400 || r.Min != mozproto.UrgencyHigh {
		t.Fatalf("urgency urgent: %+v, %v", r, err)
	}
	if r, err := a.cl.SetUrgency(ctxT(t), mozproto.UrgencyVeryLow); err != nil || r.Status != 200 {
		t.Fatalf("urgency very-low: %+v, %v", r, err)
	}
	a.expect(t, "low")

	// The bar can be set in hello, before anything waiting is sent.
	a.disconnect(t)
	sendUrgent(t, a.sub, "normal while away", "normal")
	cl := cluster.DialURL(t, c.GatewayURL(0))
	if _, err := cl.HelloWith(ctxT(t), mozproto.ClientMessage{UAID: a.uaid, UseWebPush: true, MinUrgency: mozproto.UrgencyHigh}); err != nil {
		t.Fatal(err)
	}
	a.cl = cl
	sendUrgent(t, a.sub, "high now", "high")
	a.expect(t, "high now")
	if _, err := cl.SetUrgency(ctxT(t), mozproto.UrgencyNormal); err != nil {
		t.Fatal(err)
	}
	a.expect(t, "normal while away")
}

func sendUrgent(t testing.TB, sub sender.Subscription, text, urgency string) {
	t.Helper()
	res, err := sender.Send(ctxT(t), sub, []byte(text), sender.Options{TTL: 60, Urgency: urgency})
	if err != nil || res.Status != 201 {
		t.Fatalf("push %q: %+v, %v", text, res, err)
	}
}

// TestCloseDoesNotWaitForThePeer checks that the gateway drops the TCP connection
// soon after its close frame even when the user agent never answers it, as Firefox
// does not promptly.
func TestCloseDoesNotWaitForThePeer(t *testing.T) {
	c := cluster.Start(t, cluster.WithEnv("HERALD_WS_CLOSE_LINGER=300ms"))
	conn := rawWebSocket(t, c.Gateways[0].Addr("websocket"))
	writeTextFrame(t, conn, `{"messageType":"hello","use_webpush":true}`)
	writeTextFrame(t, conn, `{"messageType":"hello","use_webpush":true}`) // a protocol error
	start := time.Now()
	if err := conn.SetReadDeadline(time.Now().Add(4 * time.Second)); err != nil {
		t.Fatal(err)
	}
	// Read everything (the hello reply, the close frame) without ever answering,
	// until the gateway drops the connection.
	all, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("the gateway kept the connection %s after its close frame: %v", time.Since(start).Round(time.Millisecond), err)
	}
	if !bytes.Contains(all, []byte{0x88}) {
		t.Fatalf("no close frame before the connection ended: %q", all)
	}
}

// rawWebSocket opens a WebSocket by hand, so the test controls what is answered.
func rawWebSocket(t *testing.T, addr string) net.Conn {
	t.Helper()
	return rawWebSocketWith(t, net.Dialer{Timeout: 5 * time.Second}, addr)
}

func rawWebSocketWith(t *testing.T, d net.Dialer, addr string) net.Conn {
	t.Helper()
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	req := "GET / HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: push-notification\r\n\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(&oneByteReader{conn}), nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	if got := resp.Header.Get("Sec-WebSocket-Protocol"); got != "push-notification" {
		t.Fatalf("subprotocol %q, want push-notification echoed", got)
	}
	return conn
}

// oneByteReader keeps bufio from reading past the handshake's response.
type oneByteReader struct{ r io.Reader }

func (o *oneByteReader) Read(p []byte) (int, error) { return o.r.Read(p[:min(len(p), 1)]) }

// writeTextFrame writes one masked text frame (RFC 6455 §5.2) of under 126 bytes.
func writeTextFrame(t *testing.T, conn net.Conn, text string) {
	t.Helper()
	if len(text) >= 126 {
		t.Fatal("frame too long for writeTextFrame")
	}
	mask := [4]byte{1, 2, 3, 4}
	b := []byte{0x81, 0x80 | byte(len(text)), mask[0], mask[1], mask[2], mask[3]}
	for i := range len(text) {
		b = append(b, text[i]^mask[i%4])
	}
	if _, err := conn.Write(b); err != nil {
		t.Fatal(err)
	}
}

// TestSlowConsumer checks that a user agent that stops reading is closed once its
// outgoing queue stays full, and that what it did not read waits for it.
func TestSlowConsumer(t *testing.T) {
	c := cluster.Start(t, cluster.WithEnv("HERALD_RATE_LIMIT_SUBSCRIPTION=100000/1m", "HERALD_MAX_QUEUE_LEN=5000", "HERALD_WS_OUTBOX_SIZE=2", "HERALD_WS_WRITE_TIMEOUT=300ms", "HERALD_WS_CLOSE_LINGER=200ms"))
	// A tiny receive buffer, so that the socket fills after a few messages.
	d := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return errors.Join(err, serr)
	}}
	conn := rawWebSocketWith(t, d, c.Gateways[0].Addr("websocket"))
	writeTextFrame(t, conn, `{"messageType":"hello","use_webpush":true}`)
	var hello mozproto.HelloReply
	readJSONFrame(t, conn, &hello)
	priv, auth, err := ece.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	ch := ids.NewChannelID().String()
	writeTextFrame(t, conn, `{"messageType":"register","channelID":"`+ch+`"}`)
	var reg mozproto.RegisterReply
	readJSONFrame(t, conn, &reg)
	if reg.Status != 200 {
		t.Fatalf("register: %+v", reg)
	}
	sub := subscription(reg.PushEndpoint, priv, auth)
	// Send until the gateway gives up on the reader, which never reads again.
	text := strings.Repeat("x", 3000)
	sent := 0
	slow := func() bool { return strings.Contains(c.Gateways[0].Log(), `"msg":"closing a slow consumer"`) }
	for ; sent < 3000 && !slow(); sent++ {
		send(t, sub, text, 300)
	}
	eventually(t, "the gateway to close the slow consumer", slow)
	if n := c.QueueLen(t, hello.UAID); n != int64(sent) {
		t.Fatalf("%d messages wait, want the %d sent: none is lost", n, sent)
	}
}

// readJSONFrame reads one unmasked text frame from the gateway and decodes it.
func readJSONFrame(t *testing.T, conn net.Conn, v any) {
	t.Helper()
	if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	var head [2]byte
	if _, err := io.ReadFull(conn, head[:]); err != nil {
		t.Fatal(err)
	}
	n := int(head[1] & 0x7f)
	switch n {
	case 126:
		var ext [2]byte
		if _, err := io.ReadFull(conn, ext[:]); err != nil {
			t.Fatal(err)
		}
		n = int(ext[0])<<8 | int(ext[1])
	case 127:
		t.Fatal("frame too long for readJSONFrame")
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(conn, body); err != nil {
		t.Fatal(err)
	}
	if head[0] != 0x81 {
		t.Fatalf("frame %#x %q, want a text frame", head[0], body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("frame %q: %v", body, err)
	}
}

// TestUnansweredPingsClose checks that a user agent that stops answering the
// gateway's WebSocket pings is closed with 4002, as a dead peer behind a NAT is.
func TestUnansweredPingsClose(t *testing.T) {
	c := cluster.Start(t, cluster.WithEnv("HERALD_WS_PING_INTERVAL=200ms", "HERALD_WS_CLOSE_LINGER=300ms"))
	conn := rawWebSocket(t, c.Gateways[0].Addr("websocket"))
	writeTextFrame(t, conn, `{"messageType":"hello","use_webpush":true}`)
	var hello mozproto.HelloReply
	readJSONFrame(t, conn, &hello)
	if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	// Read the gateway's pings without answering them, until it gives up.
	all, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("the gateway kept a peer that answers no ping: %v", err)
	}
	if !bytes.Contains(all, []byte{0x89}) {
		t.Fatalf("no ping frame before the close: %q", all)
	}
	i := bytes.IndexByte(all, 0x88)
	if i < 0 || len(all) < i+4 {
		t.Fatalf("no close frame: %q", all)
	}
	if code := int(all[i+2])<<8 | int(all[i+3]); code != mozproto.CloseIdle {
		t.Fatalf("close code %d, want %d", code, mozproto.CloseIdle)
	}
}
