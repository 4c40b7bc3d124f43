package session

import (
	"context"
	"crypto/ecdh"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/herald-push/herald/pkg/ids"
	"github.com/herald-push/herald/pkg/mozproto"
	"github.com/herald-push/herald/pkg/store"
	heraldv1 "github.com/herald-push/herald/proto/herald/v1"
)

// Session is an identified user agent on this gateway. Its methods other than Offer,
// Kick, Kicked, KickReason, Epoch and UAID must not be called concurrently: the
// connection calls them one at a time, from whichever goroutine handles its events.
type Session struct {
	hub   *Hub
	uaid  ids.UAID
	epoch uint64
	// stored says the uaid is in Postgres; a new one is stored at its first register.
	stored bool

	// channels maps each subscribed channel to its application server key (nil if
	// unrestricted).
	channels map[ids.ChannelID][]byte
	// broadcasts are the ids of broadcasts Herald defines that the user agent follows.
	broadcasts map[string]struct{}
	// read is the queue entry id the drains got to: every stored message at or
	// before it was dealt with on this connection (sent, held below the urgency
	// bar, or dropped), and a drain reads after it. A live message at or before it
	// is not sent again.
	read string
	// ahead are the stored messages after read sent on this connection (live, or
	// released from held) and not acknowledged yet: a drain skips them. A live
	// message newer than one not yet seen says nothing of the older one: two
	// routers' batches for one user agent store in turn and deliver concurrently,
	// so their calls come in either order. The older one is sent when its own
	// live delivery comes, or when a drain reaches it.
	ahead map[string]struct{}
	// cursor is the queue entry id of the newest stored message this connection has
	// dealt with; the held messages are at or before it.
	cursor string
	// held are the stored messages that the urgency bar kept back; they are sent
	// when the bar is lowered.
	held map[string]struct{}
	// release is the state of a pass over the queue that sends held messages.
	release *releaseScan
	// minUrgency is the urgency bar, a heraldv1.Urgency; read by Offer.
	minUrgency atomic.Int32

	lastPing time.Time
	pingWarn bool

	// inflight are the stored messages sent and not yet acknowledged (at most
	// maxTracked), for the delivery latency and the ack span.
	inflight map[string]sentMessage
	// undeleted are acknowledged messages whose delete failed (Redis unreachable), at
	// most maxUndeleted: deleted with the next ack, or when the session closes. They
	// stay in ahead meanwhile, so that no drain sends them again on this connection.
	undeleted []string

	inbox  chan *heraldv1.Message
	resync chan struct{}
	// wake tells the connection that Inbox, Resync or Kicked has something; it
	// must not block.
	wake func()

	kickOnce   sync.Once
	kicked     chan struct{}
	kickReason int
}

// Result is what a frame asks of the transport, in order: send Replies, then drain
// the queue again if Drain is set, then close with Close if it is not zero.
type Result struct {
	Replies []any
	Drain   bool
	Close   int
}

// UAID returns the session's user agent id.
func (s *Session) UAID() ids.UAID { return s.uaid }

// Epoch returns the ownership epoch this session claimed.
func (s *Session) Epoch() uint64 { return s.epoch }

// Inbox delivers live messages offered by routers. The session's wake function is
// called after each, as after a Resync or a Kick: the connection waits on no
// channel, and learns of them that way.
func (s *Session) Inbox() <-chan *heraldv1.Message { return s.inbox }

// Resync fires when live messages were dropped for lack of room, and the transport
// must Drain the queue again.
func (s *Session) Resync() <-chan struct{} { return s.resync }

// Kicked is closed when the session must end; KickReason says why.
func (s *Session) Kicked() <-chan struct{} { return s.kicked }

// KickReason returns the close code given to Kick.
func (s *Session) KickReason() int { return s.kickReason }

// Kick asks the transport to close the connection with the given close code.
func (s *Session) Kick(code int) {
	s.kickOnce.Do(func() {
		s.kickReason = code
		close(s.kicked)
	})
	s.wake()
}

