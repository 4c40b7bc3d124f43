package route

import (
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// metrics are the router's instruments (names per docs/observability.md).
type metrics struct {
	messages   metric.Int64Counter
	deliveries metric.Int64Counter
	batchSize  metric.Int64Histogram
}

// Outcomes of a routed message and of a hand-over to a gateway.
var (
	outcomeStored   = metric.WithAttributeSet(attribute.NewSet(attribute.String("outcome", "stored")))
	outcomeUnstored = metric.WithAttributeSet(attribute.NewSet(attribute.String("outcome", "not_stored")))
	outcomeFull     = metric.WithAttributeSet(attribute.NewSet(attribute.String("outcome", "queue_full")))
	outcomeFailed   = metric.WithAttributeSet(attribute.NewSet(attribute.String("outcome", "failed")))
	outcomeInvalid  = metric.WithAttributeSet(attribute.NewSet(attribute.String("outcome", "invalid")))
	outcomeChanged  = metric.WithAttributeSet(attribute.NewSet(attribute.String("outcome", "subscription_changed")))
	// outcomeRateLimited counts the messages their subscription's rate limit refused.
	outcomeRateLimited = metric.WithAttributeSet(attribute.NewSet(attribute.String("outcome", "rate_limited")))
	deliveryAccepted   = metric.WithAttributeSet(attribute.NewSet(attribute.String("outcome", "accepted")))
	deliveryRefused    = metric.WithAttributeSet(attribute.NewSet(attribute.String("outcome", "refused")))
	deliveryFailed     = metric.WithAttributeSet(attribute.NewSet(attribute.String("outcome", "failed")))
	deliveryOffline    = metric.WithAttributeSet(attribute.NewSet(attribute.String("outcome", "offline")))
)

func newMetrics() (*metrics, error) {
	m := otel.GetMeterProvider().Meter("herald/router")
	var (
		mt  metrics
		err error
	)
	if mt.messages, err = m.Int64Counter("herald.router.messages", metric.WithUnit("{message}"),
		metric.WithDescription("Messages routed, by outcome: stored, not_stored (TTL 0), queue_full, failed, invalid, subscription_changed (unregistered or registered again with another key)")); err != nil {
		return nil, err
	}
	if mt.deliveries, err = m.Int64Counter("herald.router.deliveries", metric.WithUnit("{message}"),
		metric.WithDescription("Messages handed to gateways, by outcome: accepted, refused (connection gone), failed (gateway unreachable), offline (no owner)")); err != nil {
		return nil, err
	}
	if mt.batchSize, err = m.Int64Histogram("herald.router.batch.size", metric.WithUnit("{message}"),
		metric.WithDescription("Messages per RouteBatch call"),
		metric.WithExplicitBucketBoundaries(1, 2, 4, 8, 16, 32, 64, 128, 256)); err != nil {
		return nil, err
	}
	return &mt, nil
}
