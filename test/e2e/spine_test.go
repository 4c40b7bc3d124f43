package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/herald-push/herald/pkg/queue"
	"github.com/herald-push/herald/pkg/sender"
	"github.com/herald-push/herald/test/internal/cluster"
)

// apiError decodes an ingest error body.
type apiError struct {
	Code    int    `json:"code"`
	Errno   int    `json:"errno"`
	Error   string `json:"error"`
	Message string `json:"message"`
}

func decodeError(t testing.TB, body []byte) apiError {
	t.Helper()
	var e apiError
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("error body %q is not JSON: %v", body, err)
	}
	return e
}

func TestSpine(t *testing.T) { testSpine(t, cluster.Start(t)) }

// TestSpineRedisCluster runs the same on a three-master Redis Cluster.
func TestSpineRedisCluster(t *testing.T) { testSpine(t, cluster.Start(t, cluster.WithRedisCluster())) }

func testSpine(t *testing.T, c *cluster.Cluster) {
	gw := c.GatewayURL(0)

	t.Run("online delivery", func(t *testing.T) {
		a := newAgent(t, gw)
		res := send(t, a.sub, "hello, online", 60)
		if !strings.HasPrefix(res.Location, c.IngestURL()+"/m/") || res.TTL != "60" {
			t.Fatalf("Location %q TTL %q", res.Location, res.TTL)
		}
		a.expect(t, "hello, online")
	})

	t.Run("offline store and forward, in order", func(t *testing.T) {
		a := newAgent(t, gw)
		a.disconnect(t)
		send(t, a.sub, "first", 300)
		send(t, a.sub, "second", 300)
		eventually(t, "two stored messages", func() bool { return c.QueueLen(t, a.uaid) == 2 })
		a.connect(t, gw)
		a.expect(t, "first")
		a.expect(t, "second")
		eventually(t, "acks to delete", func() bool { return c.QueueLen(t, a.uaid) == 0 })
		// Acknowledged messages never come back: after reconnecting, the first
		// message is a new one.
		a.disconnect(t)
		a.connect(t, gw)
		send(t, a.sub, "third", 300)
		a.expect(t, "third")
	})

	t.Run("a queue its user agent left empty is kept only a while", func(t *testing.T) {
		a := newAgent(t, gw)
		send(t, a.sub, "read me", 3600)
		a.expect(t, "read me")
		queueSettles(t, c, a.uaid, 0, "the ack deleted the message")
		if d := c.QueueLife(t, a.uaid); d < 50*time.Minute {
			t.Fatalf("while connected, the emptied queue lives %s; want the hour of its message", d)
		}
		a.disconnect(t)
		eventually(t, "the emptied queue's life to shorten", func() bool {
			d := c.QueueLife(t, a.uaid)
			return d > 0 && d <= queue.IdleLife
		})
		// The next message waits with a life of its own, and arrives on return.
		send(t, a.sub, "after leaving", 3600)
		if d := c.QueueLife(t, a.uaid); d < 50*time.Minute {
			t.Fatalf("with a message waiting, the queue lives %s; want the hour of its message", d)
		}
		a.connect(t, gw)
		a.expect(t, "after leaving")
	})

	t.Run("unacknowledged messages are redelivered", func(t *testing.T) {
		a := newAgent(t, gw)
		send(t, a.sub, "keep me", 300)
		if got, _ := a.next(t); got != "keep me" {
			t.Fatalf("got %q", got)
		}
		a.disconnect(t)
		a.connect(t, gw)
		a.expect(t, "keep me")
	})

	t.Run("expired messages are not delivered", func(t *testing.T) {
		a := newAgent(t, gw)
		a.disconnect(t)
		send(t, a.sub, "short-lived", 1)
		send(t, a.sub, "long-lived", 300)
		// The queue holds both until the first one's TTL runs out.
		eventually(t, "the short-lived message to expire", func() bool {
			a.connect(t, gw)
			got, n := a.next(t)
			a.disconnect(t)
			return got == "long-lived" && n.Version != ""
		})
	})

	t.Run("TTL 0 is delivered only while connected, never stored", func(t *testing.T) {
		a := newAgent(t, gw)
		send(t, a.sub, "now or never", 0)
		_, n := a.next(t)
		a.disconnect(t)
		if n.TTL != 0 {
			t.Fatalf("ttl %d", n.TTL)
		}
		res := send(t, a.sub, "lost", 0)
		if res.TTL != "0" {
			t.Fatalf("TTL header %q", res.TTL)
		}
		queueSettles(t, c, a.uaid, 0, "a TTL 0 message is not stored")
		a.connect(t, gw)
		send(t, a.sub, "marker", 60)
		a.expect(t, "marker")
	})

	t.Run("a message can be deleted while it waits", func(t *testing.T) {
		a := newAgent(t, gw)
		a.disconnect(t)
		res := send(t, a.sub, "regret", 300)
		for i, want := range []int{http.StatusNoContent, http.StatusNotFound} {
			req, _ := http.NewRequestWithContext(ctxT(t), http.MethodDelete, res.Location, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Fatalf("DELETE #%d: status %d, want %d", i+1, resp.StatusCode, want)
			}
		}
		a.connect(t, gw)
		send(t, a.sub, "marker", 60)
		a.expect(t, "marker")
	})

	t.Run("unregistered endpoint answers 410", func(t *testing.T) {
		a := newAgent(t, gw)
		un, err := a.cl.Unregister(ctxT(t), a.channelID)
		if err != nil || un.Status != 200 {
			t.Fatalf("unregister: %+v, %v", un, err)
		}
		res, err := sender.Send(ctxT(t), a.sub, []byte("too late"), sender.Options{TTL: 60})
		if err != nil {
			t.Fatal(err)
		}
		e := decodeError(t, res.Body)
		if res.Status != http.StatusGone || e.Code != 410 || e.Errno != 103 || e.Error != "Gone" || e.Message == "" {
			t.Fatalf("status %d body %+v", res.Status, e)
		}
	})

	t.Run("tampered or unknown token answers 404", func(t *testing.T) {
		a := newAgent(t, gw)
		i := strings.LastIndex(a.sub.Endpoint, "/") + 5
		flipped := []byte(a.sub.Endpoint)
		if flipped[i] == 'A' {
			flipped[i] = 'B'
		} else {
			flipped[i] = 'A'
		}
		for _, endpoint := range []string{string(flipped), c.IngestURL() + "/wpush/v2/not-a-token"} {
			sub := a.sub
			sub.Endpoint = endpoint
			res, err := sender.Send(ctxT(t), sub, []byte("x"), sender.Options{TTL: 60})
			if err != nil {
				t.Fatal(err)
			}
			if e := decodeError(t, res.Body); res.Status != 404 || e.Errno != 102 {
				t.Fatalf("%s: status %d body %+v", endpoint, res.Status, e)
			}
		}
		// The real subscription is untouched.
		send(t, a.sub, "still here", 60)
		a.expect(t, "still here")
	})

	t.Run("bad requests are refused and store nothing", func(t *testing.T) {
		a := newAgent(t, gw)
		a.disconnect(t)
		tests := []struct {
			name   string
			header map[string]string
			body   []byte
			status int
			errno  int
		}{
			{name: "missing TTL", header: map[string]string{"Content-Encoding": "aes128gcm"}, body: bytes.Repeat([]byte{1}, 100), status: 400, errno: 111},
			{name: "bad TTL", header: map[string]string{"TTL": "soon", "Content-Encoding": "aes128gcm"}, body: bytes.Repeat([]byte{1}, 100), status: 400, errno: 112},
			{name: "no encoding", header: map[string]string{"TTL": "60"}, body: []byte("plain text"), status: 400, errno: 110},
			{name: "truncated aes128gcm", header: map[string]string{"TTL": "60", "Content-Encoding": "aes128gcm"}, body: []byte{1, 2, 3}, status: 400, errno: 110},
			{name: "too large", header: map[string]string{"TTL": "60", "Content-Encoding": "aes128gcm"}, body: bytes.Repeat([]byte{1}, 4097), status: 413, errno: 104},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				req, _ := http.NewRequestWithContext(ctxT(t), http.MethodPost, a.sub.Endpoint, bytes.NewReader(tt.body))
				for k, v := range tt.header {
					req.Header.Set(k, v)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				var e apiError
				if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
					t.Fatal(err)
				}
				if resp.StatusCode != tt.status || e.Code != tt.status || e.Errno != tt.errno {
					t.Fatalf("status %d body %+v, want %d errno %d", resp.StatusCode, e, tt.status, tt.errno)
				}
			})
		}
		queueSettles(t, c, a.uaid, 0, "refused requests store nothing")
	})
}

