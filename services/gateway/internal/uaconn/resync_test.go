package uaconn

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/herald-push/herald/pkg/ids"
	"github.com/herald-push/herald/pkg/lease"
	"github.com/herald-push/herald/pkg/mozproto"
	"github.com/herald-push/herald/pkg/queue"
	"github.com/herald-push/herald/pkg/rkey"
	"github.com/herald-push/herald/pkg/testenv"
	"github.com/herald-push/herald/pkg/token"
	heraldv1 "github.com/herald-push/herald/proto/herald/v1"
	"github.com/herald-push/herald/services/gateway/internal/deliver"
	"github.com/herald-push/herald/services/gateway/internal/session"
)

// gatedTransport is a user agent that reads its notifications one at a time: each
// Send of a notification puts it on out, then waits for the test to hand release a
// token, as a socket write waits for a slow reader. Other frames (replies) go to out
// without waiting. While a Send waits, the connection handles nothing else, and the
// live messages routers deliver pile up in its session's inbox.
type gatedTransport struct {
	c       *Conn
	out     chan any
	release chan struct{}
	closed  chan int
}

func (g *gatedTransport) Send(ctx context.Context, v any) error {
	g.out <- v
	if _, ok := v.(mozproto.Notification); !ok {
		return nil
	}
	select {
	case <-g.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *gatedTransport) Close(_ context.Context, code int) { g.closed <- code }

// recv returns the next frame the connection sent, failing the test if none comes
// by the deadline.
func (g *gatedTransport) recv(t testing.TB, deadline time.Time) any {
	t.Helper()
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case v := <-g.out:
		return v
	case <-timer.C:
		t.Fatal("nothing sent before the deadline")
		return nil
	}
}

// resyncWorld is one gateway over the test's own Redis prefix: real queues and
// ownership leases, the gRPC service routers call (in process), and a
// connection server. Postgres is the in-memory fakeStore: the user agent's
// subscriptions play no part in the order of delivery.
type resyncWorld struct {
	q       *queue.Queue
	leases  *lease.Leases
	hub     *session.Hub
	srv     *Server
	gateway *deliver.Server
}

// resyncInbox is the inbox of the test's gateway: small, so that a handful of
// messages fills it.
const resyncInbox = 4

func newResyncWorld(t *testing.T) *resyncWorld {
	t.Helper()
	rdb, prefix := testenv.RedisClient(t)
	keys := rkey.New(prefix)
	w := &resyncWorld{q: queue.New(rdb, keys, 1000), leases: lease.New(rdb, keys, time.Minute)}
	codec, err := token.NewCodec([][]byte{make([]byte, 32)})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	w.hub, err = session.NewHub(session.Config{EndpointURL: "http://push.example", GatewayID: "gw-resync",
		GatewayAddr: "127.0.0.1:1", MaxChannels: 4, InboxSize: resyncInbox, DrainPage: 100, MinPingInterval: time.Minute},
		fakeStore{}, w.q, w.leases, fakeEvictor{}, codec, log)
	if err != nil {
		t.Fatal(err)
	}
	w.hub.RecordChanges(w.q)
	if w.srv, err = NewServer(Config{HelloTimeout: 5 * time.Second, OpTimeout: 5 * time.Second}, w.hub, log); err != nil {
		t.Fatal(err)
	}
	w.gateway = deliver.NewServer(w.hub)
	return w
}

// serveGated runs a connection over a gatedTransport. Cleanup ends it, a Send
// still waiting on the gate included, and waits for it.
func (w *resyncWorld) serveGated(t *testing.T) *gatedTransport {
	t.Helper()
	c, ok := w.srv.Open("fake")
	if !ok {
		t.Fatal("Open refused")
	}
	g := &gatedTransport{c: c, out: make(chan any, 64), release: make(chan struct{}), closed: make(chan int, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer dcancel()
		if err := w.srv.Drain(dctx, 0); err != nil {
			t.Error(err)
		}
	})
	c.Serve(ctx, g)
	return g
}

