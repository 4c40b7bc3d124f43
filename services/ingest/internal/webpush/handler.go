// Package webpush is ingest's HTTP API for application servers (RFC 8030 §5, §7):
// POST a message to a push endpoint, DELETE a message that is still waiting.
package webpush

import (
	"context"
	"crypto/subtle"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/herald-push/herald/pkg/ids"
	"github.com/herald-push/herald/pkg/msgtrace"
	"github.com/herald-push/herald/pkg/store"
	"github.com/herald-push/herald/pkg/token"
	"github.com/herald-push/herald/pkg/vapid"
	heraldv1 "github.com/herald-push/herald/proto/herald/v1"
	"github.com/herald-push/herald/services/ingest/internal/apierr"
	"github.com/herald-push/herald/services/ingest/internal/ratelimit"
)

// Router is what ingest needs of the router service.
type Router interface {
	Route(ctx context.Context, in *heraldv1.RouteRequest, opts ...grpc.CallOption) (*heraldv1.RouteResponse, error)
	DeleteMessage(ctx context.Context, in *heraldv1.DeleteMessageRequest, opts ...grpc.CallOption) (*heraldv1.DeleteMessageResponse, error)
}

// Subscriptions finds a push endpoint's subscription, possibly in a cache that
// the router may find stale (see package subcache); Forget drops what the router
// found stale.
type Subscriptions interface {
	Subscription(ctx context.Context, u ids.UAID, ch ids.ChannelID) (store.Subscription, error)
	Forget(u ids.UAID, ch ids.ChannelID)
}

// Limiter counts accepted messages against the VAPID key's rate limit. VAPIDKey
// counts one message and returns 0 when it is allowed, else how long until one
// would be (and then counts nothing); RefundVAPIDKey gives back a message it
// allowed, when a later step refused it. (The subscription's limit is counted by
// the router: see Config.SubscriptionLimit.)
type Limiter interface {
	VAPIDKey(ctx context.Context, publicKey []byte) (time.Duration, error)
	RefundVAPIDKey(ctx context.Context, publicKey []byte) error
}

// refundTimeout bounds giving back a rate-limit count, which may happen after the
// request's own deadline passed.
const refundTimeout = time.Second

// Config holds the API's settings.
type Config struct {
	// PublicURL is the origin application servers reach ingest at: the base of
	// Location headers and the audience VAPID tokens must name.
	PublicURL string
	// MaxTTL clamps the TTL of messages, in seconds.
	MaxTTL int64
	// MaxBody is the largest encrypted body accepted, in bytes.
	MaxBody int64
	// Timeout bounds the work done for one request once it is read.
	Timeout time.Duration
	// MoreInfo is the URL of the errno documentation, sent in every error body.
	MoreInfo string
	// SubscriptionLimit is each subscription's rate limit. The router counts it
	// in the Redis script that stores the message, in the subscription's hash
	// slot, so that a message costs ingest no Redis call of its own.
	SubscriptionLimit ratelimit.Limit
}

// Handler serves the API.
type Handler struct {
	cfg      Config
	subLimit *heraldv1.RateLimit // cfg.SubscriptionLimit as every RouteRequest carries it; nil: none
	origin   string
	tokens   *token.Codec
	subs     Subscriptions
	router   Router
	verifier *vapid.Verifier
	limiter  Limiter
	log      *slog.Logger
	mux      *http.ServeMux
}

