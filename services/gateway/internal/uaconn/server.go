package uaconn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/herald-push/herald/pkg/mozproto"
	"github.com/herald-push/herald/services/gateway/internal/session"
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

	mu      sync.Mutex
	conns   map[*Conn]struct{}
	closing bool
	wg      sync.WaitGroup
	metrics serverMetrics
}

// NewServer returns a Server.
func NewServer(cfg Config, hub *session.Hub, log *slog.Logger) (*Server, error) {
	s := &Server{cfg: cfg, hub: hub, log: log, conns: map[*Conn]struct{}{}}
	if err := s.registerMetrics(); err != nil {
		return nil, fmt.Errorf("connection metrics: %w", err)
	}
	return s, nil
}

// Conn is one connection of a user agent, tracked from Open until its Serve (or
// Abandon) returns.
type Conn struct {
	srv       *Server
	transport string
	log       *slog.Logger

	goAwayOnce sync.Once
	goAway     chan struct{}
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
	c := &Conn{srv: s, transport: transport, log: s.log.With("transport", transport), goAway: make(chan struct{})}
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

// Serve runs the protocol over t until the connection ends, closes t with the close
// code, and forgets the connection. Serve returns once hello is answered: the
// connection goes on on goroutines of its own (see loop), and Drain waits for it.
func (c *Conn) Serve(ctx context.Context, t Transport) {
	c.srv.metrics.opened.Add(ctx, 1, c.srv.metrics.transportAttr(c.transport))
	c.serve(ctx, t)
}

func (c *Conn) sayGoAway() { c.goAwayOnce.Do(func() { close(c.goAway) }) }

// Len returns the number of open connections, identified or not.
func (s *Server) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Drain refuses new connections and closes the open ones with "going away", spread
// evenly over window so that they do not all reconnect elsewhere at once. It returns
// when every connection has ended or ctx is done.
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
