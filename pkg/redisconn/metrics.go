package redisconn

import (
	"context"
	"net"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/herald-push/herald/pkg/telemetry"
)

// metricsHook records the duration and errors of every Redis call and pipeline, as
// db.client.operation.duration (OpenTelemetry database semantic conventions). It
// runs on every Redis round trip, so each attribute set is built once: per command
// name and outcome, and twice for pipelines.
type metricsHook struct {
	duration metric.Float64Histogram
	commands *telemetry.AttrCache[commandKey]
}

type commandKey struct {
	name   string
	failed bool
}

func newMetricsHook(mp metric.MeterProvider) (*metricsHook, error) {
	d, err := mp.Meter("herald/redis").Float64Histogram("db.client.operation.duration",
		metric.WithUnit("s"), metric.WithDescription("Duration of Redis commands and pipelines, by operation and outcome"))
	if err != nil {
		return nil, err
	}
	return &metricsHook{duration: d, commands: telemetry.NewAttrCache(func(k commandKey) []attribute.KeyValue {
		return []attribute.KeyValue{attrSystem, attribute.String("db.operation.name", k.name), attribute.Bool("error", k.failed)}
	})}, nil
}

var (
	attrSystem     = attribute.String("db.system.name", "redis")
	pipelineOK     = telemetry.NewAttrs(attrSystem, attribute.String("db.operation.name", "pipeline"), attribute.Bool("error", false))
	pipelineFailed = telemetry.NewAttrs(attrSystem, attribute.String("db.operation.name", "pipeline"), attribute.Bool("error", true))
)

// failed reports whether err is a failure: redis.Nil only says a key is missing.
func failed(err error) bool { return err != nil && err != redis.Nil }

func (h *metricsHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) { return next(ctx, network, addr) }
}

func (h *metricsHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmd)
		a := h.commands.Get(commandKey{name: cmd.Name(), failed: failed(err)})
		h.duration.Record(ctx, time.Since(start).Seconds(), a.RecordOptions()...)
		return err
	}
}

func (h *metricsHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmds)
		a := pipelineOK
		if failed(err) {
			a = pipelineFailed
		}
		h.duration.Record(ctx, time.Since(start).Seconds(), a.RecordOptions()...)
		return err
	}
}