// Offer hands a live message to the session. It never blocks: when the inbox is
// full, a stored message is left to the next Drain and Offer still succeeds; a
// message that was not stored (TTL 0) is refused, and so is one below the urgency
// bar, which cannot wait.
func (s *Session) Offer(m *heraldv1.Message) bool {
	if !m.Stored && urgencyOf(m.Urgency) < heraldv1.Urgency(s.minUrgency.Load()) {
		return false
	}
	select {
	case s.inbox <- m:
		s.wake()
		return true
	default:
	}
	if !m.Stored {
		return false
	}
	s.AskResync()
	return true
}

// AskResync asks the connection to Drain the queue again: live messages were left in
// it for lack of room, or its lease expired and is held again, so that messages
// stored meanwhile were offered to no connection. It never blocks: one pending
// resync is enough.
func (s *Session) AskResync() {
	select {
	case s.resync <- struct{}{}:
		s.wake()
	default: // a resync is already pending
	}
}

// Idle reports whether the user agent has nothing to receive: no subscription and no
// broadcast Herald defines. Such a connection may be closed with
// mozproto.CloseBackoff.
func (s *Session) Idle() bool { return len(s.channels) == 0 && len(s.broadcasts) == 0 }

// Handle answers one frame of an identified user agent.
func (s *Session) Handle(ctx context.Context, m mozproto.ClientMessage) (Result, error) {
	var (
		r     Result
		reply any
	)
	switch m.Type {
	case mozproto.TypeHello:
		return r, fmt.Errorf("%w: second hello", ErrProtocol)
	case mozproto.TypeRegister:
		reply = s.Register(ctx, m)
	case mozproto.TypeUnregister:
		reply = s.Unregister(ctx, m)
	case mozproto.TypeAck:
		s.Ack(ctx, m)
	case mozproto.TypeNack:
		s.Nack(m)
	case mozproto.TypePing:
		reply, r.Close = s.Ping()
	case mozproto.TypeBroadcastSubscribe:
		if b := s.followBroadcasts(m.Broadcasts); len(b) > 0 {
			reply = mozproto.BroadcastReply{Type: mozproto.TypeBroadcast, Broadcasts: b}
		}
	case mozproto.TypeUrgency:
		reply, r.Drain = s.SetUrgency(m.Min)
	default:
		return r, fmt.Errorf("%w: unexpected %s", ErrProtocol, m.Type)
	}
	if reply != nil {
		r.Replies = append(r.Replies, reply)
	}
	return r, nil
}

// Register subscribes a channel and returns its push endpoint. Statuses: 200; 400
// for a channel id that is not a lowercase UUID or a key that is not a P-256 public
// key; 409 for a channel already registered with another key; 413 past the channel
// limit; 500 when Postgres or Redis cannot be reached, which fails the page's
// subscribe and keeps the connection. Registering a channel again with the same key
// answers 200 and an endpoint for the same subscription, since Firefox resends a
// register whose reply it lost.
func (s *Session) Register(ctx context.Context, m mozproto.ClientMessage) mozproto.RegisterReply {
	reply := mozproto.RegisterReply{Type: mozproto.TypeRegister, ChannelID: m.ChannelID}
	ch, ok := parseCanonicalChannelID(m.ChannelID)
	if !ok {
		reply.Status = http.StatusBadRequest
		return reply
	}
	var key []byte
	if m.Key != "" {
		var err error
		if key, err = parseAppServerKey(m.Key); err != nil {
			reply.Status = http.StatusBadRequest
			return reply
		}
	}
	if old, exists := s.channels[ch]; exists {
		if string(old) != string(key) {
			reply.Status = http.StatusConflict
			return reply
		}
	} else if len(s.channels) >= s.hub.cfg.MaxChannels {
		reply.Status = http.StatusRequestEntityTooLarge
		return reply
	}
	if !s.stored {
		if err := s.hub.store.CreateUserAgent(ctx, s.uaid); err != nil {
			reply.Status = s.storageFailed("register", ch, err)
			return reply
		}
		s.stored = true
	}
	// Recorded before Postgres: a message checked against a subscription that
	// ingest cached before an unregister (and the old key) is refused by the router
	// from here on, whether or not the insert below succeeds. This also clears the
	// unregister's tombstone.
	if err := s.hub.subscribed(ctx, s.uaid, ch, key); err != nil {
		reply.Status = s.storageFailed("register", ch, err)
		return reply
	}
	if err := s.hub.store.Subscribe(ctx, store.Subscription{UAID: s.uaid, ChannelID: ch, AppServerKey: key}); err != nil {
		reply.Status = s.storageFailed("register", ch, err)
		return reply
	}
	s.channels[ch] = key
	reply.Status = http.StatusOK
	reply.PushEndpoint = strings.TrimRight(s.hub.cfg.EndpointURL, "/") + "/wpush/v2/" + s.hub.tokens.Endpoint(s.uaid, ch)
	return reply
}

