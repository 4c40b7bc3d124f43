// Package route is the router's gRPC service: it stores each message in its user
// agent's queue and hands it to the gateway that holds the user agent's connection.
//
// Messages arrive in batches (ingest gathers those it received together): a batch is
// stored and its owners looked up in one Redis round trip, and delivered with one
// call per gateway.
package route

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/herald-push/herald/pkg/ids"
	"github.com/herald-push/herald/pkg/lease"
	"github.com/herald-push/herald/pkg/msgtrace"
	"github.com/herald-push/herald/pkg/queue"
	"github.com/herald-push/herald/pkg/rpcstream"
	heraldv1 "github.com/herald-push/herald/proto/herald/v1"
)

// Queue is what the router needs of the message queues.
type Queue interface {
	Append(ctx context.Context, u ids.UAID, e queue.Entry) (string, error)
	AppendIn(ctx context.Context, p redis.Pipeliner, u ids.UAID, e queue.Entry) *queue.AppendCmd
	Admit(ctx context.Context, u ids.UAID, e queue.Entry) error
	AdmitIn(ctx context.Context, p redis.Pipeliner, u ids.UAID, e queue.Entry) *queue.AdmitCmd
	Delete(ctx context.Context, u ids.UAID, entryIDs ...string) (int64, error)
}

// Owners finds the gateway holding a user agent.
type Owners interface {
	LookupIn(ctx context.Context, c redis.Cmdable, u ids.UAID) *lease.LookupCmd
}

// Gateways reaches gateways by address.
type Gateways interface {
	DeliverBatch(ctx context.Context, addr string, req *heraldv1.DeliverBatchRequest) (*heraldv1.DeliverBatchResponse, error)
	Forget(addr string)
}

// Server implements heraldv1.RouterServer.
type Server struct {
	heraldv1.UnimplementedRouterServer
	rdb            redis.UniversalClient
	queue          Queue
	owners         Owners
	gateways       Gateways
	deliverTimeout time.Duration
	log            *slog.Logger
	now            func() time.Time
	tracer         trace.Tracer
	metrics        *metrics
	drain          chan struct{} // closed by Drain
	drainOnce      sync.Once
	observe        func(context.Context, time.Duration)
}

// NewServer returns a Server; deliverTimeout bounds each call to a gateway.
func NewServer(rdb redis.UniversalClient, q Queue, owners Owners, gateways Gateways, deliverTimeout time.Duration, log *slog.Logger) (*Server, error) {
	m, err := newMetrics()
	if err != nil {
		return nil, err
	}
	return &Server{
		rdb: rdb, queue: q, owners: owners, gateways: gateways, deliverTimeout: deliverTimeout, log: log,
		now: time.Now, tracer: msgtrace.Tracer("router"), metrics: m, drain: make(chan struct{}),
	}, nil
}

// streamParallel bounds the batches of one RouteStream routed at once; ingest
// bounds its calls in flight too (-route-calls).
const streamParallel = 64

// RouteStream routes the batches of one stream as RouteBatch would, several at once.
func (s *Server) RouteStream(stream grpc.BidiStreamingServer[heraldv1.RouteBatchRequest, heraldv1.RouteBatchResponse]) error {
	return rpcstream.Serve(stream, rpcstream.ServeOptions{Parallel: streamParallel, Drain: s.drain, Observe: s.observe}, func(ctx context.Context, req *heraldv1.RouteBatchRequest) *heraldv1.RouteBatchResponse {
		return &heraldv1.RouteBatchResponse{Results: s.route(ctx, req.GetRequests())}
	})
}

// ObserveStreamedCalls has f record each batch RouteStream carries (see
// telemetry.StreamedCalls).
func (s *Server) ObserveStreamedCalls(f func(context.Context, time.Duration)) { s.observe = f }

// Drain asks the clients of every RouteStream, open or opened later, to move to
// another router. Call it before the gRPC server's GracefulStop, which waits for
// the streams to end.
func (s *Server) Drain() { s.drainOnce.Do(func() { close(s.drain) }) }

