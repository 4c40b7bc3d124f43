package store

import (
	"context"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// queryMetrics records the duration and errors of every query as
// db.client.operation.duration (OpenTelemetry database semantic conventions).
type queryMetrics struct {
	duration metric.Float64Histogram
}

type queryStartKey struct{}

type queryStart struct {
	at  time.Time
	sql string
}

func newQueryMetrics() (*queryMetrics, error) {
	d, err := otel.GetMeterProvider().Meter("herald/postgres").Float64Histogram("db.client.operation.duration",
		metric.WithUnit("s"), metric.WithDescription("Duration of Postgres queries, by operation and outcome"))
	if err != nil {
		return nil, err
	}
	return &queryMetrics{duration: d}, nil
}

func (m *queryMetrics) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	return context.WithValue(ctx, queryStartKey{}, queryStart{at: time.Now(), sql: data.SQL})
}

func (m *queryMetrics) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryEndData) {
	start, ok := ctx.Value(queryStartKey{}).(queryStart)
	if !ok {
		return
	}
	m.duration.Record(ctx, time.Since(start.at).Seconds(), metric.WithAttributes(
		attribute.String("db.system.name", "postgresql"),
		attribute.String("db.operation.name", operation(start.sql)),
		attribute.Bool("error", data.Err != nil && data.Err != pgx.ErrNoRows)))
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
