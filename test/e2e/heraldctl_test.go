package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
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

// ctlTimeout bounds every wait on a heraldctl process.
const ctlTimeout = 20 * time.Second

// TestHeraldctlListenSend runs heraldctl as user agent and as application server:
// a live message, then one sent while the listener is away, which the listener
// gets when it resumes its subscription from its state file.
func TestHeraldctlListenSend(t *testing.T) {
	c := cluster.Start(t)
	dir := t.TempDir()
	// The state directory does not exist yet: listen creates it.
	state := filepath.Join(dir, "herald", "listener.json")

	l := startCtlListener(t, "-gateway", c.GatewayURL(0), "-state", state, "-count", "2")
	subJSON := l.line(t)
	sub, err := sender.ParseSubscription([]byte(subJSON))
	if err != nil {
		t.Fatalf("listen printed %q: %v", subJSON, err)
	}
	if written, err := os.ReadFile(filepath.Join(l.home, ".herald", "subscription.json")); err != nil || strings.TrimSpace(string(written)) != subJSON {
		t.Errorf("~/.herald/subscription.json = %q, %v; want the printed subscription", written, err)
	}
	if !strings.HasPrefix(sub.Endpoint, c.IngestURL()+"/wpush/v2/") {
		t.Errorf("endpoint %q is not under ingest's %s", sub.Endpoint, c.IngestURL())
	}
	if b, err := base64.RawURLEncoding.DecodeString(sub.Keys.P256dh); err != nil || len(b) != 65 || b[0] != 0x04 {
		t.Errorf("keys.p256dh %q is not a base64url uncompressed P-256 point", sub.Keys.P256dh)
	}
	if b, err := base64.RawURLEncoding.DecodeString(sub.Keys.Auth); err != nil || len(b) != 16 {
		t.Errorf("keys.auth %q is not a base64url 16-byte secret", sub.Keys.Auth)
	}
	fi, err := os.Stat(state)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("state file mode %v, want 0600", fi.Mode().Perm())
	}

	out := ctl(t, "send", "-sub", subJSON, "-text", "hello herald")
	if !strings.HasPrefix(out, "201 Created\n") || !strings.Contains(out, "Location: "+c.IngestURL()+"/m/") {
		t.Errorf("send printed %q, want 201 Created and the message's Location", out)
	}
	if got := l.line(t); got != "hello herald" {
		t.Fatalf("listener printed %q, want %q", got, "hello herald")
	}
	l.stop(t)

	// Nobody listens: the message waits, and -sub reads the subscription from a file.
	subFile := filepath.Join(dir, "sub.json")
	if err := os.WriteFile(subFile, []byte(subJSON), 0o600); err != nil {
		t.Fatal(err)
	}
	ctl(t, "send", "-sub", subFile, "-text", "while you were away", "-ttl", "300")

	l = startCtlListener(t, "-gateway", c.GatewayURL(0), "-state", state, "-count", "1")
	if got := l.line(t); got != subJSON {
		t.Fatalf("resumed listener printed subscription %s, want the stored %s", got, subJSON)
	}
	// The first message was acknowledged: only the second comes.
	if got := l.line(t); got != "while you were away" {
		t.Fatalf("resumed listener printed %q, want %q", got, "while you were away")
	}
	l.waitExit(t) // -count 1 reached
}

// TestHeraldctlRestricted subscribes with an application server key: only messages
// signed with its private key get through.
func TestHeraldctlRestricted(t *testing.T) {
	c := cluster.Start(t)
	dir := t.TempDir()
	keys := ctl(t, "vapid-keys")
	var pair struct{ PublicKey, PrivateKey string }
	if err := json.Unmarshal([]byte(keys), &pair); err != nil {
		t.Fatalf("vapid-keys printed %q: %v", keys, err)
	}
	keysFile := filepath.Join(dir, "vapid.json")
	if err := os.WriteFile(keysFile, []byte(keys), 0o600); err != nil {
		t.Fatal(err)
	}

	l := startCtlListener(t, "-gateway", c.GatewayURL(0), "-state", filepath.Join(dir, "listener.json"),
		"-key", pair.PublicKey, "-count", "1")
	subJSON := l.line(t)

	// send signs with a fresh key when given none: the push service refuses it, and
	// send prints its JSON error and fails. The subscription comes on stdin.
	out, errOut, code := runCtl(t, subJSON, nil, "send", "-sub", "-", "-text", "forged")
	if code != 1 {
		t.Fatalf("send with another VAPID key exited %d, want 1; stdout %q, stderr %q", code, out, errOut)
	}
	status, body, _ := strings.Cut(out, "\n")
	if status != "403 Forbidden" {
		t.Errorf("send printed status %q, want 403 Forbidden", status)
	}
	var apiErr struct {
		Code  int `json:"code"`
		Errno int `json:"errno"`
	}
	if err := json.Unmarshal([]byte(body), &apiErr); err != nil || apiErr.Code != 403 || apiErr.Errno != 116 {
		t.Errorf("send printed error body %q, want code 403 and errno 116 (%v)", body, err)
	}

	// The key file from vapid-keys, through the flag's environment twin.
	out, errOut, code = runCtl(t, "", []string{"HERALD_VAPID_KEY=" + keysFile}, "send", "-sub", subJSON, "-text", "signed")
	if code != 0 {
		t.Fatalf("send with the subscription's key exited %d; stdout %q, stderr %q", code, out, errOut)
	}
	// The forged message was never stored: the signed one is the first to come.
	if got := l.line(t); got != "signed" {
		t.Fatalf("listener printed %q, want %q", got, "signed")
	}
	l.waitExit(t)
}

