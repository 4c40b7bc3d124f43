package session

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/herald-push/herald/pkg/ids"
	"github.com/herald-push/herald/pkg/mozproto"
	"github.com/herald-push/herald/pkg/queue"
	"github.com/herald-push/herald/pkg/store"
	heraldv1 "github.com/herald-push/herald/proto/herald/v1"
)

// Session is an identified user agent on this gateway. Its methods other than Offer,
// Kick, Kicked, Epoch and UAID must be called from one goroutine, the transport's.
type Session struct {
	hub   *Hub
	uaid  ids.UAID
	epoch uint64

	// channels maps each subscribed channel to its application server key (nil if
	// unrestricted). Owned by the transport goroutine.
	channels map[ids.ChannelID][]byte
	// cursor is the queue entry id of the newest stored message sent on this
	// connection: live messages at or before it were already sent by a drain.
	cursor string

	inbox  chan *heraldv1.Message
	resync chan struct{}

	kickOnce   sync.Once
	kicked     chan struct{}
	kickReason int
}

// UAID returns the session's user agent id.
func (s *Session) UAID() ids.UAID { return s.uaid }

// Epoch returns the ownership epoch this session claimed.
func (s *Session) Epoch() uint64 { return s.epoch }

// Inbox delivers live messages offered by routers.
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
}

// Offer hands a live message to the session. It never blocks: when the inbox is
// full, a stored message is left to the next Drain and Offer still succeeds; a
// message that was not stored (TTL 0) is refused.
func (s *Session) Offer(m *heraldv1.Message) bool {
	select {
	case s.inbox <- m:
		return true
	default:
	}
	if !m.Stored {
		return false
	}
	select {
	case s.resync <- struct{}{}:
	default: // a resync is already pending
	}
	return true
}

// Register subscribes a channel and returns its push endpoint.
func (s *Session) Register(ctx context.Context, m mozproto.ClientMessage) (mozproto.RegisterReply, error) {
	reply := mozproto.RegisterReply{Type: mozproto.TypeRegister, ChannelID: m.ChannelID}
	ch, err := ids.ParseChannelID(m.ChannelID)
	if err != nil {
		reply.Status = http.StatusBadRequest
		return reply, nil
	}
	reply.ChannelID = ch.String()
	var key []byte
	if m.Key != "" {
		if key, err = parseAppServerKey(m.Key); err != nil {
			reply.Status = http.StatusBadRequest
			return reply, nil
		}
	}
	if _, exists := s.channels[ch]; !exists && len(s.channels) >= s.hub.cfg.MaxChannels {
		reply.Status = http.StatusRequestEntityTooLarge
		return reply, nil
	}
	if err := s.hub.store.Subscribe(ctx, store.Subscription{UAID: s.uaid, ChannelID: ch, AppServerKey: key}); err != nil {
		return reply, fmt.Errorf("register: %w", err)
	}
	s.channels[ch] = key
	reply.Status = http.StatusOK
	reply.PushEndpoint = strings.TrimRight(s.hub.cfg.EndpointURL, "/") + "/wpush/v2/" + s.hub.tokens.Endpoint(s.uaid, ch)
	return reply, nil
}

// Unregister removes a channel; its endpoint then answers 410 Gone.
func (s *Session) Unregister(ctx context.Context, m mozproto.ClientMessage) (mozproto.UnregisterReply, error) {
	reply := mozproto.UnregisterReply{Type: mozproto.TypeUnregister, ChannelID: m.ChannelID}
	ch, err := ids.ParseChannelID(m.ChannelID)
	if err != nil {
		reply.Status = http.StatusBadRequest
		return reply, nil
	}
	reply.ChannelID = ch.String()
	if err := s.hub.store.Unsubscribe(ctx, s.uaid, ch); err != nil && !errors.Is(err, store.ErrNotFound) {
		return reply, fmt.Errorf("unregister: %w", err)
	}
	// Unregistering an unknown channel succeeds: the outcome the user agent wants holds.
	delete(s.channels, ch)
	reply.Status = http.StatusOK
	return reply, nil
}

// Ack removes acknowledged messages from the queue for good.
func (s *Session) Ack(ctx context.Context, m mozproto.ClientMessage) error {
	entries := make([]string, 0, len(m.Updates))
	for _, up := range m.Updates {
		entries = append(entries, up.Version)
	}
	if _, err := s.hub.queue.Delete(ctx, s.uaid, entries...); err != nil {
		return fmt.Errorf("ack: %w", err)
	}
	return nil
}

// Drain reads the next page of waiting messages after the cursor and returns them
// as notifications; more says another page may follow.
func (s *Session) Drain(ctx context.Context) (notes []mozproto.Notification, more bool, err error) {
	page := s.hub.cfg.DrainPage
	entries, err := s.hub.queue.Range(ctx, s.uaid, s.cursor, page, s.hub.now())
	if err != nil {
		return nil, false, fmt.Errorf("drain: %w", err)
	}
	var orphans []string
	for _, e := range entries {
		s.cursor = e.ID
		if _, ok := s.channels[e.ChannelID]; !ok {
			orphans = append(orphans, e.ID)
			continue
		}
		notes = append(notes, notification(e.ChannelID, e.ID, e.Data, e.Headers, int64(e.TTL/time.Second)))
	}
	if len(orphans) > 0 {
		// Messages for channels unregistered since they were sent can never be delivered.
		if _, err := s.hub.queue.Delete(ctx, s.uaid, orphans...); err != nil {
			return notes, false, fmt.Errorf("drain: %w", err)
		}
	}
	return notes, int64(len(entries)) == page, nil
}

// Take turns a live message into a notification, or reports false when it must not
// be sent: a drain already sent it, or its channel is no longer subscribed.
func (s *Session) Take(m *heraldv1.Message) (mozproto.Notification, bool) {
	ch, err := ids.ParseChannelID(m.ChannelId)
	if err != nil {
		return mozproto.Notification{}, false
	}
	if _, ok := s.channels[ch]; !ok {
		return mozproto.Notification{}, false
	}
	if m.Stored {
		if !queue.EntryAfter(m.Id, s.cursor) {
			return mozproto.Notification{}, false
		}
		s.cursor = m.Id
	}
	return notification(ch, m.Id, m.Data, m.Headers, m.TtlSeconds), true
}

// Close unregisters the session and gives up its ownership lease, unless a newer
// connection already took it over.
func (s *Session) Close(ctx context.Context) error {
	s.hub.sessions.Remove(s.uaid, s)
	if err := s.hub.leases.Release(ctx, s.uaid, s.epoch); err != nil {
		return fmt.Errorf("close session: %w", err)
	}
	return nil
}

func notification(ch ids.ChannelID, version string, data []byte, headers map[string]string, ttl int64) mozproto.Notification {
	n := mozproto.Notification{
		Type:      mozproto.TypeNotification,
		ChannelID: ch.String(),
		Version:   version,
		TTL:       ttl,
	}
	if len(data) > 0 {
		n.Data = base64.RawURLEncoding.EncodeToString(data)
		n.Headers = headers
	}
	return n
}
