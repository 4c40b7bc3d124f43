// Package wsconn frames the Mozilla Push Service protocol over WebSocket: a
// uaconn.Transport that owns the socket, while uaconn runs the protocol.
package wsconn

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/coder/websocket"

	"github.com/herald-push/herald/pkg/mozproto"
	"github.com/herald-push/herald/services/gateway/internal/uaconn"
)

// Config holds the WebSocket settings.
type Config struct {
	// ReadLimit bounds one incoming frame in bytes.
	ReadLimit int64
	// PingInterval is how often the gateway sends a WebSocket ping to keep NATs open
	// and find dead peers; a peer that does not answer within PingInterval is closed.
	PingInterval time.Duration
	// WriteTimeout bounds one write; a user agent slower than that is closed.
	WriteTimeout time.Duration
	// OutboxSize bounds the frames queued for writing to one connection; a user agent
	// whose queue stays full for WriteTimeout is closed as a slow consumer.
	OutboxSize int
	// CloseLinger is how long a close frame waits for the peer's answer before the
	// TCP connection is dropped (Firefox does not answer promptly).
	CloseLinger time.Duration
}

// Validate checks the settings.
func (c Config) Validate() error {
	if c.ReadLimit < 1024 || c.PingInterval <= 0 || c.WriteTimeout <= 0 || c.CloseLinger <= 0 {
		return errors.New("ws-read-limit must be at least 1024 and the ws timeouts positive")
	}
	if c.OutboxSize < 1 {
		return errors.New("ws-outbox-size must be positive")
	}
	return nil
}

// Subprotocol is the WebSocket subprotocol Firefox asks for.
const Subprotocol = "push-notification"

// Server accepts WebSocket connections and runs each with uaconn.
type Server struct {
	cfg   Config
	conns *uaconn.Server
	log   *slog.Logger
}

// NewServer returns a Server.
func NewServer(cfg Config, conns *uaconn.Server, log *slog.Logger) *Server {
	return &Server{cfg: cfg, conns: conns, log: log}
}

// ServeHTTP upgrades the request and sets the connection up: it runs on the
// reader's goroutine and uaconn's workers once this returns.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	uc, ok := s.conns.Open("websocket")
	if !ok {
		http.Error(w, "draining", http.StatusServiceUnavailable)
		return
	}
	hw := &hijackRecorder{ResponseWriter: w}
	ws, err := websocket.Accept(hw, r, &websocket.AcceptOptions{
		Subprotocols: []string{Subprotocol},
		// The protocol carries no ambient credentials (no cookies, no auth headers):
		// any origin may connect, as pages using the JS SDK do.
		InsecureSkipVerify: true,
	})
	if err != nil {
		// Accept already wrote the HTTP error.
		uc.Abandon()
		return
	}
	ws.SetReadLimit(s.cfg.ReadLimit)
	// The connection outlives the request: net/http frees its own state for the
	// connection (buffers, request, response) once this handler returns, and the
	// handler's goroutine with its deep stack ends. uaconn tracks the connection so
	// that a drain waits for it.
	ctx := context.WithoutCancel(r.Context())
	c := &conn{
		cfg:         s.cfg,
		log:         s.log,
		ws:          ws,
		netConn:     hw.conn,
		ioCtx:       ctx,
		uc:          uc,
		dequeued:    make(chan struct{}, 1),
		writeFailed: make(chan struct{}),
	}
	uc.Serve(ctx, c)
	c.start()
}

// closeStatus maps a close code to a websocket.StatusCode with a short reason.
func closeStatus(code int) (websocket.StatusCode, string) {
	reason := uaconn.CloseReason(code)
	switch code {
	case mozproto.CloseGoingAway:
		return websocket.StatusGoingAway, reason
	case mozproto.CloseProtocolError:
		return websocket.StatusProtocolError, reason
	case mozproto.CloseTooBig:
		return websocket.StatusMessageTooBig, reason
	case mozproto.CloseTakenOver, mozproto.CloseSlowConsumer, mozproto.CloseIdle, mozproto.CloseTooManyPings, mozproto.CloseBackoff:
		return websocket.StatusCode(code), reason
	default:
		return websocket.StatusInternalError, reason
	}
}

// hijackRecorder hands the library the hijacked connection and keeps it, so that a
// close does not depend on the peer answering.
type hijackRecorder struct {
	http.ResponseWriter
	conn net.Conn
}

// Sizes of the buffers the library reads and writes frames through, instead of
// net/http's 4 KiB each, which an idle connection would hold for its lifetime.
// User agents send small frames (hello, register, acks); a larger read or write
// goes past the buffer straight to the socket.
const (
	readBufferSize  = 512
	writeBufferSize = 1024
)

func (h *hijackRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return c, brw, err
	}
	h.conn = c
	// Keep net/http's buffers only if they hold bytes: a frame sent right behind
	// the upgrade request, or a response not yet flushed.
	br, bw := brw.Reader, brw.Writer
	if br.Buffered() == 0 {
		br = bufio.NewReaderSize(c, readBufferSize)
	}
	if bw.Buffered() == 0 {
		bw = bufio.NewWriterSize(c, writeBufferSize)
	}
	return c, bufio.NewReadWriter(br, bw), nil
}
