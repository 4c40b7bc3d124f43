package main

import (
	"context"
	"crypto/ecdh"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/herald-push/herald/pkg/ece"
	"github.com/herald-push/herald/pkg/ids"
	"github.com/herald-push/herald/pkg/mozproto"
	"github.com/herald-push/herald/pkg/pushclient"
	"github.com/herald-push/herald/pkg/sender"
)

// agent is one connected user agent with one subscription.
type agent struct {
	cl        *pushclient.Client
	priv      *ecdh.PrivateKey
	auth      []byte
	sub       sender.Subscription
	uaid      string
	channelID string
	// secrets holds the ECDH secrets of the messages -prepare built for this user
	// agent: one ece.Secrets for a whole run's messages would pass its bound (see
	// tally.secretsFor).
	secrets ece.Secrets
}

// connectRetries counts connections that had to be tried again.
var connectRetries atomic.Int64

// connectAll connects n user agents, spread over the gateways and source addresses,
// at most rate new connections per second.
func connectAll(ctx context.Context, cfg config) ([]*agent, error) {
	clients := make([]*http.Client, len(cfg.sources))
	for i, src := range cfg.sources {
		clients[i] = pushclient.SourceClient(src)
	}
	agents := make([]*agent, cfg.conns)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(64)
	tick := time.NewTicker(time.Second / time.Duration(max(cfg.connectRate, 1)))
	defer tick.Stop()
	for i := range agents {
		select {
		case <-tick.C:
		case <-gctx.Done():
			return nil, g.Wait()
		}
		g.Go(func() error {
			// A user agent the gateway turned away (1011: its storage was too slow)
			// tries again after a while, as browsers do; the retries are reported.
			for attempt := 0; ; attempt++ {
				a, err := connectOne(gctx, cfg.gateways[i%len(cfg.gateways)], clients[i%len(clients)])
				if err == nil {
					agents[i] = a
					return nil
				}
				if attempt == 3 || gctx.Err() != nil {
					return fmt.Errorf("user agent %d: %w", i, err)
				}
				connectRetries.Add(1)
				time.Sleep(time.Duration(attempt+1) * time.Second)
			}
		})
	}
	return agents, g.Wait()
}

func connectOne(ctx context.Context, url string, hc *http.Client) (*agent, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	priv, auth, err := ece.GenerateKeys()
	if err != nil {
		return nil, err
	}
	cl, err := pushclient.DialWith(ctx, url, hc)
	if err != nil {
		return nil, err
	}
	hello, err := cl.Hello(ctx, "", nil)
	if err != nil {
		return nil, err
	}
	channelID := ids.NewChannelID().String()
	reg, err := cl.Register(ctx, channelID, "")
	if err != nil {
		return nil, err
	}
	if reg.Status != http.StatusOK {
		return nil, fmt.Errorf("register: status %d", reg.Status)
	}
	return &agent{cl: cl, priv: priv, auth: auth, uaid: hello.UAID, channelID: channelID, sub: sender.Subscription{
		Endpoint: reg.PushEndpoint,
		Keys: sender.Keys{
			P256dh: base64.RawURLEncoding.EncodeToString(priv.PublicKey().Bytes()),
			Auth:   base64.RawURLEncoding.EncodeToString(auth),
		},
	}}, nil
}

// payloadHeader is the start of every plaintext: the message's sequence number and
// the time it was sent, in Unix nanoseconds (zero in a body -prepare built: its send
// time is in tally.sentAt).
const payloadHeader = 16

func makePayload(seq uint64, size int, now time.Time) []byte {
	b := make([]byte, max(size, payloadHeader))
	binary.BigEndian.PutUint64(b[0:8], seq)
	binary.BigEndian.PutUint64(b[8:16], uint64(now.UnixNano()))
	return b
}

// tally counts what arrived.
type tally struct {
	// seen[seq] counts the copies of message seq that arrived.
	seen      []atomic.Uint32
	received  atomic.Int64
	foreign   atomic.Int64
	decryptKO atomic.Int64
	// secrets holds the ECDH secret of each message the load tool sent, so that
	// receiving it costs no second scalar multiplication (see ece.Secrets): the
	// load tool spends its CPU on Herald, not on computing a secret twice.
	secrets ece.Secrets
	// sentAt[seq] is when message seq was posted, in Unix nanoseconds, in a -prepare
	// run (nil otherwise): its body was built before the run, so the time in its
	// plaintext is not its send time.
	sentAt []atomic.Int64

	mu        sync.Mutex
	measuring bool
	latencies []time.Duration
	// answered are the times from each POST to ingest's answer, in the window.
	answered []time.Duration
}

// receive records each of a's notifications as it arrives, on the goroutine that
// reads a's connection, and acknowledges it at once, as Firefox does. A goroutine
// per user agent taking them from the client instead would add a hand-off, and its
// wake, to every message: the load tool shares the cores with Herald.
func (a *agent) receive(t *tally) {
	a.cl.OnNotification(func(n mozproto.Notification) {
		t.record(a, n, time.Now())
		// An ack fails only when the connection ends (the run is over, or the
		// gateway closed it); what was not acknowledged is sent again, and counted
		// as a duplicate.
		_ = a.cl.Ack(context.Background(), n)
	})
}

// answer records how long ingest took to answer a POST.
func (t *tally) answer(d time.Duration) {
	t.mu.Lock()
	if t.measuring {
		t.answered = append(t.answered, d)
	}
	t.mu.Unlock()
}

// record counts notification n of agent a, received at now, and says whether it was
// the first copy of its message to arrive.
func (t *tally) record(a *agent, n mozproto.Notification, now time.Time) bool {
	body, err := base64.RawURLEncoding.DecodeString(n.Data)
	if err != nil {
		t.decryptKO.Add(1)
		return false
	}
	plain, err := t.secretsFor(a).Decrypt(body, a.priv, a.auth)
	if err != nil || len(plain) < payloadHeader {
		// Sealed for another user agent's keys: it reached the wrong one.
		t.foreign.Add(1)
		return false
	}
	seq := binary.BigEndian.Uint64(plain[0:8])
	if seq >= uint64(len(t.seen)) {
		t.decryptKO.Add(1)
		return false
	}
	sent := time.Unix(0, int64(binary.BigEndian.Uint64(plain[8:16])))
	if t.sentAt != nil {
		sent = time.Unix(0, t.sentAt[seq].Load())
	}
	first := t.seen[seq].Add(1) == 1
	t.received.Add(1)
	t.mu.Lock()
	if t.measuring {
		t.latencies = append(t.latencies, now.Sub(sent))
	}
	t.mu.Unlock()
	return first
}

// secretsFor returns the ece.Secrets holding the secrets of a's messages. Sending
// while encrypting, the secrets held at once are those of the messages in flight,
// and one ece.Secrets serves them all; -prepare remembers every message's secret
// before the run, which one ece.Secrets would stop doing past its bound (2^18), so
// each user agent keeps its own.
func (t *tally) secretsFor(a *agent) *ece.Secrets {
	if t.sentAt != nil {
		return &a.secrets
	}
	return &t.secrets
}
