// Package app wires the gateway: configuration, storage, the WebSocket server for
// user agents, the gRPC server for routers, lease renewal, and the drain.
package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/herald-push/herald/pkg/gwpool"
	"github.com/herald-push/herald/pkg/ids"
	"github.com/herald-push/herald/pkg/lease"
	"github.com/herald-push/herald/pkg/logging"
	"github.com/herald-push/herald/pkg/mozproto"
	"github.com/herald-push/herald/pkg/queue"
	"github.com/herald-push/herald/pkg/redisconn"
	"github.com/herald-push/herald/pkg/rpccodec"
	"github.com/herald-push/herald/pkg/service"
	"github.com/herald-push/herald/pkg/store"
	"github.com/herald-push/herald/pkg/telemetry"
	"github.com/herald-push/herald/pkg/token"
	heraldv1 "github.com/herald-push/herald/proto/herald/v1"
	"github.com/herald-push/herald/services/gateway/internal/connects"
	"github.com/herald-push/herald/services/gateway/internal/deliver"
	"github.com/herald-push/herald/services/gateway/internal/httpconn"
	"github.com/herald-push/herald/services/gateway/internal/sdk"
	"github.com/herald-push/herald/services/gateway/internal/session"
	"github.com/herald-push/herald/services/gateway/internal/uaconn"
	"github.com/herald-push/herald/services/gateway/internal/wsconn"
)

// Config is the gateway's configuration.
type Config struct {
	Listen        string
	GRPCListen    string
	GRPCAdvertise string
	AdminListen   string
	ID            string
	EndpointURL   string
	LeaseTTL      time.Duration
	MaxChannels   int
	InboxSize     int
	MaxQueueLen   int64
	DrainWindow   time.Duration
	// AckLinger is how long an acknowledged message's delete waits for others to
	// share its Redis pipeline (queue.Deleter).
	AckLinger time.Duration
	// GCPercent is the collector's target: a gateway's heap is mostly small
	// per-connection objects, where the default's headroom is memory per connection.
	GCPercent int
	// MinPingInterval and Broadcasts are protocol settings of sessions.
	MinPingInterval time.Duration
	Broadcasts      string
	// Demo serves the demo page at /demo/.
	Demo bool

	Conn     uaconn.Config
	WS       wsconn.Config
	HTTP     httpconn.Config
	Postgres store.Config
	Redis    redisconn.Config
	Tokens   token.Config
	Drain    service.DrainConfig
	Log      logging.Config
}

