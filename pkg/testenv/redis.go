package testenv

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"testing"

	"github.com/redis/go-redis/v9"
)

const (
	// RedisURLEnv names the Redis that Redis and RedisClient use. Besides the
	// redis:// and rediss:// forms redis.ParseURL takes, extra addr=host:port
	// query parameters (the form redis.ParseClusterURL takes) name a cluster.
	RedisURLEnv = "HERALD_REDIS_URL"
	// DefaultRedisURL is used when RedisURLEnv is unset; scripts/deps.sh serves it.
	DefaultRedisURL = "redis://127.0.0.1:6379/0"
	// RedisClusterURLEnv names the Redis Cluster of RedisCluster and EachRedis, a
	// URL in go-redis's cluster form (redis://host:port?addr=host:port&addr=…).
	RedisClusterURLEnv = "HERALD_REDIS_CLUSTER_URL"
	// DefaultRedisClusterURL is used when RedisClusterURLEnv is unset;
	// `scripts/deps.sh cluster` serves it.
	DefaultRedisClusterURL = "redis://127.0.0.1:7101?addr=127.0.0.1:7102&addr=127.0.0.1:7103"
)

// scanCount is the COUNT hint for each SCAN during cleanup.
const scanCount = 1000

// Redis returns the URL of the Redis named by HERALD_REDIS_URL and a key prefix
// (like "t0123456789abcdef:") no other test uses. Keys the test makes under that
// prefix are deleted in t.Cleanup. It fails the test if Redis does not answer.
func Redis(t testing.TB) (redisURL, prefix string) {
	t.Helper()
	return redisAt(t, envOr(RedisURLEnv, DefaultRedisURL))
}

// RedisCluster is Redis on the Redis Cluster named by HERALD_REDIS_CLUSTER_URL.
func RedisCluster(t testing.TB) (redisURL, prefix string) {
	t.Helper()
	return redisAt(t, envOr(RedisClusterURLEnv, DefaultRedisClusterURL))
}

// EachRedis runs f as two subtests, "single" on the Redis of Redis and "cluster" on
// the Redis Cluster of RedisCluster, each with a client and a fresh prefix.
func EachRedis(t *testing.T, f func(t *testing.T, client redis.UniversalClient, prefix string)) {
	t.Helper()
	for _, b := range []struct {
		name string
		open func(testing.TB) (string, string)
	}{{"single", Redis}, {"cluster", RedisCluster}} {
		t.Run(b.name, func(t *testing.T) {
			url, prefix := b.open(t)
			f(t, clientFor(t, url), prefix)
		})
	}
}

func redisAt(t testing.TB, redisURL string) (url, prefix string) {
	t.Helper()
	client := openRedis(t, redisURL)
	prefix = "t" + randomHex(t, 8) + ":"
	t.Cleanup(func() {
		// t.Context is already done when cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
		defer cancel()
		if err := deleteKeys(ctx, client, prefix); err != nil {
			t.Errorf("testenv: delete Redis keys %s*: %v", prefix, err)
		}
		if err := client.Close(); err != nil {
			t.Errorf("testenv: close Redis client: %v", err)
		}
	})
	return redisURL, prefix
}

// RedisClient is Redis with a client on that Redis, closed in t.Cleanup before the
// prefix's keys are deleted.
func RedisClient(t testing.TB) (redis.UniversalClient, string) {
	t.Helper()
	redisURL, prefix := Redis(t)
	return clientFor(t, redisURL), prefix
}

// clientFor opens a client on redisURL, closed in t.Cleanup.
func clientFor(t testing.TB, redisURL string) redis.UniversalClient {
	t.Helper()
	client := openRedis(t, redisURL)
	t.Cleanup(func() {
		// The test may have closed it already; that is its right.
		if err := client.Close(); err != nil && !errors.Is(err, redis.ErrClosed) {
			t.Errorf("testenv: close Redis client: %v", err)
		}
	})
	return client
}

// openRedis opens a client on rawURL and checks that the server answers PING.
func openRedis(t testing.TB, rawURL string) redis.UniversalClient {
	t.Helper()
	opts, err := redisOptions(rawURL)
	if err != nil {
		t.Fatalf("testenv: parse %s: %v", RedisURLEnv, err)
	}
	client := redis.NewUniversalClient(opts)
	ctx, cancel := context.WithTimeout(t.Context(), setupTimeout)
	defer cancel()
	if err := client.Ping(ctx).Err(); err != nil {
		// The client is of no use; its Close error would say nothing more.
		_ = client.Close()
		t.Fatalf("testenv: Redis at %v does not answer: %v\n"+howToRun, opts.Addrs, err, RedisURLEnv)
	}
	return client
}

// redisOptions turns a Redis URL into options for redis.NewUniversalClient, which
// makes a cluster client for more than one address.
func redisOptions(rawURL string) (*redis.UniversalOptions, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	if u.Query().Has("addr") {
		o, err := redis.ParseClusterURL(rawURL)
		if err != nil {
			return nil, err
		}
		return &redis.UniversalOptions{
			Addrs:         o.Addrs,
			IsClusterMode: true,
			ClientName:    o.ClientName,
			Protocol:      o.Protocol,
			Username:      o.Username,
			Password:      o.Password,
			DialTimeout:   o.DialTimeout,
			ReadTimeout:   o.ReadTimeout,
			WriteTimeout:  o.WriteTimeout,
			TLSConfig:     o.TLSConfig,
		}, nil
	}
	o, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	return &redis.UniversalOptions{
		Addrs:        []string{o.Addr},
		DB:           o.DB,
		ClientName:   o.ClientName,
		Protocol:     o.Protocol,
		Username:     o.Username,
		Password:     o.Password,
		DialTimeout:  o.DialTimeout,
		ReadTimeout:  o.ReadTimeout,
		WriteTimeout: o.WriteTimeout,
		TLSConfig:    o.TLSConfig,
	}, nil
}

// deleteKeys unlinks every key that starts with prefix. A cluster spreads keys over
// its masters, and SCAN sees one node only, so each master is scanned in turn.
func deleteKeys(ctx context.Context, client redis.UniversalClient, prefix string) error {
	if cluster, ok := client.(*redis.ClusterClient); ok {
		return cluster.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
			return deleteNodeKeys(ctx, node, prefix)
		})
	}
	return deleteNodeKeys(ctx, client, prefix)
}

// deleteNodeKeys unlinks the keys under prefix on one server. Each key gets its own
// UNLINK, pipelined: keys under one prefix may hash to different cluster slots, and
// one UNLINK naming several slots fails with CROSSSLOT.
func deleteNodeKeys(ctx context.Context, node redis.Cmdable, prefix string) error {
	// The prefix is "t" and hex digits and ":", none of them special to MATCH.
	pattern := prefix + "*"
	var cursor uint64
	for {
		keys, next, err := node.Scan(ctx, cursor, pattern, scanCount).Result()
		if err != nil {
			return fmt.Errorf("scan: %w", err)
		}
		if len(keys) > 0 {
			pipe := node.Pipeline()
			for _, k := range keys {
				pipe.Unlink(ctx, k)
			}
			if _, err := pipe.Exec(ctx); err != nil {
				return fmt.Errorf("unlink: %w", err)
			}
		}
		if next == 0 {
			return nil
		}
		cursor = next
	}
}
