package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/herald-push/herald/pkg/mozproto"
	"github.com/herald-push/herald/pkg/pushclient"
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
		for range 3 {
			if err := a.cl.Ping(ctxT(t)); err != nil {
				t.Fatal(err)
			}
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
