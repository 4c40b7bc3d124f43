package session

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	"github.com/herald-push/herald/pkg/ids"
	"github.com/herald-push/herald/pkg/mozproto"
	"github.com/herald-push/herald/pkg/msgtrace"
	"github.com/herald-push/herald/pkg/queue"
	heraldv1 "github.com/herald-push/herald/proto/herald/v1"
)

// releaseScan is a pass over the queue, from its start to the cursor, that sends the
// held messages the urgency bar now lets through and forgets held ids that are gone.
type releaseScan struct {
	after string
	keep  map[string]struct{}
}

// Drain reads the next page of waiting messages and returns them as notifications;
// more says another page may follow. It first finishes a pending release of held
// messages, then reads after the position the drains got to (read), skipping
// what was sent live meanwhile. Messages below the urgency bar are held, not
// returned.
func (s *Session) Drain(ctx context.Context) (notes []mozproto.Notification, more bool, err error) {
	if s.release != nil {
		notes, err := s.releasePage(ctx)
		return notes, true, err
	}
	page := s.hub.cfg.DrainPage
	entries, err := s.hub.queue.Range(ctx, s.uaid, s.read, page, s.hub.now())
	if err != nil {
		return nil, false, fmt.Errorf("drain: %w", err)
	}
	var orphans []string
	for _, e := range entries {
		s.read = e.ID
		if queue.EntryAfter(e.ID, s.cursor) {
			s.cursor = e.ID
		}
		if _, sent := s.ahead[e.ID]; sent {
			continue
		}
		if _, held := s.held[e.ID]; held {
			continue // held when it came live; a release sends it
		}
		if _, ok := s.channels[e.ChannelID]; !ok {
			orphans = append(orphans, e.ID)
			continue
		}
		if !s.meetsBar(heraldv1.Urgency(e.Urgency)) {
			s.hold(e.ID)
			continue
		}
		notes = append(notes, notification(e.ChannelID, e.ID, e.Data, e.Headers, int64(e.TTL.Seconds())))
		s.noteSent(ctx, e.ID, true, e.Received, msgtrace.FromTraceParent(e.TraceParent))
	}
	more = int64(len(entries)) == page || s.release != nil
	if len(s.ahead) > 0 && !s.passAhead(len(entries) == 0) {
		more = true
	}
	if err := s.dropOrphans(ctx, orphans); err != nil {
		return notes, false, err
	}
	return notes, more, nil
}

// passAhead forgets the messages sent ahead of the drains that the drains have
// passed: met, or gone from the queue (expired, replaced, deleted). At the end of
// the queue (end: a page came back empty) those after read are gone too, since
// each was stored before it was sent. It reports whether none is left. A short
// page is not the end: Range leaves out the expired messages it meets, so the
// drain goes on until a page comes back empty rather than remember the rest. (A
// full page of expired messages comes back empty too: a message sent ahead past
// them may then be sent again by a later drain, but none is skipped.)
func (s *Session) passAhead(end bool) bool {
	if !end {
		for id := range s.ahead {
			if !queue.EntryAfter(id, s.read) {
				delete(s.ahead, id)
			}
		}
	}
	if end || len(s.ahead) == 0 {
		s.ahead = nil // it may have grown large; most connections hold none
		return true
	}
	return false
}

// sentAhead records that the stored message id was sent before the drains got to
// it, so that they skip it. When too many pile up (a user agent that does not
// acknowledge), a resync is asked for: its drain passes them.
func (s *Session) sentAhead(id string) {
	if !queue.EntryAfter(id, s.read) {
		return
	}
	if s.ahead == nil {
		s.ahead = make(map[string]struct{})
	}
	s.ahead[id] = struct{}{}
	if int64(len(s.ahead)) > 10*s.hub.cfg.DrainPage {
		s.AskResync()
	}
}

// releasePage scans one page of the queue for held messages.
func (s *Session) releasePage(ctx context.Context) ([]mozproto.Notification, error) {
	rs := s.release
	if rs.keep == nil {
		rs.keep = map[string]struct{}{}
	}
	page := s.hub.cfg.DrainPage
	entries, err := s.hub.queue.Range(ctx, s.uaid, rs.after, page, s.hub.now())
	if err != nil {
		return nil, fmt.Errorf("release held messages: %w", err)
	}
	done := int64(len(entries)) < page
	var (
		notes   []mozproto.Notification
		orphans []string
	)
	for _, e := range entries {
		if queue.EntryAfter(e.ID, s.cursor) {
			done = true
			break
		}
		rs.after = e.ID
		if _, ok := s.held[e.ID]; !ok {
			continue // sent on this connection, never held, or left to a drain
		}
		switch {
		case !s.subscribed(e.ChannelID):
			orphans = append(orphans, e.ID)
		case s.meetsBar(heraldv1.Urgency(e.Urgency)):
			notes = append(notes, notification(e.ChannelID, e.ID, e.Data, e.Headers, int64(e.TTL.Seconds())))
			s.noteSent(ctx, e.ID, true, e.Received, msgtrace.FromTraceParent(e.TraceParent))
			s.sentAhead(e.ID)
		default:
			rs.keep[e.ID] = struct{}{}
		}
	}
	if done {
		// Held ids the scan did not meet expired or were deleted.
		s.held, s.release = rs.keep, nil
	}
	return notes, s.dropOrphans(ctx, orphans)
}

