package e2e

import (
	"context"
	"crypto/ecdh"
	"encoding/base64"
	"testing"
	"time"

	"github.com/herald-push/herald/pkg/ece"
	"github.com/herald-push/herald/pkg/ids"
	"github.com/herald-push/herald/pkg/mozproto"
	"github.com/herald-push/herald/pkg/pushclient"
	"github.com/herald-push/herald/pkg/sender"
	"github.com/herald-push/herald/test/internal/cluster"
)

// agent is a user agent with one subscription, as a browser holds it.
type agent struct {
	uaid      string
	channelID string
	priv      *ecdh.PrivateKey
	auth      []byte
	sub       sender.Subscription
	cl        *pushclient.Client
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// newAgent connects to gateway url, says hello and registers one channel.
func newAgent(t testing.TB, url string) *agent {
	t.Helper()
	priv, auth, err := ece.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	a := &agent{channelID: ids.NewChannelID().String(), priv: priv, auth: auth}
	a.connect(t, url)
	reg, err := a.cl.Register(ctxT(t), a.channelID, "")
	if err != nil || reg.Status != 200 {
		t.Fatalf("register: %+v, %v", reg, err)
	}
	a.sub = subscription(reg.PushEndpoint, priv, auth)
	return a
}

// subscription is what a browser hands an application server for endpoint and keys.
func subscription(endpoint string, priv *ecdh.PrivateKey, auth []byte) sender.Subscription {
	return sender.Subscription{Endpoint: endpoint, Keys: sender.Keys{
		P256dh: base64.RawURLEncoding.EncodeToString(priv.PublicKey().Bytes()),
		Auth:   base64.RawURLEncoding.EncodeToString(auth),
	}}
}

// connect (re)connects and says hello with the agent's uaid, if it has one.
func (a *agent) connect(t testing.TB, url string) {
	t.Helper()
	a.cl = cluster.DialURL(t, url)
	var chids []string
	if a.uaid != "" {
		chids = []string{a.channelID}
	}
	hello, err := a.cl.Hello(ctxT(t), a.uaid, chids)
	if err != nil {
		t.Fatalf("hello: %v", err)
	}
	if a.uaid != "" && hello.UAID != a.uaid {
		t.Fatalf("hello gave uaid %s, want %s resumed", hello.UAID, a.uaid)
	}
	a.uaid = hello.UAID
}

// disconnect closes the agent's connection.
func (a *agent) disconnect(t testing.TB) {
	t.Helper()
	if err := a.cl.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
}

// next waits for one notification and returns its decrypted text.
func (a *agent) next(t testing.TB) (string, mozproto.Notification) {
	t.Helper()
	n, err := a.cl.Next(ctxT(t))
	if err != nil {
		t.Fatalf("waiting for a notification: %v", err)
	}
	if n.ChannelID != a.channelID {
		t.Fatalf("notification for channel %s, want %s", n.ChannelID, a.channelID)
	}
	if n.Data == "" {
		return "", n
	}
	if n.Headers["encoding"] != "aes128gcm" {
		t.Fatalf("notification headers %v", n.Headers)
	}
	body, err := base64.RawURLEncoding.DecodeString(n.Data)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := ece.Decrypt(body, a.priv, a.auth)
	if err != nil {
		t.Fatalf("decrypt: %v", err)
	}
	return string(plain), n
}

// expect waits for the next notification and checks its text; it acks it.
func (a *agent) expect(t testing.TB, text string) mozproto.Notification {
	t.Helper()
	got, n := a.next(t)
	if got != text {
		t.Fatalf("received %q, want %q", got, text)
	}
	if err := a.cl.Ack(ctxT(t), n); err != nil {
		t.Fatal(err)
	}
	return n
}

// send posts text to the agent's endpoint and expects 201.
func send(t testing.TB, sub sender.Subscription, text string, ttl int) sender.Result {
	t.Helper()
	res, err := sender.Send(ctxT(t), sub, []byte(text), sender.Options{TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != 201 {
		t.Fatalf("push: status %d, body %s", res.Status, res.Body)
	}
	return res
}

// eventually polls cond until it holds or 10 s pass.
// queueSettles waits until the user agent's queue holds want messages, and fails
// with what it last held: the delete of a message acknowledged just before may
// still be on its way (the gateway lets acks' deletes wait for one another,
// -ack-linger).
func queueSettles(t testing.TB, c *cluster.Cluster, uaid string, want int64, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := c.QueueLen(t, uaid)
		if n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d messages wait, want %d: %s", n, want, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