// RegisterFlags registers every setting.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Listen, "listen", "127.0.0.1:8080", "address of the user agents' endpoint: WebSocket, SSE and long-polling, and the JS SDK at /sdk/herald.js")
	fs.StringVar(&c.GRPCListen, "grpc-listen", "127.0.0.1:8082", "address of the gRPC server for routers")
	fs.StringVar(&c.GRPCAdvertise, "grpc-advertise", "", "gRPC address routers reach this gateway at (default: the listener's address)")
	fs.StringVar(&c.AdminListen, "admin-listen", "127.0.0.1:8081", "address of /livez, /readyz")
	fs.StringVar(&c.ID, "id", "", "gateway id in ownership records (default: hostname and a random suffix)")
	fs.StringVar(&c.EndpointURL, "endpoint-url", "http://127.0.0.1:8000", "public base URL of ingest, used in push endpoints")
	fs.DurationVar(&c.LeaseTTL, "lease-ttl", 30*time.Second, "lifetime of an ownership lease; renewed every third of it")
	fs.IntVar(&c.MaxChannels, "max-channels", 200, "most subscriptions one user agent may hold")
	fs.IntVar(&c.InboxSize, "inbox-size", 64, "live messages waiting to be written per connection before falling back to the queue")
	fs.Int64Var(&c.MaxQueueLen, "max-queue-len", 1000, "most messages waiting for one user agent")
	fs.IntVar(&c.GCPercent, "gc-percent", 50, "Go garbage collector target (GOGC): lower holds idle connections in less memory for a little more CPU")
	fs.DurationVar(&c.DrainWindow, "drain-window", 10*time.Second, "time over which a draining gateway spreads its user agents' reconnections")
	fs.Int64Var(&c.WS.ReadLimit, "ws-read-limit", 64<<10, "largest frame a user agent may send, in bytes")
	fs.DurationVar(&c.Conn.HelloTimeout, "ws-hello-timeout", 10*time.Second, "time a new connection has to say hello")
	fs.DurationVar(&c.WS.PingInterval, "ws-ping-interval", 60*time.Second, "interval of WebSocket pings to user agents")
	fs.DurationVar(&c.WS.WriteTimeout, "ws-write-timeout", 10*time.Second, "longest a write to a user agent may take")
	fs.DurationVar(&c.Conn.OpTimeout, "op-timeout", 5*time.Second, "bound on the storage work of one frame")
	fs.IntVar(&c.WS.OutboxSize, "ws-outbox-size", 64, "frames queued for writing per connection; a user agent whose queue stays full for ws-write-timeout is closed as a slow consumer")
	fs.DurationVar(&c.WS.CloseLinger, "ws-close-linger", time.Second, "how long a close frame waits for the user agent's answer before the TCP connection is dropped")
	fs.DurationVar(&c.Conn.BackoffAfter, "ws-backoff-after", time.Minute, "quiet time after which a user agent with nothing to receive is closed with 4774 (do not reconnect), on every transport; 0 keeps it")
	fs.DurationVar(&c.HTTP.IdleTimeout, "http-idle-timeout", 30*time.Second, "SSE and long-poll: how long a connection may go without a stream or poll reading it before it is closed with 4002")
	fs.DurationVar(&c.HTTP.PollTimeout, "http-poll-timeout", 25*time.Second, "longest a long-poll is held when there is nothing to send")
	fs.DurationVar(&c.HTTP.Keepalive, "http-keepalive", 15*time.Second, "interval of the keepalive comments on an idle SSE stream")
	fs.IntVar(&c.HTTP.Backlog, "http-backlog", 64, "SSE and long-poll: notifications sent and not yet acknowledged per connection; a user agent whose backlog stays full for http-write-timeout is closed as a slow consumer")
	fs.DurationVar(&c.HTTP.WriteTimeout, "http-write-timeout", 10*time.Second, "longest a write to an SSE stream may take, and a full backlog may stay full")
	fs.BoolVar(&c.Demo, "demo", false, "serve the demo page, which subscribes with the JS SDK and shows arriving messages, at /demo/")
	fs.DurationVar(&c.AckLinger, "ack-linger", 2*time.Millisecond, "longest an acknowledged message's delete waits for others to share its Redis pipeline (0: none); a user agent's next frame waits behind its ack")
	fs.DurationVar(&c.MinPingInterval, "min-ping-interval", 30*time.Second, "least time between two protocol pings of a user agent; a ping sooner is told so, a second one closes")
	fs.StringVar(&c.Broadcasts, "broadcasts", "", "broadcasts Herald defines, as id=version pairs separated by commas (none by default)")
	c.Postgres.RegisterFlags(fs)
	c.Redis.RegisterFlags(fs)
	c.Tokens.RegisterFlags(fs)
	c.Drain.RegisterFlags(fs)
	c.Log.RegisterFlags(fs)
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.LeaseTTL < time.Second {
		return errors.New("lease-ttl must be at least 1s")
	}
	if c.MaxChannels < 1 || c.InboxSize < 1 || c.MaxQueueLen < 1 {
		return errors.New("max-channels, inbox-size and max-queue-len must be positive")
	}
	if c.MinPingInterval < 0 || c.AckLinger < 0 {
		return errors.New("min-ping-interval and ack-linger must not be negative")
	}
	if _, err := parseBroadcasts(c.Broadcasts); err != nil {
		return err
	}
	return errors.Join(c.Conn.Validate(), c.WS.Validate(), c.HTTP.Validate(), c.Postgres.Validate(), c.Redis.Validate(), c.Tokens.Validate(), c.Log.Validate())
}

