// Package otlpsink is an OTLP/gRPC trace receiver for tests: services export their
// spans to it, and the test reads them back.
package otlpsink

import (
	"context"
	"encoding/hex"
	"net"
	"sync"
	"testing"

	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
)

// Span is one received span, flattened.
type Span struct {
	Service      string
	Name         string
	TraceID      string
	SpanID       string
	ParentSpanID string
	StartNano    uint64
	Events       []string
	Attributes   map[string]string
}

// Sink receives spans.
type Sink struct {
	collectorpb.UnimplementedTraceServiceServer
	Addr string

	mu    sync.Mutex
	spans []Span
}

// Start runs a Sink on a loopback port until the test ends.
func Start(t testing.TB) *Sink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Sink{Addr: ln.Addr().String()}
	srv := grpc.NewServer()
	collectorpb.RegisterTraceServiceServer(srv, s)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln) // ends with Stop below
	}()
	t.Cleanup(func() { srv.Stop(); <-done })
	return s
}

// Export implements the OTLP trace service.
func (s *Sink) Export(_ context.Context, req *collectorpb.ExportTraceServiceRequest) (*collectorpb.ExportTraceServiceResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		service := ""
		for _, a := range rs.GetResource().GetAttributes() {
			if a.GetKey() == "service.name" {
				service = a.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				s.spans = append(s.spans, flatten(service, sp))
			}
		}
	}
	return &collectorpb.ExportTraceServiceResponse{}, nil
}

func flatten(service string, sp *tracepb.Span) Span {
	out := Span{
		Service:      service,
		Name:         sp.GetName(),
		TraceID:      hex.EncodeToString(sp.GetTraceId()),
		SpanID:       hex.EncodeToString(sp.GetSpanId()),
		ParentSpanID: hex.EncodeToString(sp.GetParentSpanId()),
		StartNano:    sp.GetStartTimeUnixNano(),
		Attributes:   map[string]string{},
	}
	for _, e := range sp.GetEvents() {
		out.Events = append(out.Events, e.GetName())
	}
	for _, a := range sp.GetAttributes() {
		out.Attributes[a.GetKey()] = a.GetValue().GetStringValue()
	}
	return out
}

// Spans returns every span received so far.
func (s *Sink) Spans() []Span {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Span(nil), s.spans...)
}
