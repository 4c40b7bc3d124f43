// Package app wires the router: configuration, Redis, the gRPC server ingest calls,
// and the drain.
package app

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"os"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"

	"github.com/herald-push/herald/pkg/gwpool"
	"github.com/herald-push/herald/pkg/lease"
	"github.com/herald-push/herald/pkg/logging"
	"github.com/herald-push/herald/pkg/queue"
	"github.com/herald-push/herald/pkg/redisconn"
	"github.com/herald-push/herald/pkg/rpccodec"
	"github.com/herald-push/herald/pkg/service"
	"github.com/herald-push/herald/pkg/telemetry"
	heraldv1 "github.com/herald-push/herald/proto/herald/v1"
	"github.com/herald-push/herald/services/router/internal/route"
)

// Config is the router's configuration.
type Config struct {
	GRPCListen     string
	AdminListen    string
	DeliverTimeout time.Duration
	MaxQueueLen    int64
	LeaseTTL       time.Duration
	// MaxConnectionAge bounds the life of an ingest's connection to this router.
	MaxConnectionAge time.Duration

	Redis redisconn.Config
	Drain service.DrainConfig
	Log   logging.Config
}

// RegisterFlags registers every setting.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.GRPCListen, "grpc-listen", "127.0.0.1:8090", "address of the gRPC server for ingest")
	fs.StringVar(&c.AdminListen, "admin-listen", "127.0.0.1:8091", "address of /livez, /readyz")
	fs.DurationVar(&c.DeliverTimeout, "deliver-timeout", 2*time.Second, "bound on one delivery call to a gateway")
	fs.Int64Var(&c.MaxQueueLen, "max-queue-len", 1000, "most messages waiting for one user agent")
	fs.DurationVar(&c.MaxConnectionAge, "max-connection-age", 5*time.Minute, "age after which a client's gRPC connection is closed gracefully, so that load spreads over new routers")
	fs.DurationVar(&c.LeaseTTL, "lease-ttl", 30*time.Second, "lifetime of an ownership lease (must match the gateways')")
	c.Redis.RegisterFlags(fs)
	c.Drain.RegisterFlags(fs)
	c.Log.RegisterFlags(fs)
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.DeliverTimeout <= 0 || c.MaxQueueLen < 1 || c.LeaseTTL < time.Second {
		return errors.New("deliver-timeout, max-queue-len and lease-ttl must be positive")
	}
	return errors.Join(c.Redis.Validate(), c.Log.Validate())
}

// Logging returns the log settings.
func (c *Config) Logging() *logging.Config { return &c.Log }

// Run runs the router until ctx ends, then drains.
func Run(ctx context.Context, cfg *Config, log *slog.Logger) error {
	log.Info("starting", "grpc_listen", cfg.GRPCListen, "admin_listen", cfg.AdminListen, "redis", cfg.Redis.Redacted(),
		"tracing", telemetry.TracingEnabled(os.Getenv))
	tel, err := telemetry.Setup(ctx, "router")
	if err != nil {
		return err
	}
	defer tel.Close(ctx, log)
	rdb, err := cfg.Redis.Open(ctx)
	if err != nil {
		return err
	}
	defer rdb.Close()
	grpcLn, err := service.ListenGRPC(log, cfg.GRPCListen)
	if err != nil {
		return err
	}
	adminLn, err := service.Listen(log, "admin", cfg.AdminListen)
	if err != nil {
		return err
	}
	keys := cfg.Redis.Keys()
	pool := gwpool.New(grpc.WithStatsHandler(tel.GRPCClientHandler(otelgrpc.NewClientHandler(otelgrpc.WithMeterProvider(telemetry.NoMeter)))))
	defer pool.Close()
	router, err := route.NewServer(rdb, queue.New(rdb, keys, cfg.MaxQueueLen), lease.New(rdb, keys, cfg.LeaseTTL), pool, cfg.DeliverTimeout, log)
	if err != nil {
		return err
	}
	grpcSrv := grpc.NewServer(rpccodec.ServerOption(), grpc.StatsHandler(tel.GRPCServerHandler(otelgrpc.NewServerHandler(otelgrpc.WithMeterProvider(telemetry.NoMeter)))),
		// Clients reconnect now and then, so that routers added by a scale-up get
		// their share of ingest's calls (gRPC balances per connection).
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionAge: cfg.MaxConnectionAge, MaxConnectionAgeGrace: 30 * time.Second}))
	router.ObserveStreamedCalls(tel.StreamedCalls(heraldv1.Router_RouteBatch_FullMethodName))
	heraldv1.RegisterRouterServer(grpcSrv, router)
	healthSrv := health.NewServer()
	healthpb.RegisterHealthServer(grpcSrv, healthSrv)
	probe := service.NewProbe()
	adminSrv := service.AdminServer(probe, tel.MetricsHandler(), nil)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return grpcSrv.Serve(grpcLn) })
	g.Go(func() error { return service.Serve(adminSrv, adminLn) })
	probe.SetReady(true)
	log.Info("ready")
	g.Go(func() error {
		<-gctx.Done()
		log.Info("draining")
		probe.SetReady(false)
		healthSrv.Shutdown()
		service.Wait(context.WithoutCancel(ctx), cfg.Drain.Delay)
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.Drain.Timeout)
		defer cancel()
		// In-flight Route calls finish: each either stored its message or failed.
		// RouteStream's clients are asked to half-close their streams, which then
		// end once every batch they carried is answered.
		router.Drain()
		service.GracefulStop(dctx, grpcSrv)
		_ = adminSrv.Shutdown(dctx) // probes only; nothing to lose
		log.Info("drained")
		return nil
	})
	return g.Wait()
}
