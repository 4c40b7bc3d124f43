// Package webpush is ingest's HTTP API for application servers (RFC 8030 §5, §7):
// POST a message to a push endpoint, DELETE a message that is still waiting.
package webpush

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/herald-push/herald/pkg/ids"
	"github.com/herald-push/herald/pkg/store"
	"github.com/herald-push/herald/pkg/token"
	"github.com/herald-push/herald/pkg/vapid"
	heraldv1 "github.com/herald-push/herald/proto/herald/v1"
	"github.com/herald-push/herald/services/ingest/internal/apierr"
)

// Router is what ingest needs of the router service.
type Router interface {
	Route(ctx context.Context, in *heraldv1.RouteRequest, opts ...grpc.CallOption) (*heraldv1.RouteResponse, error)
	DeleteMessage(ctx context.Context, in *heraldv1.DeleteMessageRequest, opts ...grpc.CallOption) (*heraldv1.DeleteMessageResponse, error)
}

// Subscriptions finds a push endpoint's subscription.
type Subscriptions interface {
	Subscription(ctx context.Context, u ids.UAID, ch ids.ChannelID) (store.Subscription, error)
}

// Config holds the API's settings.
type Config struct {
	// PublicURL is the origin application servers reach ingest at: the base of
	// Location headers and the audience VAPID tokens must name.
	PublicURL string
	// MaxTTL clamps the TTL of messages, in seconds.
	MaxTTL int64
	// MaxBody is the largest encrypted body accepted, in bytes.
	MaxBody int64
	// Timeout bounds the work done for one request.
	Timeout time.Duration
}

// Handler serves the API.
type Handler struct {
	cfg      Config
	origin   string
	tokens   *token.Codec
	subs     Subscriptions
	router   Router
	verifier *vapid.Verifier
	log      *slog.Logger
	mux      *http.ServeMux
}

// NewHandler returns the API handler.
func NewHandler(cfg Config, tokens *token.Codec, subs Subscriptions, router Router, verifier *vapid.Verifier, log *slog.Logger) *Handler {
	h := &Handler{cfg: cfg, origin: origin(cfg.PublicURL), tokens: tokens, subs: subs, router: router, verifier: verifier, log: log}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /wpush/v2/{token}", h.push)
	mux.HandleFunc("DELETE /m/{id}", h.deleteMessage)
	mux.HandleFunc("/wpush/v2/{token}", methodNotAllowed("POST"))
	mux.HandleFunc("/m/{id}", methodNotAllowed("DELETE"))
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		apierr.Write(w, apierr.New(http.StatusNotFound, apierr.ErrnoInvalidToken, "no such resource"))
	})
	h.mux = mux
	return h
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

func methodNotAllowed(allow string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Allow", allow)
		apierr.Write(w, apierr.New(http.StatusMethodNotAllowed, apierr.ErrnoMethodNotAllowed, "use "+allow))
	}
}

// push accepts one message (RFC 8030 §5). Nothing is stored unless every check passes.
func (h *Handler) push(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.Timeout)
	defer cancel()
	u, ch, err := h.tokens.OpenEndpoint(r.PathValue("token"))
	if err != nil {
		apierr.Write(w, apierr.New(http.StatusNotFound, apierr.ErrnoInvalidToken, "invalid push endpoint"))
		return
	}
	ttl, aerr := parseTTL(r.Header.Get("TTL"), h.cfg.MaxTTL)
	if aerr != nil {
		apierr.Write(w, aerr)
		return
	}
	urgency, aerr := parseUrgency(r.Header.Get("Urgency"))
	if aerr != nil {
		apierr.Write(w, aerr)
		return
	}
	topic, aerr := parseTopic(r.Header.Get("Topic"))
	if aerr != nil {
		apierr.Write(w, aerr)
		return
	}
	body, aerr := h.readBody(r)
	if aerr != nil {
		apierr.Write(w, aerr)
		return
	}
	headers, aerr := parseEncoding(r.Header, body)
	if aerr != nil {
		apierr.Write(w, aerr)
		return
	}
	sub, err := h.subs.Subscription(ctx, u, ch)
	if errors.Is(err, store.ErrNotFound) {
		apierr.Write(w, apierr.New(http.StatusGone, apierr.ErrnoGone, "subscription is gone"))
		return
	}
	if err != nil {
		h.log.Error("look up subscription", "uaid", u.String(), "err", err)
		apierr.Write(w, apierr.Unavailable("subscription store unavailable"))
		return
	}
	if aerr := h.authorize(r, sub); aerr != nil {
		apierr.Write(w, aerr)
		return
	}
	received := time.Now()
	resp, err := h.router.Route(ctx, &heraldv1.RouteRequest{Message: &heraldv1.Message{
		Uaid:           u.String(),
		ChannelId:      ch.String(),
		Data:           body,
		Headers:        headers,
		TtlSeconds:     ttl,
		ReceivedUnixMs: received.UnixMilli(),
		Urgency:        urgency,
		Topic:          topic,
	}})
	if err != nil {
		apierr.Write(w, h.routeError(u, err))
		return
	}
	hdr := w.Header()
	hdr.Set("Location", h.cfg.PublicURL+"/m/"+h.tokens.MessageID(u, ch, resp.GetId()))
	hdr.Set("TTL", strconv.FormatInt(ttl, 10))
	w.WriteHeader(http.StatusCreated)
}

