package wsconn

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// serverMetrics are the WebSocket instruments (names per docs/observability.md).
type serverMetrics struct {
	opened metric.Int64Counter
	closed metric.Int64Counter
}

// registerMetrics creates the counters and the gauges read from s: open connections
// and whether a drain is under way.
func (s *Server) registerMetrics() error {
	m := otel.GetMeterProvider().Meter("herald/gateway")
	var err error
	if s.metrics.opened, err = m.Int64Counter("herald.gateway.connections.opened", metric.WithUnit("{connection}"),
		metric.WithDescription("WebSocket connections accepted")); err != nil {
		return err
	}
	if s.metrics.closed, err = m.Int64Counter("herald.gateway.connections.closed", metric.WithUnit("{connection}"),
		metric.WithDescription("WebSocket connections ended, by reason (the close code's name)")); err != nil {
		return err
	}
	open, err := m.Int64ObservableGauge("herald.gateway.connections.open", metric.WithUnit("{connection}"),
		metric.WithDescription("WebSocket connections open now; the gateway autoscaling metric"))
	if err != nil {
		return err
	}
	draining, err := m.Int64ObservableGauge("herald.gateway.draining",
		metric.WithDescription("1 while the gateway drains (its open connections then count down to 0)"))
	if err != nil {
		return err
	}
	_, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		s.mu.Lock()
		n, closing := len(s.conns), s.closing
		s.mu.Unlock()
		o.ObserveInt64(open, int64(n))
		d := int64(0)
		if closing {
			d = 1
		}
		o.ObserveInt64(draining, d)
		return nil
	}, open, draining)
	return err
}

// closeReason is the metric attribute of a close code.
func closeReason(code int) metric.MeasurementOption {
	_, reason := closeStatus(code)
	return metric.WithAttributes(attribute.String("reason", reason))
}