// Route routes one message: a batch of one.
func (s *Server) Route(ctx context.Context, req *heraldv1.RouteRequest) (*heraldv1.RouteResponse, error) {
	res := s.route(ctx, []*heraldv1.RouteRequest{req})[0]
	if err := res.Err(); err != nil {
		return nil, err
	}
	return res.Response, nil
}

// RouteBatch routes several messages, each with its own result.
func (s *Server) RouteBatch(ctx context.Context, req *heraldv1.RouteBatchRequest) (*heraldv1.RouteBatchResponse, error) {
	return &heraldv1.RouteBatchResponse{Results: s.route(ctx, req.GetRequests())}, nil
}

// item is one message of a batch on its way through.
type item struct {
	u      ids.UAID
	ch     ids.ChannelID
	m      *heraldv1.Message
	key    []byte      // the application server key ingest checked the message against
	limit  queue.Limit // the subscription's rate limit, ingest's policy
	result *heraldv1.RouteResult
	append *queue.AppendCmd
	admit  *queue.AdmitCmd
	lookup *lease.LookupCmd
	owner  lease.Owner
	span   trace.Span
}

func fail(code codes.Code, msg string) *heraldv1.RouteResult {
	return &heraldv1.RouteResult{Code: int32(code), Error: msg}
}

// route stores every message with a TTL and delivers every message whose user agent
// is connected. A message fails only when it had to be stored and could not be: then
// the caller must not report success to the application server.
func (s *Server) route(ctx context.Context, reqs []*heraldv1.RouteRequest) []*heraldv1.RouteResult {
	items := make([]item, len(reqs))
	now := s.now().UnixMilli()
	s.metrics.batchSize.Record(ctx, int64(len(reqs)))
	pipe := s.rdb.Pipeline()
	for i, req := range reqs {
		it := &items[i]
		it.m, it.key = req.GetMessage(), req.GetAppServerKey()
		if it.result = s.validate(it, req.GetSubscriptionLimit()); it.result != nil {
			s.metrics.messages.Add(ctx, 1, outcomeInvalid)
			continue
		}
		if it.m.GetReceivedUnixMs() == 0 {
			it.m.ReceivedUnixMs = now
		}
		// The gateway's spans, however late, are children of this one.
		var sctx context.Context
		sctx, it.span = msgtrace.Start(ctx, s.tracer, "router.route", it.m.GetTrace(), msgtrace.UAID.String(it.m.GetUaid()))
		it.m.Trace = msgtrace.Inject(sctx)
		// Ingest may have checked the subscription in a cache: the subscription's
		// recent changes, read in the same round trip, say whether it still holds.
		// The same script counts the subscription's rate limit, so that a message
		// costs ingest no Redis call of its own.
		if it.m.GetTtlSeconds() > 0 {
			it.append = s.queue.AppendIn(ctx, pipe, it.u, it.entry())
		} else {
			it.admit = s.queue.AdmitIn(ctx, pipe, it.u, it.unstored())
		}
		it.lookup = s.owners.LookupIn(ctx, pipe, it.u)
	}
	// Each command reports its own error below; Exec's is the first of them.
	_, _ = pipe.Exec(ctx)

	// Messages for one gateway go in one call, whatever their user agents' epochs.
	byGateway := map[string][]*item{}
	for i := range items {
		it := &items[i]
		if it.result != nil {
			continue
		}
		resp := &heraldv1.RouteResponse{}
		it.result = &heraldv1.RouteResult{Response: resp}
		if it.append != nil {
			id, err := it.append.Result()
			if errors.Is(err, queue.ErrNoScript) {
				// Redis (or this cluster node) had not seen the script: Append loads it.
				id, err = s.queue.Append(ctx, it.u, it.entry())
			}
			if r := s.refused(ctx, it, err); r != nil {
				it.result = r
				continue
			}
			switch {
			case errors.Is(err, queue.ErrFull):
				it.result = fail(codes.ResourceExhausted, "the user agent's queue is full")
				s.metrics.messages.Add(ctx, 1, outcomeFull)
				it.span.SetStatus(otelcodes.Error, "queue full")
				continue
			case err != nil:
				s.log.Error("store message", "uaid", it.u.String(), "err", err)
				it.result = fail(codes.Unavailable, "message store unavailable")
				s.metrics.messages.Add(ctx, 1, outcomeFailed)
				it.span.SetStatus(otelcodes.Error, "store failed")
				continue
			}
			it.m.Id, it.m.Stored = id, true
			resp.Stored = true
			s.metrics.messages.Add(ctx, 1, outcomeStored)
			it.span.AddEvent("stored", trace.WithAttributes(msgtrace.MessageID.String(id)))
		} else {
			err := it.admit.Err()
			if errors.Is(err, queue.ErrNoScript) {
				err = s.queue.Admit(ctx, it.u, it.unstored())
			}
			if r := s.refused(ctx, it, err); r != nil {
				it.result = r
				continue
			}
			if err != nil {
				s.log.Error("check subscription", "uaid", it.u.String(), "err", err)
				it.result = fail(codes.Unavailable, "message store unavailable")
				s.metrics.messages.Add(ctx, 1, outcomeFailed)
				it.span.SetStatus(otelcodes.Error, "check failed")
				continue
			}
			it.m.Id = unstoredID()
			s.metrics.messages.Add(ctx, 1, outcomeUnstored)
		}
		resp.Id = it.m.Id
		owner, err := it.lookup.Result()
		switch {
		case errors.Is(err, lease.ErrNoOwner):
			s.metrics.deliveries.Add(ctx, 1, deliveryOffline)
		case err != nil:
			// The message waits in its queue for the next connection.
			s.log.Warn("look up owner", "uaid", it.u.String(), "err", err)
		default:
			it.owner = owner
			byGateway[owner.Addr] = append(byGateway[owner.Addr], it)
		}
	}
	s.deliver(ctx, byGateway)

	out := make([]*heraldv1.RouteResult, len(items))
	for i := range items {
		out[i] = items[i].result
		if sp := items[i].span; sp != nil {
			if r := out[i].GetResponse(); r != nil {
				sp.SetAttributes(attribute.Bool("herald.delivered", r.GetDelivered()), attribute.Bool("herald.stored", r.GetStored()))
			}
			sp.End()
		}
	}
	return out
}

