package webpush

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/herald-push/herald/pkg/ece"
	"github.com/herald-push/herald/pkg/ids"
	"github.com/herald-push/herald/pkg/store"
	"github.com/herald-push/herald/pkg/token"
	"github.com/herald-push/herald/pkg/vapid"
	heraldv1 "github.com/herald-push/herald/proto/herald/v1"
	"github.com/herald-push/herald/services/ingest/internal/ratelimit"
)

const (
	testPublicURL = "https://push.example.net"
	testMoreInfo  = "https://example.net/errors"
)

// fakeSubs is a subscription store holding one subscription, or failing.
type fakeSubs struct {
	sub   store.Subscription
	err   error
	block bool // wait for the context to end, as a hung database would
	// forgotten counts Forget calls.
	forgotten int
}

func (f *fakeSubs) Subscription(ctx context.Context, u ids.UAID, ch ids.ChannelID) (store.Subscription, error) {
	if f.block {
		<-ctx.Done()
		return store.Subscription{}, ctx.Err()
	}
	if f.err != nil {
		return store.Subscription{}, f.err
	}
	if u != f.sub.UAID || ch != f.sub.ChannelID {
		return store.Subscription{}, store.ErrNotFound
	}
	return f.sub, nil
}

func (f *fakeSubs) Forget(ids.UAID, ids.ChannelID) { f.forgotten++ }

// fakeRouter records the messages routed.
type fakeRouter struct {
	mu     sync.Mutex
	routed []*heraldv1.Message
	keys   [][]byte              // each routed message's AppServerKey
	limits []*heraldv1.RateLimit // each routed message's SubscriptionLimit
	err    error
	first  []error // answered, one per call, before err
	calls  int
}

func (f *fakeRouter) Route(_ context.Context, in *heraldv1.RouteRequest, _ ...grpc.CallOption) (*heraldv1.RouteResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if len(f.first) > 0 {
		err := f.first[0]
		f.first = f.first[1:]
		return nil, err
	}
	if f.err != nil {
		return nil, f.err
	}
	f.keys = append(f.keys, in.GetAppServerKey())
	f.limits = append(f.limits, in.GetSubscriptionLimit())
	f.routed = append(f.routed, in.GetMessage())
	return &heraldv1.RouteResponse{Id: "1700000000000-0", Stored: true}, nil
}

func (f *fakeRouter) DeleteMessage(context.Context, *heraldv1.DeleteMessageRequest, ...grpc.CallOption) (*heraldv1.DeleteMessageResponse, error) {
	return &heraldv1.DeleteMessageResponse{Deleted: true}, f.err
}

func (f *fakeRouter) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.routed)
}

// fakeLimiter answers a fixed wait and counts its calls.
type fakeLimiter struct {
	keyWait    time.Duration
	err        error
	keyCalls   int
	keyRefunds int
}

func (f *fakeLimiter) RefundVAPIDKey(context.Context, []byte) error {
	f.keyRefunds++
	return nil
}

func (f *fakeLimiter) VAPIDKey(context.Context, []byte) (time.Duration, error) {
	f.keyCalls++
	return f.keyWait, f.err
}

// fixture is a handler with fakes around it and one subscription.
type fixture struct {
	h        *Handler
	tokens   *token.Codec
	subs     *fakeSubs
	router   *fakeRouter
	limiter  *fakeLimiter
	endpoint string // path of the subscription's push endpoint
	appKey   *ecdsa.PrivateKey
}

