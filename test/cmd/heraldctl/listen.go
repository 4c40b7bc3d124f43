package main

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/herald-push/herald/pkg/ece"
	"github.com/herald-push/herald/pkg/ids"
	"github.com/herald-push/herald/pkg/mozproto"
	"github.com/herald-push/herald/pkg/pushclient"
	"github.com/herald-push/herald/pkg/sender"
)

const (
	// opTimeout bounds one exchange with the gateway: dial, hello, register, ack.
	opTimeout = 10 * time.Second
	// idlePing is how long the listener waits for a message before it pings the
	// gateway: a gateway that vanished without closing the TCP connection is
	// otherwise never noticed.
	idlePing = time.Minute
	// minBackoff and maxBackoff bound the wait before reconnecting.
	minBackoff = 500 * time.Millisecond
	maxBackoff = 30 * time.Second
)

// listenerState is what the listener keeps between runs in its state file: enough
// to resume the same subscription.
type listenerState struct {
	UAID      string `json:"uaid"`
	ChannelID string `json:"channelID"`
	// PrivateKey is the subscription's P-256 private key, a base64url raw scalar.
	PrivateKey string `json:"privateKey"`
	// Auth is the 16-byte authentication secret, base64url.
	Auth     string `json:"auth"`
	Endpoint string `json:"endpoint"`
	// Key is the application server key the subscription is restricted to, or "".
	Key string `json:"key,omitempty"`
}

// fatalError ends the listener: reconnecting cannot help.
type fatalError struct{ err error }

func (e fatalError) Error() string { return e.err.Error() }
func (e fatalError) Unwrap() error { return e.err }

func fatal(err error) error { return fatalError{err} }

// listener is one run of heraldctl listen.
type listener struct {
	gateway   string
	statePath string
	subPath   string
	key       string
	count     int
	e         env
	log       *slog.Logger

	state listenerState
	// priv and auth are state's keys, decoded.
	priv *ecdh.PrivateKey
	auth []byte
	// printed is the subscription JSON last printed.
	printed  string
	received int
}

// runListen acts as a user agent until interrupted or -count messages arrived.
func runListen(ctx context.Context, e env, args []string) error {
	fs := newFlagSet("listen", "[flags]",
		"Acts as a user agent: connects to a gateway, subscribes (or resumes the\n"+
			"subscription kept in the state file), prints the subscription JSON an application\n"+
			"server needs on one line, then prints each message received, decrypted, on a line\n"+
			"of its own, and acknowledges it. Reconnects when the connection drops; exits on\n"+
			"SIGINT or SIGTERM, or after -count messages. Diagnostics go to stderr.")
	l := &listener{e: e, log: slog.New(slog.NewTextHandler(e.stderr, nil))}
	fs.StringVar(&l.gateway, "gateway", "ws://127.0.0.1:8080/", "WebSocket URL of the gateway")
	fs.StringVar(&l.statePath, "state", "~/.herald/listener.json", "file keeping the subscription between runs")
	fs.StringVar(&l.subPath, "sub-out", "~/.herald/subscription.json", "file the subscription JSON is also written to, for `heraldctl send -sub` (\"\" for none)")
	fs.StringVar(&l.key, "key", "", "application server (VAPID) public key, base64url, to restrict the subscription to")
	fs.IntVar(&l.count, "count", 0, "exit after this many messages; 0 runs until interrupted")
	if err := fs.parse(e, args); err != nil {
		return err
	}
	if l.count < 0 {
		fmt.Fprintf(e.stderr, "%s: -count must not be negative\n", fs.Name())
		return errUsage
	}
	path, err := expandHome(l.statePath)
	if err != nil {
		return err
	}
	if l.subPath != "" {
		if l.subPath, err = expandHome(l.subPath); err != nil {
			return err
		}
	}
	l.statePath = path
	if err := l.load(); err != nil {
		return err
	}
	return l.run(ctx)
}

