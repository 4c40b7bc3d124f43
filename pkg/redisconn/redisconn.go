// Package redisconn opens the Redis client every Herald service shares: a single
// server or a Redis Cluster, behind go-redis's UniversalClient.
package redisconn

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel"

	"github.com/herald-push/herald/pkg/rawconn"
	"github.com/herald-push/herald/pkg/rkey"
)

// Config selects the Redis server or cluster and the key prefix.
type Config struct {
	// URL is redis://[user:pass@]host:port/db for one server, or
	// redis://host:port?addr=host2:port2&addr=host3:port3 with Cluster set.
	URL     string
	Cluster bool
	Prefix  string
}

// RegisterFlags registers -redis-url, -redis-cluster and -redis-prefix.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.URL, "redis-url", "redis://127.0.0.1:6379/0", "Redis URL (with -redis-cluster: any node, more with &addr=host:port)")
	fs.BoolVar(&c.Cluster, "redis-cluster", false, "connect to a Redis Cluster")
	fs.StringVar(&c.Prefix, "redis-prefix", "herald:", "prefix of every Redis key")
}

// Validate checks the URL parses.
func (c *Config) Validate() error {
	if c.URL == "" {
		return errors.New("redis-url is required")
	}
	if _, err := url.Parse(c.URL); err != nil {
		return fmt.Errorf("redis-url: %w", err)
	}
	return nil
}

// Redacted returns the URL with any password hidden, for logs.
func (c *Config) Redacted() string {
	u, err := url.Parse(c.URL)
	if err != nil {
		return "(unparsable)"
	}
	return u.Redacted()
}

// Keys returns the key builder for the configured prefix.
func (c *Config) Keys() rkey.Keys { return rkey.New(c.Prefix) }

// Open connects and checks that Redis answers within the context's deadline.
func (c *Config) Open(ctx context.Context) (redis.UniversalClient, error) {
	var rdb redis.UniversalClient
	if c.Cluster {
		opt, err := redis.ParseClusterURL(c.URL)
		if err != nil {
			return nil, fmt.Errorf("redis-url: %w", err)
		}
		opt.Dialer = rawDialer(opt.DialTimeout, opt.TLSConfig)
		rdb = redis.NewClusterClient(opt)
	} else {
		opt, err := redis.ParseURL(c.URL)
		if err != nil {
			return nil, fmt.Errorf("redis-url: %w", err)
		}
		opt.Dialer = rawDialer(opt.DialTimeout, opt.TLSConfig)
		rdb = redis.NewClient(opt)
	}
	hook, err := newMetricsHook(otel.GetMeterProvider())
	if err != nil {
		return nil, fmt.Errorf("redis metrics: %w", err)
	}
	rdb.AddHook(hook)
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		_ = rdb.Close() // the ping error is the one worth returning
		return nil, fmt.Errorf("redis %s: %w", c.Redacted(), err)
	}
	return rdb, nil
}

// rawDialer dials as go-redis does by default (its timeout, keepalive and TLS
// settings) and has the connection read and write with raw system calls, go-redis's
// check of a pooled connection included (rawconn.WrapPooled; a TLS connection is
// left as it is).
func rawDialer(timeout time.Duration, tlsConfig *tls.Config) func(context.Context, string, string) (net.Conn, error) {
	dial := redis.NewDialer(&redis.Options{DialTimeout: timeout, TLSConfig: tlsConfig})
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return rawconn.WrapPooled(c), nil
	}
}
