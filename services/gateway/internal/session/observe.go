package session

import (
	"context"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/herald-push/herald/pkg/msgtrace"
	"github.com/herald-push/herald/pkg/telemetry"
)

// maxTracked bounds the sent, unacknowledged messages a session remembers for the
// delivery-latency histogram and the ack span; past it, acks are counted only.
const maxTracked = 1024

// hubMetrics are the session instruments (names per docs/observability.md).
type hubMetrics struct {
	sessions metric.Int64UpDownCounter
	messages metric.Int64Counter
	delivery metric.Float64Histogram
	waited   metric.Float64Histogram
	tracer   trace.Tracer
	// tracing is false when tracer is the no-op one of a gateway with tracing off:
	// the send and ack spans are then not started at all.
	tracing bool
}

// Outcomes of herald.gateway.messages.
var (
	outcomeSent  = telemetry.NewAttrs(attribute.String("outcome", "sent"))
	outcomeAcked = telemetry.NewAttrs(attribute.String("outcome", "acked"))
)

// sentMessage is what a session remembers of a stored message it sent.
type sentMessage struct {
	received time.Time
	trace    map[string]string
}

func newHubMetrics() (*hubMetrics, error) {
	m := otel.GetMeterProvider().Meter("herald/gateway")
	hm := &hubMetrics{tracer: msgtrace.Tracer("gateway")}
	hm.tracing = msgtrace.Recording(hm.tracer)
	var err error
	if hm.sessions, err = m.Int64UpDownCounter("herald.gateway.user_agents", metric.WithUnit("{user_agent}"),
		metric.WithDescription("User agents identified (hello) and connected to this gateway")); err != nil {
		return nil, err
	}
	if hm.messages, err = m.Int64Counter("herald.gateway.messages", metric.WithUnit("{message}"),
		metric.WithDescription("Messages sent to user agents and acknowledged by them, by outcome: sent, acked")); err != nil {
		return nil, err
	}
	if hm.delivery, err = m.Float64Histogram("herald.message.delivery.duration", metric.WithUnit("s"),
		metric.WithDescription("Time from ingest accepting a stored message to the user agent acknowledging it")); err != nil {
		return nil, err
	}
	if hm.waited, err = m.Float64Histogram("herald.message.queue.duration", metric.WithUnit("s"),
		metric.WithDescription("Time from ingest accepting a message to the gateway sending it: its age in the queue")); err != nil {
		return nil, err
	}
	return hm, nil
}

// noteSent records a message written to the user agent: a span under its trace, the
// time it waited, and for a stored one what the ack needs.
func (s *Session) noteSent(ctx context.Context, id string, stored bool, received time.Time, carrier map[string]string) {
	m := s.hub.metrics
	m.messages.Add(ctx, 1, outcomeSent.AddOptions()...)
	if !received.IsZero() {
		m.waited.Record(ctx, s.hub.now().Sub(received).Seconds())
	}
	if m.tracing {
		_, span := msgtrace.Start(ctx, m.tracer, "gateway.send", carrier, msgtrace.MessageID.String(id), msgtrace.UAID.String(s.uaid.String()))
		span.AddEvent("delivered")
		span.End()
	}
	if stored && len(s.inflight) < maxTracked {
		if s.inflight == nil {
			s.inflight = make(map[string]sentMessage)
		}
		s.inflight[id] = sentMessage{received: received, trace: carrier}
	}
}

// noteAcked records acknowledged messages: the delivery latency and an ack span
// under each message's trace.
func (s *Session) noteAcked(ctx context.Context, ids []string) {
	m := s.hub.metrics
	m.messages.Add(ctx, int64(len(ids)), outcomeAcked.AddOptions()...)
	now := s.hub.now()
	for _, id := range ids {
		sm, ok := s.inflight[id]
		if !ok {
			continue
		}
		delete(s.inflight, id)
		if !sm.received.IsZero() {
			m.delivery.Record(ctx, now.Sub(sm.received).Seconds())
		}
		if sm.trace != nil && m.tracing {
			_, span := msgtrace.Start(ctx, m.tracer, "gateway.ack", sm.trace, msgtrace.MessageID.String(id), msgtrace.UAID.String(s.uaid.String()))
			span.AddEvent("acked")
			span.End()
		}
	}
}
