// Package session implements the user-agent side of Herald, whatever the transport:
// hello (identify, reconcile, claim ownership, resume), register, unregister, ack,
// nack, ping, broadcasts, the urgency bar, and the delivery of waiting and live
// messages in order. A transport (WebSocket today) only frames what a Session says
// and does, and keeps the clocks that are about the socket.
package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/herald-push/herald/pkg/ids"
	"github.com/herald-push/herald/pkg/lease"
	"github.com/herald-push/herald/pkg/queue"
	"github.com/herald-push/herald/pkg/store"
	"github.com/herald-push/herald/pkg/token"
	"github.com/herald-push/herald/services/gateway/internal/registry"
)

// ErrProtocol is returned for a frame the protocol does not allow where it came: the
// transport closes the connection with mozproto.CloseProtocolError.
var ErrProtocol = errors.New("protocol error")

// Store is what sessions need of Postgres.
type Store interface {
	CreateUserAgent(ctx context.Context, u ids.UAID) error
	Connect(ctx context.Context, u ids.UAID, now time.Time) ([]store.Subscription, error)
	Subscribe(ctx context.Context, sub store.Subscription) error
	Unsubscribe(ctx context.Context, u ids.UAID, ch ids.ChannelID) error
	DeleteUserAgent(ctx context.Context, u ids.UAID) error
}

// Queue is what sessions need of the message queues.
type Queue interface {
	Range(ctx context.Context, u ids.UAID, after string, count int64, now time.Time) ([]queue.Entry, error)
	Delete(ctx context.Context, u ids.UAID, entryIDs ...string) (int64, error)
	Clear(ctx context.Context, u ids.UAID) error
	Idle(ctx context.Context, u ids.UAID) (bool, error)
}

// Changes records subscription changes where the router sees them, so that a
// subscription ingest cached (for less than queue.ChangeMemory) gets no message
// through once it was unregistered, or registered again with another key.
type Changes interface {
	Subscribed(ctx context.Context, u ids.UAID, ch ids.ChannelID, key []byte) error
	Unsubscribed(ctx context.Context, u ids.UAID, chs ...ids.ChannelID) error
}

// Leases is what sessions need of the ownership records.
type Leases interface {
	Claim(ctx context.Context, u ids.UAID, gateway, addr string) (uint64, lease.Owner, error)
	Release(ctx context.Context, u ids.UAID, epoch uint64) error
}

// ErrOwnerGone is what an Evictor's error wraps when the previous owner's gateway
// cannot be reached: it died or left, and its connections with it.
var ErrOwnerGone = errors.New("the previous owner's gateway is unreachable")

// Evictor asks another gateway to close a user agent's connection that a newer one
// took over; its error wraps ErrOwnerGone when that gateway cannot be reached.
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
	// MinPingInterval is the least time between two protocol pings of a user agent;
	// a ping sooner is told so, and a second one closes the connection.
	MinPingInterval time.Duration
	// Broadcasts are the broadcasts Herald defines, by id, with their current
	// versions. Empty today: user agents asking for any are told it is unknown.
	Broadcasts map[string]string
}

// Hub creates sessions and finds them by uaid. It is shared by every connection of
// a gateway and by its gRPC server.
type Hub struct {
	cfg      Config
	store    Store
	queue    Queue
	leases   Leases
	evictor  Evictor
	changes  Changes
	tokens   *token.Codec
	log      *slog.Logger
	sessions *registry.Registry[*Session]
	now      func() time.Time
	metrics  *hubMetrics
}

// NewHub returns a Hub.
func NewHub(cfg Config, st Store, q Queue, l Leases, ev Evictor, tokens *token.Codec, log *slog.Logger) (*Hub, error) {
	if cfg.DrainPage < 1 {
		cfg.DrainPage = 100
	}
	m, err := newHubMetrics()
	if err != nil {
		return nil, fmt.Errorf("session metrics: %w", err)
	}
	return &Hub{
		cfg: cfg, store: st, queue: q, leases: l, evictor: ev, tokens: tokens, log: log,
		sessions: registry.New[*Session](),
		now:      time.Now,
		metrics:  m,
	}, nil
}

// RecordChanges makes sessions record their subscription changes in c. Call it
// before the first session starts. Without it nothing is recorded, which is right
// only when ingest does not cache subscriptions (tests of other parts).
func (h *Hub) RecordChanges(c Changes) { h.changes = c }

// subscribed and unsubscribed record a change, when the hub records them.
func (h *Hub) subscribed(ctx context.Context, u ids.UAID, ch ids.ChannelID, key []byte) error {
	if h.changes == nil {
		return nil
	}
	return h.changes.Subscribed(ctx, u, ch, key)
}

func (h *Hub) unsubscribed(ctx context.Context, u ids.UAID, chs ...ids.ChannelID) error {
	if h.changes == nil {
		return nil
	}
	return h.changes.Unsubscribed(ctx, u, chs...)
}

// Len returns the number of identified sessions.
func (h *Hub) Len() int { return h.sessions.Len() }

// Lookup returns the session of u, if it is connected here.
func (h *Hub) Lookup(u ids.UAID) (*Session, bool) { return h.sessions.Get(u) }

// Each calls f for every session.
func (h *Hub) Each(f func(*Session)) { h.sessions.Each(func(_ ids.UAID, s *Session) { f(s) }) }