// run connects, and reconnects with backoff, until the work is done, ctx ends or a
// fatal error occurs.
func (l *listener) run(ctx context.Context) error {
	backoff := minBackoff
	for {
		established, err := l.session(ctx)
		if err == nil || ctx.Err() != nil {
			return nil
		}
		if errors.As(err, new(fatalError)) {
			return err
		}
		if established {
			backoff = minBackoff
		}
		// Equal jitter: listeners dropped together do not all come back together.
		wait := backoff/2 + rand.N(backoff/2+1)
		l.log.Warn("connection lost; reconnecting", "err", err, "in", wait.Round(time.Millisecond))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// session runs one connection. It returns nil once -count messages arrived;
// established says whether the gateway accepted the user agent.
func (l *listener) session(ctx context.Context) (established bool, err error) {
	dctx, cancel := context.WithTimeout(ctx, opTimeout)
	cl, err := pushclient.Dial(dctx, l.gateway)
	cancel()
	if err != nil {
		return false, err
	}
	// Close says goodbye with a normal closure; after an error the connection is
	// already gone and there is nobody to tell.
	defer func() { _ = cl.Close() }()

	var channels []string
	if l.state.ChannelID != "" {
		channels = []string{l.state.ChannelID}
	}
	hctx, cancel := context.WithTimeout(ctx, opTimeout)
	reply, err := cl.Hello(hctx, l.state.UAID, channels)
	cancel()
	if err != nil {
		return false, err
	}
	if err := l.subscribe(ctx, cl, reply.UAID); err != nil {
		return false, err
	}
	if err := l.printSubscription(); err != nil {
		return true, err
	}
	for l.count == 0 || l.received < l.count {
		n, err := l.next(ctx, cl)
		if err != nil {
			if cl.CloseStatus() == mozproto.CloseTakenOver {
				return true, fatal(errors.New("another connection took this user agent over: is a second listener using the same state file?"))
			}
			return true, err
		}
		if err := l.handle(ctx, cl, n); err != nil {
			return true, err
		}
	}
	return true, nil
}

// subscribe resumes the stored subscription when the gateway knows the stored uaid,
// and otherwise registers a new one and stores it.
func (l *listener) subscribe(ctx context.Context, cl *pushclient.Client, uaid string) error {
	old := l.state
	if uaid == old.UAID && old.ChannelID != "" && old.Key == l.key {
		l.log.Info("resumed subscription", "uaid", uaid, "channel_id", old.ChannelID)
		return nil
	}
	priv, auth, err := ece.GenerateKeys()
	if err != nil {
		return fatal(err)
	}
	ch := ids.NewChannelID().String()
	rctx, cancel := context.WithTimeout(ctx, opTimeout)
	r, err := cl.Register(rctx, ch, l.key)
	cancel()
	if err != nil {
		return err
	}
	if r.Status != http.StatusOK || r.PushEndpoint == "" {
		return fatal(fmt.Errorf("gateway refused the subscription: status %d (is -key a base64url P-256 public key?)", r.Status))
	}
	next := listenerState{
		UAID:       uaid,
		ChannelID:  ch,
		PrivateKey: base64.RawURLEncoding.EncodeToString(priv.Bytes()),
		Auth:       base64.RawURLEncoding.EncodeToString(auth),
		Endpoint:   r.PushEndpoint,
		Key:        l.key,
	}
	if err := saveState(l.statePath, next); err != nil {
		return fatal(err)
	}
	l.state, l.priv, l.auth = next, priv, auth
	l.log.Info("subscribed", "uaid", uaid, "channel_id", ch, "state", l.statePath)
	if old.UAID == uaid && old.ChannelID != "" {
		// Same user agent, another -key: the old subscription is no longer wanted.
		uctx, cancel := context.WithTimeout(ctx, opTimeout)
		_, err := cl.Unregister(uctx, old.ChannelID)
		cancel()
		if err != nil {
			return err
		}
	}
	return nil
}

// printSubscription prints the subscription JSON, unless it was the last printed.
func (l *listener) printSubscription() error {
	sub := sender.Subscription{Endpoint: l.state.Endpoint, Keys: sender.Keys{
		P256dh: base64.RawURLEncoding.EncodeToString(l.priv.PublicKey().Bytes()),
		Auth:   l.state.Auth,
	}}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // print the endpoint as it is
	if err := enc.Encode(sub); err != nil {
		return fatal(fmt.Errorf("encode subscription: %w", err))
	}
	if buf.String() == l.printed {
		return nil
	}
	// The file first: whoever reads the printed line may go straight to the file.
	if l.subPath != "" {
		if err := writePrivate(l.subPath, buf.Bytes()); err != nil {
			return fatal(fmt.Errorf("write subscription: %w", err))
		}
	}
	if _, err := l.e.stdout.Write(buf.Bytes()); err != nil {
		return fatal(fmt.Errorf("write subscription: %w", err))
	}
	l.printed = buf.String()
	return nil
}

// next waits for the next notification, pinging the gateway while none comes.
func (l *listener) next(ctx context.Context, cl *pushclient.Client) (mozproto.Notification, error) {
	for {
		nctx, cancel := context.WithTimeout(ctx, idlePing)
		n, err := cl.Next(nctx)
		cancel()
		if err == nil || ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
			return n, err
		}
		pctx, cancel := context.WithTimeout(ctx, opTimeout)
		err = cl.Ping(pctx)
		cancel()
		if err != nil {
			return n, fmt.Errorf("ping: %w", err)
		}
	}
}

// handle prints one notification's plaintext and acknowledges it. A notification
// that cannot be decrypted is reported and acknowledged all the same: it would
// only come back.
func (l *listener) handle(ctx context.Context, cl *pushclient.Client, n mozproto.Notification) error {
	text, err := l.decrypt(n)
	if err != nil {
		l.log.Error("dropped a notification", "channel_id", n.ChannelID, "version", n.Version, "err", err)
	} else {
		if _, err := fmt.Fprintf(l.e.stdout, "%s\n", text); err != nil {
			return fatal(fmt.Errorf("write message: %w", err))
		}
		l.received++
	}
	// Acknowledge even once ctx is done: the message was printed, and the ack goes
	// out before the close frame, so it is not delivered again.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opTimeout)
	defer cancel()
	if err := cl.Ack(actx, n); err != nil {
		return fmt.Errorf("ack: %w", err)
	}
	return nil
}

// decrypt returns a notification's plaintext.
func (l *listener) decrypt(n mozproto.Notification) ([]byte, error) {
	if !strings.EqualFold(n.ChannelID, l.state.ChannelID) {
		return nil, fmt.Errorf("notification for channel %s, not this listener's", n.ChannelID)
	}
	if n.Data == "" {
		return nil, nil // a push without data
	}
	if enc := n.Headers["encoding"]; enc != "aes128gcm" {
		return nil, fmt.Errorf("content encoding %q is not aes128gcm", enc)
	}
	body, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(n.Data, "="))
	if err != nil {
		return nil, fmt.Errorf("data is not base64url: %w", err)
	}
	text, err := ece.Decrypt(body, l.priv, l.auth)
	if err != nil {
		return nil, fmt.Errorf("decrypt: %w", err)
	}
	return text, nil
}

