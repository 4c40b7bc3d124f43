package cluster

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/herald-push/herald/pkg/ids"
	"github.com/herald-push/herald/pkg/pushclient"
	"github.com/herald-push/herald/pkg/queue"
	"github.com/herald-push/herald/pkg/rkey"
	"github.com/herald-push/herald/pkg/testenv"
	"github.com/herald-push/herald/pkg/token"
)

// Cluster is one ingest, one router and one or more gateways sharing a fresh
// database and Redis key prefix.
type Cluster struct {
	t   testing.TB
	env []string
	// Ingest and Router are the first of Ingests and Routers.
	Ingest      *Process
	Router      *Process
	Ingests     []*Process
	Routers     []*Process
	Gateways    []*Process
	PostgresURL string
	RedisURL    string
	RedisPrefix string
	// RedisCluster says the services run on a Redis Cluster.
	RedisCluster bool
	TokenKeys    string
}

// Option changes how a Cluster starts.
type Option func(*options)

type options struct {
	env          []string
	redisCluster bool
	via          func(redisURL, postgresURL string) (string, string)
}

// WithStorageVia has the services reach Redis and Postgres at the URLs via returns
// for the test's own (through a proxy the test can cut, say). The Cluster's fields,
// and what tests read through them, keep the direct URLs.
func WithStorageVia(via func(redisURL, postgresURL string) (string, string)) Option {
	return func(o *options) { o.via = via }
}

// WithRedisCluster runs the services on the Redis Cluster of testenv.RedisCluster.
func WithRedisCluster() Option {
	return func(o *options) { o.redisCluster = true }
}

// WithEnv adds HERALD_* settings for every service, e.g. "HERALD_MAX_TTL=60".
func WithEnv(kv ...string) Option {
	return func(o *options) { o.env = append(o.env, kv...) }
}

// Start runs router, ingest and one gateway.
func Start(t testing.TB, opts ...Option) *Cluster {
	t.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	openRedis := testenv.Redis
	if o.redisCluster {
		openRedis = testenv.RedisCluster
	}
	redisURL, prefix := openRedis(t)
	c := &Cluster{
		t:            t,
		PostgresURL:  testenv.PostgresURL(t),
		RedisURL:     redisURL,
		RedisPrefix:  prefix,
		RedisCluster: o.redisCluster,
		TokenKeys:    token.GenerateKey(),
	}
	svcRedis, svcPostgres := c.RedisURL, c.PostgresURL
	if o.via != nil {
		svcRedis, svcPostgres = o.via(c.RedisURL, c.PostgresURL)
	}
	c.env = append(cleanEnv(),
		"HERALD_POSTGRES_URL="+svcPostgres,
		"HERALD_REDIS_URL="+svcRedis,
		"HERALD_REDIS_PREFIX="+c.RedisPrefix,
		"HERALD_TOKEN_KEYS="+c.TokenKeys,
		"HERALD_LOG_FORMAT=json",
		"HERALD_LOG_LEVEL=debug",
		"HERALD_ADMIN_LISTEN=127.0.0.1:0",
		"HERALD_DRAIN_WINDOW=1s",
		"HERALD_DRAIN_TIMEOUT=10s",
		"HERALD_REDIS_CLUSTER="+strconv.FormatBool(o.redisCluster),
	)
	c.env = append(c.env, o.env...)
	c.Router = c.AddRouter()
	c.Ingest = c.AddIngest(c.Router)
	c.AddGateway()
	return c
}

// AddRouter starts one more router and returns it.
func (c *Cluster) AddRouter() *Process {
	c.t.Helper()
	r := startProcess(c.t, "router", nil, append(c.env, "HERALD_GRPC_LISTEN=127.0.0.1:0"))
	c.Routers = append(c.Routers, r)
	return r
}

