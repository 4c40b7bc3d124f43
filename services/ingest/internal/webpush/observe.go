package webpush

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/semconv/v1.43.0/httpconv"

	"github.com/herald-push/herald/pkg/telemetry"
)

// requests counts the answers to push requests by status. An instrument of the
// global meter provider: created before the service installs its provider, it
// delegates to it once installed; its error is for invalid names only.
var requests, _ = otel.GetMeterProvider().Meter("herald/ingest").Int64Counter("herald.ingest.requests",
	metric.WithUnit("{request}"), metric.WithDescription("Push requests answered, by HTTP status: 201 accepted, others rejected"))

// statusAttrs are the attributes of requests, one set per status.
var statusAttrs = telemetry.NewAttrCache(func(status int) []attribute.KeyValue {
	return []attribute.KeyValue{attribute.String("status", strconv.Itoa(status))}
})

// counted wraps a handler to count its answers by status.
func counted(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next(sw, r)
		requests.Add(r.Context(), 1, statusAttrs.Get(sw.status).AddOptions()...)
	}
}

// statusWriter remembers the status written.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection (Connection: close on 413).
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Instrument wraps the API in its OpenTelemetry instrumentation: the HTTP server
// metrics, and with tracing on a span per request (otelhttp), continuing the
// application server's W3C traceparent. The metrics are otelhttp's (names, units,
// attributes) but recorded by httpMetrics, which builds each attribute set once
// where otelhttp builds one per request, even with its metrics off. With tracing
// off otelhttp is left out and only the traceparent (and baggage) is taken into the
// request's context, which is all it does then: the message carries it on to the
// router and gateway, and log lines show it.
//
// Endpoint tokens and message ids are secrets, and otelhttp records the URL path, so
// it sees the route ("/wpush/v2/{token}") instead; the real path is put back before
// the API runs.
func Instrument(api http.Handler, mp metric.MeterProvider, tracing bool) http.Handler {
	return instrument(api, mp, tracing, otel.GetTextMapPropagator())
}

func instrument(api http.Handler, mp metric.MeterProvider, tracing bool, propagator propagation.TextMapPropagator) http.Handler {
	m := newHTTPMetrics(mp, api)
	if !tracing {
		m.propagator = propagator
		return m
	}
	restore := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p, ok := r.Context().Value(realPathKey{}).(string); ok {
			// A copy of the URL: otelhttp still reads the one it was given.
			u := *r.URL
			u.Path = p
			r = r.WithContext(r.Context())
			r.URL = &u
		}
		m.ServeHTTP(w, r)
	})
	traced := otelhttp.NewHandler(restore, "ingest", otelhttp.WithMeterProvider(telemetry.NoMeter), otelhttp.WithPropagators(propagator),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
			return r.Method + " " + r.URL.Path
		}))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		route := routeOf(r.URL.Path)
		if route != r.URL.Path {
			u := *r.URL
			u.Path, u.RawPath = route, ""
			r = r.WithContext(context.WithValue(r.Context(), realPathKey{}, r.URL.Path))
			r.URL = &u
		}
		traced.ServeHTTP(w, r)
	})
}

type realPathKey struct{}

// routeOf replaces the secret segment of an API path with its name.
func routeOf(path string) string {
	switch {
	case strings.HasPrefix(path, "/wpush/v2/"):
		return "/wpush/v2/{token}"
	case strings.HasPrefix(path, "/m/"):
		return "/m/{id}"
	}
	return path
}

// httpMetrics records http.server.request.duration, http.server.request.body.size
// and http.server.response.body.size as otelhttp (v0.72, semantic conventions 1.43)
// does, with the same attributes. When propagator is set it also takes the trace
// context of the request's headers into its context (otelhttp does that when
// tracing is on).
type httpMetrics struct {
	next       http.Handler
	propagator propagation.TextMapPropagator
	duration   metric.Float64Histogram
	reqSize    metric.Int64Histogram
	respSize   metric.Int64Histogram
	attrs      *telemetry.AttrCache[httpKey]
}

// httpKey is what a request's metric attributes depend on.
type httpKey struct {
	method       string // as the semantic conventions name it: "_OTHER" for an unknown one
	tls          bool
	host         string
	port         int // -1 for none or the scheme's default
	protoName    string
	protoVersion string
	status       int
	route        string
}

func newHTTPMetrics(mp metric.MeterProvider, next http.Handler) *httpMetrics {
	meter := mp.Meter("herald/http")
	m := &httpMetrics{next: next}
	// The names are valid, so these do not fail; if they did, the instrument would
	// be a no-op, as otelhttp's would.
	d, err1 := httpconv.NewServerRequestDuration(meter,
		metric.WithExplicitBucketBoundaries(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10))
	req, err2 := httpconv.NewServerRequestBodySize(meter)
	resp, err3 := httpconv.NewServerResponseBodySize(meter)
	if err := errors.Join(err1, err2, err3); err != nil {
		otel.Handle(err)
	}
	m.duration, m.reqSize, m.respSize = d.Inst(), req.Inst(), resp.Inst()
	m.attrs = telemetry.NewAttrCache(httpAttributes)
	return m
}