// storageFailed logs a register or unregister (op) that Postgres or Redis failed,
// and returns the status to answer it with: a server error, which leaves the
// connection open. The user agent is not at fault, and closing would only have it
// reconnect into the same outage.
func (s *Session) storageFailed(op string, ch ids.ChannelID, err error) int {
	s.hub.log.Warn("storage unavailable", "op", op, "uaid", s.uaid.String(), "channel_id", ch.String(), "err", err)
	return http.StatusInternalServerError
}

// Unregister removes a channel; its endpoint then answers 410 Gone (ingest's cached
// subscriptions included: see Changes) and its waiting messages are
// dropped. Statuses: 200, also for a channel that was not registered
// (what the user agent wants holds); 400 for a channel id that is not a UUID; 500
// when Postgres or Redis cannot be reached (Firefox keeps the unsubscribe pending and
// sends it again).
func (s *Session) Unregister(ctx context.Context, m mozproto.ClientMessage) mozproto.UnregisterReply {
	reply := mozproto.UnregisterReply{Type: mozproto.TypeUnregister, ChannelID: m.ChannelID}
	ch, ok := parseCanonicalChannelID(m.ChannelID)
	if !ok {
		reply.Status = http.StatusBadRequest
		return reply
	}
	if s.stored {
		if err := s.hub.store.Unsubscribe(ctx, s.uaid, ch); err != nil && !errors.Is(err, store.ErrNotFound) {
			reply.Status = s.storageFailed("unregister", ch, err)
			return reply
		}
		// After the delete, so that ingest cannot cache the subscription again
		// past the tombstone's life, and before the reply: from the reply on,
		// ingest's cached copy no longer gets a message through (docs/api.md).
		if err := s.hub.unsubscribed(ctx, s.uaid, ch); err != nil {
			reply.Status = s.storageFailed("unregister", ch, err)
			return reply
		}
	}
	delete(s.channels, ch)
	s.hub.log.Debug("unregister", "uaid", s.uaid.String(), "channel_id", ch.String(), "code", m.Code)
	reply.Status = http.StatusOK
	return reply
}

// Ack removes acknowledged messages from the queue for good, whatever their code:
// 100 delivered, 101 not decryptable, 102 not delivered (no such subscription in
// the browser) all mean that sending the message again would not help. While Redis
// is unreachable the deletes wait (see deleteAcked).
func (s *Session) Ack(ctx context.Context, m mozproto.ClientMessage) {
	entries := make([]string, 0, len(m.Updates))
	for _, up := range m.Updates {
		entries = append(entries, up.Version)
		if up.Code != 0 && up.Code != mozproto.AckDelivered {
			s.hub.log.Debug("ack: not delivered", "uaid", s.uaid.String(), "channel_id", up.ChannelID, "code", up.Code)
		}
	}
	if len(entries) > 0 {
		s.deleteAcked(ctx, entries)
	}
}