// TestHeraldctlReconnect cuts the listener's connection: it reconnects, resumes its
// subscription without printing it again, and gets the next message.
func TestHeraldctlReconnect(t *testing.T) {
	c := cluster.Start(t)
	proxy := startCtlProxy(t, c.Gateways[0].Addr("websocket"))
	l := startCtlListener(t, "-gateway", "ws://"+proxy.addr()+"/", "-state", filepath.Join(t.TempDir(), "listener.json"))
	subJSON := l.line(t)
	ctl(t, "send", "-sub", subJSON, "-text", "before the cut")
	if got := l.line(t); got != "before the cut" {
		t.Fatalf("listener printed %q, want %q", got, "before the cut")
	}

	proxy.cut()
	proxy.waitAccepted(t, 2) // the listener came back
	ctl(t, "send", "-sub", subJSON, "-text", "after the cut")
	got := l.line(t)
	if got == "before the cut" {
		// The cut may have beaten the listener's ack to the gateway: delivery is at
		// least once, and the unacknowledged message comes again.
		got = l.line(t)
	}
	if got != "after the cut" {
		t.Fatalf("listener printed %q after reconnecting, want %q (and not the subscription again)", got, "after the cut")
	}
	l.stop(t)
}

// TestHeraldctlKeys checks the keys heraldctl makes are what the services and
// application servers read.
func TestHeraldctlKeys(t *testing.T) {
	out := ctl(t, "vapid-keys")
	var pair map[string]string
	if err := json.Unmarshal([]byte(out), &pair); err != nil {
		t.Fatalf("vapid-keys printed %q: %v", out, err)
	}
	if len(pair) != 2 {
		t.Errorf("vapid-keys printed %q, want exactly publicKey and privateKey", out)
	}
	key, err := vapid.DecodePrivateKey(pair["privateKey"])
	if err != nil {
		t.Fatalf("privateKey: %v", err)
	}
	pub, err := vapid.EncodePublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if pub != pair["publicKey"] {
		t.Errorf("publicKey %q does not belong to privateKey (want %q)", pair["publicKey"], pub)
	}
	if _, err := vapid.DecodePublicKey(pair["publicKey"]); err != nil {
		t.Errorf("publicKey: %v", err)
	}
	if again := ctl(t, "vapid-keys"); again == out {
		t.Error("vapid-keys printed the same pair twice")
	}

	tk := strings.TrimSpace(ctl(t, "token-key"))
	if keys, err := token.ParseKeys(tk); err != nil || len(keys) != 1 {
		t.Errorf("token-key printed %q: %v", tk, err)
	}

	help := ctl(t, "help")
	for _, cmd := range []string{"listen", "send", "vapid-keys", "token-key"} {
		if !strings.Contains(help, "  "+cmd+" ") {
			t.Errorf("help does not list %s:\n%s", cmd, help)
		}
	}
	if _, errOut, code := runCtl(t, "", nil); code != 2 || !strings.Contains(errOut, "usage:") {
		t.Errorf("heraldctl without a command exited %d with %q, want 2 and the usage", code, errOut)
	}
	if _, errOut, code := runCtl(t, "", nil, "send", "-no-such-flag"); code != 2 || !strings.Contains(errOut, "-no-such-flag") {
		t.Errorf("send -no-such-flag exited %d with %q, want 2 naming the flag", code, errOut)
	}
}

// ctlProxy forwards TCP connections to an address, so that a test can cut them.
type ctlProxy struct {
	ln       net.Listener
	target   string
	accepted chan struct{} // one value per connection forwarded
	wg       sync.WaitGroup

	// count is the connections waitAccepted has seen; only the test's goroutine
	// uses it.
	count int

	mu    sync.Mutex
	conns []net.Conn
}

// startCtlProxy forwards a new loopback port to target until t ends.
func startCtlProxy(t testing.TB, target string) *ctlProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &ctlProxy{ln: ln, target: target, accepted: make(chan struct{}, 64)}
	p.wg.Go(p.serve)
	t.Cleanup(func() {
		_ = ln.Close() // ends serve
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *ctlProxy) addr() string { return p.ln.Addr().String() }

func (p *ctlProxy) serve() {
	for {
		down, err := p.ln.Accept()
		if err != nil {
			return // closed in t.Cleanup
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = down.Close() // the client sees the failure as a dropped connection
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, down, up)
		p.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			_, _ = io.Copy(dst, src) // ends when either side closes
			_ = dst.Close()
			_ = src.Close()
		}
		p.wg.Go(func() { pipe(up, down) })
		p.wg.Go(func() { pipe(down, up) })
		select {
		case p.accepted <- struct{}{}:
		default:
		}
	}
}

