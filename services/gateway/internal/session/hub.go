// Package session implements the user-agent side of Herald, whatever the transport:
// hello (identify, claim ownership, resume), register, unregister, delivery of waiting
// and live messages in order, acknowledgement and takeover. A transport (WebSocket
// today) only frames what a Session says and does.
package session

import (
	"context"
	"crypto/ecdh"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/herald-push/herald/pkg/ids"
	"github.com/herald-push/herald/pkg/lease"
	"github.com/herald-push/herald/pkg/mozproto"
	"github.com/herald-push/herald/pkg/queue"
	"github.com/herald-push/herald/pkg/store"
	"github.com/herald-push/herald/pkg/token"
	heraldv1 "github.com/herald-push/herald/proto/herald/v1"
	"github.com/herald-push/herald/services/gateway/internal/registry"
)

// Store is what sessions need of Postgres.
type Store interface {
	CreateUserAgent(ctx context.Context, u ids.UAID) error
	Connect(ctx context.Context, u ids.UAID, now time.Time) ([]store.Subscription, error)
	Subscribe(ctx context.Context, sub store.Subscription) error
	Unsubscribe(ctx context.Context, u ids.UAID, ch ids.ChannelID) error
}

// Queue is what sessions need of the message queues.
type Queue interface {
	Range(ctx context.Context, u ids.UAID, after string, count int64, now time.Time) ([]queue.Entry, error)
	Delete(ctx context.Context, u ids.UAID, entryIDs ...string) (int64, error)
}

// Leases is what sessions need of the ownership records.
type Leases interface {
	Claim(ctx context.Context, u ids.UAID, gateway, addr string) (uint64, lease.Owner, error)
	Release(ctx context.Context, u ids.UAID, epoch uint64) error
}

// Evictor asks another gateway to close a user agent's connection that a newer one
// took over.
type Evictor interface {
	Evict(ctx context.Context, owner lease.Owner, u ids.UAID, epoch uint64) error
}

// Config holds the settings of sessions.
type Config struct {
	// EndpointURL is the public base URL of ingest, in front of /wpush/v2/<token>.
	EndpointURL string
	// GatewayID and GatewayAddr identify this gateway in ownership records.
	GatewayID   string
	GatewayAddr string
	// MaxChannels bounds the subscriptions of one user agent.
	MaxChannels int
	// InboxSize bounds the live messages waiting to be written to one connection.
	InboxSize int
	// DrainPage is how many waiting messages are read from the queue at a time.
	DrainPage int64
}

// Hub creates sessions and finds them by uaid. It is shared by every connection of
// a gateway and by its gRPC server.
type Hub struct {
	cfg      Config
	store    Store
	queue    Queue
	leases   Leases
	evictor  Evictor
	tokens   *token.Codec
	log      *slog.Logger
	sessions *registry.Registry[*Session]
	now      func() time.Time
}

// NewHub returns a Hub.
func NewHub(cfg Config, st Store, q Queue, l Leases, ev Evictor, tokens *token.Codec, log *slog.Logger) *Hub {
	return &Hub{
		cfg: cfg, store: st, queue: q, leases: l, evictor: ev, tokens: tokens, log: log,
		sessions: registry.New[*Session](),
		now:      time.Now,
	}
}

// Len returns the number of identified sessions.
func (h *Hub) Len() int { return h.sessions.Len() }

// Lookup returns the session of u, if it is connected here.
func (h *Hub) Lookup(u ids.UAID) (*Session, bool) { return h.sessions.Get(u) }

// Each calls f for every session.
func (h *Hub) Each(f func(*Session)) { h.sessions.Each(func(_ ids.UAID, s *Session) { f(s) }) }

// Hello identifies a user agent: it resumes a known uaid or assigns a new one, claims
// ownership of it, and registers the session here. A previous connection of the same
// uaid, here or on another gateway, is told to close.
func (h *Hub) Hello(ctx context.Context, m mozproto.ClientMessage) (*Session, mozproto.HelloReply, error) {
	now := h.now()
	var (
		u    ids.UAID
		subs []store.Subscription
		err  error
	)
	known := false
	if m.UAID != "" {
		if u, err = ids.ParseUAID(m.UAID); err == nil {
			subs, err = h.store.Connect(ctx, u, now)
			switch {
			case err == nil:
				known = true
			case !errors.Is(err, store.ErrNotFound):
				return nil, mozproto.HelloReply{}, fmt.Errorf("hello: %w", err)
			}
		}
	}
	if !known {
		u = ids.NewUAID()
		if err := h.store.CreateUserAgent(ctx, u); err != nil {
			return nil, mozproto.HelloReply{}, fmt.Errorf("hello: %w", err)
		}
	}
	s := &Session{
		hub:      h,
		uaid:     u,
		channels: make(map[ids.ChannelID][]byte, len(subs)),
		inbox:    make(chan *heraldv1.Message, h.cfg.InboxSize),
		resync:   make(chan struct{}, 1),
		kicked:   make(chan struct{}),
	}
	for _, sub := range subs {
		s.channels[sub.ChannelID] = sub.AppServerKey
	}
	// Claim before registering locally: a router that reads the new epoch and calls
	// before the session is registered gets "not accepted" and the message waits in
	// the queue, where the first Drain finds it.
	epoch, prev, err := h.leases.Claim(ctx, u, h.cfg.GatewayID, h.cfg.GatewayAddr)
	if err != nil {
		return nil, mozproto.HelloReply{}, fmt.Errorf("hello: %w", err)
	}
	s.epoch = epoch
	if old, replaced := h.sessions.Put(u, s); replaced {
		old.Kick(mozproto.CloseTakenOver)
	}
	if prev.Gateway != "" && prev.Gateway != h.cfg.GatewayID {
		// Best effort: the other gateway also finds out when its lease renewal fails.
		if err := h.evictor.Evict(ctx, prev, u, epoch); err != nil {
			h.log.Warn("evict previous connection", "uaid", u.String(), "gateway", prev.Gateway, "err", err)
		}
	}
	reply := mozproto.HelloReply{
		Type:       mozproto.TypeHello,
		UAID:       u.String(),
		Status:     http.StatusOK,
		UseWebPush: true,
		Broadcasts: map[string]string{},
	}
	return s, reply, nil
}

// parseAppServerKey checks an application server key (RFC 8292 §3.2): an
// uncompressed P-256 point in base64url, padded or not.
func parseAppServerKey(s string) ([]byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(trimPadding(s))
	if err != nil {
		// Some clients send standard base64.
		if b, err = base64.RawStdEncoding.DecodeString(trimPadding(s)); err != nil {
			return nil, errors.New("key is not base64url")
		}
	}
	if _, err := ecdh.P256().NewPublicKey(b); err != nil {
		return nil, errors.New("key is not a P-256 public key")
	}
	return b, nil
}

func trimPadding(s string) string {
	for len(s) > 0 && s[len(s)-1] == '=' {
		s = s[:len(s)-1]
	}
	return s
}