// hold keeps a stored message back for a lower bar. Held ids of messages that expire
// meanwhile are forgotten by the next release scan; one is started when they pile up.
func (s *Session) hold(id string) {
	s.held[id] = struct{}{}
	if s.release == nil && int64(len(s.held)) > 10*s.hub.cfg.DrainPage {
		s.release = &releaseScan{}
		s.AskResync()
	}
}

func (s *Session) subscribed(ch ids.ChannelID) bool {
	_, ok := s.channels[ch]
	return ok
}

// dropOrphans deletes messages for channels unregistered since they were sent: they
// can never be delivered.
func (s *Session) dropOrphans(ctx context.Context, orphans []string) error {
	if len(orphans) == 0 {
		return nil
	}
	if _, err := s.hub.queue.Delete(ctx, s.uaid, orphans...); err != nil {
		return fmt.Errorf("drop orphaned messages: %w", err)
	}
	return nil
}

// Take turns a live message into a notification, or reports false when it must not
// be sent now: it was dealt with on this connection already (by a drain, or an
// earlier delivery of it), its channel is no longer subscribed, or it is below the
// urgency bar (then a stored one is held for later). A stored message older than
// one sent live is still sent, unless a drain met it: live deliveries of one user
// agent come in either order.
func (s *Session) Take(ctx context.Context, m *heraldv1.Message) (mozproto.Notification, bool) {
	ch, err := ids.ParseChannelID(m.ChannelId)
	if err != nil || !s.subscribed(ch) {
		return mozproto.Notification{}, false
	}
	if m.Stored {
		if s.dealtWith(m.Id) {
			return mozproto.Notification{}, false
		}
		if queue.EntryAfter(m.Id, s.cursor) {
			s.cursor = m.Id
		}
	}
	if !s.meetsBar(m.Urgency) {
		if m.Stored {
			s.hold(m.Id)
		}
		return mozproto.Notification{}, false
	}
	s.noteSent(ctx, m.Id, m.Stored, time.UnixMilli(m.ReceivedUnixMs), m.Trace)
	if m.Stored {
		s.sentAhead(m.Id)
	}
	return notification(ch, m.Id, m.Data, m.Headers, m.TtlSeconds), true
}

// dealtWith reports whether the stored message id was dealt with on this
// connection: a drain read it, or it was sent or held since. A malformed id
// counts as dealt with: no such message is in the queue.
func (s *Session) dealtWith(id string) bool {
	if !queue.EntryAfter(id, s.read) {
		return true
	}
	_, sent := s.ahead[id]
	_, held := s.held[id]
	return sent || held
}

// notification builds the frame Firefox decrypts: data in base64url without padding
// and, for a body, the encryption headers under the protocol's names. For aesgcm
// the Encryption and Crypto-Key values go as the application server sent them, but
// without quotes and base64 padding, which Firefox's parser rejects (autopush strips
// them too).
func notification(ch ids.ChannelID, version string, data []byte, headers map[string]string, ttl int64) mozproto.Notification {
	n := mozproto.Notification{
		Type:      mozproto.TypeNotification,
		ChannelID: ch.String(),
		Version:   version,
		TTL:       ttl,
	}
	if len(data) == 0 {
		return n
	}
	n.Data = base64.RawURLEncoding.EncodeToString(data)
	if !hasParams(headers) {
		n.Headers = headers // aes128gcm: nothing to strip, and nothing changes the map
		return n
	}
	n.Headers = make(map[string]string, len(headers))
	for k, v := range headers {
		if isParamHeader(k) {
			v = stripParams(v)
		}
		n.Headers[k] = v
	}
	return n
}

// isParamHeader reports whether header k carries aesgcm parameters, which
// notification strips.
func isParamHeader(k string) bool {
	return k == "encryption" || k == "crypto_key" || k == "encryption_key"
}

func hasParams(headers map[string]string) bool {
	for k := range headers {
		if isParamHeader(k) {
			return true
		}
	}
	return false
}

// stripParams removes double quotes, and the '=' padding at the end of each
// parameter value, from a header value of ';'- and ','-separated name=value pairs.
func stripParams(v string) string {
	v = strings.ReplaceAll(v, `"`, "")
	var b strings.Builder
	b.Grow(len(v))
	for i := 0; i < len(v); {
		j := strings.IndexAny(v[i:], ";,")
		end := len(v)
		if j >= 0 {
			end = i + j
		}
		param := strings.TrimSpace(v[i:end])
		if name, val, ok := strings.Cut(param, "="); ok {
			param = strings.TrimSpace(name) + "=" + strings.TrimRight(strings.TrimSpace(val), "=")
		}
		b.WriteString(param)
		if end < len(v) {
			b.WriteByte(v[end])
		}
		i = end + 1
	}
	return b.String()
}