// newFixture builds a handler; restricted subscriptions name appKey.
func newFixture(tb testing.TB, restricted bool, cacheSize int) *fixture {
	tb.Helper()
	tokens, err := token.NewCodec([][]byte{bytes.Repeat([]byte{1}, token.KeySize)})
	if err != nil {
		tb.Fatal(err)
	}
	appKey, err := vapid.GenerateKey()
	if err != nil {
		tb.Fatal(err)
	}
	sub := store.Subscription{UAID: ids.NewUAID(), ChannelID: ids.NewChannelID()}
	if restricted {
		if sub.AppServerKey, err = appKey.PublicKey.Bytes(); err != nil {
			tb.Fatal(err)
		}
	}
	f := &fixture{tokens: tokens, subs: &fakeSubs{sub: sub}, router: &fakeRouter{}, limiter: &fakeLimiter{}, appKey: appKey}
	f.endpoint = "/wpush/v2/" + tokens.Endpoint(sub.UAID, sub.ChannelID)
	f.h = NewHandler(Config{PublicURL: testPublicURL, MaxTTL: 3600, MaxBody: 4096, Timeout: time.Second, MoreInfo: testMoreInfo,
		SubscriptionLimit: ratelimit.Limit{Count: 600, Period: time.Minute}},
		tokens, f.subs, f.router, vapid.NewVerifier(cacheSize, vapid.VerifierOptions{}), f.limiter,
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	return f
}

// sign returns an Authorization header for the fixture's audience.
func (f *fixture) sign(tb testing.TB, key *ecdsa.PrivateKey) string {
	tb.Helper()
	auth, err := vapid.Sign(key, testPublicURL, "mailto:ops@example.com", time.Now().Add(time.Hour))
	if err != nil {
		tb.Fatal(err)
	}
	return auth
}

// body returns an aes128gcm body of exactly size bytes, as webpush-go pads them.
func aes128gcmBody(tb testing.TB, size int) []byte {
	tb.Helper()
	priv, auth, err := ece.GenerateKeys()
	if err != nil {
		tb.Fatal(err)
	}
	body, err := ece.Encrypt(make([]byte, size-ece.HeaderSize-17), priv.PublicKey().Bytes(), auth)
	if err != nil {
		tb.Fatal(err)
	}
	return body
}

func (f *fixture) do(method, target string, header map[string]string, body io.Reader) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, body)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	return rec
}

