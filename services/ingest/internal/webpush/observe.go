package webpush

import (
	"context"
	"net/http"
	"strconv"
	"strings"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// requests counts the answers to push requests by status. An instrument of the
// global meter provider: created before the service installs its provider, it
// delegates to it once installed; its error is for invalid names only.
var requests, _ = otel.GetMeterProvider().Meter("herald/ingest").Int64Counter("herald.ingest.requests",
	metric.WithUnit("{request}"), metric.WithDescription("Push requests answered, by HTTP status: 201 accepted, others rejected"))

// counted wraps a handler to count its answers by status.
func counted(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next(sw, r)
		requests.Add(r.Context(), 1, metric.WithAttributes(attribute.String("status", strconv.Itoa(sw.status))))
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

// Instrument wraps the API in OpenTelemetry's HTTP server handler: a span per request,
// continuing the application server's W3C traceparent, and the HTTP server metrics.
// Endpoint tokens and message ids are secrets, and otelhttp records the URL path, so
// it sees the route ("/wpush/v2/{token}") instead; the real path is put back before
// the API runs.
func Instrument(api http.Handler) http.Handler {
	restore := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p, ok := r.Context().Value(realPathKey{}).(string); ok {
			// A copy of the URL: otelhttp still reads the one it was given.
			u := *r.URL
			u.Path = p
			r = r.WithContext(r.Context())
			r.URL = &u
		}
		api.ServeHTTP(w, r)
	})
	traced := otelhttp.NewHandler(restore, "ingest", otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
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