// NewHandler returns the API handler.
func NewHandler(cfg Config, tokens *token.Codec, subs Subscriptions, router Router, verifier *vapid.Verifier, limiter Limiter, log *slog.Logger) *Handler {
	h := &Handler{cfg: cfg, origin: origin(cfg.PublicURL), tokens: tokens, subs: subs, router: router, verifier: verifier, limiter: limiter, log: log}
	if lim := cfg.SubscriptionLimit; lim.Enabled() {
		// Read-only once built: every request shares it.
		h.subLimit = &heraldv1.RateLimit{Count: lim.Count, PeriodUs: lim.Period.Microseconds()}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /wpush/v2/{token}", counted(h.push))
	mux.HandleFunc("DELETE /m/{id}", h.deleteMessage)
	mux.HandleFunc("/wpush/v2/{token}", h.methodNotAllowed("POST"))
	mux.HandleFunc("/m/{id}", h.methodNotAllowed("DELETE"))
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		h.fail(w, apierr.New(http.StatusNotFound, apierr.ErrnoInvalidToken, "no such resource"))
	})
	h.mux = mux
	return h
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// fail answers with e.
func (h *Handler) fail(w http.ResponseWriter, e *apierr.Error) { apierr.Write(w, e, h.cfg.MoreInfo) }

func (h *Handler) methodNotAllowed(allow string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Allow", allow)
		h.fail(w, apierr.New(http.StatusMethodNotAllowed, apierr.ErrnoMethodNotAllowed, "use "+allow))
	}
}

// push accepts one message (RFC 8030 §5). Nothing is stored, and no rate limit
// counts it, unless every check passes and the router stores it (or, TTL 0,
// accepts it).
func (h *Handler) push(w http.ResponseWriter, r *http.Request) {
	u, ch, err := h.tokens.OpenEndpoint(r.PathValue("token"))
	if err != nil {
		h.fail(w, apierr.New(http.StatusNotFound, apierr.ErrnoInvalidToken, "invalid push endpoint"))
		return
	}
	ttl, aerr := parseTTL(r.Header.Get("TTL"), h.cfg.MaxTTL)
	if aerr != nil {
		h.fail(w, aerr)
		return
	}
	urgency, aerr := parseUrgency(r.Header.Get("Urgency"))
	if aerr != nil {
		h.fail(w, aerr)
		return
	}
	topic, aerr := parseTopic(r.Header.Get("Topic"))
	if aerr != nil {
		h.fail(w, aerr)
		return
	}
	// The body is read under the server's read timeout; the work after it under
	// the request timeout, so that a slow sender does not eat the storage budget.
	body, aerr := h.readBody(r)
	if aerr != nil {
		if aerr.Status == http.StatusRequestEntityTooLarge && r.ProtoMajor == 1 {
			// Else net/http would read up to 256 KiB more of the body to keep the
			// connection. HTTP/2 resets just the stream, without this.
			w.Header().Set("Connection", "close")
		}
		h.fail(w, aerr)
		return
	}
	headers, aerr := parseEncoding(r.Header, body)
	if aerr != nil {
		h.fail(w, aerr)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.Timeout)
	defer cancel()
	msg := &heraldv1.Message{
		Uaid:           u.String(),
		ChannelId:      ch.String(),
		Data:           body,
		Headers:        headers,
		TtlSeconds:     ttl,
		ReceivedUnixMs: time.Now().UnixMilli(),
		Urgency:        urgency,
		Topic:          topic,
		Trace:          msgtrace.Inject(ctx),
	}
	resp, stale, aerr := h.send(ctx, r, u, ch, msg)
	if stale {
		// The cached subscription was registered again with another key: once
		// more, against the subscription in Postgres.
		resp, stale, aerr = h.send(ctx, r, u, ch, msg)
	}
	if stale {
		// Registered again twice in these few milliseconds: let the sender retry.
		aerr = apierr.Unavailable("subscription is changing")
	}
	if aerr != nil {
		h.fail(w, aerr)
		return
	}
	locationID := h.tokens.MessageID(u, ch, resp.GetId())
	// The Location's id finds the message's trace (docs/observability.md). The
	// attributes are built only for a span that records them.
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.SetAttributes(msgtrace.LocationID.String(locationID), msgtrace.MessageID.String(resp.GetId()))
	}
	hdr := w.Header()
	hdr.Set("Location", h.cfg.PublicURL+"/m/"+locationID)
	hdr.Set("TTL", strconv.FormatInt(ttl, 10))
	w.WriteHeader(http.StatusCreated)
}

