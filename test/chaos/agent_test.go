package chaos

import (
	"context"
	"crypto/ecdh"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/herald-push/herald/pkg/ece"
	"github.com/herald-push/herald/pkg/ids"
	"github.com/herald-push/herald/pkg/mozproto"
	"github.com/herald-push/herald/pkg/pushclient"
	"github.com/herald-push/herald/pkg/sender"
)

// gateways is the set of gateway URLs user agents may connect to now.
type gateways struct {
	mu   sync.Mutex
	urls []string
}

func (g *gateways) pick() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.urls) == 0 {
		return ""
	}
	return g.urls[rand.IntN(len(g.urls))]
}

func (g *gateways) set(urls []string) {
	g.mu.Lock()
	g.urls = append([]string(nil), urls...)
	g.mu.Unlock()
}

// ledger records what was sent to whom and what arrived where.
type ledger struct {
	// target[seq] is the index of the user agent message seq was sent to, +1;
	// 0 for a message ingest did not answer with 201.
	target []atomic.Int32
	// copies[seq] counts the copies of message seq that arrived at its user agent.
	copies []atomic.Int32
	// misrouted counts messages that reached a user agent they were not for.
	misrouted atomic.Int64
}

// agent is one user agent that keeps reconnecting, to any live gateway, with the
// same uaid, until its context ends.
type agent struct {
	index     int
	priv      *ecdh.PrivateKey
	auth      []byte
	channelID string
	uaid      string
	endpoint  atomic.Pointer[string]
	ready     chan struct{}
	readyOnce sync.Once
	connects  atomic.Int64
}

func newAgent(index int) (*agent, error) {
	priv, auth, err := ece.GenerateKeys()
	if err != nil {
		return nil, err
	}
	return &agent{index: index, priv: priv, auth: auth, channelID: ids.NewChannelID().String(), ready: make(chan struct{})}, nil
}

func (a *agent) subscription(ingestBase string) (sender.Subscription, bool) {
	ep := a.endpoint.Load()
	if ep == nil {
		return sender.Subscription{}, false
	}
	u, err := url.Parse(*ep)
	if err != nil {
		return sender.Subscription{}, false
	}
	// Every ingest accepts every endpoint: the token is what matters.
	return sender.Subscription{
		Endpoint: ingestBase + u.Path,
		Keys: sender.Keys{
			P256dh: base64.RawURLEncoding.EncodeToString(a.priv.PublicKey().Bytes()),
			Auth:   base64.RawURLEncoding.EncodeToString(a.auth),
		},
	}, true
}

// run connects and receives until ctx ends.
func (a *agent) run(ctx context.Context, gws *gateways, l *ledger) {
	backoff := 20 * time.Millisecond
	for ctx.Err() == nil {
		err := a.session(ctx, gws.pick(), l)
		if ctx.Err() != nil {
			return
		}
		_ = err // a dropped connection is what this test is about: reconnect
		t := time.NewTimer(backoff + time.Duration(rand.Int64N(int64(backoff))))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
		backoff = min(backoff*2, 500*time.Millisecond)
	}
}

func (a *agent) session(ctx context.Context, gw string, l *ledger) error {
	if gw == "" {
		return errors.New("no gateway")
	}
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	cl, err := pushclient.Dial(dctx, gw)
	cancel()
	if err != nil {
		return err
	}
	defer cl.Close()
	a.connects.Add(1)
	hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	var chids []string
	if a.uaid != "" {
		chids = []string{a.channelID}
	}
	hello, err := cl.Hello(hctx, a.uaid, chids)
	if err == nil && a.uaid == "" {
		var reg mozproto.RegisterReply
		reg, err = cl.Register(hctx, a.channelID, "")
		if err == nil && reg.Status == 200 {
			a.uaid = hello.UAID
			a.endpoint.Store(&reg.PushEndpoint)
		} else if err == nil {
			err = errors.New("register refused")
		}
	} else if err == nil && hello.UAID != a.uaid {
		err = errors.New("the gateway gave a new uaid: the subscription was lost")
	}
	cancel()
	if err != nil {
		return err
	}
	a.readyOnce.Do(func() { close(a.ready) })
	for {
		n, err := cl.Next(ctx)
		if err != nil {
			return err
		}
		batch := []mozproto.Notification{n}
		for len(batch) < 32 {
			more, ok := cl.TryNext()
			if !ok {
				break
			}
			batch = append(batch, more)
		}
		for _, n := range batch {
			a.record(n, l)
		}
		if err := cl.Ack(ctx, batch...); err != nil {
			return err
		}
	}
}

func (a *agent) record(n mozproto.Notification, l *ledger) {
	body, err := base64.RawURLEncoding.DecodeString(n.Data)
	if err != nil {
		l.misrouted.Add(1)
		return
	}
	plain, err := ece.Decrypt(body, a.priv, a.auth)
	if err != nil || len(plain) < 8 {
		// Sealed for another user agent's keys.
		l.misrouted.Add(1)
		return
	}
	seq := binary.BigEndian.Uint64(plain)
	if seq >= uint64(len(l.copies)) || int(binary.BigEndian.Uint32(plain[8:])) != a.index {
		l.misrouted.Add(1)
		return
	}
	l.copies[seq].Add(1)
}

func payload(seq uint64, agent int) []byte {
	b := make([]byte, 12)
	binary.BigEndian.PutUint64(b, seq)
	binary.BigEndian.PutUint32(b[8:], uint32(agent))
	return b
}
