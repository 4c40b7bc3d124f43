// Package httpconn frames the user-agent protocol over plain HTTP, for networks and
// proxies that block WebSockets: a user agent says hello in a POST, which answers
// with its uaid and a connection token, then receives over Server-Sent Events
// (sse.go) or long-polling (poll.go), and sends its other frames (register,
// unregister, ack, nack, ping, urgency, broadcast_subscribe) in POSTs, each
// answered with the frame's reply. The protocol itself runs in uaconn, as for the
// WebSocket; see docs/protocol.md.
package httpconn

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/herald-push/herald/pkg/mozproto"
	"github.com/herald-push/herald/services/gateway/internal/uaconn"
)

// Config holds the settings of the HTTP transports.
type Config struct {
	// ReadLimit bounds one POSTed frame in bytes.
	ReadLimit int64
	// IdleTimeout is how long a connection may go without a stream or a poll
	// reading it before it is closed (mozproto.CloseIdle); a closed connection's
	// code is told to requests for as long again.
	IdleTimeout time.Duration
	// PollTimeout is the longest a poll is held when there is nothing to send.
	PollTimeout time.Duration
	// Keepalive is the interval of the comments that keep an idle event stream
	// open through proxies.
	Keepalive time.Duration
	// Backlog bounds the notifications sent and not yet acknowledged on one
	// connection; a user agent whose backlog stays full for WriteTimeout is closed
	// as a slow consumer.
	Backlog int
	// WriteTimeout bounds one write to an event stream, and how long a full backlog
	// may stay full.
	WriteTimeout time.Duration
}

// Validate checks the settings.
func (c Config) Validate() error {
	if c.IdleTimeout <= 0 || c.PollTimeout <= 0 || c.Keepalive <= 0 || c.WriteTimeout <= 0 || c.Backlog < 1 {
		return errors.New("the http timeouts and http-backlog must be positive")
	}
	return nil
}

// Server serves the HTTP transports under /ua.
type Server struct {
	cfg   Config
	conns *uaconn.Server
	log   *slog.Logger

	// byToken finds a connection by its token, sharded by the token's first byte.
	byToken [16]tokenShard
}

type tokenShard struct {
	mu sync.Mutex
	m  map[string]*conn
}

// NewServer returns a Server.
func NewServer(cfg Config, conns *uaconn.Server, log *slog.Logger) *Server {
	s := &Server{cfg: cfg, conns: conns, log: log}
	for i := range s.byToken {
		s.byToken[i].m = map[string]*conn{}
	}
	return s
}

// Register adds the transports' routes to mux.
func (s *Server) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /ua", s.cors(s.hello))
	mux.HandleFunc("POST /ua/{uaid}", s.cors(s.frame))
	mux.HandleFunc("DELETE /ua/{uaid}", s.cors(s.leave))
	mux.HandleFunc("GET /ua/{uaid}/sse", s.cors(s.stream))
	mux.HandleFunc("GET /ua/{uaid}/poll", s.cors(s.poll))
	mux.HandleFunc("OPTIONS /ua", s.preflight)
	mux.HandleFunc("OPTIONS /ua/", s.preflight)
}

// cors lets pages of any origin use the transports: the protocol carries no
// ambient credentials (no cookies; the token is in the URL), so nothing is exposed
// that the page did not already hold.
func (s *Server) cors(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Cache-Control", "no-store")
		h(w, r)
	}
}

// preflight answers CORS preflights: a page's POST with a JSON content type, or
// with the token in an Authorization header, asks first.
func (s *Server) preflight(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Methods", "GET, POST, DELETE")
	h.Set("Access-Control-Allow-Headers", "Content-Type, Authorization, Last-Event-ID")
	h.Set("Access-Control-Max-Age", "86400")
	w.WriteHeader(http.StatusNoContent)
}

// helloAnswer is hello's reply with the connection token the other requests carry.
type helloAnswer struct {
	mozproto.HelloReply
	Token string `json:"token"`
}

// hello opens a connection: the body is a hello frame, the answer its reply and
// the connection's token.
func (s *Server) hello(w http.ResponseWriter, r *http.Request) {
	body, code := s.readFrame(w, r)
	if code != 0 {
		writeClose(w, code)
		return
	}
	m, err := mozproto.Parse(body)
	if err != nil || m.Type != mozproto.TypeHello {
		writeClose(w, mozproto.CloseProtocolError)
		return
	}
	uc, ok := s.conns.Open("http")
	if !ok {
		http.Error(w, "draining", http.StatusServiceUnavailable)
		return
	}
	c := newConn(s, newToken(), uc)
	s.remember(c)
	// The connection outlives this request; uaconn.Server owns it, and a drain
	// ends it.
	uc.Serve(context.WithoutCancel(r.Context()), c)
	replies, code, closed, err := c.post(r.Context(), uaconn.Frame{Msg: m})
	switch {
	case err != nil:
		return // the user agent left; the idle timeout ends the connection
	case closed:
		writeClose(w, code)
		return
	}
	reply, ok := replies[0].(mozproto.HelloReply)
	if !ok || len(replies) != 1 {
		s.log.Error("hello answered with an unexpected frame")
		writeClose(w, mozproto.CloseInternal)
		return
	}
	c.mu.Lock()
	c.uaid = reply.UAID
	c.mu.Unlock()
	writeJSON(w, http.StatusOK, helloAnswer{HelloReply: reply, Token: c.token})
}

