// Package msgtrace carries one trace per push message across Herald's hops. Messages
// travel in batches (several per gRPC call) and wait in queues, so each carries its
// own W3C Trace Context in the message itself rather than in call metadata.
package msgtrace

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Attribute keys of message spans.
const (
	// MessageID is the message's id: the queue entry id, and on ingest's span also
	// the opaque id in the Location header the application server got.
	MessageID = attribute.Key("herald.message.id")
	// LocationID is the opaque message id of the Location header.
	LocationID = attribute.Key("herald.message.location_id")
	// UAID is the user agent's id.
	UAID = attribute.Key("herald.uaid")
)

var propagator = propagation.TraceContext{}

// Inject returns the trace context of ctx's span as a carrier map, or nil when ctx
// has no recording span (tracing off: no allocation).
func Inject(ctx context.Context) map[string]string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return nil
	}
	carrier := propagation.MapCarrier{}
	propagator.Inject(ctx, carrier)
	return carrier
}

// Extract returns ctx with the remote span context held in carrier.
func Extract(ctx context.Context, carrier map[string]string) context.Context {
	if len(carrier) == 0 {
		return ctx
	}
	return propagator.Extract(ctx, propagation.MapCarrier(carrier))
}

// TraceParent returns the traceparent of carrier, "" when there is none.
func TraceParent(carrier map[string]string) string { return carrier["traceparent"] }

// FromTraceParent is the carrier holding traceparent, nil for "".
func FromTraceParent(tp string) map[string]string {
	if tp == "" {
		return nil
	}
	return map[string]string{"traceparent": tp}
}

// Start starts a span named name for a message, as a child of the trace its carrier
// holds; with tracing off it costs next to nothing.
func Start(ctx context.Context, tracer trace.Tracer, name string, carrier map[string]string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	if !Recording(tracer) {
		// The no-op tracer ignores the attributes: do not wrap them in an option.
		return tracer.Start(Extract(ctx, carrier), name)
	}
	return tracer.Start(Extract(ctx, carrier), name, trace.WithAttributes(attrs...))
}

// Recording reports whether tracer's spans can record: false for the no-op tracer
// of a service with tracing off. A caller that discards the context Start returns
// may then skip Start, and building its attributes, altogether.
func Recording(tracer trace.Tracer) bool {
	_, off := tracer.(noop.Tracer)
	return !off
}

// Tracer returns the tracer of a Herald component from the global provider.
func Tracer(component string) trace.Tracer { return otel.Tracer("herald/" + component) }
