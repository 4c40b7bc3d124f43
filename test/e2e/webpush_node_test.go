package e2e

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/herald-push/herald/pkg/ece"
	"github.com/herald-push/herald/pkg/ids"
	"github.com/herald-push/herald/pkg/mozproto"
	"github.com/herald-push/herald/pkg/pushclient"
	"github.com/herald-push/herald/pkg/vapid"
	"github.com/herald-push/herald/test/internal/cluster"
)

// webpushNodeDir is the npm project that sends with the web-push library.
const webpushNodeDir = "../interop/webpush-node"

// TestWebPushNodeLibrary sends with web-push, the npm library most Node.js
// application servers use: its aes128gcm and legacy aesgcm encryption, its VAPID
// signatures (the RFC 8292 form with aes128gcm, the older "WebPush" form with
// aesgcm) and its headers must be what Herald accepts, with and without VAPID, to
// restricted and unrestricted subscriptions, and what reaches the user agent must
// decrypt.
func TestWebPushNodeLibrary(t *testing.T) {
	dir := webpushNodeProject(t)
	c := cluster.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	cl := c.Dial(t)
	if _, err := cl.Hello(ctx, "", nil); err != nil {
		t.Fatal(err)
	}
	appKey := newNodeVAPIDKeys(t)
	other := newNodeVAPIDKeys(t)
	open := nodeSubscribe(ctx, t, cl, "")
	restricted := nodeSubscribe(ctx, t, cl, appKey.public)

	for _, encoding := range []string{"aes128gcm", "aesgcm"} {
		t.Run(encoding, func(t *testing.T) {
			for _, tc := range []struct {
				name string
				sub  *nodeSubscription
				keys *nodeVAPIDKeys
			}{
				{"unrestricted, without VAPID", open, nil},
				{"unrestricted, VAPID", open, &other},
				{"restricted, VAPID of its key", restricted, &appKey},
			} {
				text := "héllo from web-push, " + encoding + ", " + tc.name + " ✓"
				res, code := nodeSend(t, dir, tc.sub.json, text, tc.keys, "--content-encoding", encoding)
				if code != 0 || res.StatusCode != 201 {
					t.Fatalf("%s: exit %d, status %d, body %q", tc.name, code, res.StatusCode, res.Body)
				}
				if loc, _ := res.Headers["location"].(string); !strings.HasPrefix(loc, c.IngestURL()+"/m/") {
					t.Errorf("%s: Location %q, want a message under %s/m/", tc.name, loc, c.IngestURL())
				}
				if ttl, _ := res.Headers["ttl"].(string); ttl != "60" {
					t.Errorf("%s: TTL header %q, want the 60 sent", tc.name, ttl)
				}
				ch, got, n := nodeReceive(ctx, t, cl, map[string]*nodeSubscription{tc.sub.channelID: tc.sub})
				if got != text || n.Headers["encoding"] != encoding {
					t.Errorf("%s: channel %s decrypted %q with headers %v, want %q", tc.name, ch, got, n.Headers, text)
				}
			}

			// A restricted subscription refuses another VAPID key (403), and a
			// message without VAPID (401); web-push rejects with the status and
			// Herald's JSON error.
			for _, tc := range []struct {
				name   string
				keys   *nodeVAPIDKeys
				status int
				errno  int
			}{
				{"another key", &other, 403, 116},
				{"no VAPID", nil, 401, 109},
			} {
				res, code := nodeSend(t, dir, restricted.json, "forged", tc.keys, "--content-encoding", encoding)
				if code != 1 || res.StatusCode != tc.status {
					t.Errorf("%s: web-push exited %d with status %d, want 1 and %d", tc.name, code, res.StatusCode, tc.status)
					continue
				}
				var apiErr struct{ Code, Errno int }
				if err := json.Unmarshal([]byte(res.Body), &apiErr); err != nil || apiErr.Code != tc.status || apiErr.Errno != tc.errno {
					t.Errorf("%s: error body %q, want code %d and errno %d", tc.name, res.Body, tc.status, tc.errno)
				}
			}
			// Nothing of the refused messages was stored: the next message is the
			// next to come.
			if res, code := nodeSend(t, dir, restricted.json, "after the forgeries", &appKey, "--content-encoding", encoding); code != 0 || res.StatusCode != 201 {
				t.Fatalf("web-push: exit %d, status %d, body %q", code, res.StatusCode, res.Body)
			}
			if ch, text, _ := nodeReceive(ctx, t, cl, map[string]*nodeSubscription{restricted.channelID: restricted}); text != "after the forgeries" {
				t.Errorf("channel %s decrypted %q, want %q", ch, text, "after the forgeries")
			}
		})
	}
}

// webpushNodeProject returns the absolute path of the npm project that sends with
// the web-push library, installing its locked dependencies first if they are missing.
func webpushNodeProject(t testing.TB) string {
	t.Helper()
	return npmProject(t, webpushNodeDir, "web-push", "this test sends with the npm web-push library")
}

