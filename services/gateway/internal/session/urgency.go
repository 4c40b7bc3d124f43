package session

import (
	"net/http"

	"github.com/herald-push/herald/pkg/mozproto"
	heraldv1 "github.com/herald-push/herald/proto/herald/v1"
)

// The urgency bar (Herald's extension to the protocol): a user agent states the
// lowest urgency (RFC 8030 §5.3) it wants delivered now, as a phone saving its
// battery would. Stored messages below the bar stay in the queue, in order, and are
// sent when the bar is lowered; a message that cannot wait (TTL 0) below the bar is
// not delivered. The bar lasts for the connection and starts at very-low (all).

// SetUrgency sets the bar from its name. It answers the bar in force with status
// 200, or 400 for an unknown name (the bar stays); drain says held messages may now
// go out.
func (s *Session) SetUrgency(name string) (reply mozproto.UrgencyReply, drain bool) {
	reply = mozproto.UrgencyReply{Type: mozproto.TypeUrgency, Status: http.StatusOK}
	u, ok := parseUrgency(name)
	if !ok {
		reply.Status = http.StatusBadRequest
		reply.Min = urgencyName(heraldv1.Urgency(s.minUrgency.Load()))
		return reply, false
	}
	old := heraldv1.Urgency(s.minUrgency.Swap(int32(u)))
	reply.Min = urgencyName(u)
	if u < old && len(s.held) > 0 {
		s.release = &releaseScan{}
		return reply, true
	}
	return reply, false
}

// MinUrgency returns the bar's name.
func (s *Session) MinUrgency() string { return urgencyName(heraldv1.Urgency(s.minUrgency.Load())) }

// meetsBar reports whether a message of urgency u goes out now.
func (s *Session) meetsBar(u heraldv1.Urgency) bool {
	return urgencyOf(u) >= heraldv1.Urgency(s.minUrgency.Load())
}

// urgencyOf reads a message's urgency; unspecified is normal (RFC 8030 §5.3).
func urgencyOf(u heraldv1.Urgency) heraldv1.Urgency {
	if u == heraldv1.Urgency_URGENCY_UNSPECIFIED {
		return heraldv1.Urgency_URGENCY_NORMAL
	}
	return u
}

func parseUrgency(name string) (heraldv1.Urgency, bool) {
	switch name {
	case mozproto.UrgencyVeryLow:
		return heraldv1.Urgency_URGENCY_VERY_LOW, true
	case mozproto.UrgencyLow:
		return heraldv1.Urgency_URGENCY_LOW, true
	case mozproto.UrgencyNormal:
		return heraldv1.Urgency_URGENCY_NORMAL, true
	case mozproto.UrgencyHigh:
		return heraldv1.Urgency_URGENCY_HIGH, true
	}
	return 0, false
}

func urgencyName(u heraldv1.Urgency) string {
	switch u {
	case heraldv1.Urgency_URGENCY_LOW:
		return mozproto.UrgencyLow
	case heraldv1.Urgency_URGENCY_NORMAL, heraldv1.Urgency_URGENCY_UNSPECIFIED:
		return mozproto.UrgencyNormal
	case heraldv1.Urgency_URGENCY_HIGH:
		return mozproto.UrgencyHigh
	}
	return mozproto.UrgencyVeryLow
}
