package uaconn

import (
	"context"
	"log/slog"
	"runtime"
	"testing"
	"time"

	"github.com/herald-push/herald/pkg/ids"
	"github.com/herald-push/herald/pkg/lease"
	"github.com/herald-push/herald/pkg/mozproto"
	"github.com/herald-push/herald/pkg/queue"
	"github.com/herald-push/herald/pkg/store"
	"github.com/herald-push/herald/pkg/token"
	"github.com/herald-push/herald/services/gateway/internal/session"
	"github.com/herald-push/herald/services/gateway/internal/workers"
)

// The fakes keep one gateway's world in memory: no user agent is stored, and the
// queue is empty, which is all the connection's tests need.
type fakeStore struct{}

func (fakeStore) CreateUserAgent(context.Context, ids.UAID) error { return nil }
func (fakeStore) Connect(context.Context, ids.UAID, time.Time) ([]store.Subscription, error) {
	return nil, store.ErrNotFound
}
func (fakeStore) Subscribe(context.Context, store.Subscription) error        { return nil }
func (fakeStore) Unsubscribe(context.Context, ids.UAID, ids.ChannelID) error { return nil }
func (fakeStore) DeleteUserAgent(context.Context, ids.UAID) error            { return nil }

type fakeQueue struct{}

func (fakeQueue) Range(context.Context, ids.UAID, string, int64, time.Time) ([]queue.Entry, error) {
	return nil, nil
}
func (fakeQueue) Delete(context.Context, ids.UAID, ...string) (int64, error) { return 0, nil }
func (fakeQueue) Clear(context.Context, ids.UAID) error                      { return nil }
func (fakeQueue) Idle(context.Context, ids.UAID) (bool, error)               { return true, nil }

type fakeLeases struct{}

func (fakeLeases) Claim(context.Context, ids.UAID, string, string) (uint64, lease.Owner, error) {
	return 1, lease.Owner{}, nil
}
func (fakeLeases) Release(context.Context, ids.UAID, uint64) error { return nil }

type fakeEvictor struct{}

func (fakeEvictor) Evict(context.Context, lease.Owner, ids.UAID, uint64) error { return nil }

// fakeTransport hands its connection frames, and records what the connection
// sends and how it closes.
type fakeTransport struct {
	c      *Conn
	sent   chan any
	closed chan int
}

func newFakeTransport() *fakeTransport {
	return &fakeTransport{sent: make(chan any, 16), closed: make(chan int, 1)}
}

func (f *fakeTransport) Send(_ context.Context, v any) error {
	f.sent <- v
	return nil
}
func (f *fakeTransport) Close(_ context.Context, code int) { f.closed <- code }

func newTestServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	return newTestServerWith(t, cfg, fakeQueue{})
}

// newTestServerWith is newTestServer with the queue q.
func newTestServerWith(t *testing.T, cfg Config, q session.Queue) *Server {
	t.Helper()
	codec, err := token.NewCodec([][]byte{make([]byte, 32)})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	hub, err := session.NewHub(session.Config{EndpointURL: "http://push.example", GatewayID: "gw", MaxChannels: 4, InboxSize: 4,
		MinPingInterval: time.Minute}, fakeStore{}, q, fakeLeases{}, fakeEvictor{}, codec, log)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewServer(cfg, hub, log)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// serve runs a connection over a fake transport.
func serve(t *testing.T, s *Server) (*fakeTransport, *Conn) {
	t.Helper()
	c, ok := s.Open("fake")
	if !ok {
		t.Fatal("Open refused")
	}
	ft := newFakeTransport()
	ft.c = c
	c.Serve(context.Background(), ft)
	return ft, c
}

func (f *fakeTransport) send(t *testing.T, f2 Frame) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if !f.c.Frame(ctx, f2) {
		t.Fatal("the connection did not take the frame")
	}
}

func (f *fakeTransport) waitSent(t *testing.T) any {
	t.Helper()
	select {
	case v := <-f.sent:
		return v
	case <-time.After(5 * time.Second):
		t.Fatal("nothing sent")
		return nil
	}
}

