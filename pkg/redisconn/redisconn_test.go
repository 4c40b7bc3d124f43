package redisconn

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/herald-push/herald/pkg/testenv"
)

// A pooled connection that Redis closed (a restart, a failover, a client kill) is
// thrown away by go-redis's check before the next command, which then succeeds on a
// new connection without a retry: the check still works through the raw
// connections of rawconn.WrapPooled.
func TestClosedPooledConnectionIsNotUsed(t *testing.T) {
	ctx := context.Background()
	url, _ := testenv.Redis(t)
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	cfg := Config{URL: url + sep + "pool_size=1&max_retries=-1"}
	rdb, err := cfg.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	other, err := (&Config{URL: url}).Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()

	for round := range 3 {
		id, err := rdb.(*redis.Client).ClientID(ctx).Result()
		if err != nil {
			t.Fatalf("round %d: client id: %v", round, err)
		}
		if err := other.ClientKillByFilter(ctx, "ID", strconv.FormatInt(id, 10)).Err(); err != nil {
			t.Fatalf("round %d: client kill: %v", round, err)
		}
		if err := rdb.Ping(ctx).Err(); err != nil {
			t.Fatalf("round %d: the first command after Redis closed the pooled connection: %v", round, err)
		}
		pipe := rdb.Pipeline()
		pipe.Ping(ctx)
		pipe.Ping(ctx)
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatalf("round %d: a pipeline on the new connection: %v", round, err)
		}
	}
}
