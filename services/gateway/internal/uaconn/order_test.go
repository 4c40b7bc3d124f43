package uaconn

import (
	"slices"
	"testing"
	"time"

	"github.com/herald-push/herald/pkg/ids"
	"github.com/herald-push/herald/pkg/mozproto"
	"github.com/herald-push/herald/services/gateway/internal/session"
)

// Two routers' batches for one user agent each store their message in their own
// Redis pipeline, so the entry ids come out in the order stored; then each makes
// its own delivery call to the gateway, and the calls arrive in either order. The
// tests below deliver the newer message first.

// TestOlderLiveMessageAfterNewer: the older message's live delivery comes after
// the newer one was sent. It was never sent on this connection, and must be,
// once: a drain (which reads the queue in order) did not deal with it.
func TestOlderLiveMessageAfterNewer(t *testing.T) {
	w := newResyncWorld(t)
	g := w.serveGated(t)
	deadline := time.Now().Add(10 * time.Second)
	u, sess, ch := w.identify(t, g, deadline)

	older := w.store(t, u, ch, 1)
	newer := w.store(t, u, ch, 1)
	want := []string{newer.Requests[0].Message.Id, older.Requests[0].Message.Id} // in the order delivered

	w.deliver(t, newer)
	got := g.readAll(t, deadline, sess, ch)
	w.deliver(t, older)
	got = append(got, g.readAll(t, deadline, sess, ch)...)
	if !slices.Equal(got, want) {
		t.Fatalf("sent %v, want %v (each message once, in the order delivered)", got, want)
	}
	w.ackAll(t, g, deadline, u, ch, got)
}

// TestResyncFindsOlderLiveMessage: the newer message is sent; the older one's live
// delivery then finds the inbox full, and is left to a resync. The resync's drain
// must read from where the connection's drains got to, not from the newer message
// sent live (a drain reads after a position), and must not send the newer one
// again.
func TestResyncFindsOlderLiveMessage(t *testing.T) {
	w := newResyncWorld(t)
	g := w.serveGated(t)
	deadline := time.Now().Add(10 * time.Second)
	u, sess, ch := w.identify(t, g, deadline)

	older := w.store(t, u, ch, 1)
	newer := w.store(t, u, ch, 1)
	w.deliver(t, newer)
	// The user agent does not read the newer message yet: the connection waits in
	// its Send, and what comes meanwhile waits in the inbox, until it is full.
	v := g.recv(t, deadline)
	if n, ok := v.(mozproto.Notification); !ok || n.Version != newer.Requests[0].Message.Id {
		t.Fatalf("sent %T %+v, want the newer message", v, v)
	}
	rest := w.route(t, u, ch, resyncInbox)
	w.deliver(t, older)
	if len(sess.Inbox()) != resyncInbox || len(sess.Resync()) != 1 {
		t.Fatalf("inbox %d/%d, resync %d: want the older message left to a resync", len(sess.Inbox()), resyncInbox, len(sess.Resync()))
	}
	g.letThrough(t, deadline)

	got := append([]string{newer.Requests[0].Message.Id}, g.readAll(t, deadline, sess, ch)...)
	// The resync goes before the inbox, and its drain sends the queue in order.
	want := append([]string{newer.Requests[0].Message.Id, older.Requests[0].Message.Id}, rest...)
	if !slices.Equal(got, want) {
		t.Fatalf("sent %v, want %v (each message once)", got, want)
	}
	w.ackAll(t, g, deadline, u, ch, got)
}

// letThrough lets the notification Send waits on go, as the user agent reading it.
func (g *gatedTransport) letThrough(t testing.TB, deadline time.Time) {
	t.Helper()
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case g.release <- struct{}{}:
	case <-timer.C:
		t.Fatal("no Send waits to be let through")
	}
}

// readAll reads the notifications the connection sends, as a user agent that
// reads at once, until it has nothing left to send, and returns their versions.
// Nothing is left once the session's inbox and resync are empty and the
// connection answers a frame sent then: it handles the frame after the event it
// is on. The frame registers ch again, which answers 200 and changes nothing
// (a ping would do, but a second one in a minute is refused).
func (g *gatedTransport) readAll(t testing.TB, deadline time.Time, sess *session.Session, ch ids.ChannelID) []string {
	t.Helper()
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	var got []string
	asked := false
	for {
		select {
		case v := <-g.out:
			switch v := v.(type) {
			case mozproto.Notification:
				got = append(got, v.Version)
				g.letThrough(t, deadline)
			case mozproto.RegisterReply:
				if !asked || v.Status != 200 {
					t.Fatalf("sent %+v", v)
				}
				return got
			default:
				t.Fatalf("sent %T %+v, want a notification", v, v)
			}
		case <-tick.C:
			if !asked && len(sess.Inbox()) == 0 && len(sess.Resync()) == 0 {
				g.frame(t, deadline, `{"messageType":"register","channelID":"`+ch.String()+`"}`)
				asked = true
			}
		case <-timer.C:
			t.Fatalf("the connection still sends at the deadline; sent %v", got)
		}
	}
}