func (f *fakeTransport) waitClosed(t *testing.T) int {
	t.Helper()
	select {
	case code := <-f.closed:
		return code
	case <-time.After(5 * time.Second):
		t.Fatal("not closed")
		return 0
	}
}

var cfg = Config{HelloTimeout: time.Second, OpTimeout: time.Second}

func TestRepliesGoToAnswerOrSend(t *testing.T) {
	s := newTestServer(t, cfg)
	ft, _ := serve(t, s)
	// A frame with Answer (a POST) gets its replies there…
	answered := make(chan []any, 1)
	ft.send(t, Frame{Msg: mozproto.ClientMessage{Type: mozproto.TypeHello}, Answer: func(r []any) { answered <- r }})
	select {
	case r := <-answered:
		if h, ok := r[0].(mozproto.HelloReply); !ok || h.Status != 200 || len(r) != 1 {
			t.Fatalf("hello answered %+v", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("hello not answered")
	}
	// …and one without (a WebSocket frame) through Send.
	ft.send(t, Frame{Msg: mozproto.ClientMessage{Type: mozproto.TypeRegister, ChannelID: ids.NewChannelID().String()}})
	if r, ok := ft.waitSent(t).(mozproto.RegisterReply); !ok || r.Status != 200 || r.PushEndpoint == "" {
		t.Fatalf("register replied %+v", r)
	}
	// A frame the transport could not read ends the connection with its code.
	ft.send(t, Frame{Close: mozproto.CloseTooBig})
	if code := ft.waitClosed(t); code != mozproto.CloseTooBig {
		t.Fatalf("closed with %d", code)
	}
}

func TestCloseCodes(t *testing.T) {
	hello := Frame{Msg: mozproto.ClientMessage{Type: mozproto.TypeHello}}
	for _, tt := range []struct {
		name   string
		cfg    Config
		frames []Frame
		then   func(*Server, *Conn)
		want   int
	}{
		{name: "no hello in time", cfg: Config{HelloTimeout: 50 * time.Millisecond, OpTimeout: time.Second}, want: mozproto.CloseIdle},
		{name: "a frame before hello", frames: []Frame{{Msg: mozproto.ClientMessage{Type: mozproto.TypePing}}}, want: mozproto.CloseProtocolError},
		{name: "a hello that does not parse", frames: []Frame{{Data: []byte(`{"messageType":"hello"`)}}, want: mozproto.CloseProtocolError},
		{name: "a frame that does not parse", frames: []Frame{hello, {Data: []byte(`{"messageType":"nope"}`)}}, want: mozproto.CloseProtocolError},
		{name: "a second hello", frames: []Frame{hello, hello}, want: mozproto.CloseProtocolError},
		{name: "nothing to receive", cfg: Config{HelloTimeout: time.Second, OpTimeout: time.Second, BackoffAfter: 50 * time.Millisecond},
			frames: []Frame{hello}, want: mozproto.CloseBackoff},
		{name: "a drain", frames: []Frame{hello}, then: func(s *Server, _ *Conn) {
			// Drain's error would only say the connection outlived the deadline,
			// which the close code checked below says too.
			_ = s.Drain(context.Background(), 0)
		}, want: mozproto.CloseGoingAway},
		{name: "a takeover", frames: []Frame{hello}, then: func(s *Server, _ *Conn) {
			s.hub.Each(func(sess *session.Session) { sess.Kick(mozproto.CloseTakenOver) })
		}, want: mozproto.CloseTakenOver},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.cfg
			if c.HelloTimeout == 0 {
				c = cfg
			}
			s := newTestServer(t, c)
			ft, conn := serve(t, s)
			for _, f := range tt.frames {
				ft.send(t, f)
				if f.Msg.Type == mozproto.TypeHello && f.Answer == nil && tt.want != mozproto.CloseProtocolError {
					ft.waitSent(t) // the hello reply
				}
			}
			if tt.then != nil {
				go tt.then(s, conn)
			}
			if code := ft.waitClosed(t); code != tt.want {
				t.Fatalf("closed with %d, want %d", code, tt.want)
			}
		})
	}
}

func TestDrainRefusesNewConnections(t *testing.T) {
	s := newTestServer(t, cfg)
	if err := s.Drain(context.Background(), time.Second); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Open("fake"); ok {
		t.Fatal("a draining server admitted a connection")
	}
}

