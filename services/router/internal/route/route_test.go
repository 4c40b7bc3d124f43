package route

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/herald-push/herald/pkg/ids"
	"github.com/herald-push/herald/pkg/lease"
	"github.com/herald-push/herald/pkg/queue"
	"github.com/herald-push/herald/pkg/rkey"
	"github.com/herald-push/herald/pkg/testenv"
	heraldv1 "github.com/herald-push/herald/proto/herald/v1"
)

// noGateways is never asked: no user agent in these tests is connected.
type noGateways struct{}

func (noGateways) DeliverBatch(context.Context, string, *heraldv1.DeliverBatchRequest) (*heraldv1.DeliverBatchResponse, error) {
	panic("no gateway")
}
func (noGateways) Forget(string) {}

// TestSubscriptionChanges checks that a message whose subscription changed since
// ingest checked it is refused, stored (TTL > 0) or not, in one batch with others.
func TestSubscriptionChanges(t *testing.T) {
	testenv.EachRedis(t, func(t *testing.T, rdb redis.UniversalClient, prefix string) {
		ctx := context.Background()
		keys := rkey.New(prefix)
		q := queue.New(rdb, keys, 100)
		s, err := NewServer(rdb, q, lease.New(rdb, keys, time.Minute), noGateways{}, time.Second, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		u := ids.NewUAID()
		gone, rekeyed, kept := ids.NewChannelID(), ids.NewChannelID(), ids.NewChannelID()
		oldKey, newKey := []byte("\x04old"), []byte("\x04new")
		if err := q.Unsubscribed(ctx, u, gone); err != nil {
			t.Fatal(err)
		}
		if err := q.Subscribed(ctx, u, rekeyed, newKey); err != nil {
			t.Fatal(err)
		}
		req := func(ch ids.ChannelID, ttl int64, key []byte) *heraldv1.RouteRequest {
			return &heraldv1.RouteRequest{AppServerKey: key, Message: &heraldv1.Message{
				Uaid: u.String(), ChannelId: ch.String(), Data: []byte("x"), TtlSeconds: ttl,
				Headers: map[string]string{"encoding": "aes128gcm"},
			}}
		}
		tests := []struct {
			name string
			req  *heraldv1.RouteRequest
			want codes.Code
		}{
			{"unregistered, stored", req(gone, 60, nil), codes.NotFound},
			{"unregistered, TTL 0", req(gone, 0, nil), codes.NotFound},
			{"old key, stored", req(rekeyed, 60, oldKey), codes.Aborted},
			{"old key, TTL 0", req(rekeyed, 0, oldKey), codes.Aborted},
			{"new key, stored", req(rekeyed, 60, newKey), codes.OK},
			{"new key, TTL 0", req(rekeyed, 0, newKey), codes.OK},
			{"unchanged, stored", req(kept, 60, oldKey), codes.OK},
			{"unchanged, TTL 0", req(kept, 0, nil), codes.OK},
		}
		batch := &heraldv1.RouteBatchRequest{}
		for _, tt := range tests {
			batch.Requests = append(batch.Requests, tt.req)
		}
		resp, err := s.RouteBatch(ctx, batch)
		if err != nil {
			t.Fatal(err)
		}
		for i, tt := range tests {
			r := resp.GetResults()[i]
			if got := codes.Code(r.GetCode()); got != tt.want {
				t.Errorf("%s: code %v (%s), want %v", tt.name, got, r.GetError(), tt.want)
			}
			if tt.want == codes.OK && tt.req.GetMessage().GetTtlSeconds() > 0 && !r.GetResponse().GetStored() {
				t.Errorf("%s: not stored", tt.name)
			}
		}
		if n, err := q.Len(ctx, u); err != nil || n != 2 {
			t.Fatalf("queue holds %d messages (%v), want the 2 accepted with a TTL", n, err)
		}
		// Route (a batch of one) answers with the same codes.
		if _, err := s.Route(ctx, req(gone, 60, nil)); status.Code(err) != codes.NotFound {
			t.Fatalf("Route to an unregistered channel: %v", err)
		}
	})
}

// TestSubscriptionLimit checks that the router counts the subscription's rate
// limit ingest passes, stored (TTL > 0) or not, and refuses a message over it with
// ResourceExhausted and a retry-after, which a full queue does not carry.
func TestSubscriptionLimit(t *testing.T) {
	testenv.EachRedis(t, func(t *testing.T, rdb redis.UniversalClient, prefix string) {
		ctx := context.Background()
		keys := rkey.New(prefix)
		q := queue.New(rdb, keys, 2)
		s, err := NewServer(rdb, q, lease.New(rdb, keys, time.Minute), noGateways{}, time.Second, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		u := ids.NewUAID()
		stored, unstored, full, unlimited := ids.NewChannelID(), ids.NewChannelID(), ids.NewChannelID(), ids.NewChannelID()
		twoPerMinute := &heraldv1.RateLimit{Count: 2, PeriodUs: time.Minute.Microseconds()}
		req := func(ch ids.ChannelID, ttl int64, lim *heraldv1.RateLimit) *heraldv1.RouteRequest {
			return &heraldv1.RouteRequest{SubscriptionLimit: lim, Message: &heraldv1.Message{
				Uaid: u.String(), ChannelId: ch.String(), Data: []byte("x"), TtlSeconds: ttl,
				Headers: map[string]string{"encoding": "aes128gcm"},
			}}
		}
		tests := []struct {
			name    string
			req     *heraldv1.RouteRequest
			want    codes.Code
			limited bool
		}{
			{"stored, 1 of 2", req(stored, 60, twoPerMinute), codes.OK, false},
			{"stored, 2 of 2", req(stored, 60, twoPerMinute), codes.OK, false},
			{"stored, over", req(stored, 60, twoPerMinute), codes.ResourceExhausted, true},
			{"TTL 0, 1 of 2", req(unstored, 0, twoPerMinute), codes.OK, false},
			{"TTL 0, 2 of 2", req(unstored, 0, twoPerMinute), codes.OK, false},
			{"TTL 0, over", req(unstored, 0, twoPerMinute), codes.ResourceExhausted, true},
			{"queue full, within the limit", req(full, 60, twoPerMinute), codes.ResourceExhausted, false},
			{"no limit", req(unlimited, 0, nil), codes.OK, false},
			{"no limit, again", req(unlimited, 0, &heraldv1.RateLimit{}), codes.OK, false},
			{"bad limit", req(unlimited, 0, &heraldv1.RateLimit{Count: 1}), codes.InvalidArgument, false},
		}
		batch := &heraldv1.RouteBatchRequest{}
		for _, tt := range tests {
			batch.Requests = append(batch.Requests, tt.req)
		}
		resp, err := s.RouteBatch(ctx, batch)
		if err != nil {
			t.Fatal(err)
		}
		for i, tt := range tests {
			r := resp.GetResults()[i]
			if got := codes.Code(r.GetCode()); got != tt.want {
				t.Errorf("%s: code %v (%s), want %v", tt.name, got, r.GetError(), tt.want)
			}
			if ms := r.GetRetryAfterMs(); (ms > 0) != tt.limited || (tt.limited && (ms <= 29_000 || ms > 30_000)) {
				t.Errorf("%s: retry after %d ms; want about 30 s: %v", tt.name, ms, tt.limited)
			}
		}
		if n, err := q.Len(ctx, u); err != nil || n != 2 {
			t.Fatalf("queue holds %d messages (%v), want the 2 allowed, which fill it", n, err)
		}
		// The message that found the queue full counted nothing: two more are allowed.
		for i := range 2 {
			if _, err := s.Route(ctx, req(full, 0, twoPerMinute)); err != nil {
				t.Fatalf("TTL 0 message %d to the channel whose stored message found the queue full: %v", i+1, err)
			}
		}
		// Route (a batch of one) fails with the retry-after as a RetryInfo.
		_, err = s.Route(ctx, req(stored, 60, twoPerMinute))
		if d, ok := heraldv1.RetryAfter(err); status.Code(err) != codes.ResourceExhausted || !ok || d <= 29*time.Second || d > 30*time.Second {
			t.Fatalf("Route over the limit: %v, retry after %v (%v)", err, d, ok)
		}
	})
}
