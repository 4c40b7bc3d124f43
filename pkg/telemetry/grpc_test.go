package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
)

// healthServer answers Check by the service name, and remembers each call's context.
type healthServer struct {
	healthpb.UnimplementedHealthServer
	mu   sync.Mutex
	ctxs []context.Context
}

func (s *healthServer) Check(ctx context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	s.mu.Lock()
	s.ctxs = append(s.ctxs, ctx)
	s.mu.Unlock()
	switch req.Service {
	case "missing":
		return nil, status.Error(codes.NotFound, "no such service")
	case "down":
		return nil, status.Error(codes.Unavailable, "down")
	case "broken":
		return nil, errors.New("not a status")
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

func (s *healthServer) last() context.Context {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ctxs[len(s.ctxs)-1]
}

// serve starts a gRPC server with the stats handler srv on loopback TCP and returns
// a client using cli, and the server's port.
func serve(t *testing.T, srv, cli stats.Handler) (healthpb.HealthClient, *healthServer, int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(grpc.StatsHandler(srv))
	hs := &healthServer{}
	healthpb.RegisterHealthServer(s, hs)
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Stop()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	cc, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithStatsHandler(cli))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() }) // the test is over
	return healthpb.NewHealthClient(cc), hs, ln.Addr().(*net.TCPAddr).Port
}

// histogramPoints reads the histogram name from reader as "k=v,k=v" (sorted) →
// count.
func histogramPoints(t *testing.T, reader sdkmetric.Reader, name, unit string) map[string]uint64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]uint64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			if m.Unit != unit {
				t.Errorf("%s: unit %q, want %q", name, m.Unit, unit)
			}
			for _, dp := range m.Data.(metricdata.Histogram[float64]).DataPoints {
				var kvs []string
				for _, kv := range dp.Attributes.ToSlice() {
					kvs = append(kvs, string(kv.Key)+"="+kv.Value.Emit())
				}
				slices.Sort(kvs)
				out[strings.Join(kvs, ",")] += dp.Count
			}
		}
	}
	return out
}

func TestGRPCMetrics(t *testing.T) {
	srvReader, cliReader := sdkmetric.NewManualReader(), sdkmetric.NewManualReader()
	srvTel := &Telemetry{Meter: sdkmetric.NewMeterProvider(sdkmetric.WithReader(srvReader))}
	cliTel := &Telemetry{Meter: sdkmetric.NewMeterProvider(sdkmetric.WithReader(cliReader))}
	client, _, port := serve(t, srvTel.GRPCServerHandler(nil), cliTel.GRPCClientHandler(nil))
	ctx := t.Context()
	for _, c := range []struct {
		service string
		code    codes.Code
	}{{"", codes.OK}, {"", codes.OK}, {"missing", codes.NotFound}, {"down", codes.Unavailable}, {"broken", codes.Unknown}} {
		if _, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: c.service}); status.Code(err) != c.code {
			t.Fatalf("check %q: %v, want %v", c.service, err, c.code)
		}
	}

	// The attributes otelgrpc v0.72 records (semantic conventions 1.43); a server
	// counts as its errors only the codes that say it failed.
	const method = "rpc.method=grpc.health.v1.Health/Check,"
	const system = "rpc.system.name=grpc"
	wantServer := map[string]uint64{
		method + "rpc.response.status_code=OK," + system:                                      2,
		method + "rpc.response.status_code=NOT_FOUND," + system:                               1,
		"error.type=UNAVAILABLE," + method + "rpc.response.status_code=UNAVAILABLE," + system: 1,
		"error.type=UNKNOWN," + method + "rpc.response.status_code=UNKNOWN," + system:         1,
	}
	server := fmt.Sprintf(",server.address=127.0.0.1,server.port=%d", port)
	wantClient := map[string]uint64{
		method + "rpc.response.status_code=OK," + system + server:                                      2,
		"error.type=NOT_FOUND," + method + "rpc.response.status_code=NOT_FOUND," + system + server:     1,
		"error.type=UNAVAILABLE," + method + "rpc.response.status_code=UNAVAILABLE," + system + server: 1,
		"error.type=UNKNOWN," + method + "rpc.response.status_code=UNKNOWN," + system + server:         1,
	}
	// The server records a call's end after the client may have seen it: poll.
	got := histogramPoints(t, srvReader, "rpc.server.call.duration", "s")
	for deadline := time.Now().Add(5 * time.Second); !mapsEqual(got, wantServer) && time.Now().Before(deadline); {
		runtime.Gosched()
		got = histogramPoints(t, srvReader, "rpc.server.call.duration", "s")
	}
	if !mapsEqual(got, wantServer) {
		t.Errorf("server recorded\n%v\nwant\n%v", got, wantServer)
	}
	if got := histogramPoints(t, cliReader, "rpc.client.call.duration", "s"); !mapsEqual(got, wantClient) {
		t.Errorf("client recorded\n%v\nwant\n%v", got, wantClient)
	}
}

