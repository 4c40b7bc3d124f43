package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/herald-push/herald/pkg/sender"
	"github.com/herald-push/herald/pkg/token"
	"github.com/herald-push/herald/pkg/vapid"
	"github.com/herald-push/herald/test/internal/cluster"
)

// TestFirefox drives a stock Firefox ESR, headless, against Herald: a page subscribes
// with an application server key, a sender posts to the endpoint Firefox got, and
// the service worker's push handler reports the decrypted text. Then Firefox is
// closed, a message is sent, and Firefox, reopened on the same profile, receives it.
//
// scripts/test.d/firefox.sh installs firefox-esr and exports HERALD_FIREFOX; this
// test installs nothing and fails, never skips, when Firefox is missing.
func TestFirefox(t *testing.T) {
	bin := os.Getenv("HERALD_FIREFOX")
	if bin == "" {
		bin = "firefox-esr"
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		t.Fatalf("Firefox (%s) is not installed: `make test` installs firefox-esr in scripts/test.d/firefox.sh (%v)", bin, err)
	}

	c := cluster.Start(t)
	key, err := vapid.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := vapid.EncodePublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	page := newTestPage(t, pub)
	ff := &firefox{t: t, bin: path, profile: newProfile(t, c.GatewayURL(0)), home: t.TempDir()}

	// 1. Subscribe and receive while Firefox runs.
	ff.start(page.URL + "/?mode=subscribe")
	sub := page.subscription(t, ff)
	if !strings.HasPrefix(sub.Endpoint, c.IngestURL()+"/wpush/v2/") {
		t.Fatalf("Firefox subscribed at %q, not at this Herald", sub.Endpoint)
	}
	uaid := endpointUAID(t, c, sub.Endpoint)
	sendVAPID(t, sub, key, "hello, Firefox")
	page.expectPush(t, ff, "hello, Firefox")
	// The legacy aesgcm coding, from the npm web-push library: its Encryption and
	// Crypto-Key headers travel in the notification.
	sendAESGCM(t, sub, key, "hello in aesgcm")
	page.expectPush(t, ff, "hello in aesgcm")
	eventually(t, "Firefox to acknowledge the message", func() bool { return c.QueueLen(t, uaid) == 0 })

	// 2. Close Firefox, send, reopen: the message waited for it.
	ff.stop()
	sendVAPID(t, sub, key, "while you were away")
	if n := c.QueueLen(t, uaid); n != 1 {
		t.Fatalf("%d messages wait for the closed Firefox, want 1", n)
	}
	ff.start(page.URL + "/?mode=check")
	page.expectPush(t, ff, "while you were away")
	again := page.subscription(t, ff)
	if again.Endpoint != sub.Endpoint {
		t.Fatalf("after a restart Firefox holds endpoint %q, want %q: the gateway did not resume its uaid", again.Endpoint, sub.Endpoint)
	}
	eventually(t, "Firefox to acknowledge the offline message", func() bool { return c.QueueLen(t, uaid) == 0 })
	ff.stop()
	if os.Getenv("HERALD_FIREFOX_LOG") != "" {
		t.Logf("%s\n%s", ff.out.String(), c.Gateways[0].Log())
	}
}

// testPage serves test/firefox to Firefox and collects what the page and the
// service worker report.
type testPage struct {
	*httptest.Server
	subs   chan sender.Subscription
	pushes chan string

	mu   sync.Mutex
	logs []string
}

func newTestPage(t *testing.T, appServerKey string) *testPage {
	t.Helper()
	p := &testPage{subs: make(chan sender.Subscription, 8), pushes: make(chan string, 8)}
	dir := filepath.Join(moduleDir(), "firefox")
	mux := http.NewServeMux()
	mux.Handle("GET /", http.FileServer(http.Dir(dir)))
	mux.HandleFunc("GET /key", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, appServerKey) })
	mux.HandleFunc("POST /subscription", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(io.LimitReader(r.Body, 64<<10)) // a short body fails to parse below
		sub, err := sender.ParseSubscription(b)
		if err != nil {
			p.log("bad subscription: " + err.Error())
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		p.subs <- sub
	})
	mux.HandleFunc("POST /push", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(io.LimitReader(r.Body, 64<<10)) // compared in the test
		p.pushes <- string(b)
	})
	mux.HandleFunc("POST /log", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(io.LimitReader(r.Body, 4<<10)) // only logged
		p.log(string(b))
	})
	p.Server = httptest.NewServer(mux)
	t.Cleanup(p.Close)
	return p
}

func (p *testPage) log(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.logs = append(p.logs, s)
}

func (p *testPage) report() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.logs, "\n")
}

// subscription waits for the page to report Firefox's subscription.
func (p *testPage) subscription(t *testing.T, ff *firefox) sender.Subscription {
	t.Helper()
	select {
	case sub := <-p.subs:
		return sub
	case <-ff.exited:
		ff.fail("Firefox exited before the page reported a subscription", p)
	case <-time.After(40 * time.Second):
		ff.fail("the page reported no subscription within 40s", p)
	}
	return sender.Subscription{}
}

