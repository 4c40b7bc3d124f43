package telemetry

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/semconv/v1.43.0/rpcconv"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
)

// GRPCServerHandler returns the stats handler of a gRPC server. traced makes the
// spans and continues the caller's trace: otelgrpc's server handler, built with
// NoMeter. This handler records rpc.server.call.duration itself, with the name,
// unit and attributes otelgrpc gives it: otelgrpc builds an attribute set for
// every call (3–7% of each service's CPU in a saturating run), where this builds
// one per method and code. With tracing off traced is not called at all: the
// caller's trace context (W3C traceparent and baggage in the call's metadata) is
// taken into the call's context, which is all otelgrpc does with the no-op tracer,
// so that log lines still carry the caller's trace id and the calls made in turn
// pass it on.
func (t *Telemetry) GRPCServerHandler(traced stats.Handler) stats.Handler {
	return newRPCHandler(t.Meter, false, t.traced(traced))
}

// GRPCClientHandler is GRPCServerHandler for a client: traced is otelgrpc's
// client handler built with NoMeter, and this one records rpc.client.call.duration.
// With tracing off, the trace context of the calling context is put in the call's
// metadata.
func (t *Telemetry) GRPCClientHandler(traced stats.Handler) stats.Handler {
	return newRPCHandler(t.Meter, true, t.traced(traced))
}

// StreamedCalls returns what records a call carried on a long-lived stream
// (pkg/rpcstream) in rpc.server.call.duration as the unary call it stands for:
// method is that call's full name (heraldv1.Router_RouteBatch_FullMethodName).
// The stream itself is recorded as one call when it ends.
func (t *Telemetry) StreamedCalls(method string) func(context.Context, time.Duration) {
	h := newRPCHandler(t.Meter, false, nil)
	a := h.attrs.Get(rpcKey{method: method, code: codes.OK})
	return func(ctx context.Context, took time.Duration) {
		h.duration.Record(ctx, took.Seconds(), a.RecordOptions()...)
	}
}

func (t *Telemetry) traced(h stats.Handler) stats.Handler {
	if !t.tracing {
		return nil
	}
	return h
}

// rpcHandler records the duration of gRPC calls, and delegates spans to traced or,
// when that is nil, only carries the trace context.
type rpcHandler struct {
	traced     stats.Handler
	client     bool
	duration   metric.Float64Histogram
	attrs      *AttrCache[rpcKey]
	propagator propagation.TextMapPropagator
}

// rpcKey is what a call's metric attributes depend on. server is the address the
// client sent the call to; serverName stands in for it when it is not TCP.
type rpcKey struct {
	method     string
	code       codes.Code
	server     netip.AddrPort
	serverName string
}

// rpcCall is the state of one call, between TagRPC and its End.
type rpcCall struct {
	method     string
	server     netip.AddrPort
	serverName string
}

type rpcCallKey struct{}

func newRPCHandler(mp metric.MeterProvider, client bool, traced stats.Handler) *rpcHandler {
	h := &rpcHandler{traced: traced, client: client, propagator: otel.GetTextMapPropagator()}
	meter := mp.Meter("herald/grpc")
	// otelgrpc's bucket boundaries, although latencyBuckets replaces them.
	buckets := metric.WithExplicitBucketBoundaries(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)
	var err error
	if client {
		var d rpcconv.ClientCallDuration
		d, err = rpcconv.NewClientCallDuration(meter, buckets)
		h.duration = d.Inst()
	} else {
		var d rpcconv.ServerCallDuration
		d, err = rpcconv.NewServerCallDuration(meter, buckets)
		h.duration = d.Inst()
	}
	if err != nil {
		// The names are valid, so this does not happen; the instrument is then a
		// no-op, as otelgrpc's would be.
		otel.Handle(err)
	}
	h.attrs = NewAttrCache(h.attributes)
	return h
}

// attributes are otelgrpc's (v0.72, semantic conventions 1.43): rpc.method,
// rpc.system.name, rpc.response.status_code; error.type when the call failed (on
// a server, only for the codes that mean the server failed); and on a client the
// server's address and port.
func (h *rpcHandler) attributes(k rpcKey) []attribute.KeyValue {
	var kvs []attribute.KeyValue
	if name, ok := strings.CutPrefix(k.method, "/"); ok {
		kvs = append(kvs, semconv.RPCMethod(name))
	}
	code := codeName(k.code)
	kvs = append(kvs, semconv.RPCSystemNameGRPC, semconv.RPCResponseStatusCode(code))
	if k.code != codes.OK && (h.client || serverFault(k.code)) {
		kvs = append(kvs, semconv.ErrorTypeKey.String(code))
	}
	switch {
	case k.server.IsValid():
		kvs = append(kvs, semconv.ServerAddress(k.server.Addr().String()), semconv.ServerPort(int(k.server.Port())))
	case k.serverName != "":
		kvs = append(kvs, serverAddress(k.serverName)...)
	}
	return kvs
}

// TagRPC starts a call's span (or takes over its trace context) and notes its method.
func (h *rpcHandler) TagRPC(ctx context.Context, info *stats.RPCTagInfo) context.Context {
	switch {
	case h.traced != nil:
		ctx = h.traced.TagRPC(ctx, info)
	case h.client:
		ctx = inject(ctx, h.propagator)
	default:
		ctx = extract(ctx, h.propagator)
	}
	return context.WithValue(ctx, rpcCallKey{}, &rpcCall{method: info.FullMethodName})
}