// AddIngest starts one more ingest, calling router, and returns it.
func (c *Cluster) AddIngest(router *Process) *Process {
	c.t.Helper()
	in := startProcess(c.t, "ingest", nil, append(c.env,
		"HERALD_LISTEN=127.0.0.1:0",
		"HERALD_ROUTER_ADDR="+router.Addr("grpc")))
	c.Ingests = append(c.Ingests, in)
	return in
}

// AddGateway starts one more gateway and returns it.
func (c *Cluster) AddGateway() *Process {
	c.t.Helper()
	gw := startProcess(c.t, "gateway", nil, append(c.env,
		"HERALD_LISTEN=127.0.0.1:0",
		"HERALD_GRPC_LISTEN=127.0.0.1:0",
		"HERALD_ENDPOINT_URL="+c.IngestURL()))
	c.Gateways = append(c.Gateways, gw)
	return gw
}

// IngestURL is the base URL application servers use.
func (c *Cluster) IngestURL() string { return "http://" + c.Ingest.Addr("http") }

// GatewayURL is the WebSocket URL of gateway i.
func (c *Cluster) GatewayURL(i int) string { return "ws://" + c.Gateways[i].Addr("websocket") + "/" }

// Dial connects a user agent to gateway 0 and closes it in t.Cleanup.
func (c *Cluster) Dial(t testing.TB) *pushclient.Client {
	t.Helper()
	return DialURL(t, c.GatewayURL(0))
}

// DialURL connects a user agent to a gateway URL and closes it in t.Cleanup.
func DialURL(t testing.TB, url string) *pushclient.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := pushclient.Dial(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() }) // may already be closed by the test
	return cl
}

// cleanEnv is the test's environment without HERALD_* settings, so that only what
// the cluster sets reaches the services.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HERALD_") {
			env = append(env, kv)
		}
	}
	return env
}

// Queue returns the message queues the services use, on a client closed in
// t.Cleanup, for tests to look into.
func (c *Cluster) Queue(t testing.TB) *queue.Queue {
	t.Helper()
	return queue.New(c.redis(t), rkey.New(c.RedisPrefix), 1)
}

// QueueLife returns how long user agent uaid's queue has left to live in Redis
// (negative when there is no queue: Redis's PTTL).
func (c *Cluster) QueueLife(t testing.TB, uaid string) time.Duration {
	t.Helper()
	d, err := c.redis(t).PTTL(context.Background(), rkey.New(c.RedisPrefix).Queue(mustUAID(t, uaid))).Result()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// OwnerGateway returns the id of the gateway whose lease holds user agent uaid, or ""
// when none does.
func (c *Cluster) OwnerGateway(t testing.TB, uaid string) string {
	t.Helper()
	gw, err := c.redis(t).HGet(context.Background(), rkey.New(c.RedisPrefix).Owner(mustUAID(t, uaid)), "gw").Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		t.Fatal(err)
	}
	return gw
}

// mustUAID parses a uaid as the protocol gives it.
func mustUAID(t testing.TB, uaid string) ids.UAID {
	t.Helper()
	u, err := ids.ParseUAID(uaid)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// redis returns a client of the services' Redis, closed in t.Cleanup.
func (c *Cluster) redis(t testing.TB) redis.UniversalClient {
	t.Helper()
	var rdb redis.UniversalClient
	if c.RedisCluster {
		opt, err := redis.ParseClusterURL(c.RedisURL)
		if err != nil {
			t.Fatal(err)
		}
		rdb = redis.NewClusterClient(opt)
	} else {
		opt, err := redis.ParseURL(c.RedisURL)
		if err != nil {
			t.Fatal(err)
		}
		rdb = redis.NewClient(opt)
	}
	t.Cleanup(func() { _ = rdb.Close() }) // nothing to flush
	return rdb
}

// QueueLen returns how many messages wait in Redis for user agent uaid.
func (c *Cluster) QueueLen(t testing.TB, uaid string) int64 {
	t.Helper()
	n, err := c.Queue(t).Len(context.Background(), mustUAID(t, uaid))
	if err != nil {
		t.Fatal(err)
	}
	return n
}