// npmProject returns the absolute path of the npm project in dir, running npm ci
// there first when node_modules lacks pkg. It fails the test, with why it needs
// Node.js, when node or npm is missing.
func npmProject(t testing.TB, dir, pkg, why string) string {
	t.Helper()
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not on PATH: %s and needs Node.js 20 or later with npm (Debian: apt-get install nodejs npm)", tool, why)
		}
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = os.Stat(filepath.Join(dir, "node_modules", pkg, "package.json"))
	if err == nil {
		return dir
	}
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci in %s: %v\n%s", dir, err, out)
	}
	return dir
}

// nodeVAPIDKeys is an application server's key pair, base64url as web-push takes it.
type nodeVAPIDKeys struct{ public, private string }

func newNodeVAPIDKeys(t testing.TB) nodeVAPIDKeys {
	t.Helper()
	key, err := vapid.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	var k nodeVAPIDKeys
	if k.public, err = vapid.EncodePublicKey(&key.PublicKey); err != nil {
		t.Fatal(err)
	}
	if k.private, err = vapid.EncodePrivateKey(key); err != nil {
		t.Fatal(err)
	}
	return k
}

// nodeSubscription is one channel of the test's user agent.
type nodeSubscription struct {
	channelID string
	priv      *ecdh.PrivateKey
	auth      []byte
	json      string // as a browser hands it to the application server
}

// nodeSubscribe registers a channel, restricted to appKey unless it is "".
func nodeSubscribe(ctx context.Context, t testing.TB, cl *pushclient.Client, appKey string) *nodeSubscription {
	t.Helper()
	priv, auth, err := ece.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	s := &nodeSubscription{channelID: ids.NewChannelID().String(), priv: priv, auth: auth}
	reg, err := cl.Register(ctx, s.channelID, appKey)
	if err != nil || reg.Status != 200 {
		t.Fatalf("register (key %q): %+v, %v", appKey, reg, err)
	}
	b, err := json.Marshal(subscription(reg.PushEndpoint, priv, auth))
	if err != nil {
		t.Fatal(err)
	}
	s.json = string(b)
	return s
}

// nodeResult is what send.mjs prints: the push service's answer.
type nodeResult struct {
	StatusCode int            `json:"statusCode"`
	Headers    map[string]any `json:"headers"`
	Body       string         `json:"body"`
}

// nodeSend runs send.mjs, signing with keys unless nil, with any extra arguments,
// and returns its result and exit code.
func nodeSend(t testing.TB, dir, sub, text string, keys *nodeVAPIDKeys, extra ...string) (nodeResult, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// --name=value: a base64url value may start with "-", which parseArgs would
	// take for an option.
	args := []string{"send.mjs", "--subscription=" + sub, "--text=" + text, "--ttl=60", "--subject=mailto:interop@example.com"}
	if keys != nil {
		args = append(args, "--vapid-public-key="+keys.public, "--vapid-private-key="+keys.private)
	}
	args = append(args, extra...)
	cmd := exec.CommandContext(ctx, "node", args...)
	cmd.Dir = dir
	// Only the arguments configure send.mjs.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "VAPID_") && !strings.HasPrefix(kv, "WEBPUSH_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr) && ctx.Err() == nil:
		code = exitErr.ExitCode()
	default:
		t.Fatalf("node send.mjs: %v\nstderr:\n%s", err, stderr.String())
	}
	var res nodeResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("node send.mjs exited %d printing %q: %v\nstderr:\n%s", code, stdout.String(), err, stderr.String())
	}
	return res, code
}

// nodeReceive waits for one notification for one of subs, decrypts it (aes128gcm,
// or aesgcm with the keys of its headers) and acks it.
func nodeReceive(ctx context.Context, t testing.TB, cl *pushclient.Client, subs map[string]*nodeSubscription) (channelID, text string, n mozproto.Notification) {
	t.Helper()
	n, err := cl.Next(ctx)
	if err != nil {
		t.Fatalf("waiting for a notification: %v", err)
	}
	s, ok := subs[n.ChannelID]
	if !ok {
		t.Fatalf("unexpected notification for channel %s", n.ChannelID)
	}
	body, err := base64.RawURLEncoding.DecodeString(n.Data)
	if err != nil {
		t.Fatalf("notification data: %v", err)
	}
	var plain []byte
	switch n.Headers["encoding"] {
	case "aes128gcm":
		plain, err = ece.Decrypt(body, s.priv, s.auth)
	case "aesgcm":
		var p ece.AESGCMParams
		if p, err = ece.ParseAESGCMParams(n.Headers["encryption"], n.Headers["crypto_key"]); err == nil {
			plain, err = ece.DecryptAESGCM(body, p, s.priv, s.auth)
		}
	default:
		t.Fatalf("notification headers %v, want encoding aes128gcm or aesgcm", n.Headers)
	}
	if err != nil {
		t.Fatalf("decrypt %s: %v", n.Headers["encoding"], err)
	}
	if err := cl.Ack(ctx, n); err != nil {
		t.Fatal(err)
	}
	return n.ChannelID, string(plain), n
}
