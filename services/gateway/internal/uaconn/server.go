package uaconn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/herald-push/herald/pkg/mozproto"
	"github.com/herald-push/herald/services/gateway/internal/session"
	"github.com/herald-push/herald/services/gateway/internal/workers"
)

// Config holds the settings every transport shares.
type Config struct {
	// HelloTimeout is how long a new connection may take to say hello.
	HelloTimeout time.Duration
	// OpTimeout bounds the storage work of one frame.
	OpTimeout time.Duration
	// BackoffAfter is how long a user agent with nothing to receive (no
	// subscription, no broadcast) may stay quiet before it is closed with
	// mozproto.CloseBackoff; 0 keeps it.
	BackoffAfter time.Duration
}

// Validate checks the settings.
func (c Config) Validate() error {
	if c.HelloTimeout <= 0 || c.OpTimeout <= 0 || c.BackoffAfter < 0 {
		return errors.New("ws-hello-timeout and op-timeout must be positive and ws-backoff-after not negative")
	}
	return nil
}

// Server runs the connections of every transport and tracks them, so that a drain
// can close them: http.Server.Shutdown waits for neither hijacked WebSockets nor
// the sessions of the HTTP transports, which outlive their requests.
type Server struct {
	cfg Config
	hub *session.Hub
	log *slog.Logger

	// workers handle the events of connections (see Serve).
	workers *workers.Pool

	mu      sync.Mutex
	conns   map[*Conn]struct{}
	closing bool
	wg      sync.WaitGroup
	metrics serverMetrics
}

// maxWorkers bounds the Server's workers: at most that many stacks grown for
// handling events stay after a burst. Events beyond it are handled on goroutines
// of their own, as fast, but each grows a stack.
const maxWorkers = 128

// NewServer returns a Server.
func NewServer(cfg Config, hub *session.Hub, log *slog.Logger) (*Server, error) {
	s := &Server{cfg: cfg, hub: hub, log: log, conns: map[*Conn]struct{}{}, workers: workers.New(maxWorkers)}
	if err := s.registerMetrics(); err != nil {
		return nil, fmt.Errorf("connection metrics: %w", err)
	}
	return s, nil
}

// Conn is one connection of a user agent, tracked from Open until it ends (or is
// Abandoned). See Serve for how it runs.
type Conn struct {
	srv       *Server
	transport string

	// state is asleep, running or again (see Serve); process is run, as a func
	// value made once, which hands it to a worker without allocating.
	state   atomic.Int32
	process func()
	// frames holds the frame a transport handed over until the connection takes it.
	frames chan *Frame
	// ended is closed when the connection ends.
	ended chan struct{}
	// Events that wake the connection, besides frames and its session's.
	goAway    atomic.Bool
	helloLate atomic.Bool
	idleDue   atomic.Bool

	// Set by Serve.
	ctx     context.Context
	t       Transport
	stopCtx func() bool

	// The fields below belong to run.
	log        *slog.Logger
	sess       *session.Session
	helloTimer *time.Timer
	// idleTimer, when a user agent has nothing to receive, fires at idleAt (zero
	// when not armed), when it is told not to come back until it has something to
	// send.
	idleTimer *time.Timer
	idleAt    time.Time
	over      bool
}

// Open admits a new connection of the named transport ("websocket", "http"). It
// returns false while the gateway drains: the transport refuses the user agent,
// which goes to another gateway. The caller must Serve or Abandon the Conn.
func (s *Server) Open(transport string) (*Conn, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return nil, false
	}
	c := &Conn{
		srv:       s,
		transport: transport,
		log:       s.log.With("transport", transport),
		frames:    make(chan *Frame, 1),
		ended:     make(chan struct{}),
	}
	c.process = c.run
	// Running until Serve has set the connection up: an event before that (a drain)
	// is handled after it.
	c.state.Store(running)
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return c, true
}

// Abandon forgets a connection that will not be served (its handshake failed).
func (c *Conn) Abandon() { c.srv.forget(c) }

func (s *Server) forget(c *Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.wg.Done()
}

func (c *Conn) sayGoAway() {
	c.goAway.Store(true)
	c.wake()
}

// Len returns the number of open connections, identified or not.
func (s *Server) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Drain refuses new connections and closes the open ones with "going away", spread
// evenly over window so that they do not all reconnect elsewhere at once. It returns
// when every connection has ended, and the workers with them, or when ctx is done.
func (s *Server) Drain(ctx context.Context, window time.Duration) error {
	s.mu.Lock()
	s.closing = true
	conns := make([]*Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	if len(conns) > 0 {
		step := window / time.Duration(len(conns))
		t := time.NewTicker(max(step, time.Microsecond))
		defer t.Stop()
		for i, c := range conns {
			if i > 0 && step > 0 {
				select {
				case <-t.C:
				case <-ctx.Done():
				}
			}
			c.sayGoAway()
		}
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		// No connection is left to hand the workers an event.
		s.workers.Close()
		return nil
	case <-ctx.Done():
		return errors.New("drain: connections still open at the deadline")
	}
}

// CloseReason is the short reason of a close code, as transports tell it to user
// agents and metrics record it.
func CloseReason(code int) string {
	switch code {
	case mozproto.CloseGoingAway:
		return "reconnect"
	case mozproto.CloseProtocolError:
		return "protocol error"
	case mozproto.CloseTakenOver:
		return "taken over"
	case mozproto.CloseSlowConsumer:
		return "slow consumer"
	case mozproto.CloseTooBig:
		return "frame too big"
	case mozproto.CloseIdle:
		return "idle"
	case mozproto.CloseTooManyPings:
		return "pinging too often"
	case mozproto.CloseBackoff:
		return "nothing to receive"
	default:
		return "server error"
	}
}