// TestFloodIsBounded floods one offline user agent: its queue stops at
// -max-queue-len, and what does not fit is refused with 429 and not stored, so a
// flood to one user agent cannot grow Redis without bound.
func TestFloodIsBounded(t *testing.T) {
	c := cluster.Start(t, cluster.WithEnv("HERALD_MAX_QUEUE_LEN=5", "HERALD_RATE_LIMIT_SUBSCRIPTION=100000/1m"))
	a := newAgent(t, c.GatewayURL(0))
	a.disconnect(t)
	for i := range 5 {
		send(t, a.sub, "fits "+strings.Repeat("x", i), 300)
	}
	for range 3 {
		res, err := sender.Send(ctxT(t), a.sub, []byte("too many"), sender.Options{TTL: 300})
		if err != nil {
			t.Fatal(err)
		}
		if e := decodeError(t, res.Body); res.Status != http.StatusTooManyRequests || e.Errno != 117 {
			t.Fatalf("push to a full queue: status %d body %+v", res.Status, e)
		}
	}
	if n := c.QueueLen(t, a.uaid); n != 5 {
		t.Fatalf("queue holds %d messages, want the 5 that fit", n)
	}
	a.connect(t, c.GatewayURL(0))
	for i := range 5 {
		a.expect(t, "fits "+strings.Repeat("x", i))
	}
}