func httpAttributes(k httpKey) []attribute.KeyValue {
	scheme := "http"
	if k.tls {
		scheme = "https"
	}
	kvs := []attribute.KeyValue{semconv.HTTPRequestMethodKey.String(k.method), semconv.URLScheme(scheme), semconv.ServerAddress(k.host)}
	if k.port > 0 {
		kvs = append(kvs, semconv.ServerPort(k.port))
	}
	if k.protoName != "" {
		kvs = append(kvs, semconv.NetworkProtocolName(k.protoName))
	}
	if k.protoVersion != "" {
		kvs = append(kvs, semconv.NetworkProtocolVersion(k.protoVersion))
	}
	if k.status > 0 {
		kvs = append(kvs, semconv.HTTPResponseStatusCode(k.status))
	}
	if k.route != "" {
		kvs = append(kvs, semconv.HTTPRoute(k.route))
	}
	return kvs
}

func (m *httpMetrics) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if m.propagator != nil {
		if ctx := m.propagator.Extract(r.Context(), headerCarrier(r.Header)); ctx != r.Context() {
			r = r.WithContext(ctx)
		}
	}
	// One allocation for both the body and the response writer's counters.
	x := &exchange{w: recorder{ResponseWriter: w, status: http.StatusOK}}
	body := r.Body
	if body != nil && body != http.NoBody {
		x.body.ReadCloser = body
		r.Body = &x.body
	}
	m.next.ServeHTTP(&x.w, r)
	r.Body = body

	k := httpKey{method: standardMethod(r.Method), tls: r.TLS != nil, status: x.w.status}
	k.host, k.port = splitHostPort(r.Host)
	if (k.tls && k.port == 443) || (!k.tls && k.port == 80) {
		k.port = -1
	}
	k.protoName, k.protoVersion = netProtocol(r.Proto)
	// otelhttp sees the pattern the mux matched only on requests whose path it
	// was given unchanged (see Instrument): not on the secret ones.
	if r.Pattern != "" && routeOf(r.URL.Path) == r.URL.Path {
		if i := strings.IndexByte(r.Pattern, '/'); i >= 0 {
			k.route = r.Pattern[i:]
		}
	}
	opts := m.attrs.Get(k).RecordOptions()
	ctx := r.Context()
	m.reqSize.Record(ctx, x.body.n, opts...)
	m.respSize.Record(ctx, x.w.written, opts...)
	m.duration.Record(ctx, float64(time.Since(start))/float64(time.Second), opts...)
}

// headerCarrier is propagation.HeaderCarrier, but reads the propagators' headers
// by their canonical names: http.Header.Get canonicalizes the lower-case names they
// ask for into a new string on every request.
type headerCarrier http.Header

func (c headerCarrier) Get(key string) string {
	var v []string
	switch key {
	case "traceparent":
		v = c["Traceparent"]
	case "tracestate":
		v = c["Tracestate"]
	case "baggage":
		v = c["Baggage"]
	default:
		return http.Header(c).Get(key)
	}
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

func (c headerCarrier) Set(key, value string) { http.Header(c).Set(key, value) }

func (c headerCarrier) Keys() []string { return propagation.HeaderCarrier(c).Keys() }

// exchange holds what httpMetrics counts of one request.
type exchange struct {
	w    recorder
	body countingBody
}

// countingBody counts the bytes the handler reads of a request's body.
type countingBody struct {
	io.ReadCloser
	n int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	return n, err
}

// recorder remembers the status and counts the bytes of a response, as otelhttp's
// writer does: the first status that is not informational, 200 when the handler
// writes without one.
type recorder struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
	written     int64
}

func (w *recorder) WriteHeader(code int) {
	if !w.wroteHeader && (code < 100 || code > 199 || code == http.StatusSwitchingProtocols) {
		w.wroteHeader = true
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(p []byte) (int, error) {
	w.wroteHeader = true
	n, err := w.ResponseWriter.Write(p)
	w.written += int64(n)
	return n, err
}

// Flush passes a flush on, for handlers that test for http.Flusher.
func (w *recorder) Flush() {
	w.wroteHeader = true
	_ = http.NewResponseController(w.ResponseWriter).Flush() // as http.Flusher, which has no error
}

// Unwrap lets http.ResponseController reach the connection.
func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// standardMethod is the request method as the semantic conventions name it.
func standardMethod(method string) string {
	switch method = strings.ToUpper(method); method {
	case http.MethodConnect, http.MethodDelete, http.MethodGet, http.MethodHead, http.MethodOptions,
		http.MethodPatch, http.MethodPost, http.MethodPut, http.MethodTrace:
		return method
	}
	return "_OTHER"
}

// splitHostPort is otelhttp's reading of a Host header: host (empty when there is
// none) and port (-1 when there is none or it does not parse).
func splitHostPort(hostport string) (string, int) {
	if strings.HasPrefix(hostport, "[") {
		end := strings.LastIndexByte(hostport, ']')
		if end < 0 {
			return "", -1
		}
		if strings.LastIndexByte(hostport[end:], ':') < 0 {
			return hostport[1:end], -1
		}
	} else if !strings.Contains(hostport, ":") {
		return hostport, -1
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return host, -1
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return host, -1
	}
	return host, int(p)
}

// netProtocol splits "HTTP/1.1" into "http" and "1.1".
func netProtocol(proto string) (name, version string) {
	name, version, _ = strings.Cut(proto, "/")
	switch name {
	case "HTTP":
		name = "http"
	case "QUIC":
		name = "quic"
	case "SPDY":
		name = "spdy"
	default:
		name = strings.ToLower(name)
	}
	return name, version
}
