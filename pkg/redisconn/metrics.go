package redisconn

import (
	"context"
	"net"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// metricsHook records the duration and errors of every Redis call and pipeline, as
// db.client.operation.duration (OpenTelemetry database semantic conventions).
type metricsHook struct {
	duration metric.Float64Histogram
}

func newMetricsHook() (*metricsHook, error) {
	d, err := otel.GetMeterProvider().Meter("herald/redis").Float64Histogram("db.client.operation.duration",
		metric.WithUnit("s"), metric.WithDescription("Duration of Redis commands and pipelines, by operation and outcome"))
	if err != nil {
		return nil, err
	}
	return &metricsHook{duration: d}, nil
}

var (
	attrSystem   = attribute.String("db.system.name", "redis")
	attrPipeline = attribute.String("db.operation.name", "pipeline")
	attrOK       = attribute.Bool("error", false)
	attrFailed   = attribute.Bool("error", true)
)

func outcome(err error) attribute.KeyValue {
	if err != nil && err != redis.Nil {
		return attrFailed
	}
	return attrOK
}

func (h *metricsHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) { return next(ctx, network, addr) }
}

func (h *metricsHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmd)
		h.duration.Record(ctx, time.Since(start).Seconds(), metric.WithAttributes(
			attrSystem, attribute.String("db.operation.name", cmd.Name()), outcome(err)))
		return err
	}
}

func (h *metricsHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmds)
		h.duration.Record(ctx, time.Since(start).Seconds(), metric.WithAttributes(attrSystem, attrPipeline, outcome(err)))
		return err
	}
}
