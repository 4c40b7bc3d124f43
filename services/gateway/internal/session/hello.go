package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/herald-push/herald/pkg/ids"
	"github.com/herald-push/herald/pkg/mozproto"
	"github.com/herald-push/herald/pkg/store"
	heraldv1 "github.com/herald-push/herald/proto/herald/v1"
)

// Hello identifies a user agent, the state change from an anonymous connection to a
// Session. It resumes a known uaid or assigns a new one, reconciles the channels the
// user agent believes it has with the server's, claims ownership, and registers the
// session here; an older connection of the same uaid, here or on another gateway, is
// told to close. Any frame but hello is ErrProtocol.
//
// Reconciliation: the server's subscriptions are the truth, and a user agent learns
// it through its uaid, the one thing Firefox acts on. Firefox drops every
// subscription (and tells each site with pushsubscriptionchange) when hello answers
// with another uaid than the one it sent. So a resumed uaid that cannot be honoured
// is reassigned:
//   - an unknown uaid (never stored, or removed);
//   - a known uaid without subscriptions: Firefox sends its uaid only when it holds
//     subscriptions (bug 1617136), so it believes in some the server does not have;
//   - a known uaid whose hello lists channelIDs the server does not hold: those
//     subscriptions are dead, and Firefox cannot be told channel by channel. The
//     old uaid's remaining subscriptions and waiting messages are dropped, so their
//     endpoints answer 410 Gone and the sites' new subscriptions replace them.
//
// Channels the server holds but the hello does not list stay: the server wins.
// A new uaid is stored only at its first register, so that browsers that connect
// without subscriptions (Firefox does, for broadcasts) leave nothing behind.
//
// wake (nil: none) is called whenever the session's Inbox, Resync or Kicked has
// something for the connection; it must not block.
func (h *Hub) Hello(ctx context.Context, m mozproto.ClientMessage, wake func()) (*Session, mozproto.HelloReply, error) {
	if m.Type != mozproto.TypeHello {
		return nil, mozproto.HelloReply{}, fmt.Errorf("%w: %s before hello", ErrProtocol, m.Type)
	}
	minUrgency := heraldv1.Urgency_URGENCY_VERY_LOW
	if m.MinUrgency != "" {
		u, ok := parseUrgency(m.MinUrgency)
		if !ok {
			return nil, mozproto.HelloReply{}, fmt.Errorf("%w: hello min_urgency %q", ErrProtocol, truncate(m.MinUrgency, 16))
		}
		minUrgency = u
	}
	u, subs, stored, err := h.identify(ctx, m)
	if err != nil {
		return nil, mozproto.HelloReply{}, fmt.Errorf("hello: %w", err)
	}
	s := &Session{
		hub:      h,
		uaid:     u,
		stored:   stored,
		channels: make(map[ids.ChannelID][]byte, len(subs)),
		held:     map[string]struct{}{},
		inbox:    make(chan *heraldv1.Message, h.cfg.InboxSize),
		resync:   make(chan struct{}, 1),
		kicked:   make(chan struct{}),
		wake:     wake,
	}
	if s.wake == nil {
		s.wake = func() {}
	}
	s.minUrgency.Store(int32(minUrgency))
	for _, sub := range subs {
		s.channels[sub.ChannelID] = sub.AppServerKey
	}
	reply := mozproto.HelloReply{
		Type:       mozproto.TypeHello,
		UAID:       u.String(),
		Status:     http.StatusOK,
		UseWebPush: true,
		Broadcasts: s.followBroadcasts(m.Broadcasts),
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
			// A gateway that died leaves every user agent it held to say hello
			// elsewhere within seconds, and each would warn of it: that gateway's
			// death is not news once per user agent.
			level := slog.LevelWarn
			if errors.Is(err, ErrOwnerGone) {
				level = slog.LevelDebug
			}
			h.log.Log(ctx, level, "evict previous connection", "uaid", u.String(), "gateway", prev.Gateway, "err", err)
		}
	}
	h.metrics.sessions.Add(ctx, 1)
	return s, reply, nil
}

// identify resumes the uaid of a hello or assigns a new one; stored says the uaid
// is already in Postgres.
func (h *Hub) identify(ctx context.Context, m mozproto.ClientMessage) (u ids.UAID, subs []store.Subscription, stored bool, err error) {
	if m.UAID == "" {
		return ids.NewUAID(), nil, false, nil
	}
	old, perr := ids.ParseUAID(m.UAID)
	if perr != nil {
		h.log.Debug("uaid reassigned", "reason", "malformed")
		return ids.NewUAID(), nil, false, nil
	}
	subs, err = h.store.Connect(ctx, old, h.now())
	switch {
	case errors.Is(err, store.ErrNotFound):
		h.log.Debug("uaid reassigned", "uaid", old.String(), "reason", "unknown")
		return ids.NewUAID(), nil, false, nil
	case err != nil:
		return u, nil, false, err
	case len(subs) == 0:
		h.log.Debug("uaid reassigned", "uaid", old.String(), "reason", "no subscriptions")
		return ids.NewUAID(), nil, false, nil
	}
	if missing := missingChannels(m.ChannelIDs, subs); missing > 0 {
		h.log.Info("uaid reassigned", "uaid", old.String(), "reason", "channels unknown to the server", "missing", missing)
		if err := h.forget(ctx, old, subs); err != nil {
			return u, nil, false, err
		}
		return ids.NewUAID(), nil, false, nil
	}
	return old, subs, true, nil
}

// forget drops a reassigned uaid's subscriptions and waiting messages.
func (h *Hub) forget(ctx context.Context, u ids.UAID, subs []store.Subscription) error {
	// The user agent row goes too, and its subscriptions with it (ON DELETE CASCADE).
	if err := h.store.DeleteUserAgent(ctx, u); err != nil {
		return fmt.Errorf("forget uaid: %w", err)
	}
	chs := make([]ids.ChannelID, 0, len(subs))
	for _, sub := range subs {
		chs = append(chs, sub.ChannelID)
	}
	// As Unregister does, after the deletes: ingest may hold these cached.
	if err := h.unsubscribed(ctx, u, chs...); err != nil {
		return fmt.Errorf("forget uaid: %w", err)
	}
	if err := h.queue.Clear(ctx, u); err != nil {
		return fmt.Errorf("forget uaid: %w", err)
	}
	return nil
}

// missingChannels counts the channel ids a hello lists that the server does not hold.
func missingChannels(claimed []string, subs []store.Subscription) int {
	if len(claimed) == 0 {
		return 0
	}
	held := make(map[ids.ChannelID]struct{}, len(subs))
	for _, sub := range subs {
		held[sub.ChannelID] = struct{}{}
	}
	n := 0
	for _, c := range claimed {
		ch, err := ids.ParseChannelID(c)
		if _, ok := held[ch]; err != nil || !ok {
			n++
		}
	}
	return n
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
