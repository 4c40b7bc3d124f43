package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"go.opentelemetry.io/otel/trace"
)

func TestTraceIDsOnLines(t *testing.T) {
	var buf bytes.Buffer
	cfg := Config{Format: "json", Level: "info"}
	log := cfg.New(&buf, "test")
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled}))
	log.InfoContext(ctx, "with span")
	log.Info("without span")
	lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
	if len(lines) != 2 {
		t.Fatalf("%d lines", len(lines))
	}
	var with, without map[string]any
	if err := json.Unmarshal(lines[0], &with); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(lines[1], &without); err != nil {
		t.Fatal(err)
	}
	if with["trace_id"] != tid.String() || with["span_id"] != sid.String() || with["service"] != "test" {
		t.Fatalf("line with a span: %v", with)
	}
	if _, ok := without["trace_id"]; ok {
		t.Fatalf("line without a span has a trace id: %v", without)
	}
}