// send checks msg against its subscription and the VAPID key's rate limit, and
// routes it with the subscription's limit, which the router counts. stale says the
// router refused it because the subscription it was checked against, from the
// cache, was registered again with another key since: it may be sent again, and is
// then checked against Postgres.
func (h *Handler) send(ctx context.Context, r *http.Request, u ids.UAID, ch ids.ChannelID, msg *heraldv1.Message) (_ *heraldv1.RouteResponse, stale bool, _ *apierr.Error) {
	sub, err := h.subs.Subscription(ctx, u, ch)
	if errors.Is(err, store.ErrNotFound) {
		return nil, false, gone()
	}
	if err != nil {
		h.log.Error("look up subscription", "uaid", u.String(), "err", err)
		return nil, false, apierr.Unavailable("subscription store unavailable")
	}
	appKey, aerr := h.authorize(r, sub)
	if aerr != nil {
		return nil, false, aerr
	}
	if aerr := h.limitKey(ctx, u, appKey); aerr != nil {
		return nil, false, aerr
	}
	resp, err := h.router.Route(ctx, &heraldv1.RouteRequest{Message: msg, AppServerKey: sub.AppServerKey, SubscriptionLimit: h.subLimit})
	if err != nil {
		// Whatever the router refused it for, the subscription's limit counted
		// nothing; the key's count is given back.
		h.refundKey(ctx, u, appKey)
		switch status.Code(err) {
		case codes.NotFound:
			// Unregistered since the subscription was cached.
			h.subs.Forget(u, ch)
			return nil, false, gone()
		case codes.Aborted:
			h.subs.Forget(u, ch)
			return nil, true, nil
		}
		return nil, false, h.routeError(u, err)
	}
	return resp, false, nil
}

// deleteMessage removes a message that is still waiting (RFC 8030 §7.3).
func (h *Handler) deleteMessage(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.Timeout)
	defer cancel()
	u, ch, entry, err := h.tokens.OpenMessageID(r.PathValue("id"))
	if err != nil {
		h.fail(w, apierr.New(http.StatusNotFound, apierr.ErrnoInvalidToken, "invalid message id"))
		return
	}
	resp, err := h.router.DeleteMessage(ctx, &heraldv1.DeleteMessageRequest{Uaid: u.String(), ChannelId: ch.String(), Id: entry})
	if err != nil {
		h.fail(w, h.routeError(u, err))
		return
	}
	if !resp.GetDeleted() {
		h.fail(w, apierr.New(http.StatusNotFound, apierr.ErrnoGone, "message was delivered or expired"))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// readBody reads at most MaxBody bytes: a larger body is refused without reading
// on, whether its Content-Length says so up front or it is sent chunked.
func (h *Handler) readBody(r *http.Request) ([]byte, *apierr.Error) {
	// The errors are built only when needed: this runs for every message.
	tooLarge := func() *apierr.Error {
		return apierr.New(http.StatusRequestEntityTooLarge, apierr.ErrnoTooLarge,
			"body exceeds "+strconv.FormatInt(h.cfg.MaxBody, 10)+" bytes")
	}
	if r.ContentLength > h.cfg.MaxBody {
		return nil, tooLarge()
	}
	if r.ContentLength >= 0 {
		// The server stops the body at its Content-Length: one exact read.
		body := make([]byte, r.ContentLength)
		if _, err := io.ReadFull(r.Body, body); err != nil {
			return nil, unreadable()
		}
		return body, nil
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, h.cfg.MaxBody+1))
	if err != nil {
		return nil, unreadable()
	}
	if int64(len(body)) > h.cfg.MaxBody {
		return nil, tooLarge()
	}
	return body, nil
}

func unreadable() *apierr.Error {
	return apierr.New(http.StatusBadRequest, apierr.ErrnoInvalidCrypto, "could not read the body")
}

func gone() *apierr.Error {
	return apierr.New(http.StatusGone, apierr.ErrnoGone, "subscription is gone")
}

