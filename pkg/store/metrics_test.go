package store

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/herald-push/herald/pkg/testenv"
)

func TestQueryMetrics(t *testing.T) {
	ctx := context.Background()
	reader := sdkmetric.NewManualReader()
	tracer, err := newQueryMetricsOf(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := pgx.ParseConfig(testenv.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Tracer = tracer
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) }) // the database is dropped next

	for _, sql := range []string{"SELECT 1", "  select 2", "CREATE TABLE t (x int)", "INSERT INTO t VALUES (1)"} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	var x int
	if err := conn.QueryRow(ctx, "SELECT x FROM t WHERE x = 2").Scan(&x); !errors.Is(err, pgx.ErrNoRows) {
		t.Fatalf("no rows: %v", err)
	}
	if _, err := conn.Exec(ctx, "INSERT INTO missing VALUES (1)"); err == nil {
		t.Fatal("insert into a missing table did not fail")
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]uint64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "db.client.operation.duration" || m.Unit != "s" {
				continue
			}
			for _, dp := range m.Data.(metricdata.Histogram[float64]).DataPoints {
				system, _ := dp.Attributes.Value("db.system.name")
				op, _ := dp.Attributes.Value("db.operation.name")
				failed, _ := dp.Attributes.Value("error")
				if system.AsString() != "postgresql" || dp.Attributes.Len() != 3 {
					t.Errorf("data point attributes %v", dp.Attributes.ToSlice())
				}
				got[op.AsString()+" "+failed.Emit()] += dp.Count
			}
		}
	}
	want := map[string]uint64{"SELECT false": 3, "CREATE false": 1, "INSERT false": 1, "INSERT true": 1}
	if len(got) != len(want) {
		t.Errorf("recorded %v, want %v", got, want)
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("%s: %d recorded, want %d (all: %v)", k, got[k], n, got)
		}
	}
}

// BenchmarkQueryMetrics is the cost the tracer adds to each query.
func BenchmarkQueryMetrics(b *testing.B) {
	m, err := newQueryMetricsOf(sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader())))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	start := pgx.TraceQueryStartData{SQL: "SELECT channel_id FROM subscriptions WHERE uaid = $1"}
	b.ReportAllocs()
	for b.Loop() {
		m.TraceQueryEnd(m.TraceQueryStart(ctx, nil, start), nil, pgx.TraceQueryEndData{})
	}
}
