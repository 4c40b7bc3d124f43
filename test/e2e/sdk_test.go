package e2e

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-push/herald/pkg/sender"
	"github.com/herald-push/herald/test/internal/cluster"
)

// TestSDK drives the JS SDK (/sdk/herald.js) in headless Chromium, in a page of
// another origin than the gateway's: it subscribes, receives and decrypts messages
// sent by pkg/sender and by the npm web-push library, resumes its subscription from
// IndexedDB after the page closed and gets what was sent meanwhile, and falls back
// to Server-Sent Events when a proxy refuses WebSocket upgrades, and to
// long-polling when the proxy refuses event streams too.
//
// scripts/test.d/chromium.sh installs Debian's chromium and the npm project in
// test/browser (playwright-core), and exports HERALD_CHROMIUM; this test downloads
// no browser, and fails, never skips, when something is missing.
func TestSDK(t *testing.T) {
	chromium := os.Getenv("HERALD_CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := exec.LookPath(chromium); err != nil {
		t.Fatalf("Chromium (%s) is not installed: `make test` installs Debian's chromium in scripts/test.d/chromium.sh (%v)", chromium, err)
	}
	browserDir := browserProject(t)
	webpushDir := webpushNodeProject(t)

	c := cluster.Start(t)
	c.AddGateway()
	gw := gatewayHTTP(c, 0)
	page := newSDKPage(t)
	noWS := newRefusingProxy(t, gw, false)
	noStreams := newRefusingProxy(t, gw, true)
	b := startBrowser(t, browserDir, chromium)
	pageURL := func(gateway, name string, extra ...string) string {
		q := url.Values{"gateway": {gateway}, "name": {name}}
		for i := 0; i+1 < len(extra); i += 2 {
			q.Set(extra[i], extra[i+1])
		}
		return page.URL + "/?" + q.Encode()
	}

	t.Run("websocket: sender and web-push messages, and a resumed subscription", func(t *testing.T) {
		u := pageURL(gw, "ws")
		b.do(t, "open "+u)
		r := page.wait(t, "ws", "subscription")
		if r.Transport != "websocket" {
			t.Fatalf("subscribed over %q, want websocket", r.Transport)
		}
		sub := r.sub(t)
		uaid := endpointUAID(t, c, sub.Endpoint)
		send(t, sub, "hello, page", 60)
		page.expect(t, "ws", "hello, page", "websocket")

		keys := newNodeVAPIDKeys(t)
		text := "from web-push, aes128gcm ✓"
		if res, code := nodeSend(t, webpushDir, string(r.Subscription), text, &keys, "--content-encoding", "aes128gcm"); code != 0 || res.StatusCode != 201 {
			t.Fatalf("web-push: exit %d, status %d, body %q", code, res.StatusCode, res.Body)
		}
		page.expect(t, "ws", text, "websocket")
		eventually(t, "the page to acknowledge both", func() bool { return c.QueueLen(t, uaid) == 0 })

		// The page closes; a message comes; the page opens again, resumes its
		// subscription from IndexedDB, and gets it.
		b.do(t, "close")
		send(t, sub, "while the page was closed", 300)
		b.do(t, "open "+u)
		again := page.wait(t, "ws", "subscription").sub(t)
		if again.Endpoint != sub.Endpoint || again.Keys != sub.Keys {
			t.Fatalf("the reopened page holds %+v, want %+v", again, sub)
		}
		page.expect(t, "ws", "while the page was closed", "websocket")
		b.do(t, "close")
	})

	t.Run("falls back to SSE when WebSocket is refused", func(t *testing.T) {
		b.do(t, "open "+pageURL(noWS.URL, "sse"))
		r := page.wait(t, "sse", "subscription")
		if r.Transport != "sse" {
			t.Fatalf("subscribed over %q, want sse", r.Transport)
		}
		if noWS.refusedWS.Load() == 0 {
			t.Fatal("the SDK did not try the WebSocket first")
		}
		send(t, r.sub(t), "over an event stream", 60)
		page.expect(t, "sse", "over an event stream", "sse")
		b.do(t, "close")
	})

	t.Run("falls back to long-polling when event streams are refused too", func(t *testing.T) {
		b.do(t, "open "+pageURL(noStreams.URL, "poll"))
		r := page.wait(t, "poll", "subscription")
		if r.Transport != "longpoll" {
			t.Fatalf("subscribed over %q, want longpoll", r.Transport)
		}
		if noStreams.refusedWS.Load() == 0 || noStreams.refusedSSE.Load() == 0 {
			t.Fatalf("refused %d WebSockets and %d event streams: the SDK did not try them first", noStreams.refusedWS.Load(), noStreams.refusedSSE.Load())
		}
		sub := r.sub(t)
		send(t, sub, "over long-polling", 60)
		page.expect(t, "poll", "over long-polling", "longpoll")
		keys := newNodeVAPIDKeys(t)
		if res, code := nodeSend(t, webpushDir, string(r.Subscription), "web-push, polled", &keys); code != 0 || res.StatusCode != 201 {
			t.Fatalf("web-push: exit %d, status %d, body %q", code, res.StatusCode, res.Body)
		}
		page.expect(t, "poll", "web-push, polled", "longpoll")
		uaid := endpointUAID(t, c, sub.Endpoint)
		eventually(t, "the page to acknowledge", func() bool { return c.QueueLen(t, uaid) == 0 })
		b.do(t, "close")
	})

	// Last: it stops gateway 0.
	t.Run("reconnects at once after a drain; another page takes the subscription over", func(t *testing.T) {
		lb := newSwitchProxy(t, gw)
		b.do(t, "open "+pageURL(lb.URL, "lb", "tab", "a"))
		sub := page.wait(t, "a", "subscription").sub(t)
		// The gateway drains; the load balancer now sends to the other one.
		lb.target.Store(gatewayHTTP(c, 1))
		if err := c.Gateways[0].Stop(20 * time.Second); err != nil {
			t.Fatalf("gateway did not drain cleanly: %v", err)
		}
		r := page.waitFor(t, "a", "reconnecting", func(r sdkReport) bool { return r.State == "reconnecting" })
		if r.Code != 1001 || r.Delay > 100 {
			t.Fatalf("after the drain the page reconnects after %.0f ms with code %d, want at once after 1001", r.Delay, r.Code)
		}
		page.waitFor(t, "a", "connected", func(r sdkReport) bool { return r.State == "connected" })
		send(t, sub, "after the drain", 60)
		page.expect(t, "a", "after the drain", "websocket")

		// A second page of the same subscription (IndexedDB) connects: the first is
		// taken over, and does not come back.
		b.do(t, "also "+pageURL(lb.URL, "lb", "tab", "b"))
		if again := page.wait(t, "b", "subscription").sub(t); again.Endpoint != sub.Endpoint {
			t.Fatalf("the second page holds %s, want %s", again.Endpoint, sub.Endpoint)
		}
		page.waitFor(t, "a", "taken-over", func(r sdkReport) bool { return r.State == "taken-over" })
		send(t, sub, "to the second page", 60)
		page.expect(t, "b", "to the second page", "websocket")
		b.do(t, "close")
	})
}

