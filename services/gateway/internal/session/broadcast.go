package session

import "github.com/herald-push/herald/pkg/mozproto"

// followBroadcasts records the broadcasts a user agent asks for (in hello or
// broadcast_subscribe, id → the version it has) and returns what to tell it, as
// autopush does: the current version of each known broadcast whose version differs
// from the one it has, and each unknown id under "errors". Herald defines no
// broadcast yet, so a user agent learns that every one it asks for is unknown; an
// empty request gets an empty answer.
func (s *Session) followBroadcasts(asked map[string]string) mozproto.Broadcasts {
	out := mozproto.Broadcasts{}
	var unknown map[string]any
	for id, have := range asked {
		cur, ok := s.hub.cfg.Broadcasts[id]
		if !ok {
			if unknown == nil {
				unknown = map[string]any{}
			}
			unknown[truncate(id, 64)] = "Broadcast not found"
			continue
		}
		if s.broadcasts == nil {
			s.broadcasts = map[string]struct{}{}
		}
		s.broadcasts[id] = struct{}{}
		if cur != have {
			out[id] = cur
		}
	}
	if unknown != nil {
		out[mozproto.BroadcastErrors] = unknown
	}
	return out
}