func mapsEqual(a, b map[string]uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// With tracing off, the handlers still carry the trace context and baggage across.
func TestGRPCCarriesTraceContextWithTracingOff(t *testing.T) {
	tel := &Telemetry{Meter: sdkmetric.NewMeterProvider()}
	srv, cli := tel.GRPCServerHandler(nil).(*rpcHandler), tel.GRPCClientHandler(nil).(*rpcHandler)
	p := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	srv.propagator, cli.propagator = p, p
	client, hs, _ := serve(t, srv, cli)

	if _, err := client.Check(t.Context(), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	if sc := trace.SpanContextFromContext(hs.last()); sc.IsValid() {
		t.Errorf("a call without a trace has trace context %v", sc)
	}
	if md, _ := metadata.FromIncomingContext(hs.last()); len(md.Get("traceparent")) != 0 || len(md.Get("baggage")) != 0 {
		t.Errorf("a call without a trace carries %v", md)
	}

	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 1}, SpanID: trace.SpanID{0x00, 0xf0, 0x67, 1}, TraceFlags: trace.FlagsSampled, Remote: true,
	})
	member, err := baggage.NewMember("tenant", "a")
	if err != nil {
		t.Fatal(err)
	}
	bag, err := baggage.New(member)
	if err != nil {
		t.Fatal(err)
	}
	ctx := baggage.ContextWithBaggage(trace.ContextWithRemoteSpanContext(t.Context(), sc), bag)
	if _, err := client.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	got := trace.SpanContextFromContext(hs.last())
	if got.TraceID() != sc.TraceID() || got.SpanID() != sc.SpanID() || !got.IsRemote() || !got.IsSampled() {
		t.Errorf("server's trace context %v, want the caller's %v", got, sc)
	}
	if v := baggage.FromContext(hs.last()).Member("tenant").Value(); v != "a" {
		t.Errorf("server's baggage tenant=%q, want a", v)
	}
}

// countingHandler is a stand-in for otelgrpc's handlers: it counts the calls.
type countingHandler struct {
	mu    sync.Mutex
	calls map[string]int
}

func (h *countingHandler) note(what string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.calls == nil {
		h.calls = map[string]int{}
	}
	h.calls[what]++
}

func (h *countingHandler) count(what string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.calls[what]
}

func (h *countingHandler) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context {
	h.note("TagRPC")
	return ctx
}

func (h *countingHandler) HandleRPC(_ context.Context, rs stats.RPCStats) {
	if _, ok := rs.(*stats.End); ok {
		h.note("End")
	}
}

func (h *countingHandler) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	h.note("TagConn")
	return ctx
}

func (h *countingHandler) HandleConn(context.Context, stats.ConnStats) {}

// With tracing on the traced handlers (otelgrpc's) see every call, beside the
// metrics; with tracing off they are left out.
func TestGRPCTracedHandlers(t *testing.T) {
	for _, tracing := range []bool{true, false} {
		t.Run(fmt.Sprintf("tracing=%v", tracing), func(t *testing.T) {
			reader := sdkmetric.NewManualReader()
			tel := &Telemetry{Meter: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)), tracing: tracing}
			srv, cli := &countingHandler{}, &countingHandler{}
			client, _, _ := serve(t, tel.GRPCServerHandler(srv), tel.GRPCClientHandler(cli))
			if _, err := client.Check(t.Context(), &healthpb.HealthCheckRequest{}); err != nil {
				t.Fatal(err)
			}
			want := 0
			if tracing {
				want = 1
			}
			if n := cli.count("TagRPC") + cli.count("End"); n != 2*want {
				t.Errorf("client's traced handler saw %d of TagRPC and End, want %d", n, 2*want)
			}
			if n := cli.count("TagConn"); (n > 0) != tracing {
				t.Errorf("client's traced handler saw %d connections", n)
			}
			if n := srv.count("TagRPC"); n != want {
				t.Errorf("server's traced handler saw %d calls, want %d", n, want)
			}
			if got := histogramPoints(t, reader, "rpc.client.call.duration", "s"); len(got) != 1 {
				t.Errorf("client recorded %v", got)
			}
		})
	}
}

func BenchmarkGRPCHandler(b *testing.B) {
	ctx := context.Background()
	addr := &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 8082}
	tel := &Telemetry{Meter: sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))}
	for _, c := range []struct {
		name string
		h    stats.Handler
		rpc  []stats.RPCStats
	}{
		{"server", tel.GRPCServerHandler(nil), []stats.RPCStats{
			&stats.InHeader{}, &stats.Begin{}, &stats.InPayload{}, &stats.OutHeader{}, &stats.OutPayload{}, &stats.OutTrailer{}, &stats.End{},
		}},
		{"client", tel.GRPCClientHandler(nil), []stats.RPCStats{
			&stats.Begin{Client: true}, &stats.OutHeader{Client: true, RemoteAddr: addr}, &stats.OutPayload{Client: true},
			&stats.InHeader{Client: true}, &stats.InPayload{Client: true}, &stats.InTrailer{Client: true}, &stats.End{Client: true},
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			info := &stats.RPCTagInfo{FullMethodName: "/herald.v1.Gateway/DeliverBatch"}
			b.ReportAllocs()
			for b.Loop() {
				ctx := c.h.TagRPC(ctx, info)
				for _, rs := range c.rpc {
					c.h.HandleRPC(ctx, rs)
				}
			}
		})
	}
}