// switchProxy forwards everything, WebSockets too, to a target that can change, as
// a load balancer does when a gateway leaves.
type switchProxy struct {
	*httptest.Server
	target atomic.Value // string, a gateway's base URL
}

func newSwitchProxy(t testing.TB, target string) *switchProxy {
	t.Helper()
	p := &switchProxy{}
	p.target.Store(target)
	rp := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		u, err := url.Parse(p.target.Load().(string))
		if err != nil {
			panic(err) // the test stores only gatewayHTTP's URLs
		}
		r.SetURL(u)
	}}
	p.Server = httptest.NewServer(rp)
	t.Cleanup(p.Close)
	return p
}

// browserProject returns the npm project that drives Chromium, installing its
// locked dependencies first if they are missing.
func browserProject(t testing.TB) string {
	t.Helper()
	return npmProject(t, "../browser", "playwright-core", "the SDK test drives Chromium with the npm package playwright-core")
}

// sdkReport is what the test page posts to /report.
type sdkReport struct {
	Kind         string          `json:"kind"`
	Name         string          `json:"name"`
	Transport    string          `json:"transport"`
	State        string          `json:"state"`
	Text         string          `json:"text"`
	Error        string          `json:"error"`
	Subscription json.RawMessage `json:"subscription"`
	Code         int             `json:"code"`
	Delay        float64         `json:"delay"`
}

func (r sdkReport) sub(t testing.TB) sender.Subscription {
	t.Helper()
	s, err := sender.ParseSubscription(r.Subscription)
	if err != nil {
		t.Fatalf("the page reported the subscription %s: %v", r.Subscription, err)
	}
	return s
}

// sdkPage serves test/browser/page and collects the page's reports, by
// subscription name.
type sdkPage struct {
	*httptest.Server
	mu      sync.Mutex
	reports map[string]chan sdkReport
	// pending are reports read while waiting for another kind, by name: a message
	// sent while the page was away may be reported before the subscription.
	pending map[string][]sdkReport
}

func newSDKPage(t testing.TB) *sdkPage {
	t.Helper()
	p := &sdkPage{reports: map[string]chan sdkReport{}, pending: map[string][]sdkReport{}}
	mux := http.NewServeMux()
	mux.Handle("GET /", http.FileServer(http.Dir(filepath.Join(moduleDir(), "browser", "page"))))
	mux.HandleFunc("POST /report", func(w http.ResponseWriter, r *http.Request) {
		var rep sdkReport
		if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&rep); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		select {
		case p.ch(rep.Name) <- rep:
		default: // a test that stopped listening; nothing waits for it
		}
	})
	p.Server = httptest.NewServer(mux)
	t.Cleanup(p.Close)
	return p
}

func (p *sdkPage) ch(name string) chan sdkReport {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.reports[name]
	if !ok {
		c = make(chan sdkReport, 256)
		p.reports[name] = c
	}
	return c
}