// frame hands one POSTed frame to the connection and answers with its reply: 200
// with the reply, 204 when the frame has none (ack, nack), or the close frame when
// it ended the connection.
func (s *Server) frame(w http.ResponseWriter, r *http.Request) {
	c, ok := s.lookup(w, r)
	if !ok {
		return
	}
	var f uaconn.Frame
	body, code := s.readFrame(w, r)
	if code == 0 {
		var err error
		if f.Msg, err = mozproto.Parse(body); err != nil {
			code = mozproto.CloseProtocolError
		}
	}
	f.Close = code
	if f.Msg.Type == mozproto.TypeAck {
		c.acked(f.Msg.Updates)
	}
	replies, code, closed, err := c.post(r.Context(), f)
	switch {
	case err != nil:
		return
	case closed:
		writeClose(w, code)
	case len(replies) == 0:
		w.WriteHeader(http.StatusNoContent)
	default:
		writeJSON(w, http.StatusOK, replies[0])
	}
}

// leave closes the connection at the user agent's request.
func (s *Server) leave(w http.ResponseWriter, r *http.Request) {
	c, ok := s.lookup(w, r)
	if !ok {
		return
	}
	if _, _, _, err := c.post(r.Context(), uaconn.Frame{Close: mozproto.CloseGoingAway}); err != nil {
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// readFrame reads a POSTed frame, or returns the close code for one over the limit.
func (s *Server) readFrame(w http.ResponseWriter, r *http.Request) ([]byte, int) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.ReadLimit))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return nil, mozproto.CloseTooBig
	case err != nil:
		return nil, mozproto.CloseProtocolError
	}
	return body, 0
}

// lookup finds the connection a request names by its uaid and token. A request
// without a valid token for the uaid is refused with 403, and changes nothing: a
// uaid is no secret. A connection that ended is told with 410 and its close frame.
func (s *Server) lookup(w http.ResponseWriter, r *http.Request) (*conn, bool) {
	token := r.URL.Query().Get("token")
	if auth, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		token = auth
	}
	c := s.find(token)
	if c != nil {
		c.mu.Lock()
		uaid := c.uaid
		c.mu.Unlock()
		if uaid == "" || subtle.ConstantTimeCompare([]byte(uaid), []byte(r.PathValue("uaid"))) != 1 {
			c = nil
		}
	}
	if c == nil {
		writeJSON(w, http.StatusForbidden, mozproto.CloseFrame{Type: mozproto.TypeClose, Code: mozproto.CloseIdle, Reason: "unknown connection"})
		return nil, false
	}
	if code, closed := c.closed(); closed {
		writeJSON(w, http.StatusGone, closeFrame(code))
		return nil, false
	}
	return c, true
}

func (s *Server) shard(token string) *tokenShard {
	if token == "" {
		return &s.byToken[0]
	}
	return &s.byToken[int(token[0])%len(s.byToken)]
}

func (s *Server) remember(c *conn) {
	sh := s.shard(c.token)
	sh.mu.Lock()
	sh.m[c.token] = c
	sh.mu.Unlock()
}

func (s *Server) forget(c *conn) {
	sh := s.shard(c.token)
	sh.mu.Lock()
	if sh.m[c.token] == c {
		delete(sh.m, c.token)
	}
	sh.mu.Unlock()
}

func (s *Server) find(token string) *conn {
	if token == "" {
		return nil
	}
	sh := s.shard(token)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.m[token]
}

// newToken returns a connection token: 256 random bits, base64url.
func newToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// closeFrame is the frame that tells a user agent its connection ended.
func closeFrame(code int) mozproto.CloseFrame {
	return mozproto.CloseFrame{Type: mozproto.TypeClose, Code: code, Reason: uaconn.CloseReason(code)}
}

// writeClose answers a request whose connection ended (or that ended it), with a
// status that says why.
func writeClose(w http.ResponseWriter, code int) {
	status := http.StatusGone
	switch code {
	case mozproto.CloseProtocolError:
		status = http.StatusBadRequest
	case mozproto.CloseTooBig:
		status = http.StatusRequestEntityTooLarge
	case mozproto.CloseTooManyPings:
		status = http.StatusTooManyRequests
	case mozproto.CloseInternal:
		status = http.StatusInternalServerError
	}
	writeJSON(w, status, closeFrame(code))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encode answer", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n')) // the user agent may be gone; nothing to do
}
