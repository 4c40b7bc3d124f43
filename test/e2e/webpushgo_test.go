package e2e

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	webpushgo "github.com/SherClockHolmes/webpush-go"

	"github.com/herald-push/herald/test/internal/cluster"
)

// TestWebPushGoLibrary sends with github.com/SherClockHolmes/webpush-go, the Go
// sender library: its aes128gcm bodies (padded to 4096 bytes), VAPID tokens and
// headers must be what Herald accepts, over HTTP/1.1 and h2c, to restricted and
// unrestricted subscriptions, and what reaches the user agent must decrypt.
//
// webpush-go always signs with VAPID and only speaks aes128gcm; the requests
// "without VAPID" go through an HTTP client that drops the Authorization header
// webpush-go wrote, so that its body and headers are otherwise its own.
func TestWebPushGoLibrary(t *testing.T) {
	c := cluster.Start(t)
	gw := c.GatewayURL(0)
	priv, pub, err := webpushgo.GenerateVAPIDKeys()
	if err != nil {
		t.Fatal(err)
	}
	otherPriv, otherPub, err := webpushgo.GenerateVAPIDKeys()
	if err != nil {
		t.Fatal(err)
	}
	open := newAgentForKey(t, gw, "")
	restricted := newAgentForKey(t, gw, pub)
	h2c := h2cClient()
	defer h2c.CloseIdleConnections()

	// wpSend sends with webpush-go through a wpClient and returns the status, the
	// body and the protocol of the answer.
	wpSend := func(t *testing.T, a *agent, text string, opts webpushgo.Options) (int, []byte) {
		t.Helper()
		wc, ok := opts.HTTPClient.(*wpClient)
		if !ok {
			wc = &wpClient{client: http.DefaultClient}
			opts.HTTPClient = wc
		}
		opts.TTL = 60
		opts.Subscriber = "interop@example.com"
		resp, err := webpushgo.SendNotificationWithContext(ctxT(t), []byte(text), &webpushgo.Subscription{
			Endpoint: a.sub.Endpoint,
			Keys:     webpushgo.Keys{P256dh: a.sub.Keys.P256dh, Auth: a.sub.Keys.Auth},
		}, &opts)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		// webpush-go pads every body to the 4096 bytes a push service must take.
		if wc.sent != 4096 {
			t.Fatalf("webpush-go sent %d bytes", wc.sent)
		}
		if resp.ProtoMajor != wc.wantMajor() {
			t.Fatalf("answered over %s", resp.Proto)
		}
		return resp.StatusCode, body
	}
	signed := webpushgo.Options{VAPIDPublicKey: pub, VAPIDPrivateKey: priv}
	withClient := func(o webpushgo.Options, client *http.Client, dropAuth bool) webpushgo.Options {
		o.HTTPClient = &wpClient{client: client, dropAuth: dropAuth}
		return o
	}
	unsigned := withClient(signed, http.DefaultClient, true)

	for _, tc := range []struct {
		name string
		a    *agent
		opts webpushgo.Options
	}{
		{"unrestricted, VAPID", open, signed},
		{"unrestricted, VAPID, h2c", open, withClient(signed, h2c, false)},
		{"unrestricted, without VAPID", open, unsigned},
		{"restricted, VAPID of its key", restricted, signed},
		{"restricted, VAPID of its key, h2c", restricted, withClient(signed, h2c, false)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := "héllo from webpush-go, " + tc.name + " ✓"
			if status, body := wpSend(t, tc.a, text, tc.opts); status != http.StatusCreated {
				t.Fatalf("status %d: %s", status, body)
			}
			tc.a.expect(t, text)
		})
	}

	for _, tc := range []struct {
		name          string
		opts          webpushgo.Options
		status, errno int
	}{
		{"restricted, VAPID of another key", webpushgo.Options{VAPIDPublicKey: otherPub, VAPIDPrivateKey: otherPriv}, 403, 116},
		{"restricted, without VAPID", unsigned, 401, 109},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := wpSend(t, restricted, "forged", tc.opts)
			var e struct{ Code, Errno int }
			if err := json.Unmarshal(body, &e); err != nil || status != tc.status || e.Code != tc.status || e.Errno != tc.errno {
				t.Fatalf("status %d body %s, want %d errno %d", status, body, tc.status, tc.errno)
			}
			queueSettles(t, c, restricted.uaid, 0, "nothing stored")
			status, body = wpSend(t, restricted, "after "+tc.name, signed)
			if status != http.StatusCreated {
				t.Fatalf("status %d: %s", status, body)
			}
			restricted.expect(t, "after "+tc.name) // the forgery never arrives
		})
	}

	t.Run("Topic and Urgency", func(t *testing.T) {
		a := newAgentForKey(t, gw, "")
		a.disconnect(t)
		for _, text := range []string{"draft 1", "draft 2"} {
			o := signed
			o.Topic, o.Urgency = "drafts", webpushgo.UrgencyHigh
			if status, body := wpSend(t, a, text, o); status != http.StatusCreated {
				t.Fatalf("status %d: %s", status, body)
			}
		}
		entries := queueEntries(t, c, a.uaid)
		if len(entries) != 1 || entries[0].Urgency != 4 || entries[0].Topic != "drafts" {
			t.Fatalf("stored %+v, want one high-urgency message with topic drafts", entries)
		}
		a.connect(t, gw)
		a.expect(t, "draft 2")
	})
}

// wpClient is webpush-go's HTTP client: it records the size of the body sent and,
// with dropAuth, sends the request without the Authorization header webpush-go
// wrote.
type wpClient struct {
	client   *http.Client
	dropAuth bool
	sent     int64
}

func (w *wpClient) Do(req *http.Request) (*http.Response, error) {
	w.sent = req.ContentLength
	if w.dropAuth {
		if !strings.HasPrefix(req.Header.Get("Authorization"), "vapid ") {
			return nil, errors.New("webpush-go did not sign: the test's premise is gone")
		}
		req.Header.Del("Authorization")
	}
	return w.client.Do(req)
}

// wantMajor is the HTTP version the client speaks: 2 for h2c, else 1.
func (w *wpClient) wantMajor() int {
	if tr, ok := w.client.Transport.(*http.Transport); ok && tr.Protocols != nil && tr.Protocols.UnencryptedHTTP2() {
		return 2
	}
	return 1
}