// HandleRPC notes the server a client call went to, and records a call's duration
// at its end.
func (h *rpcHandler) HandleRPC(ctx context.Context, rs stats.RPCStats) {
	if h.traced != nil {
		h.traced.HandleRPC(ctx, rs)
	}
	// A call has seven events or more; only two need the call's state.
	switch rs := rs.(type) {
	case *stats.OutHeader:
		if call, _ := ctx.Value(rpcCallKey{}).(*rpcCall); call != nil && rs.Client && rs.RemoteAddr != nil {
			call.server, call.serverName = addrKey(rs.RemoteAddr)
		}
	case *stats.End:
		call, _ := ctx.Value(rpcCallKey{}).(*rpcCall)
		if call == nil {
			return
		}
		code := codes.OK
		if rs.Error != nil {
			s, _ := status.FromError(rs.Error) // Unknown for an error without a status
			code = s.Code()
		}
		a := h.attrs.Get(rpcKey{method: call.method, code: code, server: call.server, serverName: call.serverName})
		h.duration.Record(ctx, float64(rs.EndTime.Sub(rs.BeginTime))/float64(time.Second), a.RecordOptions()...)
	}
}

// TagConn and HandleConn pass connection events on to traced, which ignores them.
func (h *rpcHandler) TagConn(ctx context.Context, info *stats.ConnTagInfo) context.Context {
	if h.traced != nil {
		return h.traced.TagConn(ctx, info)
	}
	return ctx
}

// HandleConn is TagConn's twin.
func (h *rpcHandler) HandleConn(ctx context.Context, cs stats.ConnStats) {
	if h.traced != nil {
		h.traced.HandleConn(ctx, cs)
	}
}

// addrKey is a comparable form of addr: its IP and port for TCP (without building
// the string otelgrpc parses them from), its string otherwise.
func addrKey(addr net.Addr) (netip.AddrPort, string) {
	if tcp, ok := addr.(*net.TCPAddr); ok {
		ap := tcp.AddrPort()
		// net.IP prints an IPv4-mapped address as IPv4; netip does not.
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), ""
	}
	return netip.AddrPort{}, addr.String()
}

// serverAddress is otelgrpc's server.address and server.port of a host:port.
func serverAddress(hostport string) []attribute.KeyValue {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return []attribute.KeyValue{semconv.ServerAddress(hostport)}
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return []attribute.KeyValue{semconv.ServerAddress(host)}
	}
	return []attribute.KeyValue{semconv.ServerAddress(host), semconv.ServerPort(p)}
}

// serverFault reports whether code means the server failed, as otelgrpc (and the
// semantic conventions) count a server's errors; a client counts every code but OK.
func serverFault(code codes.Code) bool {
	switch code {
	case codes.Unknown, codes.DeadlineExceeded, codes.Unimplemented, codes.Internal, codes.Unavailable, codes.DataLoss:
		return true
	}
	return false
}

// codeNames are the gRPC codes as the semantic conventions spell them (and
// codes.Code.String does not: "Canceled").
var codeNames = [...]string{
	codes.OK:                 "OK",
	codes.Canceled:           "CANCELLED",
	codes.Unknown:            "UNKNOWN",
	codes.InvalidArgument:    "INVALID_ARGUMENT",
	codes.DeadlineExceeded:   "DEADLINE_EXCEEDED",
	codes.NotFound:           "NOT_FOUND",
	codes.AlreadyExists:      "ALREADY_EXISTS",
	codes.PermissionDenied:   "PERMISSION_DENIED",
	codes.ResourceExhausted:  "RESOURCE_EXHAUSTED",
	codes.FailedPrecondition: "FAILED_PRECONDITION",
	codes.Aborted:            "ABORTED",
	codes.OutOfRange:         "OUT_OF_RANGE",
	codes.Unimplemented:      "UNIMPLEMENTED",
	codes.Internal:           "INTERNAL",
	codes.Unavailable:        "UNAVAILABLE",
	codes.DataLoss:           "DATA_LOSS",
	codes.Unauthenticated:    "UNAUTHENTICATED",
}

func codeName(c codes.Code) string {
	if int(c) < len(codeNames) {
		return codeNames[c]
	}
	return "CODE(" + strconv.FormatInt(int64(c), 10) + ")"
}

// extract takes the trace context of an incoming call's metadata into ctx.
func extract(ctx context.Context, p propagation.TextMapPropagator) context.Context {
	return p.Extract(ctx, &incomingCarrier{ctx})
}

// inject puts the trace context of ctx into an outgoing call's metadata, leaving
// ctx as it is when there is none.
func inject(ctx context.Context, p propagation.TextMapPropagator) context.Context {
	var c pairCarrier
	p.Inject(ctx, &c)
	if len(c) == 0 {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, c...)
}

// incomingCarrier reads an incoming call's metadata one key at a time:
// metadata.FromIncomingContext would copy all of it for every call.
type incomingCarrier struct{ ctx context.Context }

func (c *incomingCarrier) Get(key string) string {
	if v := metadata.ValueFromIncomingContext(c.ctx, key); len(v) > 0 {
		return v[0]
	}
	return ""
}

// Set does nothing: the incoming metadata is read only.
func (c *incomingCarrier) Set(string, string) {}

func (c *incomingCarrier) Keys() []string {
	md, _ := metadata.FromIncomingContext(c.ctx)
	keys := make([]string, 0, len(md))
	for k := range md {
		keys = append(keys, k)
	}
	return keys
}

// pairCarrier collects what a propagator injects as metadata key, value pairs.
type pairCarrier []string

func (c *pairCarrier) Get(key string) string {
	for i := 0; i+1 < len(*c); i += 2 {
		if (*c)[i] == key {
			return (*c)[i+1]
		}
	}
	return ""
}

func (c *pairCarrier) Set(key, value string) { *c = append(*c, key, value) }

func (c *pairCarrier) Keys() []string {
	keys := make([]string, 0, len(*c)/2)
	for i := 0; i < len(*c); i += 2 {
		keys = append(keys, (*c)[i])
	}
	return keys
}
