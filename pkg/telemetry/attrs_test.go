package telemetry

import (
	"context"
	"strconv"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

func TestAttrsRecord(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	meter := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)).Meter("test")
	c, err := meter.Int64Counter("c")
	if err != nil {
		t.Fatal(err)
	}
	h, err := meter.Float64Histogram("h")
	if err != nil {
		t.Fatal(err)
	}
	a := NewAttrs(attribute.String("outcome", "sent"), attribute.Bool("error", false))
	ctx := context.Background()
	c.Add(ctx, 2, a.AddOptions()...)
	c.Add(ctx, 1, a.Option())
	h.Record(ctx, 0.5, a.RecordOptions()...)

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	want := attribute.NewSet(attribute.Bool("error", false), attribute.String("outcome", "sent"))
	for _, m := range rm.ScopeMetrics[0].Metrics {
		switch d := m.Data.(type) {
		case metricdata.Sum[int64]:
			if len(d.DataPoints) != 1 || d.DataPoints[0].Value != 3 || !d.DataPoints[0].Attributes.Equals(&want) {
				t.Errorf("counter: %+v", d.DataPoints)
			}
		case metricdata.Histogram[float64]:
			if len(d.DataPoints) != 1 || d.DataPoints[0].Count != 1 || !d.DataPoints[0].Attributes.Equals(&want) {
				t.Errorf("histogram: %+v", d.DataPoints)
			}
		default:
			t.Errorf("%s: %T", m.Name, d)
		}
	}
}

func TestAttrCache(t *testing.T) {
	var mu sync.Mutex
	built := map[int]int{}
	c := NewAttrCache(func(k int) []attribute.KeyValue {
		mu.Lock()
		built[k]++
		mu.Unlock()
		return []attribute.KeyValue{attribute.Int("status", k)}
	})
	var wg sync.WaitGroup
	got := make([][]*Attrs, 8)
	for g := range got {
		wg.Go(func() {
			for k := range 10 {
				got[g] = append(got[g], c.Get(200+k))
			}
		})
	}
	wg.Wait()
	for k := range 10 {
		if built[200+k] != 1 {
			t.Errorf("key %d built %d times", 200+k, built[200+k])
		}
		for g := range got {
			if got[g][k] != got[0][k] {
				t.Errorf("key %d: goroutines %d and 0 got different Attrs", 200+k, g)
			}
		}
		if k > 0 && got[0][k] == got[0][k-1] {
			t.Errorf("keys %d and %d share Attrs", 200+k, 200+k-1)
		}
	}

	// Past maxCachedAttrs keys, it starts afresh rather than grow.
	for k := range 2 * maxCachedAttrs {
		c.Get(1000 + k)
	}
	if n := len(*c.m.Load()); n > maxCachedAttrs {
		t.Errorf("%d keys cached, at most %d wanted", n, maxCachedAttrs)
	}
	c.Get(200)
	if built[200] != 2 {
		t.Errorf("key 200 built %d times after the cache started afresh, want 2", built[200])
	}
}

// BenchmarkAttrs compares a measurement with attributes built on each call, as
// metric.WithAttributes does, with one made with an Attrs from an AttrCache.
func BenchmarkAttrs(b *testing.B) {
	h, err := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader())).Meter("test").Float64Histogram("h")
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	name := "xdel"
	kvs := func(name string) []attribute.KeyValue {
		return []attribute.KeyValue{attribute.String("db.system.name", "redis"), attribute.String("db.operation.name", name), attribute.Bool("error", false)}
	}
	b.Run("WithAttributes", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			h.Record(ctx, 1, metric.WithAttributes(kvs(name)...))
		}
	})
	b.Run("AttrCache", func(b *testing.B) {
		c := NewAttrCache(kvs)
		b.ReportAllocs()
		for b.Loop() {
			h.Record(ctx, 1, c.Get(name).RecordOptions()...)
		}
	})
	b.Run("AttrCache/keys", func(b *testing.B) {
		c := NewAttrCache(func(k int) []attribute.KeyValue { return kvs(strconv.Itoa(k)) })
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			h.Record(ctx, 1, c.Get(i%64).RecordOptions()...)
			i++
		}
	})
}