// Logging returns the log settings.
func (c *Config) Logging() *logging.Config { return &c.Log }

// Run runs the gateway until ctx ends, then drains.
func Run(ctx context.Context, cfg *Config, log *slog.Logger) error {
	if cfg.ID == "" {
		cfg.ID = defaultID()
	}
	if cfg.GCPercent > 0 {
		debug.SetGCPercent(cfg.GCPercent)
	}
	log.Info("starting", "id", cfg.ID, "listen", cfg.Listen, "grpc_listen", cfg.GRPCListen, "admin_listen", cfg.AdminListen,
		"endpoint_url", cfg.EndpointURL, "postgres", cfg.Postgres.Redacted(), "redis", cfg.Redis.Redacted(),
		"lease_ttl", cfg.LeaseTTL, "drain_window", cfg.DrainWindow, "min_ping_interval", cfg.MinPingInterval,
		"broadcasts", cfg.Broadcasts, "ws_backoff_after", cfg.Conn.BackoffAfter, "ws_outbox_size", cfg.WS.OutboxSize,
		"http_idle_timeout", cfg.HTTP.IdleTimeout, "http_poll_timeout", cfg.HTTP.PollTimeout, "http_backlog", cfg.HTTP.Backlog, "demo", cfg.Demo)
	broadcasts, err := parseBroadcasts(cfg.Broadcasts)
	if err != nil {
		return err
	}
	tokens, err := cfg.Tokens.Codec()
	if err != nil {
		return err
	}
	tel, err := telemetry.Setup(ctx, "gateway")
	if err != nil {
		return err
	}
	defer tel.Close(ctx, log)
	st, err := store.OpenMigrated(ctx, cfg.Postgres.URL)
	if err != nil {
		return err
	}
	defer st.Close()
	rdb, err := cfg.Redis.Open(ctx)
	if err != nil {
		return err
	}
	defer rdb.Close()

	wsLn, err := service.Listen(log, "websocket", cfg.Listen)
	if err != nil {
		return err
	}
	grpcLn, err := service.ListenGRPC(log, cfg.GRPCListen)
	if err != nil {
		return err
	}
	adminLn, err := service.Listen(log, "admin", cfg.AdminListen)
	if err != nil {
		return err
	}
	advertise := cfg.GRPCAdvertise
	if advertise == "" {
		advertise = grpcLn.Addr().String()
	}

	keys := cfg.Redis.Keys()
	leases := lease.New(rdb, keys, cfg.LeaseTTL)
	gateways := lease.NewRegistry(rdb, keys)
	pool := gwpool.New(grpc.WithStatsHandler(tel.GRPCClientHandler(otelgrpc.NewClientHandler(otelgrpc.WithMeterProvider(telemetry.NoMeter)))))
	defer pool.Close()
	q := queue.New(rdb, keys, cfg.MaxQueueLen)
	deletes := queue.NewDeleter(q, maxDeleteBatch, cfg.AckLinger)
	hub, err := session.NewHub(session.Config{
		EndpointURL: cfg.EndpointURL,
		GatewayID:   cfg.ID,
		GatewayAddr: advertise,
		MaxChannels: cfg.MaxChannels,
		InboxSize:   cfg.InboxSize,
		DrainPage:   100,

		MinPingInterval: cfg.MinPingInterval,
		Broadcasts:      broadcasts,
	}, hubStore{Store: st, connects: connects.New(st, connectCalls, maxConnectBatch)}, ackQueue{Queue: q, deletes: deletes}, leases, deliver.Evictor{Pool: pool}, tokens, log)
	if err != nil {
		return err
	}
	hub.RecordChanges(q) // for ingest's subscription cache

	conns, err := uaconn.NewServer(cfg.Conn, hub, log)
	if err != nil {
		return err
	}
	// One listener for user agents: the WebSocket on the root path (a browser's
	// push server URL is the origin), the HTTP transports under /ua, the SDK.
	uaMux := http.NewServeMux()
	uaMux.Handle("/", wsconn.NewServer(cfg.WS, conns, log))
	httpCfg := cfg.HTTP
	httpCfg.ReadLimit = cfg.WS.ReadLimit // one limit for a frame, however it comes
	httpconn.NewServer(httpCfg, conns, log).Register(uaMux)
	sdk.Register(uaMux, cfg.Demo)
	wsSrv := &http.Server{Handler: uaMux, ReadHeaderTimeout: 10 * time.Second}
	// Stream workers: each call runs on a goroutine whose stack already grew, not on
	// a fresh one that grows it again (DeliverBatch never blocks).
	grpcSrv := grpc.NewServer(rpccodec.ServerOption(), grpc.StatsHandler(tel.GRPCServerHandler(otelgrpc.NewServerHandler(otelgrpc.WithMeterProvider(telemetry.NoMeter)))),
		grpc.NumStreamWorkers(uint32(4*runtime.GOMAXPROCS(0))))
	deliverSrv := deliver.NewServer(hub)
	deliverSrv.ObserveStreamedCalls(tel.StreamedCalls(heraldv1.Gateway_DeliverBatch_FullMethodName))
	heraldv1.RegisterGatewayServer(grpcSrv, deliverSrv)
	healthSrv := health.NewServer()
	healthpb.RegisterHealthServer(grpcSrv, healthSrv)
	probe := service.NewProbe()
	// GET /drain starts the drain SIGTERM starts, and answers once the user agents
	// are gone: a Kubernetes preStop hook calls it, so that the pod is drained before
	// the kubelet's SIGTERM, which then only ends the process.
	runCtx, startDrain := context.WithCancel(ctx)
	defer startDrain()
	drained := make(chan struct{})
	adminMux := http.NewServeMux()
	adminMux.HandleFunc("GET /drain", func(w http.ResponseWriter, r *http.Request) {
		startDrain()
		select {
		case <-drained:
			_, _ = w.Write([]byte("drained\n")) // the caller may have given up waiting
		case <-r.Context().Done():
		}
	})
	adminSrv := service.AdminServer(probe, tel.MetricsHandler(), adminMux)

	if err := gateways.Announce(ctx, cfg.ID, advertise, cfg.LeaseTTL); err != nil {
		return err
	}
	// The deletes outlive runCtx: acks keep coming while the drain closes user
	// agents. They stop once the drain is over.
	deletesCtx, stopDeletes := context.WithCancel(context.WithoutCancel(ctx))
	defer stopDeletes()
	g, gctx := errgroup.WithContext(runCtx)
	g.Go(func() error { deletes.Run(deletesCtx); return nil })
	g.Go(func() error { return service.Serve(wsSrv, wsLn) })
	g.Go(func() error { return grpcSrv.Serve(grpcLn) })
	g.Go(func() error { return service.Serve(adminSrv, adminLn) })
	g.Go(func() error { return renewLeases(gctx, hub, leases, cfg.ID, advertise, log) })
	g.Go(func() error { return heartbeat(gctx, gateways, cfg.ID, advertise, cfg.LeaseTTL, log) })
	probe.SetReady(true)
	log.Info("ready")

	g.Go(func() error {
		<-gctx.Done()
		log.Info("draining", "connections", conns.Len())
		// 1. Not ready, and give load balancers time to notice.
		probe.SetReady(false)
		healthSrv.Shutdown()
		service.Wait(context.WithoutCancel(ctx), cfg.Drain.Delay)
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.Drain.Timeout)
		defer cancel()
		// 2. Close user agents with "going away", spread over the window; each
		// session hands back its lease as it ends. Routers meanwhile still reach
		// this gateway for the connections that remain.
		derr := conns.Drain(dctx, cfg.DrainWindow)
		stopDeletes() // connections left past the deadline delete on their own
		close(drained)
		// 3. Stop intake and leave the registry.
		_ = wsSrv.Shutdown(dctx) // the connections are gone; this closes listeners and idle requests
		deliverSrv.Drain()       // routers' DeliverStreams end once answered
		service.GracefulStop(dctx, grpcSrv)
		_ = adminSrv.Shutdown(dctx) // probes only; nothing to lose
		if err := gateways.Leave(dctx, cfg.ID); err != nil {
			log.Warn("leave gateway registry", "err", err)
		}
		log.Info("drained", "err", derr)
		return derr
	})
	if err := g.Wait(); err != nil {
		return err
	}
	return nil
}