// expectPush waits for the service worker to report a message.
func (p *testPage) expectPush(t *testing.T, ff *firefox, want string) {
	t.Helper()
	select {
	case got := <-p.pushes:
		if got != want {
			ff.fail(fmt.Sprintf("the service worker got %q, want %q", got, want), p)
		}
	case <-ff.exited:
		ff.fail("Firefox exited before the service worker reported "+fmt.Sprintf("%q", want), p)
	case <-time.After(30 * time.Second):
		ff.fail(fmt.Sprintf("the service worker did not report %q within 30s", want), p)
	}
}

// firefox runs one Firefox process at a time on a profile.
type firefox struct {
	t       *testing.T
	bin     string
	profile string
	home    string

	cmd    *exec.Cmd
	out    *lockedBuffer
	exited chan struct{}
}

func (f *firefox) start(url string) {
	f.t.Helper()
	if f.out == nil {
		f.out = &lockedBuffer{}
	}
	fmt.Fprintf(f.out, "=== firefox %s\n", url)
	f.cmd = exec.Command(f.bin, "--headless", "--no-remote", "--profile", f.profile, url)
	f.cmd.Env = append(os.Environ(), "HOME="+f.home, "MOZ_HEADLESS=1", "MOZ_CRASHREPORTER_DISABLE=1", "XDG_CACHE_HOME="+filepath.Join(f.home, "cache"))
	f.cmd.Stdout, f.cmd.Stderr = f.out, f.out
	// Its own process group, so that its content processes end with it.
	f.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := f.cmd.Start(); err != nil {
		f.t.Fatalf("start Firefox: %v", err)
	}
	exited := make(chan struct{})
	f.exited = exited
	cmd := f.cmd
	go func() { _ = cmd.Wait(); close(exited) }() // the exit status of a browser says nothing here
	f.t.Cleanup(f.kill)
}

// stop closes Firefox as a user would (SIGTERM) and waits for it to exit.
func (f *firefox) stop() {
	f.t.Helper()
	if err := f.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		f.t.Fatalf("stop Firefox: %v", err)
	}
	select {
	case <-f.exited:
	case <-time.After(20 * time.Second):
		f.kill()
		f.t.Fatalf("Firefox did not exit within 20s of SIGTERM\n%s", f.out.String())
	}
	// Content processes may outlive the parent for a moment.
	_ = syscall.Kill(-f.cmd.Process.Pid, syscall.SIGKILL)
}

// kill ends the process group of the last Firefox started, if it still runs.
func (f *firefox) kill() {
	select {
	case <-f.exited:
	default:
		_ = syscall.Kill(-f.cmd.Process.Pid, syscall.SIGKILL)
		<-f.exited
	}
}

// fail ends the test with what Firefox and the page said.
func (f *firefox) fail(msg string, p *testPage) {
	f.t.Helper()
	f.t.Fatalf("%s\n--- page and service worker reports:\n%s\n--- Firefox output:\n%s", msg, p.report(), tail(f.out.String(), 12000))
}

// newProfile makes a fresh profile whose prefs point Firefox's push service at
// gatewayURL and keep it off every network but loopback.
func newProfile(t *testing.T, gatewayURL string) string {
	t.Helper()
	dir := t.TempDir()
	prefs, err := os.ReadFile(filepath.Join(moduleDir(), "firefox", "user.js"))
	if err != nil {
		t.Fatal(err)
	}
	prefs = fmt.Appendf(prefs, "user_pref(%q, %q);\n", "dom.push.serverURL", gatewayURL)
	if err := os.WriteFile(filepath.Join(dir, "user.js"), prefs, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// sendVAPID sends text with a VAPID signature of key and expects 201.
func sendVAPID(t *testing.T, sub sender.Subscription, key *ecdsa.PrivateKey, text string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	opts := sender.Options{TTL: 300, VAPIDKey: key, Subject: "mailto:ops@example.com"}
	res, err := sender.Send(ctx, sub, []byte(text), opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != http.StatusCreated {
		t.Fatalf("push: status %d, body %s", res.Status, res.Body)
	}
}

// sendAESGCM sends text in the aesgcm coding with the npm web-push library.
func sendAESGCM(t *testing.T, sub sender.Subscription, key *ecdsa.PrivateKey, text string) {
	t.Helper()
	dir := webpushNodeProject(t)
	pub, err := vapid.EncodePublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := vapid.EncodePrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(sub)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", filepath.Join(moduleDir(), "firefox", "send-aesgcm.mjs"), string(b), text, pub, priv)
	cmd.Env = append(os.Environ(), "WEBPUSH_NODE_DIR="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("send aesgcm with web-push: %v\n%s", err, out)
	}
}

// endpointUAID opens an endpoint's token to find its uaid.
func endpointUAID(t *testing.T, c *cluster.Cluster, endpoint string) string {
	t.Helper()
	keys, err := token.ParseKeys(c.TokenKeys)
	if err != nil {
		t.Fatal(err)
	}
	codec, err := token.NewCodec(keys)
	if err != nil {
		t.Fatal(err)
	}
	u, _, err := codec.OpenEndpoint(endpoint[strings.LastIndex(endpoint, "/")+1:])
	if err != nil {
		t.Fatalf("open endpoint %q: %v", endpoint, err)
	}
	return u.String()
}

func moduleDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..")
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// lockedBuffer collects a process's output while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
