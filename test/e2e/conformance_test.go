package e2e

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/herald-push/herald/pkg/ece"
	"github.com/herald-push/herald/pkg/ids"
	"github.com/herald-push/herald/pkg/queue"
	"github.com/herald-push/herald/pkg/sender"
	"github.com/herald-push/herald/pkg/vapid"
	"github.com/herald-push/herald/test/internal/cluster"
)

// The ingest conformance suite: RFC 8030 (push), RFC 8291 (encryption, and the
// legacy aesgcm coding) and RFC 8292 (VAPID) over real HTTP against a running
// stack. Every refused request is checked for its status and errno, and for having
// stored and delivered nothing: the subscription's queue stays empty, and the next
// message its user agent receives is a marker sent after it.

// pushRequest is one request to ingest, as raw as a test needs it.
type pushRequest struct {
	method  string // POST when empty
	url     string // the target agent's endpoint when empty
	header  map[string]string
	body    []byte
	chunked bool // send the body without a Content-Length
}

// do sends r with client and returns the response with its body read.
func (r pushRequest) do(t testing.TB, client *http.Client) (*http.Response, []byte) {
	t.Helper()
	method := r.method
	if method == "" {
		method = http.MethodPost
	}
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
		if r.chunked {
			body = struct{ io.Reader }{body} // hides the length from net/http
		}
	}
	req, err := http.NewRequestWithContext(ctxT(t), method, r.url, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range r.header {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// wantAPIError checks an error answer: status, errno and the whole JSON body
// ({code, errno, error, message, more_info}).
func wantAPIError(t testing.TB, resp *http.Response, body []byte, status, errno int) {
	t.Helper()
	var e struct {
		Code     int    `json:"code"`
		Errno    int    `json:"errno"`
		Error    string `json:"error"`
		Message  string `json:"message"`
		MoreInfo string `json:"more_info"`
	}
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("status %d, error body %q is not JSON: %v", resp.StatusCode, body, err)
	}
	if resp.StatusCode != status || e.Code != status || e.Errno != errno {
		t.Fatalf("status %d body %s, want %d errno %d", resp.StatusCode, body, status, errno)
	}
	if e.Error != http.StatusText(status) || e.Message == "" || !strings.HasPrefix(e.MoreInfo, "https://") {
		t.Fatalf("error body %s: want error %q, a message and more_info", body, http.StatusText(status))
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q", ct)
	}
}

// newKeyedAgent is newAgent with a subscription restricted to an application
// server key (register with key, as PushManager.subscribe with
// applicationServerKey does).
func newKeyedAgent(t testing.TB, url string, appKey *ecdsa.PrivateKey) *agent {
	t.Helper()
	pub, err := vapid.EncodePublicKey(&appKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return newAgentForKey(t, url, pub)
}

// newAgentForKey is newAgent registering with appServerKey (base64url), or
// unrestricted when it is "".
func newAgentForKey(t testing.TB, url, appServerKey string) *agent {
	t.Helper()
	priv, auth, err := ece.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	a := &agent{channelID: ids.NewChannelID().String(), priv: priv, auth: auth}
	a.connect(t, url)
	reg, err := a.cl.Register(ctxT(t), a.channelID, appServerKey)
	if err != nil || reg.Status != 200 {
		t.Fatalf("register with key %q: %+v, %v", appServerKey, reg, err)
	}
	a.sub = subscription(reg.PushEndpoint, priv, auth)
	return a
}

// sendWith posts text to sub with opts and expects 201.
func sendWith(t testing.TB, sub sender.Subscription, text string, opts sender.Options) sender.Result {
	t.Helper()
	res, err := sender.Send(ctxT(t), sub, []byte(text), opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != http.StatusCreated {
		t.Fatalf("push: status %d, body %s", res.Status, res.Body)
	}
	return res
}

// vapidHeader signs claims with key and returns "vapid t=<jwt>, k=<pub>", for
// tokens vapid.Sign will not make.
func vapidHeader(t testing.TB, method jwt.SigningMethod, signWith any, claims jwt.MapClaims, pub *ecdsa.PublicKey) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(method, claims).SignedString(signWith)
	if err != nil {
		t.Fatal(err)
	}
	k, err := vapid.EncodePublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return "vapid t=" + tok + ", k=" + k
}

// legacyVAPID rewrites "vapid t=<jwt>, k=<key>" in the pre-RFC form: the
// Authorization and Crypto-Key headers.
func legacyVAPID(t testing.TB, auth string) (authorization, cryptoKey string) {
	t.Helper()
	tok, key, ok := strings.Cut(strings.TrimPrefix(auth, "vapid t="), ", k=")
	if !ok {
		t.Fatalf("not a vapid header: %q", auth)
	}
	return "WebPush " + tok, "p256ecdsa=" + key
}

// newAppKey returns a new application server key pair.
func newAppKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := vapid.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// encrypt returns an aes128gcm body of text for a.
func (a *agent) encrypt(t testing.TB, text []byte) []byte {
	t.Helper()
	body, err := ece.Encrypt(text, a.priv.PublicKey().Bytes(), a.auth)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// queueEntries returns the messages waiting for uaid, as the router stored them.
func queueEntries(t testing.TB, c *cluster.Cluster, uaid string) []queue.Entry {
	t.Helper()
	u, err := ids.ParseUAID(uaid)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := c.Queue(t).Range(ctxT(t), u, "", 100, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return entries
}

func TestConformance(t *testing.T) {
	c := cluster.Start(t)
	gw := c.GatewayURL(0)
	appKey, otherKey := newAppKey(t), newAppKey(t)
	aud := c.IngestURL()
	sign := func(key *ecdsa.PrivateKey) string {
		auth, err := vapid.Sign(key, aud, "mailto:ops@example.com", time.Now().Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		return auth
	}
	claims := func(name string, value any) jwt.MapClaims {
		c := jwt.MapClaims{"aud": aud, "exp": time.Now().Add(time.Hour).Unix(), "sub": "mailto:ops@example.com"}
		c[name] = value
		return c
	}

	open := newAgent(t, gw)                    // unrestricted
	restricted := newKeyedAgent(t, gw, appKey) // restricted to appKey
	restrictedOpts := sender.Options{TTL: 60, VAPIDKey: appKey, Subject: "mailto:ops@example.com"}
	marker := 0

	t.Run("refused", func(t *testing.T) {
		legacyOther, legacyOtherKey := legacyVAPID(t, sign(otherKey))
		legacyNoKey, _ := legacyVAPID(t, sign(appKey))
		const salt = "DGv6ra1nlYgDCS1FRnbzlw"
		dh := base64.RawURLEncoding.EncodeToString(open.priv.PublicKey().Bytes()) // any P-256 point
		good := open.encrypt(t, []byte("must not arrive"))
		aes128 := map[string]string{"TTL": "60", "Content-Encoding": "aes128gcm"}
		with := func(base map[string]string, kv ...string) map[string]string {
			h := map[string]string{}
			for k, v := range base {
				h[k] = v
			}
			for i := 0; i+1 < len(kv); i += 2 {
				h[kv[i]] = kv[i+1]
			}
			return h
		}
		aesgcm := map[string]string{"TTL": "60", "Content-Encoding": "aesgcm", "Encryption": "salt=" + salt, "Crypto-Key": "dh=" + dh}

		for _, tc := range []struct {
			name    string
			target  *agent // open when nil
			req     pushRequest
			status  int
			errno   int
			noCheck bool // the endpoint is not the target's: nothing to look for
		}{
			// RFC 8030 §5.2 TTL
			{name: "TTL missing", req: pushRequest{header: map[string]string{"Content-Encoding": "aes128gcm"}, body: good}, status: 400, errno: 111},
			{name: "TTL not a number", req: pushRequest{header: with(aes128, "TTL", "soon"), body: good}, status: 400, errno: 112},
			{name: "TTL negative", req: pushRequest{header: with(aes128, "TTL", "-1"), body: good}, status: 400, errno: 112},
			{name: "TTL fractional", req: pushRequest{header: with(aes128, "TTL", "1.5"), body: good}, status: 400, errno: 112},
			{name: "TTL signed", req: pushRequest{header: with(aes128, "TTL", "+60"), body: good}, status: 400, errno: 112},
			// RFC 8030 §5.3 Urgency
			{name: "Urgency unknown", req: pushRequest{header: with(aes128, "Urgency", "urgent"), body: good}, status: 400, errno: 112},
			// RFC 8030 §5.4 Topic
			{name: "Topic over 32 characters", req: pushRequest{header: with(aes128, "Topic", strings.Repeat("t", 33)), body: good}, status: 400, errno: 113},
			{name: "Topic outside base64url", req: pushRequest{header: with(aes128, "Topic", "bad topic!"), body: good}, status: 400, errno: 113},
			{name: "Topic padded", req: pushRequest{header: with(aes128, "Topic", "YWJj=="), body: good}, status: 400, errno: 113},
			// RFC 8291 / RFC 8188 content coding
			{name: "body without Content-Encoding", req: pushRequest{header: map[string]string{"TTL": "60"}, body: good}, status: 400, errno: 110},
			{name: "unknown Content-Encoding", req: pushRequest{header: with(aes128, "Content-Encoding", "gzip"), body: good}, status: 400, errno: 110},
			{name: "aes128gcm header only", req: pushRequest{header: aes128, body: good[:ece.HeaderSize]}, status: 400, errno: 110},
			{name: "aes128gcm shorter than its header", req: pushRequest{header: aes128, body: good[:40]}, status: 400, errno: 110},
			{name: "aes128gcm key id not a point", req: pushRequest{header: aes128, body: append(append([]byte{}, good[:21]...), bytes.Repeat([]byte{7}, 100)...)}, status: 400, errno: 110},
			{name: "aes128gcm with an Encryption salt", req: pushRequest{header: with(aes128, "Encryption", "salt="+salt), body: good}, status: 400, errno: 110},
			{name: "aesgcm without Encryption", req: pushRequest{header: with(aesgcm, "Encryption", ""), body: good}, status: 400, errno: 101},
			{name: "aesgcm without dh", req: pushRequest{header: with(aesgcm, "Crypto-Key", "p256ecdsa="+dh), body: good}, status: 400, errno: 101},
			{name: "aesgcm salt too short", req: pushRequest{header: with(aesgcm, "Encryption", "salt=AAAA"), body: good}, status: 400, errno: 110},
			{name: "aesgcm body shorter than a record", req: pushRequest{header: aesgcm, body: good[:10]}, status: 400, errno: 110},
			// Size: 4096 bytes at most, whether declared or streamed.
			{name: "body of 4097 bytes", req: pushRequest{header: aes128, body: append(append([]byte{}, good...), make([]byte, 4097-len(good))...)}, status: 413, errno: 104},
			{name: "chunked body over 4096 bytes", req: pushRequest{header: aes128, body: make([]byte, 64<<10), chunked: true}, status: 413, errno: 104},
			// RFC 8292: VAPID is checked whenever it is sent.
			{name: "VAPID signed by another key", req: pushRequest{header: with(aes128, "Authorization", vapidHeader(t, jwt.SigningMethodES256, otherKey, claims("x", 1), &appKey.PublicKey)), body: good}, status: 401, errno: 109},
			{name: "VAPID for another audience", req: pushRequest{header: with(aes128, "Authorization", vapidHeader(t, jwt.SigningMethodES256, appKey, claims("aud", "https://push.example.net"), &appKey.PublicKey)), body: good}, status: 401, errno: 109},
			{name: "VAPID expired", req: pushRequest{header: with(aes128, "Authorization", vapidHeader(t, jwt.SigningMethodES256, appKey, claims("exp", time.Now().Add(-time.Hour).Unix()), &appKey.PublicKey)), body: good}, status: 401, errno: 109},
			{name: "VAPID exp over 24h ahead", req: pushRequest{header: with(aes128, "Authorization", vapidHeader(t, jwt.SigningMethodES256, appKey, claims("exp", time.Now().Add(25*time.Hour).Unix()), &appKey.PublicKey)), body: good}, status: 401, errno: 109},
			{name: "VAPID without exp", req: pushRequest{header: with(aes128, "Authorization", vapidHeader(t, jwt.SigningMethodES256, appKey, jwt.MapClaims{"aud": aud, "sub": "mailto:ops@example.com"}, &appKey.PublicKey)), body: good}, status: 401, errno: 109},
			{name: "VAPID sub not mailto or https", req: pushRequest{header: with(aes128, "Authorization", vapidHeader(t, jwt.SigningMethodES256, appKey, claims("sub", "ftp://example.com"), &appKey.PublicKey)), body: good}, status: 401, errno: 109},
			{name: "VAPID HS256", req: pushRequest{header: with(aes128, "Authorization", vapidHeader(t, jwt.SigningMethodHS256, []byte("secret"), claims("x", 1), &appKey.PublicKey)), body: good}, status: 401, errno: 109},
			{name: "Authorization of another scheme", req: pushRequest{header: with(aes128, "Authorization", "Bearer abc.def.ghi"), body: good}, status: 401, errno: 109},
			{name: "legacy WebPush without its Crypto-Key", req: pushRequest{header: with(aes128, "Authorization", legacyNoKey), body: good}, status: 401, errno: 109},
			// RFC 8292 §4.2: restricted subscriptions.
			{name: "restricted: no VAPID", target: restricted, req: pushRequest{header: aes128, body: good}, status: 401, errno: 109},
			{name: "restricted: another key", target: restricted, req: pushRequest{header: with(aes128, "Authorization", sign(otherKey)), body: good}, status: 403, errno: 116},
			{name: "restricted: another key, legacy form", target: restricted, req: pushRequest{header: with(aes128, "Authorization", legacyOther, "Crypto-Key", legacyOtherKey), body: good}, status: 403, errno: 116},
			{name: "restricted: VAPID for another audience", target: restricted, req: pushRequest{header: with(aes128, "Authorization", vapidHeader(t, jwt.SigningMethodES256, appKey, claims("aud", "https://push.example.net"), &appKey.PublicKey)), body: good}, status: 401, errno: 109},
			// Endpoints and methods.
			{name: "tampered endpoint", req: pushRequest{url: tamperToken(open.sub.Endpoint), header: aes128, body: good}, status: 404, errno: 102},
			{name: "unknown endpoint", req: pushRequest{url: c.IngestURL() + "/wpush/v2/not-a-token", header: aes128, body: good}, status: 404, errno: 102, noCheck: true},
			{name: "unknown path", req: pushRequest{url: c.IngestURL() + "/wpush/v1/x", header: aes128, body: good}, status: 404, errno: 102, noCheck: true},
			{name: "GET an endpoint", req: pushRequest{method: http.MethodGet}, status: 405, errno: 115},
			{name: "PUT to an endpoint", req: pushRequest{method: http.MethodPut, header: aes128, body: good}, status: 405, errno: 115},
			{name: "DELETE an endpoint", req: pushRequest{method: http.MethodDelete}, status: 405, errno: 115},
			{name: "DELETE a tampered message id", req: pushRequest{method: http.MethodDelete, url: c.IngestURL() + "/m/" + tamperToken(strings.TrimPrefix(open.sub.Endpoint, c.IngestURL()+"/wpush/v2/"))}, status: 404, errno: 102},
		} {
			t.Run(tc.name, func(t *testing.T) {
				a := tc.target
				if a == nil {
					a = open
				}
				if tc.req.url == "" {
					tc.req.url = a.sub.Endpoint
				}
				resp, body := tc.req.do(t, http.DefaultClient)
				wantAPIError(t, resp, body, tc.status, tc.errno)
				if resp.StatusCode == http.StatusMethodNotAllowed && resp.Header.Get("Allow") == "" {
					t.Error("405 without Allow")
				}
				if tc.noCheck {
					return
				}
				// Nothing stored: the router stores before ingest answers.
				queueSettles(t, c, a.uaid, 0, "a refused request stores nothing")
				// Nothing delivered: the next notification is the marker.
				marker++
				text := "marker " + string(rune('A'+marker%26))
				if a == restricted {
					sendWith(t, a.sub, text, restrictedOpts)
				} else {
					send(t, a.sub, text, 60)
				}
				a.expect(t, text)
				eventually(t, "the marker's ack", func() bool { return c.QueueLen(t, a.uaid) == 0 })
			})
		}
	})

	t.Run("unregistered endpoint", func(t *testing.T) {
		a := newAgent(t, gw)
		if un, err := a.cl.Unregister(ctxT(t), a.channelID); err != nil || un.Status != 200 {
			t.Fatalf("unregister: %+v, %v", un, err)
		}
		resp, body := pushRequest{url: a.sub.Endpoint, header: map[string]string{"TTL": "60", "Content-Encoding": "aes128gcm"}, body: a.encrypt(t, []byte("late"))}.do(t, http.DefaultClient)
		wantAPIError(t, resp, body, 410, 103)
		if n := c.QueueLen(t, a.uaid); n != 0 {
			t.Fatalf("%d messages stored for an unregistered endpoint", n)
		}
	})

	t.Run("TTL above the maximum is clamped and stated", func(t *testing.T) {
		res := send(t, open.sub, "clamped", 99999999999)
		if res.TTL != "5184000" {
			t.Fatalf("TTL %q, want 5184000 (60 days)", res.TTL)
		}
		open.expect(t, "clamped")
	})

	t.Run("Urgency is stored with the message", func(t *testing.T) {
		a := newAgent(t, gw)
		a.disconnect(t)
		for _, u := range []string{"very-low", "low", "normal", "high", ""} {
			sendWith(t, a.sub, "urgency "+u, sender.Options{TTL: 60, Urgency: u})
		}
		var got []int32
		for _, e := range queueEntries(t, c, a.uaid) {
			got = append(got, e.Urgency)
		}
		if want := []int32{1, 2, 3, 4, 3}; !slices.Equal(got, want) {
			t.Fatalf("stored urgencies %v, want %v", got, want)
		}
		a.connect(t, gw)
		for _, u := range []string{"very-low", "low", "normal", "high", ""} {
			a.expect(t, "urgency "+u)
		}
	})

	t.Run("Topic replaces the waiting message", func(t *testing.T) {
		a := newAgent(t, gw)
		a.disconnect(t)
		sendWith(t, a.sub, "score 0-0", sender.Options{TTL: 300, Topic: "score"})
		sendWith(t, a.sub, "weather", sender.Options{TTL: 300, Topic: "weather"})
		sendWith(t, a.sub, "score 1-0", sender.Options{TTL: 300, Topic: "score"})
		if n := c.QueueLen(t, a.uaid); n != 2 {
			t.Fatalf("%d messages waiting, want 2", n)
		}
		a.connect(t, gw)
		a.expect(t, "weather")
		a.expect(t, "score 1-0")
		send(t, a.sub, "after", 60)
		a.expect(t, "after") // the replaced message never comes
	})

	t.Run("empty body is a push without data", func(t *testing.T) {
		resp, body := pushRequest{url: open.sub.Endpoint, header: map[string]string{"TTL": "60"}}.do(t, http.DefaultClient)
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		got, n := open.next(t)
		if got != "" || n.Headers != nil {
			t.Fatalf("data %q, headers %v", got, n.Headers)
		}
		if err := open.cl.Ack(ctxT(t), n); err != nil {
			t.Fatal(err)
		}
		eventuallyAckAll(t, c, open)
	})

	t.Run("4096-byte body, declared and chunked", func(t *testing.T) {
		text := bytes.Repeat([]byte("x"), ece.MaxPlaintextSize)
		for _, chunked := range []bool{false, true} {
			body := open.encrypt(t, text)
			if len(body) != 4096 {
				t.Fatalf("body of %d bytes", len(body))
			}
			resp, b := pushRequest{url: open.sub.Endpoint, header: map[string]string{"TTL": "60", "Content-Encoding": "aes128gcm"}, body: body, chunked: chunked}.do(t, http.DefaultClient)
			if resp.StatusCode != http.StatusCreated {
				t.Fatalf("chunked %v: status %d: %s", chunked, resp.StatusCode, b)
			}
			open.expect(t, string(text))
		}
	})

	t.Run("aesgcm is passed through with its headers", func(t *testing.T) {
		body := make([]byte, 120)
		if _, err := rand.Read(body); err != nil {
			t.Fatal(err)
		}
		enc := "keyid=p256dh;salt=DGv6ra1nlYgDCS1FRnbzlw;rs=4096"
		ck := "keyid=p256dh;dh=" + base64.RawURLEncoding.EncodeToString(open.priv.PublicKey().Bytes())
		resp, b := pushRequest{url: open.sub.Endpoint, header: map[string]string{"TTL": "60", "Content-Encoding": "aesgcm", "Encryption": enc, "Crypto-Key": ck}, body: body}.do(t, http.DefaultClient)
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
		n, err := open.cl.Next(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		if n.Headers["encoding"] != "aesgcm" || n.Headers["encryption"] != enc || n.Headers["crypto_key"] != ck {
			t.Fatalf("headers %v", n.Headers)
		}
		if n.Data != base64.RawURLEncoding.EncodeToString(body) {
			t.Fatal("data altered")
		}
		if err := open.cl.Ack(ctxT(t), n); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("VAPID in both forms", func(t *testing.T) {
		legacyAuth, legacyKey := legacyVAPID(t, sign(appKey))
		for _, tc := range []struct {
			name   string
			a      *agent
			header map[string]string
		}{
			{"restricted, vapid t= k=", restricted, map[string]string{"Authorization": sign(appKey)}},
			{"restricted, WebPush + Crypto-Key", restricted, map[string]string{"Authorization": legacyAuth, "Crypto-Key": legacyKey}},
			{"unrestricted, vapid t= k=", open, map[string]string{"Authorization": sign(otherKey)}},
			{"unrestricted, WebPush + Crypto-Key", open, map[string]string{"Authorization": legacyAuth, "Crypto-Key": legacyKey}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				tc.header["TTL"] = "60"
				tc.header["Content-Encoding"] = "aes128gcm"
				resp, b := pushRequest{url: tc.a.sub.Endpoint, header: tc.header, body: tc.a.encrypt(t, []byte(tc.name))}.do(t, http.DefaultClient)
				if resp.StatusCode != http.StatusCreated {
					t.Fatalf("status %d: %s", resp.StatusCode, b)
				}
				tc.a.expect(t, tc.name)
			})
		}
	})

	t.Run("DELETE of a waiting message", func(t *testing.T) {
		a := newAgent(t, gw)
		a.disconnect(t)
		res := send(t, a.sub, "regret", 300)
		req := pushRequest{method: http.MethodDelete, url: res.Location}
		if resp, b := req.do(t, http.DefaultClient); resp.StatusCode != http.StatusNoContent {
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
		resp, b := req.do(t, http.DefaultClient)
		wantAPIError(t, resp, b, 404, 103)
		if n := c.QueueLen(t, a.uaid); n != 0 {
			t.Fatalf("%d messages waiting", n)
		}
	})

	t.Run("HTTP/1.1 keep-alive", func(t *testing.T) {
		client := &http.Client{Transport: &http.Transport{}}
		defer client.CloseIdleConnections()
		for i := range 2 {
			var reused bool
			ctx := httptrace.WithClientTrace(ctxT(t), &httptrace.ClientTrace{GotConn: func(ci httptrace.GotConnInfo) { reused = ci.Reused }})
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, open.sub.Endpoint, bytes.NewReader(open.encrypt(t, []byte("kept alive"))))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("TTL", "60")
			req.Header.Set("Content-Encoding", "aes128gcm")
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body) // a drained body lets the connection be reused
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated || resp.ProtoMajor != 1 {
				t.Fatalf("status %d over %s", resp.StatusCode, resp.Proto)
			}
			if i == 1 && !reused {
				t.Fatal("the second request did not reuse the connection")
			}
			open.expect(t, "kept alive")
		}
	})

	t.Run("HTTP/2 cleartext (h2c)", func(t *testing.T) {
		client := h2cClient()
		defer client.CloseIdleConnections()
		resp, b := pushRequest{url: open.sub.Endpoint, header: map[string]string{"TTL": "60", "Content-Encoding": "aes128gcm"}, body: open.encrypt(t, []byte("over h2c"))}.do(t, client)
		if resp.StatusCode != http.StatusCreated || resp.ProtoMajor != 2 {
			t.Fatalf("status %d over %s: %s", resp.StatusCode, resp.Proto, b)
		}
		open.expect(t, "over h2c")
		// Errors are the same JSON over HTTP/2.
		resp, b = pushRequest{url: open.sub.Endpoint, header: map[string]string{"Content-Encoding": "aes128gcm"}, body: []byte{1}}.do(t, client)
		wantAPIError(t, resp, b, 400, 111)
	})
}

// h2cClient speaks HTTP/2 with prior knowledge to http:// URLs.
func h2cClient() *http.Client {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: &p}}
}

// eventuallyAckAll waits until a's queue is empty (its acks processed).
func eventuallyAckAll(t testing.TB, c *cluster.Cluster, a *agent) {
	t.Helper()
	eventually(t, "acks", func() bool { return c.QueueLen(t, a.uaid) == 0 })
}

// tamperToken changes one character in the middle of the last path segment.
func tamperToken(s string) string {
	b := []byte(s)
	i := len(b) - 10
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

// TestConformanceLimits runs ingest with small rate limits and timeouts: refusals
// over a limit are 429 with Retry-After and store nothing, slow clients are cut
// off, and a storage outage is a 503 with Retry-After.
func TestConformanceLimits(t *testing.T) {
	c := cluster.Start(t, cluster.WithEnv(
		"HERALD_RATE_LIMIT_SUBSCRIPTION=2/1m",
		"HERALD_RATE_LIMIT_VAPID_KEY=3/1h",
		"HERALD_READ_HEADER_TIMEOUT=300ms",
		"HERALD_READ_TIMEOUT=1s",
		"HERALD_REQUEST_TIMEOUT=1s",
	))
	gw := c.GatewayURL(0)

	t.Run("per subscription", func(t *testing.T) {
		a, b := newAgent(t, gw), newAgent(t, gw)
		a.disconnect(t)
		send(t, a.sub, "one", 60)
		send(t, a.sub, "two", 60)
		resp, body := a.push(t, "three", nil)
		wantLimited(t, resp, body, 30*time.Second)
		if n := c.QueueLen(t, a.uaid); n != 2 {
			t.Fatalf("%d messages waiting, want the 2 accepted", n)
		}
		// Another subscription has its own allowance.
		send(t, b.sub, "other subscription", 60)
		b.expect(t, "other subscription")
	})

	t.Run("per VAPID key, over its subscriptions", func(t *testing.T) {
		key := newAppKey(t)
		opts := sender.Options{TTL: 60, VAPIDKey: key, Subject: "https://app.example.com/contact"}
		a, b, d := newAgent(t, gw), newKeyedAgent(t, gw, key), newAgent(t, gw)
		for _, x := range []*agent{a, b, d} {
			x.disconnect(t)
		}
		sendWith(t, a.sub, "a1", opts)
		sendWith(t, a.sub, "a2", opts)
		sendWith(t, b.sub, "b1", opts)
		resp, body := b.push(t, "b2", key)
		wantLimited(t, resp, body, 20*time.Minute)
		// A refusal counts nothing: the wait does not grow.
		resp, body = d.push(t, "d1", key)
		wantLimited(t, resp, body, 20*time.Minute)
		if nb, nd := c.QueueLen(t, b.uaid), c.QueueLen(t, d.uaid); nb != 1 || nd != 0 {
			t.Fatalf("%d and %d messages waiting, want the 1 and 0 accepted", nb, nd)
		}
		// A message without VAPID does not count against any key.
		send(t, d.sub, "unsigned", 60)
	})

	t.Run("slow headers are cut off", func(t *testing.T) {
		conn, err := net.Dial("tcp", c.Ingest.Addr("http"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		start := time.Now()
		if _, err := io.WriteString(conn, "POST /wpush/v2/x HTTP/1.1\r\nHost: ingest\r\nTTL: 60\r\n"); err != nil {
			t.Fatal(err)
		}
		wantClosed(t, conn)
		if d := time.Since(start); d < 250*time.Millisecond {
			t.Fatalf("closed after %v, before the header timeout", d)
		}
	})

	t.Run("a slow body is cut off and stores nothing", func(t *testing.T) {
		a := newAgent(t, gw)
		a.disconnect(t)
		u, err := url.Parse(a.sub.Endpoint)
		if err != nil {
			t.Fatal(err)
		}
		conn, err := net.Dial("tcp", u.Host)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		body := a.encrypt(t, []byte("never finished"))
		head := "POST " + u.Path + " HTTP/1.1\r\nHost: " + u.Host + "\r\nTTL: 60\r\nContent-Encoding: aes128gcm\r\n" +
			"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n"
		if _, err := conn.Write(append([]byte(head), body[:len(body)/2]...)); err != nil {
			t.Fatal(err)
		}
		wantClosed(t, conn)
		if n := c.QueueLen(t, a.uaid); n != 0 {
			t.Fatalf("%d messages stored from a cut-off body", n)
		}
	})

	t.Run("storage outage is 503 with Retry-After", func(t *testing.T) {
		a := newAgent(t, gw)
		if err := c.Router.Stop(15 * time.Second); err != nil {
			t.Fatal(err)
		}
		resp, body := a.push(t, "nowhere to go", nil)
		wantAPIError(t, resp, body, 503, 201)
		if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 1 {
			t.Fatalf("Retry-After %q", resp.Header.Get("Retry-After"))
		}
	})
}

// push sends text to a with TTL 60, signed with key unless nil, and returns the
// answer as it is.
func (a *agent) push(t testing.TB, text string, key *ecdsa.PrivateKey) (*http.Response, []byte) {
	t.Helper()
	h := map[string]string{"TTL": "60", "Content-Encoding": "aes128gcm"}
	if key != nil {
		aud, err := sender.Origin(a.sub.Endpoint)
		if err != nil {
			t.Fatal(err)
		}
		if h["Authorization"], err = vapid.Sign(key, aud, "mailto:ops@example.com", time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	return pushRequest{url: a.sub.Endpoint, header: h, body: a.encrypt(t, []byte(text))}.do(t, http.DefaultClient)
}

// wantLimited checks a 429 for a rate limit, with a Retry-After of about want.
func wantLimited(t testing.TB, resp *http.Response, body []byte, want time.Duration) {
	t.Helper()
	wantAPIError(t, resp, body, 429, 118)
	ra := resp.Header.Get("Retry-After")
	secs, err := strconv.Atoi(ra)
	if got := time.Duration(secs) * time.Second; err != nil || got > want || got < want-5*time.Second {
		t.Fatalf("Retry-After %q, want about %v", ra, want)
	}
}

// wantClosed waits for the server to close conn, reading and discarding whatever
// it answers first.
func wantClosed(t testing.TB, conn net.Conn) {
	t.Helper()
	if err := conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	_, err := io.Copy(io.Discard, conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the server kept a stalled connection open")
	}
}

// TestConformanceTLS runs ingest with a certificate: application servers reach it
// over HTTPS with HTTP/2 (ALPN) or HTTP/1.1, and push endpoints and VAPID
// audiences are https.
func TestConformanceTLS(t *testing.T) {
	certFile, keyFile, pool := selfSignedCert(t)
	c := cluster.Start(t, cluster.WithEnv("HERALD_TLS_CERT="+certFile, "HERALD_TLS_KEY="+keyFile))
	a := newAgent(t, c.GatewayURL(0))
	// Gateways hand out the endpoint URL they are given; ingest itself is on https.
	endpoint := "https://" + strings.TrimPrefix(a.sub.Endpoint, "http://")
	key := newAppKey(t)
	auth, err := vapid.Sign(key, "https://"+c.Ingest.Addr("http"), "mailto:ops@example.com", time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		proto func(*http.Protocols)
		major int
	}{
		{"HTTP/2", func(p *http.Protocols) { p.SetHTTP2(true) }, 2},
		{"HTTP/1.1", func(p *http.Protocols) { p.SetHTTP1(true) }, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p http.Protocols
			tc.proto(&p)
			client := &http.Client{Transport: &http.Transport{Protocols: &p, TLSClientConfig: &tls.Config{RootCAs: pool}}}
			defer client.CloseIdleConnections()
			resp, b := pushRequest{url: endpoint, header: map[string]string{"TTL": "60", "Content-Encoding": "aes128gcm", "Authorization": auth},
				body: a.encrypt(t, []byte("over "+tc.name))}.do(t, client)
			if resp.StatusCode != http.StatusCreated || resp.ProtoMajor != tc.major || resp.TLS == nil {
				t.Fatalf("status %d over %s: %s", resp.StatusCode, resp.Proto, b)
			}
			if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, "https://"+c.Ingest.Addr("http")+"/m/") {
				t.Fatalf("Location %q", loc)
			}
			a.expect(t, "over "+tc.name)
		})
	}
	t.Run("cleartext is refused", func(t *testing.T) {
		resp, err := http.Post("http://"+c.Ingest.Addr("http")+"/wpush/v2/x", "", nil)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("cleartext request answered %d", resp.StatusCode)
			}
		}
	})
}

// selfSignedCert writes a certificate for 127.0.0.1 and its key as PEM files and
// returns them with a pool trusting the certificate.
func selfSignedCert(t testing.TB) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "herald ingest test"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}