// route does what a router does with messages for u's channel ch, in one batch:
// it stores each in u's queue, then hands them to the gateway that owns u. It
// returns their entry ids.
func (w *resyncWorld) route(t *testing.T, u ids.UAID, ch ids.ChannelID, n int) []string {
	t.Helper()
	req := w.store(t, u, ch, n)
	w.deliver(t, req)
	entryIDs := make([]string, len(req.Requests))
	for i, r := range req.Requests {
		entryIDs[i] = r.Message.Id
	}
	return entryIDs
}

// store does the first half of a router's batch: it stores n messages for u's
// channel ch in u's queue and returns the batch that hands them to the gateway
// that owns u, at the epoch the ownership record holds.
func (w *resyncWorld) store(t *testing.T, u ids.UAID, ch ids.ChannelID, n int) *heraldv1.DeliverBatchRequest {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	owner, err := w.leases.Lookup(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	req := &heraldv1.DeliverBatchRequest{}
	for range n {
		e := queue.Entry{ChannelID: ch, Data: []byte("a push message"), Headers: map[string]string{"encoding": "aes128gcm"},
			TTL: time.Hour, Received: time.Now(), Urgency: int32(heraldv1.Urgency_URGENCY_NORMAL)}
		id, err := w.q.Append(ctx, u, e)
		if err != nil {
			t.Fatal(err)
		}
		req.Requests = append(req.Requests, &heraldv1.DeliverRequest{Epoch: owner.Epoch, Message: &heraldv1.Message{
			Uaid: u.String(), ChannelId: ch.String(), Id: id, Data: e.Data, Headers: e.Headers,
			TtlSeconds: int64(e.TTL / time.Second), ReceivedUnixMs: e.Received.UnixMilli(), Urgency: heraldv1.Urgency(e.Urgency),
			Stored: true,
		}})
	}
	return req
}

// deliver does the second half of a router's batch: it hands the gateway the
// messages store stored.
func (w *resyncWorld) deliver(t *testing.T, req *heraldv1.DeliverBatchRequest) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := w.gateway.DeliverBatch(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	// A stored message is accepted even when the inbox had no room for it: it
	// waits in the queue for the resync it asked for.
	for i, ok := range resp.GetAccepted() {
		if !ok {
			t.Fatalf("the gateway refused %s", req.Requests[i].Message.Id)
		}
	}
}

// frame hands the connection a frame from the user agent, failing the test if
// the connection does not take it by the deadline.
func (g *gatedTransport) frame(t testing.TB, deadline time.Time, frame string) {
	t.Helper()
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if !g.c.Frame(ctx, Frame{Data: []byte(frame)}) {
		t.Fatal("the connection did not take the frame")
	}
}

// identify says hello as a new user agent and registers a channel. It returns
// the uaid, its session and the channel.
func (w *resyncWorld) identify(t *testing.T, g *gatedTransport, deadline time.Time) (ids.UAID, *session.Session, ids.ChannelID) {
	t.Helper()
	g.frame(t, deadline, `{"messageType":"hello","use_webpush":true}`)
	hello, ok := g.recv(t, deadline).(mozproto.HelloReply)
	if !ok || hello.Status != 200 {
		t.Fatalf("hello replied %+v", hello)
	}
	u, err := ids.ParseUAID(hello.UAID)
	if err != nil {
		t.Fatal(err)
	}
	sess, ok := w.hub.Lookup(u)
	if !ok {
		t.Fatal("no session after hello")
	}
	ch := ids.NewChannelID()
	g.frame(t, deadline, `{"messageType":"register","channelID":"`+ch.String()+`"}`)
	if r, ok := g.recv(t, deadline).(mozproto.RegisterReply); !ok || r.Status != 200 {
		t.Fatalf("register replied %+v", r)
	}
	return u, sess, ch
}

// ackAll acknowledges the versions of channel ch the user agent got, and waits
// until nothing is left in its queue for its next connection.
func (w *resyncWorld) ackAll(t *testing.T, g *gatedTransport, deadline time.Time, u ids.UAID, ch ids.ChannelID, versions []string) {
	t.Helper()
	updates := make([]mozproto.Update, len(versions))
	for i, v := range versions {
		updates[i] = mozproto.Update{ChannelID: ch.String(), Version: v, Code: mozproto.AckDelivered}
	}
	ack, err := json.Marshal(mozproto.ClientMessage{Type: mozproto.TypeAck, Updates: updates})
	if err != nil {
		t.Fatal(err)
	}
	g.frame(t, deadline, string(ack))
	pollUntil(t, deadline, "the acknowledged messages to leave the queue", func() bool {
		n, err := w.q.Len(context.Background(), u)
		if err != nil {
			t.Fatal(err)
		}
		return n == 0
	})
}

// TestResyncBeforeInbox drives the race ed738b8 fixed. A user agent reads slowly;
// routers store messages and deliver them live meanwhile, and one finds the
// connection's inbox full: it is dropped from the inbox, left in the queue, and a
// resync is asked for. Then the inbox frees a slot and takes a newer message.
// Every message must reach the user agent, in the queue's order, once. Had the
// connection sent the inbox's messages before the resync, the dropped one would
// go after newer ones; and before the session's drains read from their own
// position (not from the newest message sent live), never on this connection.
func TestResyncBeforeInbox(t *testing.T) {
	w := newResyncWorld(t)
	g := w.serveGated(t)
	deadline := time.Now().Add(10 * time.Second)
	u, sess, ch := w.identify(t, g, deadline)

	var (
		want []string // entry ids, in the queue's order
		got  []string // versions, in the order sent
	)
	take := func() {
		t.Helper()
		v := g.recv(t, deadline)
		n, ok := v.(mozproto.Notification)
		if !ok {
			t.Fatalf("sent %T %+v, want a notification", v, v)
		}
		got = append(got, n.Version)
	}
	release := func() {
		t.Helper()
		select {
		case g.release <- struct{}{}:
		case <-time.After(time.Until(deadline)):
			t.Fatal("no Send waits to be released")
		}
	}

	// The first message goes out at once; the user agent does not read it yet, so
	// the connection waits in its Send.
	want = append(want, w.route(t, u, ch, 1)...)
	take()
	// Meanwhile the inbox fills, and the next message finds no room: it is left
	// in the queue, and a resync is asked for.
	want = append(want, w.route(t, u, ch, resyncInbox+1)...)
	if n := len(sess.Inbox()); n != resyncInbox {
		t.Fatalf("the inbox holds %d messages, want it full (%d)", n, resyncInbox)
	}
	if len(sess.Resync()) != 1 {
		t.Fatal("a message that found the inbox full asked for no resync")
	}
	// The user agent reads the first message, and the connection goes on to the
	// next one. While that one waits for the user agent, a newer message comes.
	release()
	take()
	want = append(want, w.route(t, u, ch, 1)...)
	release()
	// The user agent now reads as fast as the connection sends.
	for len(got) < len(want) {
		timer := time.NewTimer(time.Until(deadline))
		select {
		case v := <-g.out:
			timer.Stop()
			n, ok := v.(mozproto.Notification)
			if !ok {
				t.Fatalf("sent %T %+v, want a notification", v, v)
			}
			got = append(got, n.Version)
			release()
		case <-timer.C:
			var missing []string
			for _, id := range want {
				if !slices.Contains(got, id) {
					missing = append(missing, id)
				}
			}
			t.Fatalf("sent %v; never sent %v of %v", got, missing, want)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("sent %v, want %v (the queue's order, each once)", got, want)
	}

	// Nothing more goes out: the inbox's copies of messages a drain sent are
	// skipped. A ping, handled after whatever the connection is doing, answers
	// behind anything it sends.
	pollUntil(t, deadline, "the inbox and the resync to be taken", func() bool {
		return len(sess.Inbox()) == 0 && len(sess.Resync()) == 0
	})
	g.frame(t, deadline, `{"messageType":"ping"}`)
	if v := g.recv(t, deadline); !isPing(v) {
		t.Fatalf("sent %T %+v after every message, want only the ping's answer", v, v)
	}

	// The user agent acknowledges what it got: nothing is left for its next
	// connection.
	w.ackAll(t, g, deadline, u, ch, got)
}

func isPing(v any) bool {
	_, ok := v.(mozproto.Ping)
	return ok
}

// pollUntil polls cond until it holds, failing the test at deadline.
func pollUntil(t testing.TB, deadline time.Time, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited in vain for %s", what)
		}
		<-tick.C
	}
}