// maxDeleteBatch bounds the acknowledged messages' deletes in one Redis pipeline.
const maxDeleteBatch = 256

// connectCalls bounds the statements recording hellos in flight at once (one
// Postgres connection each, of a pool of at least four: pgx's default), and
// maxConnectBatch the hellos in one statement.
const (
	connectCalls    = 3
	maxConnectBatch = 100
)

// hubStore is the store as sessions use it: the hellos of returning user agents
// share statements (package connects).
type hubStore struct {
	*store.Store
	connects *connects.Batcher
}

// Connect records a hello in the next statement, and returns when it ran.
func (s hubStore) Connect(ctx context.Context, u ids.UAID, now time.Time) ([]store.Subscription, error) {
	return s.connects.Connect(ctx, u, now)
}

// ackQueue is the queue as sessions use it: their deletes, mostly acks, go through
// the gateway's Deleter, in one pipeline with those of every other connection.
type ackQueue struct {
	*queue.Queue
	deletes *queue.Deleter
}

// Delete deletes in the next pipeline, and returns when it ran.
func (q ackQueue) Delete(ctx context.Context, u ids.UAID, entryIDs ...string) (int64, error) {
	return q.deletes.Delete(ctx, u, entryIDs...)
}

// renewLeases renews the leases of every connected user agent every third of the
// lease's lifetime, and closes connections whose lease was lost. A lease that
// expired while Redis was unreachable is held again, and its connection reads its
// queue for what was stored meanwhile.
func renewLeases(ctx context.Context, hub *session.Hub, leases *lease.Leases, id, addr string, log *slog.Logger) error {
	t := time.NewTicker(leases.TTL() / 3)
	defer t.Stop()
	const batch = 500
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		var held []lease.Held
		bySession := map[lease.Held]*session.Session{}
		hub.Each(func(s *session.Session) {
			h := lease.Held{UAID: s.UAID(), Epoch: s.Epoch()}
			held = append(held, h)
			bySession[h] = s
		})
		for len(held) > 0 {
			n := min(batch, len(held))
			rctx, cancel := context.WithTimeout(ctx, leases.TTL()/3)
			lost, reheld, err := leases.Renew(rctx, id, addr, held[:n])
			cancel()
			if err != nil {
				// Redis is unreachable: keep the sockets and try again next tick.
				log.Warn("renew leases", "err", err)
				break
			}
			for _, h := range lost {
				bySession[h].Kick(mozproto.CloseTakenOver)
			}
			if len(reheld) > 0 {
				log.Info("leases held again after they expired", "count", len(reheld))
			}
			for _, h := range reheld {
				bySession[h].AskResync()
			}
			held = held[n:]
		}
	}
}

// heartbeat keeps this gateway in the registry of live gateways.
func heartbeat(ctx context.Context, gateways *lease.Registry, id, addr string, ttl time.Duration, log *slog.Logger) error {
	t := time.NewTicker(ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := gateways.Announce(ctx, id, addr, ttl); err != nil && ctx.Err() == nil {
				log.Warn("gateway heartbeat", "err", err)
			}
		}
	}
}

func defaultID() string {
	host, err := os.Hostname()
	if err != nil {
		host = "gateway"
	}
	var b [4]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return fmt.Sprintf("%s-%s", host, hex.EncodeToString(b[:]))
}

// parseBroadcasts reads "id=version,id=version".
func parseBroadcasts(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		id, version, ok := strings.Cut(kv, "=")
		if !ok || id == "" || version == "" {
			return nil, fmt.Errorf("broadcasts: %q is not id=version", kv)
		}
		out[id] = version
	}
	return out, nil
}