// refused returns the result for a message that its subscription's checks refused
// (err from Append or an AdmitCmd), or nil. NotFound: the channel was
// unregistered since ingest checked it, ingest answers 410. Aborted: it was
// registered again with another key, ingest checks the message again against the
// subscription in Postgres. ResourceExhausted with a retry-after: the
// subscription's rate limit refused it, ingest answers 429.
func (s *Server) refused(ctx context.Context, it *item, err error) *heraldv1.RouteResult {
	var (
		r       *heraldv1.RouteResult
		limited *queue.RateLimitError
		outcome = outcomeChanged
		why     = "subscription changed"
	)
	switch {
	case errors.Is(err, queue.ErrGone):
		r = fail(codes.NotFound, "the subscription is gone")
	case errors.Is(err, queue.ErrKeyChanged):
		r = fail(codes.Aborted, "the subscription was registered again with another key")
	case errors.As(err, &limited):
		r = fail(codes.ResourceExhausted, "too many messages for this subscription")
		// Rounded up, and never 0, which would read as a full queue.
		r.RetryAfterMs = max(int64((limited.RetryAfter+time.Millisecond-1)/time.Millisecond), 1)
		outcome, why = outcomeRateLimited, "rate limited"
	default:
		return nil
	}
	s.metrics.messages.Add(ctx, 1, outcome)
	it.span.SetStatus(otelcodes.Error, why)
	return r
}

func (s *Server) validate(it *item, lim *heraldv1.RateLimit) *heraldv1.RouteResult {
	if it.m == nil {
		return fail(codes.InvalidArgument, "message is required")
	}
	var err error
	if it.u, err = ids.ParseUAID(it.m.GetUaid()); err != nil {
		return fail(codes.InvalidArgument, "bad uaid")
	}
	if it.ch, err = ids.ParseChannelID(it.m.GetChannelId()); err != nil {
		return fail(codes.InvalidArgument, "bad channel id")
	}
	if it.m.GetTtlSeconds() < 0 {
		return fail(codes.InvalidArgument, "negative ttl")
	}
	if n := lim.GetCount(); n != 0 {
		if p := lim.GetPeriodUs(); n < 0 || p <= 0 || p > int64(math.MaxInt64/time.Microsecond) {
			return fail(codes.InvalidArgument, "bad subscription limit")
		}
		it.limit = queue.Limit{Count: n, Period: time.Duration(lim.GetPeriodUs()) * time.Microsecond}
	}
	return nil
}

