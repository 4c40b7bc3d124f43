// Package telemetry sets up OpenTelemetry for a Herald service: traces exported over
// OTLP when the standard OTEL_* variables ask for it (and no cost when they do not),
// and metrics through the OpenTelemetry SDK served in the Prometheus format at
// /metrics. (Log lines get their trace and span ids from package logging.)
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	promexporter "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/exemplar"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Telemetry holds a service's tracer and meter providers.
type Telemetry struct {
	Tracer   trace.TracerProvider
	Meter    metric.MeterProvider
	tracing  bool
	registry *prometheus.Registry
	shutdown []func(context.Context) error
}

// NoMeter is the meter provider to give otelgrpc and otelhttp, whose metrics Herald
// records itself (see GRPCServerHandler).
var NoMeter metric.MeterProvider = metricnoop.NewMeterProvider()

// TracingEnabled reports whether the environment asks for traces: OTEL_TRACES_EXPORTER
// is otlp, or an OTLP endpoint is set and OTEL_TRACES_EXPORTER is not none.
func TracingEnabled(getenv func(string) string) bool {
	exp := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER"))
	if exp == "none" || getenv("OTEL_SDK_DISABLED") == "true" {
		return false
	}
	return exp == "otlp" || getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// Setup builds the providers for service and installs them, with the W3C Trace
// Context propagator, as the global ones (which otelgrpc and otelhttp use).
func Setup(ctx context.Context, service string) (*Telemetry, error) {
	res, err := resource.Merge(resource.Default(), resource.NewWithAttributes(semconv.SchemaURL,
		semconv.ServiceName(service), semconv.ServiceNamespace("herald")))
	if err != nil && !errors.Is(err, resource.ErrSchemaURLConflict) {
		return nil, fmt.Errorf("telemetry resource: %w", err)
	}
	t := &Telemetry{registry: prometheus.NewRegistry()}
	t.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	exporter, err := promexporter.New(promexporter.WithRegisterer(t.registry), promexporter.WithoutScopeInfo())
	if err != nil {
		return nil, fmt.Errorf("prometheus exporter: %w", err)
	}
	// No exemplars: the Prometheus text format served at /metrics has no place for
	// them, and the default filter looks for a sampled span in the context of every
	// measurement.
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithResource(res), sdkmetric.WithReader(exporter),
		sdkmetric.WithView(latencyBuckets), sdkmetric.WithExemplarFilter(exemplar.AlwaysOffFilter))
	t.Meter = mp
	t.shutdown = append(t.shutdown, mp.Shutdown)

	t.tracing = TracingEnabled(os.Getenv)
	if t.tracing {
		// The exporter reads OTEL_EXPORTER_OTLP_* (endpoint, headers, TLS) itself.
		exp, err := otlptracegrpc.New(ctx)
		if err != nil {
			return nil, fmt.Errorf("otlp trace exporter: %w", err)
		}
		tp := sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithBatcher(exp))
		t.Tracer = tp
		t.shutdown = append(t.shutdown, tp.Shutdown)
	} else {
		t.Tracer = noop.NewTracerProvider()
	}
	otel.SetTracerProvider(t.Tracer)
	otel.SetMeterProvider(t.Meter)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	return t, nil
}

// Tracing reports whether spans are exported: with tracing off the tracer provider
// is a no-op, and the handlers of gRPC and HTTP edges only carry trace context on.
func (t *Telemetry) Tracing() bool { return t.tracing }

// MetricsHandler serves the metrics in the Prometheus text format.
func (t *Telemetry) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(t.registry, promhttp.HandlerOpts{})
}

// Shutdown flushes and stops the providers.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	var errs []error
	for _, f := range t.shutdown {
		errs = append(errs, f(ctx))
	}
	return errors.Join(errs...)
}

// Close shuts the providers down when the service ends, flushing buffered spans,
// bounded so that a dead collector cannot hold the exit; a failure is only logged.
func (t *Telemetry) Close(ctx context.Context, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := t.Shutdown(ctx); err != nil {
		log.Warn("telemetry shutdown", "err", err)
	}
}

// latencyBuckets gives every duration histogram (unit "s") buckets from 0.1 ms to
// 60 s: push latencies range from sub-millisecond to the TTL of an offline user agent.
var latencyBuckets = sdkmetric.NewView(
	sdkmetric.Instrument{Kind: sdkmetric.InstrumentKindHistogram, Unit: "s"},
	sdkmetric.Stream{Aggregation: sdkmetric.AggregationExplicitBucketHistogram{
		Boundaries: []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60},
	}},
)