// wait returns the next report of kind for the subscription name; an error report
// fails the test.
func (p *sdkPage) wait(t testing.TB, name, kind string) sdkReport {
	t.Helper()
	return p.waitFor(t, name, kind, func(r sdkReport) bool { return r.Kind == kind })
}

// waitFor returns the next report for name that matches; an error report fails the
// test. Reports other than statuses that do not match are kept for later waits: a
// message sent while the page was away may be reported before the subscription.
func (p *sdkPage) waitFor(t testing.TB, name, what string, match func(sdkReport) bool) sdkReport {
	t.Helper()
	for i, r := range p.pending[name] {
		if match(r) {
			p.pending[name] = append(p.pending[name][:i:i], p.pending[name][i+1:]...)
			return r
		}
	}
	deadline := time.After(20 * time.Second)
	var seen []string
	for {
		select {
		case r := <-p.ch(name):
			if r.Kind == "error" {
				t.Fatalf("the page reported an error: %s", r.Error)
			}
			if match(r) {
				return r
			}
			seen = append(seen, r.Kind+" "+r.State+" "+r.Transport)
			if r.Kind != "status" {
				p.pending[name] = append(p.pending[name], r)
			}
		case <-deadline:
			t.Fatalf("no %s report from page %q in 20s; saw %q", what, name, seen)
		}
	}
}

// expect waits for the page to report a message, and checks its text and transport.
func (p *sdkPage) expect(t testing.TB, name, text, transport string) {
	t.Helper()
	r := p.wait(t, name, "message")
	if r.Text != text || r.Transport != transport {
		t.Fatalf("the page got %q over %s, want %q over %s", r.Text, r.Transport, text, transport)
	}
}

// refusingProxy forwards to a gateway but refuses WebSocket upgrades, and event
// streams too if asked, as some corporate proxies do.
type refusingProxy struct {
	*httptest.Server
	refusedWS  atomic.Int32
	refusedSSE atomic.Int32
}

func newRefusingProxy(t testing.TB, target string, refuseSSE bool) *refusingProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	p := &refusingProxy{}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.EqualFold(r.Header.Get("Upgrade"), "websocket"):
			p.refusedWS.Add(1)
			http.Error(w, "WebSockets are not allowed here", http.StatusForbidden)
		case refuseSSE && strings.HasSuffix(r.URL.Path, "/sse"):
			p.refusedSSE.Add(1)
			http.Error(w, "event streams are not allowed here", http.StatusForbidden)
		default:
			rp.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(p.Close)
	return p
}

// browser is Chromium run by test/browser/run.mjs.
type browser struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
	log   *lockedBuffer
}

func startBrowser(t testing.TB, dir, chromium string) *browser {
	t.Helper()
	b := &browser{lines: make(chan string, 16), log: &lockedBuffer{}}
	b.cmd = exec.Command("node", "run.mjs")
	b.cmd.Dir = dir
	b.cmd.Env = append(os.Environ(), "HERALD_CHROMIUM="+chromium)
	b.cmd.Stderr = b.log
	var err error
	if b.stdin, err = b.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := b.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.cmd.Start(); err != nil {
		t.Fatalf("start node run.mjs: %v", err)
	}
	go func() {
		defer close(b.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case b.lines <- sc.Text():
			default: // nobody asked; the answers the test waits for are never this many
			}
		}
	}()
	exited := make(chan error, 1)
	t.Cleanup(func() {
		_, _ = io.WriteString(b.stdin, "quit\n") // it may have exited already
		_ = b.stdin.Close()
		go func() { exited <- b.cmd.Wait() }()
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("run.mjs exited: %v", err)
			}
		case <-time.After(15 * time.Second):
			_ = b.cmd.Process.Kill()
			t.Error("run.mjs did not exit after quit")
		}
		if t.Failed() {
			t.Logf("browser log:\n%s", tail(b.log.String(), 20000))
		}
	})
	b.expect(t, "ready", 60*time.Second)
	return b
}

// do sends a command to run.mjs and waits for its answer.
func (b *browser) do(t testing.TB, command string) {
	t.Helper()
	if _, err := io.WriteString(b.stdin, command+"\n"); err != nil {
		t.Fatalf("browser: %v", err)
	}
	answers := map[string]string{"open": "opened", "also": "opened", "close": "closed"}
	b.expect(t, answers[strings.Fields(command)[0]], 30*time.Second)
}

func (b *browser) expect(t testing.TB, prefix string, timeout time.Duration) {
	t.Helper()
	select {
	case line, ok := <-b.lines:
		if !ok {
			t.Fatalf("the browser exited; its log:\n%s", tail(b.log.String(), 20000))
		}
		if !strings.HasPrefix(line, prefix) {
			t.Fatalf("browser answered %q, want %s", line, prefix)
		}
	case <-time.After(timeout):
		t.Fatalf("the browser did not answer %s in %s; its log:\n%s", prefix, timeout, tail(b.log.String(), 20000))
	}
}
