package store

import (
	"context"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/herald-push/herald/pkg/telemetry"
)

// queryMetrics records the duration and errors of every query as
// db.client.operation.duration (OpenTelemetry database semantic conventions), with
// each operation and outcome's attribute set built once.
type queryMetrics struct {
	duration metric.Float64Histogram
	attrs    *telemetry.AttrCache[queryKey]
}

type queryKey struct {
	operation string
	failed    bool
}

type queryStartKey struct{}

type queryStart struct {
	at  time.Time
	sql string
}

func newQueryMetrics() (*queryMetrics, error) { return newQueryMetricsOf(otel.GetMeterProvider()) }

func newQueryMetricsOf(mp metric.MeterProvider) (*queryMetrics, error) {
	d, err := mp.Meter("herald/postgres").Float64Histogram("db.client.operation.duration",
		metric.WithUnit("s"), metric.WithDescription("Duration of Postgres queries, by operation and outcome"))
	if err != nil {
		return nil, err
	}
	return &queryMetrics{duration: d, attrs: telemetry.NewAttrCache(func(k queryKey) []attribute.KeyValue {
		return []attribute.KeyValue{
			attribute.String("db.system.name", "postgresql"),
			attribute.String("db.operation.name", k.operation),
			attribute.Bool("error", k.failed),
		}
	})}, nil
}

func (m *queryMetrics) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	return context.WithValue(ctx, queryStartKey{}, queryStart{at: time.Now(), sql: data.SQL})
}

func (m *queryMetrics) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryEndData) {
	start, ok := ctx.Value(queryStartKey{}).(queryStart)
	if !ok {
		return
	}
	a := m.attrs.Get(queryKey{operation: operation(start.sql), failed: data.Err != nil && data.Err != pgx.ErrNoRows})
	m.duration.Record(ctx, time.Since(start.at).Seconds(), a.RecordOptions()...)
}

// operation is the SQL statement's first keyword (SELECT, INSERT, …): the statement
// itself could carry values and would make too many series.
func operation(sql string) string {
	word, _, _ := strings.Cut(strings.TrimSpace(sql), " ")
	if word == "" {
		return "UNKNOWN"
	}
	return strings.ToUpper(word)
}