// entry is the queue entry of the item's message, whose ids validate parsed.
func (it *item) entry() queue.Entry {
	m := it.m
	return queue.Entry{
		ChannelID: it.ch,
		Data:      m.GetData(),
		Headers:   m.GetHeaders(),
		TTL:       time.Duration(m.GetTtlSeconds()) * time.Second,
		Received:  time.UnixMilli(m.GetReceivedUnixMs()),
		Urgency:   int32(m.GetUrgency()),
		Topic:     m.GetTopic(),
		// Taken after the router's span started, so a late delivery hangs under it.
		TraceParent:  msgtrace.TraceParent(m.GetTrace()),
		AppServerKey: it.key,
		Limit:        it.limit,
	}
}

// unstored is what Admit reads of a message that is not stored (TTL 0).
func (it *item) unstored() queue.Entry {
	return queue.Entry{ChannelID: it.ch, AppServerKey: it.key, Limit: it.limit}
}

// deliver hands each gateway its messages in one call, all gateways at once. A
// failure is not an error: stored messages wait in their queues.
func (s *Server) deliver(ctx context.Context, byGateway map[string][]*item) {
	var wg sync.WaitGroup
	n := 0
	for addr, items := range byGateway {
		if n++; n == len(byGateway) {
			// The last call runs here: a batch for one gateway starts no goroutine.
			s.deliverTo(ctx, addr, items)
		} else {
			wg.Go(func() { s.deliverTo(ctx, addr, items) })
		}
	}
	wg.Wait()
}

// deliverTo hands one gateway its messages in one call.
func (s *Server) deliverTo(ctx context.Context, addr string, items []*item) {
	gateway := items[0].owner.Gateway
	req := &heraldv1.DeliverBatchRequest{Requests: make([]*heraldv1.DeliverRequest, len(items))}
	for i, it := range items {
		req.Requests[i] = &heraldv1.DeliverRequest{Message: it.m, Epoch: it.owner.Epoch}
	}
	dctx, cancel := context.WithTimeout(ctx, s.deliverTimeout)
	defer cancel()
	resp, err := s.gateways.DeliverBatch(dctx, addr, req)
	if err != nil {
		if status.Code(err) == codes.Unavailable {
			// The gateway is gone; redial on the next message for that address.
			s.gateways.Forget(addr)
		}
		s.log.Warn("deliver", "gateway", gateway, "messages", len(items), "err", err)
		s.metrics.deliveries.Add(ctx, int64(len(items)), deliveryFailed)
		return
	}
	var accepted, refused int64
	for i, ok := range resp.GetAccepted() {
		if i >= len(items) {
			break
		}
		items[i].result.Response.Delivered = ok
		if ok {
			accepted++
		} else {
			refused++
		}
	}
	if accepted > 0 {
		s.metrics.deliveries.Add(ctx, accepted, deliveryAccepted)
	}
	if refused > 0 {
		s.metrics.deliveries.Add(ctx, refused, deliveryRefused)
	}
}

// DeleteMessage removes a waiting message.
func (s *Server) DeleteMessage(ctx context.Context, req *heraldv1.DeleteMessageRequest) (*heraldv1.DeleteMessageResponse, error) {
	u, err := ids.ParseUAID(req.GetUaid())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, "bad uaid")
	}
	n, err := s.queue.Delete(ctx, u, req.GetId())
	if err != nil {
		s.log.Error("delete message", "uaid", u.String(), "err", err)
		return nil, status.Error(codes.Unavailable, "message store unavailable")
	}
	return &heraldv1.DeleteMessageResponse{Deleted: n > 0}, nil
}

// unstoredID names a message that is not stored (TTL 0); it is never a queue entry id.
func unstoredID() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return "u" + hex.EncodeToString(b[:])
}