// authorize checks VAPID (RFC 8292): required for a subscription restricted to an
// application server key, and checked whenever it is sent. It returns the
// verified application server key, nil for a request without VAPID.
func (h *Handler) authorize(r *http.Request, sub store.Subscription) ([]byte, *apierr.Error) {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		if sub.AppServerKey != nil {
			// RFC 8292 §4.2: a restricted subscription needs credentials.
			return nil, apierr.New(http.StatusUnauthorized, apierr.ErrnoUnauthorized, "this subscription requires VAPID authentication")
		}
		return nil, nil
	}
	cred, err := vapid.ParseAuthorization(auth, r.Header.Get("Crypto-Key"))
	if err != nil {
		return nil, apierr.New(http.StatusUnauthorized, apierr.ErrnoUnauthorized, "invalid VAPID credentials: "+err.Error())
	}
	if _, err := h.verifier.Verify(cred, h.origin, time.Now()); err != nil {
		return nil, apierr.New(http.StatusUnauthorized, apierr.ErrnoUnauthorized, "invalid VAPID credentials: "+err.Error())
	}
	key, err := cred.PublicKey()
	if err != nil {
		// ParseAuthorization decoded it already; this cannot fail.
		return nil, apierr.New(http.StatusUnauthorized, apierr.ErrnoUnauthorized, "invalid VAPID key")
	}
	if sub.AppServerKey != nil && subtle.ConstantTimeCompare(key, sub.AppServerKey) != 1 {
		// RFC 8292 §4.2: valid credentials, but not for this subscription.
		return nil, apierr.New(http.StatusForbidden, apierr.ErrnoForbidden, "VAPID key does not match the subscription's application server key")
	}
	return key, nil
}

// limitKey counts the message against the VAPID key's rate limit, when it is
// signed (appKey not nil); refundKey gives the count back, for a message refused
// after this.
func (h *Handler) limitKey(ctx context.Context, u ids.UAID, appKey []byte) *apierr.Error {
	if appKey == nil {
		return nil
	}
	wait, err := h.limiter.VAPIDKey(ctx, appKey)
	if err != nil {
		h.log.Error("rate limit", "uaid", u.String(), "err", err)
		return apierr.Unavailable("rate limit store unavailable")
	}
	if wait > 0 {
		return rateLimited("too many messages signed with this VAPID key", wait)
	}
	return nil
}

// refundKey gives back what limitKey counted.
func (h *Handler) refundKey(ctx context.Context, u ids.UAID, appKey []byte) {
	if appKey == nil {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), refundTimeout)
	defer cancel()
	if err := h.limiter.RefundVAPIDKey(rctx, appKey); err != nil {
		// The sender loses one message of allowance; nothing worse.
		h.log.Warn("rate limit refund", "limit", "vapid_key", "uaid", u.String(), "err", err)
	}
}

// rateLimited is the 429 for a rate limit, with Retry-After rounded up to the
// second when a message would be accepted again.
func rateLimited(message string, wait time.Duration) *apierr.Error {
	e := apierr.New(http.StatusTooManyRequests, apierr.ErrnoRateLimited, message)
	e.RetryAfter = (wait + time.Second - 1).Truncate(time.Second)
	return e
}

// routeError translates a router failure for the application server.
func (h *Handler) routeError(u ids.UAID, err error) *apierr.Error {
	switch status.Code(err) {
	case codes.ResourceExhausted:
		if wait, ok := heraldv1.RetryAfter(err); ok {
			// The subscription's rate limit, which the router counts.
			return rateLimited("too many messages for this subscription", wait)
		}
		e := apierr.New(http.StatusTooManyRequests, apierr.ErrnoQueueFull, "too many messages waiting for this subscription")
		e.RetryAfter = 60 * time.Second
		return e
	case codes.InvalidArgument:
		// Ingest checked everything the router checks: this is a bug, not bad input.
		h.log.Error("router refused a message", "uaid", u.String(), "err", err)
		return apierr.New(http.StatusInternalServerError, apierr.ErrnoInternal, "internal error")
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
