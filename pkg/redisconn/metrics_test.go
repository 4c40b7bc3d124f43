package redisconn

import (
	"context"
	"errors"
	"testing"

	"github.com/redis/go-redis/v9"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/herald-push/herald/pkg/testenv"
)

// operations reads db.client.operation.duration's data points from reader as
// "name error" → count.
func operations(t *testing.T, reader sdkmetric.Reader) map[string]uint64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]uint64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "db.client.operation.duration" || m.Unit != "s" {
				continue
			}
			for _, dp := range m.Data.(metricdata.Histogram[float64]).DataPoints {
				system, _ := dp.Attributes.Value("db.system.name")
				name, _ := dp.Attributes.Value("db.operation.name")
				failed, _ := dp.Attributes.Value("error")
				if system.AsString() != "redis" || dp.Attributes.Len() != 3 {
					t.Errorf("data point attributes %v", dp.Attributes.ToSlice())
				}
				out[name.AsString()+" "+failed.Emit()] += dp.Count
			}
		}
	}
	return out
}

func TestHookRecordsEachCommandAndPipeline(t *testing.T) {
	testenv.EachRedis(t, func(t *testing.T, rdb redis.UniversalClient, prefix string) {
		ctx := context.Background()
		reader := sdkmetric.NewManualReader()
		hook, err := newMetricsHook(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)))
		if err != nil {
			t.Fatal(err)
		}
		rdb.AddHook(hook)
		key := prefix + "{k}"
		for range 2 {
			if err := rdb.Set(ctx, key, "not a number", 0).Err(); err != nil {
				t.Fatal(err)
			}
		}
		if err := rdb.Get(ctx, prefix+"{missing}").Err(); !errors.Is(err, redis.Nil) {
			t.Fatalf("get a missing key: %v", err)
		}
		if err := rdb.Incr(ctx, key).Err(); err == nil {
			t.Fatal("incr of a string did not fail")
		}
		pipe := rdb.Pipeline()
		pipe.Get(ctx, key)
		pipe.Exists(ctx, key)
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatal(err)
		}
		got := operations(t, reader)
		for op, want := range map[string]uint64{"set false": 2, "get false": 1, "incr true": 1} {
			if got[op] != want {
				t.Errorf("%s: %d recorded, want %d (all: %v)", op, got[op], want, got)
			}
		}
		if got["incr false"] != 0 || got["get true"] != 0 {
			t.Errorf("outcomes mixed up: %v", got)
		}
		// A new connection's handshake is a pipeline too, so these count from here.
		ok, failed := got["pipeline false"], got["pipeline true"]
		if ok == 0 {
			t.Errorf("pipeline not recorded: %v", got)
		}
		pipe.Incr(ctx, key)
		if _, err := pipe.Exec(ctx); err == nil {
			t.Fatal("a pipeline with a failing command did not fail")
		}
		got = operations(t, reader)
		if got["pipeline true"] != failed+1 || got["pipeline false"] != ok {
			t.Errorf("failed pipeline: %d → %d recorded as failed, %d → %d as not", failed, got["pipeline true"], ok, got["pipeline false"])
		}
	})
}

// BenchmarkHook is the cost the hook adds to each Redis call and pipeline.
func BenchmarkHook(b *testing.B) {
	ctx := context.Background()
	h, err := newMetricsHook(sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader())))
	if err != nil {
		b.Fatal(err)
	}
	b.Run("command", func(b *testing.B) {
		process := h.ProcessHook(func(context.Context, redis.Cmder) error { return nil })
		cmd := redis.NewIntCmd(ctx, "xdel", "q:{u}", "1-0")
		b.ReportAllocs()
		for b.Loop() {
			_ = process(ctx, cmd)
		}
	})
	b.Run("pipeline", func(b *testing.B) {
		process := h.ProcessPipelineHook(func(context.Context, []redis.Cmder) error { return nil })
		cmds := []redis.Cmder{redis.NewIntCmd(ctx, "xdel", "q:{u}", "1-0")}
		b.ReportAllocs()
		for b.Loop() {
			_ = process(ctx, cmds)
		}
	})
}
