package uaconn

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/herald-push/herald/pkg/telemetry"
)

// serverMetrics are the connection instruments (names per docs/observability.md),
// with the transport as an attribute.
type serverMetrics struct {
	opened metric.Int64Counter
	closed metric.Int64Counter
}

func (serverMetrics) transportAttr(transport string) metric.MeasurementOption {
	return transportSets.Get(transport).Option()
}

// closeAttrs are the attributes of a closed connection: its transport, and the
// reason (the close code's name).
func (serverMetrics) closeAttrs(transport string, code int) metric.MeasurementOption {
	return closeSets.Get(closeKey{transport, CloseReason(code)}).Option()
}

// The attribute sets of connections, each built once.
var (
	transportSets = telemetry.NewAttrCache(func(transport string) []attribute.KeyValue {
		return []attribute.KeyValue{attribute.String("transport", transport)}
	})
	closeSets = telemetry.NewAttrCache(func(k closeKey) []attribute.KeyValue {
		return []attribute.KeyValue{attribute.String("transport", k.transport), attribute.String("reason", k.reason)}
	})
)

type closeKey struct{ transport, reason string }

// registerMetrics creates the counters and the gauges read from s: open connections
// and whether a drain is under way.
func (s *Server) registerMetrics() error {
	m := otel.GetMeterProvider().Meter("herald/gateway")
	var err error
	if s.metrics.opened, err = m.Int64Counter("herald.gateway.connections.opened", metric.WithUnit("{connection}"),
		metric.WithDescription("User-agent connections accepted, by transport (websocket, http)")); err != nil {
		return err
	}
	if s.metrics.closed, err = m.Int64Counter("herald.gateway.connections.closed", metric.WithUnit("{connection}"),
		metric.WithDescription("User-agent connections ended, by transport and reason (the close code's name)")); err != nil {
		return err
	}
	open, err := m.Int64ObservableGauge("herald.gateway.connections.open", metric.WithUnit("{connection}"),
		metric.WithDescription("User-agent connections open now, of every transport; the gateway autoscaling metric"))
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