// maxUndeleted bounds the acknowledged messages a session keeps to delete later;
// past it the oldest are left in the queue, to be delivered again on a later
// connection.
const maxUndeleted = 1024

// deleteAcked deletes acknowledged messages, with those whose delete failed before.
// A failed delete (Redis unreachable) is no fault of the user agent and does not end
// its connection: the messages are kept to delete with the next ack or at Close,
// and if the connection ends before, they are delivered again on the next one.
func (s *Session) deleteAcked(ctx context.Context, entries []string) {
	if len(s.undeleted) > 0 {
		entries = append(s.undeleted, entries...)
		s.undeleted = nil
	}
	if _, err := s.hub.queue.Delete(ctx, s.uaid, entries...); err != nil {
		s.hub.log.Debug("ack: delete failed, kept for later", "uaid", s.uaid.String(), "messages", len(entries), "err", err)
		s.undeleted = entries[max(len(entries)-maxUndeleted, 0):]
		return
	}
	// Gone from the queue, so no drain will meet them.
	for _, id := range entries {
		delete(s.ahead, id)
	}
	s.noteAcked(ctx, entries)
}

// Nack records that a service worker failed on a message. Firefox acknowledged the
// message before running the worker, so there is nothing to deliver again.
func (s *Session) Nack(m mozproto.ClientMessage) {
	s.hub.log.Debug("nack", "uaid", s.uaid.String(), "version", truncate(m.Version, 64), "code", m.Code)
}

// Ping answers the protocol's keepalive. A ping sooner than the minimum interval
// after the last answered one is told so (PingTooSoon, which Firefox still takes for
// a pong); a second one in a row closes the connection.
func (s *Session) Ping() (reply any, closeCode int) {
	now := s.hub.now()
	min := s.hub.cfg.MinPingInterval
	if !s.lastPing.IsZero() && now.Sub(s.lastPing) < min {
		if s.pingWarn {
			return nil, mozproto.CloseTooManyPings
		}
		s.pingWarn = true
		wait := s.lastPing.Add(min).Sub(now)
		return mozproto.PingTooSoon{Type: mozproto.TypePing, Status: http.StatusTooManyRequests, RetryAfter: int64((wait + time.Second - 1) / time.Second)}, 0
	}
	s.lastPing, s.pingWarn = now, false
	return mozproto.Ping{}, 0
}

// Close unregisters the session and gives up its ownership lease, unless a newer
// connection already took it over. A queue it left empty is kept only a while
// (queue.IdleLife), so that a user agent that left caught up holds almost nothing in
// Redis until it comes back.
func (s *Session) Close(ctx context.Context) error {
	s.hub.metrics.sessions.Add(ctx, -1)
	s.hub.sessions.Remove(s.uaid, s)
	if len(s.undeleted) > 0 {
		// A last try; what still fails is delivered again on a later connection.
		s.deleteAcked(ctx, nil)
	}
	if err := s.hub.leases.Release(ctx, s.uaid, s.epoch); err != nil {
		return fmt.Errorf("close session: %w", err)
	}
	if _, err := s.hub.queue.Idle(ctx, s.uaid); err != nil {
		return fmt.Errorf("close session: %w", err)
	}
	return nil
}

// parseCanonicalChannelID accepts a channel id only in the form Firefox generates
// and matches replies by: a lowercase UUID with dashes.
func parseCanonicalChannelID(s string) (ids.ChannelID, bool) {
	ch, err := ids.ParseChannelID(s)
	if err != nil || ch.String() != s {
		return ch, false
	}
	return ch, true
}

// parseAppServerKey checks an application server key (RFC 8292 §3.2): an
// uncompressed P-256 point in base64url. Firefox pads it with '='; standard base64
// is accepted too.
func parseAppServerKey(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		if b, err = base64.RawStdEncoding.DecodeString(s); err != nil {
			return nil, errors.New("key is not base64url")
		}
	}
	if _, err := ecdh.P256().NewPublicKey(b); err != nil {
		return nil, errors.New("key is not a P-256 public key")
	}
	return b, nil
}