// deleteMessage removes a message that is still waiting (RFC 8030 §6.2).
func (h *Handler) deleteMessage(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.Timeout)
	defer cancel()
	u, ch, entry, err := h.tokens.OpenMessageID(r.PathValue("id"))
	if err != nil {
		apierr.Write(w, apierr.New(http.StatusNotFound, apierr.ErrnoInvalidToken, "invalid message id"))
		return
	}
	resp, err := h.router.DeleteMessage(ctx, &heraldv1.DeleteMessageRequest{Uaid: u.String(), ChannelId: ch.String(), Id: entry})
	if err != nil {
		apierr.Write(w, h.routeError(u, err))
		return
	}
	if !resp.GetDeleted() {
		apierr.Write(w, apierr.New(http.StatusNotFound, apierr.ErrnoGone, "message was delivered or expired"))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// readBody reads at most MaxBody bytes: a larger body is refused without reading on.
func (h *Handler) readBody(r *http.Request) ([]byte, *apierr.Error) {
	tooLarge := apierr.New(http.StatusRequestEntityTooLarge, apierr.ErrnoTooLarge,
		"body exceeds "+strconv.FormatInt(h.cfg.MaxBody, 10)+" bytes")
	if r.ContentLength > h.cfg.MaxBody {
		return nil, tooLarge
	}
	var buf bytes.Buffer
	n, err := buf.ReadFrom(io.LimitReader(r.Body, h.cfg.MaxBody+1))
	if err != nil {
		return nil, apierr.New(http.StatusBadRequest, apierr.ErrnoInvalidCrypto, "could not read the body")
	}
	if n > h.cfg.MaxBody {
		return nil, tooLarge
	}
	return buf.Bytes(), nil
}

// authorize checks VAPID (RFC 8292): required for a subscription restricted to an
// application server key, and checked whenever it is sent.
func (h *Handler) authorize(r *http.Request, sub store.Subscription) *apierr.Error {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		if sub.AppServerKey != nil {
			return apierr.New(http.StatusUnauthorized, apierr.ErrnoUnauthorized, "this subscription requires VAPID authentication")
		}
		return nil
	}
	cred, err := vapid.ParseAuthorization(auth, r.Header.Get("Crypto-Key"))
	if err != nil {
		return apierr.New(http.StatusUnauthorized, apierr.ErrnoUnauthorized, "invalid VAPID credentials: "+err.Error())
	}
	if _, err := h.verifier.Verify(cred, h.origin, time.Now()); err != nil {
		return apierr.New(http.StatusUnauthorized, apierr.ErrnoUnauthorized, "invalid VAPID credentials: "+err.Error())
	}
	if sub.AppServerKey != nil {
		key, err := cred.PublicKey()
		if err != nil || subtle.ConstantTimeCompare(key, sub.AppServerKey) != 1 {
			return apierr.New(http.StatusForbidden, apierr.ErrnoForbidden, "VAPID key does not match the subscription's application server key")
		}
	}
	return nil
}

// routeError translates a router failure for the application server.
func (h *Handler) routeError(u ids.UAID, err error) *apierr.Error {
	switch status.Code(err) {
	case codes.ResourceExhausted:
		e := apierr.New(http.StatusTooManyRequests, apierr.ErrnoQueueFull, "too many messages waiting for this subscription")
		e.RetryAfter = 60 * time.Second
		return e
	case codes.InvalidArgument:
		return apierr.New(http.StatusBadRequest, apierr.ErrnoInvalidHeader, status.Convert(err).Message())
	}
	h.log.Error("route message", "uaid", u.String(), "err", err)
	return apierr.Unavailable("message store unavailable")
}

// origin returns scheme://host[:port] of a URL, the form of a VAPID audience.
func origin(publicURL string) string {
	scheme, rest, ok := strings.Cut(publicURL, "://")
	if !ok {
		return publicURL
	}
	host, _, _ := strings.Cut(rest, "/")
	return strings.ToLower(scheme) + "://" + strings.ToLower(host)
}