// wantError checks an error response: status, errno, the JSON body and Retry-After.
func wantError(tb testing.TB, rec *httptest.ResponseRecorder, status, errno int, retryAfter string) {
	tb.Helper()
	var b struct {
		Code     int    `json:"code"`
		Errno    int    `json:"errno"`
		Error    string `json:"error"`
		Message  string `json:"message"`
		MoreInfo string `json:"more_info"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &b); err != nil {
		tb.Fatalf("status %d, body %q: %v", rec.Code, rec.Body, err)
	}
	if rec.Code != status || b.Code != status || b.Errno != errno || b.Error != http.StatusText(status) ||
		b.Message == "" || b.MoreInfo != testMoreInfo {
		tb.Fatalf("status %d body %+v, want %d errno %d", rec.Code, b, status, errno)
	}
	if got := rec.Header().Get("Retry-After"); got != retryAfter {
		tb.Fatalf("Retry-After %q, want %q", got, retryAfter)
	}
}

func TestPushAccepted(t *testing.T) {
	f := newFixture(t, true, 100)
	body := aes128gcmBody(t, 4096)
	rec := f.do(http.MethodPost, f.endpoint, map[string]string{
		"TTL": "999999", "Urgency": "high", "Topic": "scores", "Content-Encoding": "aes128gcm",
		"Authorization": f.sign(t, f.appKey),
	}, bytes.NewReader(body))
	if rec.Code != http.StatusCreated {
		t.Fatalf("status %d, body %s", rec.Code, rec.Body)
	}
	if got := rec.Header().Get("TTL"); got != "3600" {
		t.Errorf("TTL %q, want the clamped 3600", got)
	}
	loc := rec.Header().Get("Location")
	id, ok := strings.CutPrefix(loc, testPublicURL+"/m/")
	if !ok {
		t.Fatalf("Location %q", loc)
	}
	if u, ch, entry, err := f.tokens.OpenMessageID(id); err != nil || u != f.subs.sub.UAID || ch != f.subs.sub.ChannelID || entry != "1700000000000-0" {
		t.Fatalf("message id opens to %v %v %q %v", u, ch, entry, err)
	}
	m := f.router.routed[0]
	if !bytes.Equal(m.GetData(), body) || m.GetTtlSeconds() != 3600 || m.GetUrgency() != heraldv1.Urgency_URGENCY_HIGH ||
		m.GetTopic() != "scores" || m.GetHeaders()["encoding"] != "aes128gcm" || m.GetUaid() != f.subs.sub.UAID.String() {
		t.Fatalf("routed %+v", m)
	}
	if f.limiter.keyCalls != 1 || f.limiter.keyRefunds != 0 {
		t.Fatalf("limiter asked %d times for the key, refunded %d", f.limiter.keyCalls, f.limiter.keyRefunds)
	}
	// The router counts the subscription's limit, as ingest passes it.
	if l := f.router.limits[0]; l.GetCount() != 600 || l.GetPeriodUs() != time.Minute.Microseconds() {
		t.Fatalf("routed with subscription limit %v, want 600/1m", l)
	}
	if !bytes.Equal(f.router.keys[0], f.subs.sub.AppServerKey) {
		t.Fatalf("routed with key %x, want the subscription's, which the router checks for changes", f.router.keys[0])
	}
}

func TestPushAESGCMHeadersPassedThrough(t *testing.T) {
	f := newFixture(t, false, 100)
	enc := "salt=DGv6ra1nlYgDCS1FRnbzlw"
	ck := "dh=BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8;p256ecdsa=x"
	rec := f.do(http.MethodPost, f.endpoint, map[string]string{
		"TTL": "60", "Content-Encoding": "aesgcm", "Encryption": enc, "Crypto-Key": ck,
	}, bytes.NewReader(make([]byte, 100)))
	if rec.Code != http.StatusCreated {
		t.Fatalf("status %d, body %s", rec.Code, rec.Body)
	}
	h := f.router.routed[0].GetHeaders()
	if h["encoding"] != "aesgcm" || h["encryption"] != enc || h["crypto_key"] != ck {
		t.Fatalf("headers %v", h)
	}
}

func TestPushEmptyBody(t *testing.T) {
	f := newFixture(t, false, 100)
	// A push without data needs no Content-Encoding, and carries no headers.
	rec := f.do(http.MethodPost, f.endpoint, map[string]string{"TTL": "0", "Content-Encoding": "aes128gcm"}, nil)
	if rec.Code != http.StatusCreated || rec.Header().Get("TTL") != "0" {
		t.Fatalf("status %d TTL %q, body %s", rec.Code, rec.Header().Get("TTL"), rec.Body)
	}
	if m := f.router.routed[0]; len(m.GetData()) != 0 || m.GetHeaders() != nil {
		t.Fatalf("routed %+v", m)
	}
}

// TestPushRefused covers the refusals that need no storage; each stores nothing and
// counts against no rate limit.
func TestPushRefused(t *testing.T) {
	f := newFixture(t, true, 100)
	other, err := vapid.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	good := aes128gcmBody(t, 200)
	for _, tc := range []struct {
		name   string
		target string
		method string
		header map[string]string
		body   []byte
		status int
		errno  int
	}{
		{name: "tampered token", target: tamper(f.endpoint), status: 404, errno: 102},
		{name: "unknown path", target: "/wpush/v1/x", status: 404, errno: 102},
		{name: "GET on an endpoint", method: http.MethodGet, target: f.endpoint, status: 405, errno: 115},
		{name: "missing TTL", header: map[string]string{}, status: 400, errno: 111},
		{name: "body over 4096", header: map[string]string{"TTL": "1", "Content-Encoding": "aes128gcm"}, body: make([]byte, 4097), status: 413, errno: 104},
		{name: "VAPID missing", header: map[string]string{"TTL": "1", "Content-Encoding": "aes128gcm"}, body: good, status: 401, errno: 109},
		{name: "VAPID of another key", header: map[string]string{"TTL": "1", "Content-Encoding": "aes128gcm", "Authorization": f.sign(t, other)}, body: good, status: 403, errno: 116},
		{name: "VAPID garbled", header: map[string]string{"TTL": "1", "Content-Encoding": "aes128gcm", "Authorization": "vapid t=a.b.c, k=BA1Hxzyi"}, body: good, status: 401, errno: 109},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.target == "" {
				tc.target = f.endpoint
			}
			if tc.method == "" {
				tc.method = http.MethodPost
			}
			rec := f.do(tc.method, tc.target, tc.header, bytes.NewReader(tc.body))
			wantError(t, rec, tc.status, tc.errno, "")
			if n := f.router.count(); n != 0 {
				t.Fatalf("%d messages routed", n)
			}
			if f.limiter.keyCalls != 0 {
				t.Fatal("a refused message was counted against a rate limit")
			}
		})
	}
}

// TestPushBodyReadBounded checks that a chunked body over the limit is not read
// past it.
func TestPushBodyReadBounded(t *testing.T) {
	f := newFixture(t, false, 100)
	src := &countingReader{r: bytes.NewReader(make([]byte, 1<<20))}
	req := httptest.NewRequest(http.MethodPost, f.endpoint, src)
	req.ContentLength = -1 // chunked: the size is not known up front
	req.Header.Set("TTL", "60")
	req.Header.Set("Content-Encoding", "aes128gcm")
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	wantError(t, rec, 413, 104, "")
	if rec.Header().Get("Connection") != "close" {
		t.Error("413 keeps the connection: net/http would read on to drain the body")
	}
	if src.n > 4097+512 { // io.ReadAll reads in chunks of at least 512
		t.Fatalf("read %d bytes of a 1 MiB body", src.n)
	}
}

// tamper changes one character in the middle of a token.
func tamper(s string) string {
	b := []byte(s)
	i := len(b) - 10
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// TestPushStorageFailures checks that an outage of Postgres, Redis or the router is
// a 503 with Retry-After, and that nothing is routed after a failed check.
func TestPushStorageFailures(t *testing.T) {
	down := errors.New("connection refused")
	for _, tc := range []struct {
		name    string
		setup   func(*fixture)
		status  int
		errno   int
		retry   string
		refunds int // what the VAPID key's limit counted is given back
	}{
		{name: "postgres down", setup: func(f *fixture) { f.subs.err = down }, status: 503, errno: 201, retry: "10"},
		{name: "postgres hangs", setup: func(f *fixture) { f.subs.block = true }, status: 503, errno: 201, retry: "10"},
		{name: "rate-limit redis down", setup: func(f *fixture) { f.limiter.err = down }, status: 503, errno: 201, retry: "10"},
		{name: "router or its redis down", setup: func(f *fixture) { f.router.err = status.Error(codes.Unavailable, "message store unavailable") }, status: 503, errno: 201, retry: "10", refunds: 1},
		{name: "router deadline", setup: func(f *fixture) { f.router.err = status.Error(codes.DeadlineExceeded, "deadline") }, status: 503, errno: 201, retry: "10", refunds: 1},
		{name: "queue full", setup: func(f *fixture) { f.router.err = status.Error(codes.ResourceExhausted, "full") }, status: 429, errno: 117, retry: "60", refunds: 1},
		{name: "router refuses", setup: func(f *fixture) { f.router.err = status.Error(codes.InvalidArgument, "bad uaid") }, status: 500, errno: 999, refunds: 1},
		{name: "subscription over its rate", setup: func(f *fixture) { f.router.err = rateLimitedResult(1500 * time.Millisecond) }, status: 429, errno: 118, retry: "2", refunds: 1},
		{name: "VAPID key over its rate", setup: func(f *fixture) { f.limiter.keyWait = 30 * time.Second }, status: 429, errno: 118, retry: "30"},
		{name: "unregistered", setup: func(f *fixture) { f.subs.err = store.ErrNotFound }, status: 410, errno: 103},
		{name: "unregistered since cached", setup: func(f *fixture) { f.router.err = status.Error(codes.NotFound, "gone") }, status: 410, errno: 103, refunds: 1},
		{name: "registered again twice while sending", setup: func(f *fixture) { f.router.err = status.Error(codes.Aborted, "key changed") }, status: 503, errno: 201, retry: "10", refunds: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, false, 100)
			f.h.cfg.Timeout = 50 * time.Millisecond
			tc.setup(f)
			rec := f.do(http.MethodPost, f.endpoint, map[string]string{
				"TTL": "60", "Content-Encoding": "aes128gcm", "Authorization": f.sign(t, f.appKey),
			}, bytes.NewReader(aes128gcmBody(t, 300)))
			wantError(t, rec, tc.status, tc.errno, tc.retry)
			if n := f.router.count(); n != 0 {
				t.Fatalf("%d messages routed", n)
			}
			if got := f.limiter.keyRefunds; got != tc.refunds {
				t.Fatalf("%d refunds, want %d", got, tc.refunds)
			}
		})
	}
	t.Run("a cached subscription found stale is forgotten", func(t *testing.T) {
		for _, code := range []codes.Code{codes.NotFound, codes.Aborted} {
			f := newFixture(t, false, 100)
			f.router.err = status.Error(code, "changed")
			f.do(http.MethodPost, f.endpoint, map[string]string{"TTL": "60"}, nil)
			if f.subs.forgotten == 0 {
				t.Fatalf("%v: subscription not forgotten", code)
			}
		}
	})
	t.Run("registered again with another key: checked again, from the store", func(t *testing.T) {
		f := newFixture(t, false, 100)
		f.router.first = []error{status.Error(codes.Aborted, "key changed")}
		rec := f.do(http.MethodPost, f.endpoint, map[string]string{"TTL": "60", "Authorization": f.sign(t, f.appKey)}, nil)
		if rec.Code != http.StatusCreated || f.router.calls != 2 || f.subs.forgotten != 1 {
			t.Fatalf("status %d after %d router calls, %d forgotten; want 201 after 2, 1", rec.Code, f.router.calls, f.subs.forgotten)
		}
		if f.limiter.keyCalls != 2 || f.limiter.keyRefunds != 1 {
			t.Fatalf("limiter: %d key calls, %d refunds; want the first attempt given back", f.limiter.keyCalls, f.limiter.keyRefunds)
		}
	})
	t.Run("a message over the key's rate spends no subscription allowance", func(t *testing.T) {
		f := newFixture(t, false, 100)
		f.limiter.keyWait = time.Second
		f.do(http.MethodPost, f.endpoint, map[string]string{"TTL": "60", "Authorization": f.sign(t, f.appKey)}, nil)
		if f.router.calls != 0 {
			t.Fatal("routed, to count against the subscription's limit, after the key's refused")
		}
	})
}

// rateLimitedResult is the router's error for a message its subscription's rate
// limit refused, as the batcher hands it over.
func rateLimitedResult(wait time.Duration) error {
	return (&heraldv1.RouteResult{Code: int32(codes.ResourceExhausted), Error: "too many messages for this subscription", RetryAfterMs: wait.Milliseconds()}).Err()
}

// TestPushWithoutSubscriptionLimit checks that no limit goes to the router when
// the subscription limit is off.
func TestPushWithoutSubscriptionLimit(t *testing.T) {
	f := newFixture(t, false, 100)
	f.h = NewHandler(Config{PublicURL: testPublicURL, MaxTTL: 3600, MaxBody: 4096, Timeout: time.Second},
		f.tokens, f.subs, f.router, vapid.NewVerifier(1, vapid.VerifierOptions{}), f.limiter, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if rec := f.do(http.MethodPost, f.endpoint, map[string]string{"TTL": "60"}, nil); rec.Code != http.StatusCreated {
		t.Fatalf("status %d, body %s", rec.Code, rec.Body)
	}
	if l := f.router.limits[0]; l != nil {
		t.Fatalf("routed with subscription limit %v, want none", l)
	}
}

func TestDeleteMessage(t *testing.T) {
	f := newFixture(t, false, 100)
	id := f.tokens.MessageID(f.subs.sub.UAID, f.subs.sub.ChannelID, "1-0")
	if rec := f.do(http.MethodDelete, "/m/"+id, nil, nil); rec.Code != http.StatusNoContent {
		t.Fatalf("status %d", rec.Code)
	}
	wantError(t, f.do(http.MethodDelete, "/m/"+tamper(id), nil, nil), 404, 102, "")
	// An endpoint token is not a message id.
	wantError(t, f.do(http.MethodDelete, "/m/"+strings.TrimPrefix(f.endpoint, "/wpush/v2/"), nil, nil), 404, 102, "")
	wantError(t, f.do(http.MethodPost, "/m/"+id, nil, nil), 405, 115, "")
	f.router.err = status.Error(codes.Unavailable, "down")
	wantError(t, f.do(http.MethodDelete, "/m/"+id, nil, nil), 503, 201, "10")
}

func TestOrigin(t *testing.T) {
	for in, want := range map[string]string{
		"https://Push.Example.NET":      "https://push.example.net",
		"http://127.0.0.1:8000":         "http://127.0.0.1:8000",
		"https://push.example.net/base": "https://push.example.net",
	} {
		if got := origin(in); got != want {
			t.Errorf("origin(%q) = %q, want %q", in, got, want)
		}
	}
}
