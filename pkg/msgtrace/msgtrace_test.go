package msgtrace

import (
	"testing"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

func TestRecording(t *testing.T) {
	if !Recording(sdktrace.NewTracerProvider().Tracer("test")) {
		t.Error("the SDK's tracer counted as a no-op")
	}
	if Recording(noop.NewTracerProvider().Tracer("test")) {
		t.Error("the no-op tracer counted as recording")
	}
	// What telemetry.Setup installs, with tracing off and on.
	prev := otel.GetTracerProvider()
	t.Cleanup(func() { otel.SetTracerProvider(prev) })
	otel.SetTracerProvider(noop.NewTracerProvider())
	if Recording(Tracer("test")) {
		t.Error("the global tracer of the no-op provider counted as recording")
	}
	otel.SetTracerProvider(sdktrace.NewTracerProvider())
	if !Recording(Tracer("test")) {
		t.Error("the global tracer of the SDK's provider counted as a no-op")
	}
}

// Start continues the message's trace whether the tracer records or not: a service
// with tracing off still passes the trace on to the next.
func TestStartContinuesTheMessagesTrace(t *testing.T) {
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	carrier := FromTraceParent(tp)

	ctx, span := Start(t.Context(), noop.NewTracerProvider().Tracer("test"), "router.route", carrier, UAID.String("u"))
	span.End()
	if got := TraceParent(Inject(ctx)); got != tp {
		t.Errorf("with the no-op tracer, the message's trace becomes %q, want %q", got, tp)
	}
	if ctx, _ := Start(t.Context(), noop.NewTracerProvider().Tracer("test"), "router.route", nil); Inject(ctx) != nil {
		t.Errorf("a message without a trace got one: %v", Inject(ctx))
	}

	ctx, span = Start(t.Context(), sdktrace.NewTracerProvider().Tracer("test"), "router.route", carrier, UAID.String("u"))
	defer span.End()
	sc := span.SpanContext()
	if sc.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || sc.SpanID().String() == "00f067aa0ba902b7" {
		t.Errorf("recording span %v is not a child in the message's trace", sc)
	}
	if got := TraceParent(Inject(ctx)); got == tp || got == "" {
		t.Errorf("with a recording tracer, the message's trace becomes %q", got)
	}
	if ro, ok := span.(sdktrace.ReadOnlySpan); !ok || len(ro.Attributes()) != 1 || ro.Attributes()[0] != UAID.String("u") {
		t.Errorf("span attributes not recorded: %v", span)
	}
}