// load reads the state file; a missing one means a new user agent.
func (l *listener) load() error {
	b, err := os.ReadFile(l.statePath)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read state: %w", err)
	}
	bad := func(err error) error {
		return fmt.Errorf("state file %s: %w (remove it to start with a new subscription)", l.statePath, err)
	}
	var st listenerState
	if err := json.Unmarshal(b, &st); err != nil {
		return bad(err)
	}
	if st.UAID == "" || st.ChannelID == "" || st.Endpoint == "" {
		return bad(errors.New("uaid, channelID or endpoint missing"))
	}
	raw, err := base64.RawURLEncoding.DecodeString(st.PrivateKey)
	if err != nil {
		return bad(fmt.Errorf("privateKey: %w", err))
	}
	priv, err := ecdh.P256().NewPrivateKey(raw)
	if err != nil {
		return bad(fmt.Errorf("privateKey: %w", err))
	}
	auth, err := base64.RawURLEncoding.DecodeString(st.Auth)
	if err != nil || len(auth) != ece.AuthSecretSize {
		return bad(errors.New("auth is not a base64url 16-byte secret"))
	}
	l.state, l.priv, l.auth = st, priv, auth
	return nil
}

// saveState writes the state file.
func saveState(path string, st listenerState) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	if err := writePrivate(path, append(b, '\n')); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	return nil
}

// writePrivate writes a file readable by its owner only, creating its directory. It
// writes a temporary file and renames it, so that a crash leaves the old content or
// the new, never half of one.
func writePrivate(path string, b []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*") // created with mode 0600
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp) // best effort; the error below is what matters
		return err
	}
	return nil
}

// expandHome replaces a leading ~/ with the home directory.
func expandHome(path string) (string, error) {
	if path != "~" && !strings.HasPrefix(path, "~/") {
		return path, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("-state %s: %w", path, err)
	}
	return filepath.Join(home, path[1:]), nil
}