func TestUnparsedFramesAreParsed(t *testing.T) {
	s := newTestServer(t, cfg)
	ft, _ := serve(t, s)
	ft.send(t, Frame{Data: []byte(`{"messageType":"hello","use_webpush":true}`)})
	if h, ok := ft.waitSent(t).(mozproto.HelloReply); !ok || h.Status != 200 {
		t.Fatalf("hello replied %+v", h)
	}
	ch := ids.NewChannelID().String()
	ft.send(t, Frame{Data: []byte(`{"messageType":"register","channelID":"` + ch + `"}`)})
	if r, ok := ft.waitSent(t).(mozproto.RegisterReply); !ok || r.Status != 200 || r.ChannelID != ch {
		t.Fatalf("register replied %+v", r)
	}
}

// blockingQueue holds every Delete until release is closed, and says when one
// started.
type blockingQueue struct {
	fakeQueue
	started chan struct{}
	release chan struct{}
}

func (q blockingQueue) Delete(ctx context.Context, _ ids.UAID, _ ...string) (int64, error) {
	q.started <- struct{}{}
	select {
	case <-q.release:
		return 1, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

func TestABlockedFrameDoesNotHoldOtherConnections(t *testing.T) {
	q := blockingQueue{started: make(chan struct{}, 1), release: make(chan struct{})}
	s := newTestServerWith(t, Config{HelloTimeout: time.Second, OpTimeout: time.Minute}, q)
	s.workers = workers.New(1) // one worker, which the blocked ack holds
	hello := Frame{Msg: mozproto.ClientMessage{Type: mozproto.TypeHello}}
	blocked, _ := serve(t, s)
	blocked.send(t, hello)
	blocked.waitSent(t)
	other, _ := serve(t, s)
	other.send(t, hello)
	other.waitSent(t)

	blocked.send(t, Frame{Data: []byte(`{"messageType":"ack","updates":[{"channelID":"x","version":"1-0","code":100}]}`)})
	select {
	case <-q.started:
	case <-time.After(5 * time.Second):
		t.Fatal("the ack did not reach the queue")
	}
	// The worker is busy with the blocked ack: the other connection's frames are
	// answered all the same, one after another.
	for range 3 {
		other.send(t, Frame{Msg: mozproto.ClientMessage{Type: mozproto.TypeRegister, ChannelID: ids.NewChannelID().String()}})
		if r, ok := other.waitSent(t).(mozproto.RegisterReply); !ok || r.Status != 200 {
			t.Fatalf("register replied %+v", r)
		}
	}
	close(q.release)
	// The blocked connection goes on once its ack is done.
	blocked.send(t, Frame{Msg: mozproto.ClientMessage{Type: mozproto.TypePing}})
	if _, ok := blocked.waitSent(t).(mozproto.Ping); !ok {
		t.Fatal("the connection whose ack was blocked did not answer a ping after it")
	}
}

// TestIdleConnectionsHoldNoGoroutine checks that an identified connection that
// waits for its next event holds no goroutine: idle connections are most of a
// gateway's, and a goroutine each was most of their memory.
func TestIdleConnectionsHoldNoGoroutine(t *testing.T) {
	s := newTestServer(t, cfg)
	s.workers = workers.New(2)
	before := runtime.NumGoroutine()
	const n = 200
	conns := make([]*fakeTransport, n)
	for i := range conns {
		conns[i], _ = serve(t, s)
		conns[i].send(t, Frame{Data: []byte(`{"messageType":"hello"}`)})
		conns[i].waitSent(t)
	}
	// Goroutines that ran an event when the workers were busy end with it.
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine()-before > n/10 {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines more for %d idle connections", runtime.NumGoroutine()-before, n)
		}
		time.Sleep(time.Millisecond)
	}
	// And each still answers.
	for _, ft := range conns {
		ft.send(t, Frame{Msg: mozproto.ClientMessage{Type: mozproto.TypePing}})
		if _, ok := ft.waitSent(t).(mozproto.Ping); !ok {
			t.Fatal("an idle connection did not answer a ping")
		}
	}
}