// cut closes every connection forwarded so far, as a network failure would.
func (p *ctlProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		_ = c.Close() // the pipe goroutines may have closed it already
	}
	p.conns = nil
}

// waitAccepted waits until n connections in all were forwarded.
func (p *ctlProxy) waitAccepted(t testing.TB, n int) {
	t.Helper()
	deadline := time.After(ctlTimeout)
	for p.count < n {
		select {
		case <-p.accepted:
			p.count++
		case <-deadline:
			t.Fatalf("%d connections through the proxy after %s, want %d", p.count, ctlTimeout, n)
		}
	}
}

// ctlEnv is the environment heraldctl runs with: the test's without HERALD_*
// settings, so that only what a test sets reaches it.
func ctlEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HERALD_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// runCtl runs heraldctl to the end with stdin and extra environment, and returns
// what it printed and its exit code.
func runCtl(t testing.TB, stdin string, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ctlTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, cluster.Bin("heraldctl"), args...)
	cmd.Env = ctlEnv(env...)
	cmd.Stdin = strings.NewReader(stdin)
	var outBuf, errBuf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &outBuf, &errBuf
	err := cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr) && ctx.Err() == nil:
		code = exitErr.ExitCode()
	default:
		t.Fatalf("heraldctl %s: %v\nstderr:\n%s", strings.Join(args, " "), err, errBuf.String())
	}
	return outBuf.String(), errBuf.String(), code
}

// ctl runs heraldctl, expects it to succeed and returns its stdout.
func ctl(t testing.TB, args ...string) string {
	t.Helper()
	out, errOut, code := runCtl(t, "", nil, args...)
	if code != 0 {
		t.Fatalf("heraldctl %s exited %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// ctlListener is a running `heraldctl listen`.
type ctlListener struct {
	cmd   *exec.Cmd
	home  string // the listener's HOME
	lines chan string
	done  chan struct{}
	err   error // set before done is closed

	mu     sync.Mutex
	stderr bytes.Buffer
}

// startCtlListener starts `heraldctl listen` with args and stops it in t.Cleanup.
func startCtlListener(t testing.TB, args ...string) *ctlListener {
	t.Helper()
	l := &ctlListener{lines: make(chan string, 64), done: make(chan struct{})}
	l.cmd = exec.Command(cluster.Bin("heraldctl"), append([]string{"listen"}, args...)...)
	// A home of its own: the listener writes ~/.herald/subscription.json.
	l.home = t.TempDir()
	l.cmd.Env = ctlEnv("HOME=" + l.home)
	l.cmd.Stderr = l
	stdout, err := l.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := l.cmd.Start(); err != nil {
		t.Fatalf("start heraldctl listen: %v", err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case l.lines <- sc.Text():
			default:
				// Nobody reads this many lines; a test waiting for one has failed anyway.
			}
		}
		close(l.lines)
		// Wait closes the pipe: read it to the end first.
		l.err = l.cmd.Wait()
		close(l.done)
	}()
	t.Cleanup(func() {
		select {
		case <-l.done:
		default:
			if err := l.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
				t.Errorf("stop heraldctl listen: %v", err)
			}
			select {
			case <-l.done:
			case <-time.After(ctlTimeout):
				_ = l.cmd.Process.Kill() // it failed to stop; the error below says so
				<-l.done
				t.Errorf("heraldctl listen still running %s after SIGTERM", ctlTimeout)
			}
		}
		if t.Failed() {
			t.Logf("heraldctl listen stderr:\n%s", l.stderrText())
		}
	})
	return l
}

// Write collects the listener's stderr.
func (l *ctlListener) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stderr.Write(p)
}

func (l *ctlListener) stderrText() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stderr.String()
}

// line waits for the next line the listener prints on stdout.
func (l *ctlListener) line(t testing.TB) string {
	t.Helper()
	select {
	case s, ok := <-l.lines:
		if !ok {
			<-l.done
			t.Fatalf("heraldctl listen exited (%v) before printing the line awaited", l.err)
		}
		return s
	case <-time.After(ctlTimeout):
		t.Fatalf("heraldctl listen printed nothing for %s", ctlTimeout)
	}
	return ""
}

// stop sends SIGTERM and expects a clean exit.
func (l *ctlListener) stop(t testing.TB) {
	t.Helper()
	if err := l.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("signal heraldctl listen: %v", err)
	}
	l.waitExit(t)
}

// waitExit waits for the listener to end and expects exit code 0 and nothing more
// on stdout.
func (l *ctlListener) waitExit(t testing.TB) {
	t.Helper()
	select {
	case <-l.done:
	case <-time.After(ctlTimeout):
		t.Fatalf("heraldctl listen still running after %s", ctlTimeout)
	}
	if l.err != nil {
		t.Fatalf("heraldctl listen: %v", l.err)
	}
	for s := range l.lines {
		t.Errorf("heraldctl listen printed %q more", s)
	}
}
