package webpush

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/herald-push/herald/pkg/msgtrace"
)

// otelhttpInstrument is Instrument as it was with otelhttp recording the metrics:
// the reference for the attributes httpMetrics records.
func otelhttpInstrument(api http.Handler, mp *sdkmetric.MeterProvider) http.Handler {
	restore := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p, ok := r.Context().Value(realPathKey{}).(string); ok {
			u := *r.URL
			u.Path = p
			r = r.WithContext(r.Context())
			r.URL = &u
		}
		api.ServeHTTP(w, r)
	})
	traced := otelhttp.NewHandler(restore, "ingest", otelhttp.WithMeterProvider(mp), otelhttp.WithTracerProvider(noop.NewTracerProvider()),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Method + " " + r.URL.Path }))
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

// httpPoints reads the http.server.* histograms from reader as "name unit
// k=v,k=v" → count and sum.
func httpPoints(t *testing.T, reader sdkmetric.Reader) map[string][2]float64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string][2]float64{}
	add := func(name, unit string, attrs []string, count uint64, sum float64) {
		slices.Sort(attrs)
		k := name + " " + unit + " " + strings.Join(attrs, ",")
		v := out[k]
		out[k] = [2]float64{v[0] + float64(count), v[1] + sum}
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if !strings.HasPrefix(m.Name, "http.server.") {
				continue
			}
			switch d := m.Data.(type) {
			case metricdata.Histogram[float64]:
				for _, dp := range d.DataPoints {
					add(m.Name, m.Unit, attrStrings(dp.Attributes.ToSlice()), dp.Count, 0) // durations differ
				}
			case metricdata.Histogram[int64]:
				for _, dp := range d.DataPoints {
					add(m.Name, m.Unit, attrStrings(dp.Attributes.ToSlice()), dp.Count, float64(dp.Sum))
				}
			default:
				t.Errorf("%s: %T", m.Name, d)
			}
		}
	}
	return out
}

func attrStrings(kvs []attribute.KeyValue) []string {
	var out []string
	for _, kv := range kvs {
		out = append(out, string(kv.Key)+"="+kv.Value.Emit())
	}
	return out
}

func TestInstrumentRecordsWhatOtelhttpRecorded(t *testing.T) {
	f := newFixture(t, false, 100)
	body := aes128gcmBody(t, 200)
	requests := []func() *http.Request{
		func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, f.endpoint, bytes.NewReader(body))
			r.Header.Set("TTL", "60")
			r.Header.Set("Content-Encoding", "aes128gcm")
			return r
		},
		func() *http.Request { // refused: no TTL
			r := httptest.NewRequest(http.MethodPost, "https://push.example:8443"+f.endpoint, bytes.NewReader(body))
			r.Header.Set("Content-Encoding", "aes128gcm")
			return r
		},
		func() *http.Request {
			return httptest.NewRequest(http.MethodPost, "/wpush/v2/not-a-token", strings.NewReader("x"))
		},
		func() *http.Request { return httptest.NewRequest(http.MethodGet, f.endpoint, nil) },
		func() *http.Request { return httptest.NewRequest(http.MethodGet, "http://ingest:80/", nil) },
		func() *http.Request { return httptest.NewRequest("BREW", "/wpush/v2", nil) },
		func() *http.Request { return httptest.NewRequest(http.MethodDelete, "/m/not-an-id", nil) },
		func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, f.endpoint, bytes.NewReader(body))
			r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/2.0", 2, 0
			r.Host = "[::1]:8000"
			return r
		},
	}
	run := func(h http.Handler) {
		for _, req := range requests {
			h.ServeHTTP(httptest.NewRecorder(), req())
		}
	}
	refReader := sdkmetric.NewManualReader()
	run(otelhttpInstrument(f.h, sdkmetric.NewMeterProvider(sdkmetric.WithReader(refReader))))
	want := httpPoints(t, refReader)
	if len(want) < 3*len(requests)-3 {
		t.Fatalf("otelhttp recorded only %v", want)
	}
	for _, tracing := range []bool{false, true} {
		t.Run(fmt.Sprintf("tracing=%v", tracing), func(t *testing.T) {
			reader := sdkmetric.NewManualReader()
			run(instrument(f.h, sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)), tracing, propagation.TraceContext{}))
			got := httpPoints(t, reader)
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s: recorded %v, otelhttp %v", k, got[k], v)
				}
			}
			for k, v := range got {
				if _, ok := want[k]; !ok {
					t.Errorf("%s: recorded %v, otelhttp nothing", k, v)
				}
			}
		})
	}
}

// With tracing off, the application server's traceparent still reaches the
// message, for the router and gateway to continue its trace.
func TestInstrumentCarriesTraceparentWithTracingOff(t *testing.T) {
	f := newFixture(t, false, 100)
	h := instrument(f.h, sdkmetric.NewMeterProvider(), false, propagation.TraceContext{})
	const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for _, tp := range []string{"", traceparent} {
		r := httptest.NewRequest(http.MethodPost, f.endpoint, bytes.NewReader(aes128gcmBody(t, 200)))
		r.Header.Set("TTL", "60")
		r.Header.Set("Content-Encoding", "aes128gcm")
		if tp != "" {
			r.Header.Set("Traceparent", tp)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if rec.Code != http.StatusCreated {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		if got := msgtrace.TraceParent(f.router.routed[len(f.router.routed)-1].GetTrace()); got != tp {
			t.Errorf("message's traceparent %q, want %q", got, tp)
		}
	}
}

// BenchmarkInstrument is what the instrumentation adds to a request, with tracing
// off, against otelhttp's metrics with its no-op tracer (as ingest had).
func BenchmarkInstrument(b *testing.B) {
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = r.Body.Read(make([]byte, 64)) // a benchmark: the error does not matter
		w.WriteHeader(http.StatusCreated)
	})
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	for _, c := range []struct {
		name string
		h    http.Handler
	}{
		{"none", api},
		{"otelhttp", otelhttpInstrument(api, mp)},
		{"herald", instrument(api, mp, false, propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))},
	} {
		b.Run(c.name, func(b *testing.B) {
			data := make([]byte, 200)
			body := &readCloser{bytes.NewReader(data)}
			req := httptest.NewRequest(http.MethodPost, "/wpush/v2/token", nil)
			w := httptest.NewRecorder()
			b.ReportAllocs()
			for b.Loop() {
				body.Reset(data)
				req.Body = body
				c.h.ServeHTTP(w, req)
			}
		})
	}
}

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }
