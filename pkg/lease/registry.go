package lease

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/herald-push/herald/pkg/rkey"
)

// Registry records the live gateways: each announces its id and gRPC address with a
// heartbeat, and leaves when it stops.
type Registry struct {
	rdb  redis.UniversalClient
	keys rkey.Keys
}

// NewRegistry returns a Registry.
func NewRegistry(rdb redis.UniversalClient, keys rkey.Keys) *Registry {
	return &Registry{rdb: rdb, keys: keys}
}

// Announce records gateway id at addr as alive now, for ttl.
func (r *Registry) Announce(ctx context.Context, id, addr string, ttl time.Duration) error {
	now := time.Now()
	// Two keys in different slots: no MULTI, each command stands alone.
	if err := r.rdb.Set(ctx, r.keys.Gateway(id), addr, ttl).Err(); err != nil {
		return fmt.Errorf("announce gateway: %w", err)
	}
	if err := r.rdb.ZAdd(ctx, r.keys.Gateways(), redis.Z{Score: float64(now.UnixMilli()), Member: id}).Err(); err != nil {
		return fmt.Errorf("announce gateway: %w", err)
	}
	return nil
}

// Leave removes gateway id.
func (r *Registry) Leave(ctx context.Context, id string) error {
	if err := r.rdb.Del(ctx, r.keys.Gateway(id)).Err(); err != nil {
		return fmt.Errorf("leave: %w", err)
	}
	if err := r.rdb.ZRem(ctx, r.keys.Gateways(), id).Err(); err != nil {
		return fmt.Errorf("leave: %w", err)
	}
	return nil
}

// Live returns the ids of gateways that announced themselves within ttl, and drops
// the others from the set.
func (r *Registry) Live(ctx context.Context, ttl time.Duration) ([]string, error) {
	cutoff := time.Now().Add(-ttl).UnixMilli()
	if err := r.rdb.ZRemRangeByScore(ctx, r.keys.Gateways(), "-inf", "("+strconv.FormatInt(cutoff, 10)).Err(); err != nil {
		return nil, fmt.Errorf("live gateways: %w", err)
	}
	ids, err := r.rdb.ZRange(ctx, r.keys.Gateways(), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("live gateways: %w", err)
	}
	return ids, nil
}
