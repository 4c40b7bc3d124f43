// Package wsconn serves the Mozilla Push Service protocol over WebSocket: it frames
// what a session.Session says and does, and owns the socket.
package wsconn

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/herald-push/herald/pkg/mozproto"
	"github.com/herald-push/herald/services/gateway/internal/session"
)

// Config holds the WebSocket settings.
type Config struct {
	// ReadLimit bounds one incoming frame in bytes.
	ReadLimit int64
	// HelloTimeout is how long a new connection may take to say hello.
	HelloTimeout time.Duration
	// PingInterval is how often the gateway sends a WebSocket ping to keep NATs open
	// and find dead peers; a peer that does not answer within PingInterval is closed.
	PingInterval time.Duration
	// WriteTimeout bounds one write; a user agent slower than that is closed.
	WriteTimeout time.Duration
	// OpTimeout bounds the storage work of one frame.
	OpTimeout time.Duration
	// OutboxSize bounds the frames queued for writing to one connection; a user agent
	// whose queue stays full for WriteTimeout is closed as a slow consumer.
	OutboxSize int
	// CloseLinger is how long a close frame waits for the peer's answer before the
	// TCP connection is dropped (Firefox does not answer promptly).
	CloseLinger time.Duration
	// BackoffAfter is how long a user agent with nothing to receive (no
	// subscription, no broadcast) may stay quiet before it is closed with
	// mozproto.CloseBackoff; 0 keeps it.
	BackoffAfter time.Duration
}

// Validate checks the settings.
func (c Config) Validate() error {
	if c.ReadLimit < 1024 || c.HelloTimeout <= 0 || c.PingInterval <= 0 || c.WriteTimeout <= 0 || c.OpTimeout <= 0 || c.CloseLinger <= 0 {
		return errors.New("ws-read-limit must be at least 1024 and the ws timeouts positive")
	}
	if c.OutboxSize < 1 || c.BackoffAfter < 0 {
		return errors.New("ws-outbox-size must be positive and ws-backoff-after not negative")
	}
	return nil
}

// Subprotocol is the WebSocket subprotocol Firefox asks for.
const Subprotocol = "push-notification"

// Server accepts WebSocket connections and tracks them so that a drain can close
// them: http.Server.Shutdown does not wait for hijacked connections.
type Server struct {
	cfg Config
	hub *session.Hub
	log *slog.Logger

	mu      sync.Mutex
	conns   map[*conn]struct{}
	closing bool
	metrics serverMetrics
	wg      sync.WaitGroup
}

// NewServer returns a Server.
func NewServer(cfg Config, hub *session.Hub, log *slog.Logger) (*Server, error) {
	s := &Server{cfg: cfg, hub: hub, log: log, conns: map[*conn]struct{}{}}
	if err := s.registerMetrics(); err != nil {
		return nil, fmt.Errorf("websocket metrics: %w", err)
	}
	return s, nil
}

// ServeHTTP upgrades the request and runs the connection until it ends.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	closing := s.closing
	if !closing {
		s.wg.Add(1)
	}
	s.mu.Unlock()
	if closing {
		http.Error(w, "draining", http.StatusServiceUnavailable)
		return
	}
	defer s.wg.Done()
	hw := &hijackRecorder{ResponseWriter: w}
	ws, err := websocket.Accept(hw, r, &websocket.AcceptOptions{
		Subprotocols: []string{Subprotocol},
		// The protocol carries no ambient credentials (no cookies, no auth headers):
		// any origin may connect, as pages using the JS SDK do.
		InsecureSkipVerify: true,
	})
	if err != nil {
		// Accept already wrote the HTTP error.
		return
	}
	ws.SetReadLimit(s.cfg.ReadLimit)
	s.metrics.opened.Add(r.Context(), 1)
	c := &conn{
		srv:         s,
		ws:          ws,
		netConn:     hw.conn,
		out:         make(chan []byte, s.cfg.OutboxSize),
		writeFailed: make(chan struct{}),
		stopWriting: make(chan struct{}),
		goAway:      make(chan struct{}),
	}
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
	c.run(r.Context())
}

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
	conns := make([]*conn, 0, len(s.conns))
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

// closeStatus maps a close code to a websocket.StatusCode with a short reason.
func closeStatus(code int) (websocket.StatusCode, string) {
	switch code {
	case mozproto.CloseGoingAway:
		return websocket.StatusGoingAway, "reconnect"
	case mozproto.CloseProtocolError:
		return websocket.StatusProtocolError, "protocol error"
	case mozproto.CloseTakenOver:
		return websocket.StatusCode(code), "taken over"
	case mozproto.CloseSlowConsumer:
		return websocket.StatusCode(code), "slow consumer"
	case mozproto.CloseTooBig:
		return websocket.StatusMessageTooBig, "frame too big"
	case mozproto.CloseIdle:
		return websocket.StatusCode(code), "idle"
	case mozproto.CloseTooManyPings:
		return websocket.StatusCode(code), "pinging too often"
	case mozproto.CloseBackoff:
		return websocket.StatusCode(code), "nothing to receive"
	default:
		return websocket.StatusInternalError, "server error"
	}
}

// hijackRecorder hands the library the hijacked connection and keeps it, so that a
// close does not depend on the peer answering.
type hijackRecorder struct {
	http.ResponseWriter
	conn net.Conn
}

func (h *hijackRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err == nil {
		h.conn = c
	}
	return c, brw, err
}
