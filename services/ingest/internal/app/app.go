// Package app wires ingest: configuration, Postgres, Redis (the VAPID key rate
// limit; the router counts the subscription limit), the router client, the HTTP API
// for application servers, and the drain.
package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/herald-push/herald/pkg/logging"
	"github.com/herald-push/herald/pkg/queue"
	"github.com/herald-push/herald/pkg/rawconn"
	"github.com/herald-push/herald/pkg/redisconn"
	"github.com/herald-push/herald/pkg/rpccodec"
	"github.com/herald-push/herald/pkg/service"
	"github.com/herald-push/herald/pkg/store"
	"github.com/herald-push/herald/pkg/telemetry"
	"github.com/herald-push/herald/pkg/token"
	"github.com/herald-push/herald/pkg/vapid"
	heraldv1 "github.com/herald-push/herald/proto/herald/v1"
	"github.com/herald-push/herald/services/ingest/internal/ratelimit"
	"github.com/herald-push/herald/services/ingest/internal/routerbatch"
	"github.com/herald-push/herald/services/ingest/internal/subcache"
	"github.com/herald-push/herald/services/ingest/internal/webpush"
)

// defaultMaxTTL is Mozilla's push service's maximum TTL: 60 days.
const defaultMaxTTL = 60 * 24 * 60 * 60

// defaultErrorsURL documents every errno; error bodies link to it as more_info.
const defaultErrorsURL = "https://github.com/herald-push/herald/blob/main/docs/errors.md"

// Config is ingest's configuration.
type Config struct {
	// MigrateOnly applies the migrations and exits.
	MigrateOnly bool

	Listen      string
	AdminListen string
	PublicURL   string
	RouterAddr  string
	RouteBatch  int
	RouteCalls  int
	// RouteStreams is how many RouteStream streams carry the batches; each new one
	// is balanced over the router's addresses like a call.
	RouteStreams int
	MaxTTL       int64
	MaxBody      int64
	Timeout      time.Duration
	VAPIDCache   int
	// SubCache is the longest a subscription read from Postgres is reused; see
	// subCacheTTL.
	SubCache  time.Duration
	ErrorsURL string

	HTTP      HTTPConfig
	RateLimit ratelimit.Config
	Postgres  store.Config
	Redis     redisconn.Config
	Tokens    token.Config
	Drain     service.DrainConfig
	Log       logging.Config
}

// RegisterFlags registers every setting.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.BoolVar(&c.MigrateOnly, "migrate-only", false, "apply the Postgres migrations and exit (needs only -postgres-url; the chart's migrations Job)")
	fs.StringVar(&c.Listen, "listen", "127.0.0.1:8000", "address of the HTTP API for application servers")
	fs.StringVar(&c.AdminListen, "admin-listen", "127.0.0.1:8001", "address of /livez, /readyz")
	fs.StringVar(&c.PublicURL, "public-url", "", "public base URL of this API, as in push endpoints (default: http(s)://<listen address>)")
	fs.StringVar(&c.RouterAddr, "router-addr", "127.0.0.1:8090", "gRPC address of the router (a DNS name balances over its addresses)")
	fs.IntVar(&c.RouteBatch, "route-batch", 128, "most messages sent to the router in one call")
	// Few calls, fuller batches: each call costs the router a Redis round trip and
	// a call to each gateway, whatever it carries (docs/benchmarks.md).
	fs.IntVar(&c.RouteCalls, "route-calls", 4, "most calls to the router in flight; messages arriving while all are busy share the next call")
	fs.IntVar(&c.RouteStreams, "route-streams", 2, "long-lived gRPC streams to the routers that carry the calls (taken in turn)")
	fs.Int64Var(&c.MaxTTL, "max-ttl", defaultMaxTTL, "largest TTL applied, in seconds; larger ones are clamped")
	fs.Int64Var(&c.MaxBody, "max-body", 4096, "largest encrypted body accepted, in bytes")
	fs.DurationVar(&c.Timeout, "request-timeout", 5*time.Second, "bound on the storage work done for one request, once it is read")
	fs.IntVar(&c.VAPIDCache, "vapid-cache", 10000, "verified VAPID tokens kept until they expire")
	fs.DurationVar(&c.SubCache, "subscription-cache", 30*time.Second, "longest a subscription read from Postgres is reused, at most 39s less request-timeout (0s: none)")
	fs.StringVar(&c.ErrorsURL, "errors-url", defaultErrorsURL, "documentation of the errnos, sent as more_info in error bodies (empty: none)")
	c.HTTP.RegisterFlags(fs)
	c.RateLimit.RegisterFlags(fs)
	c.Postgres.RegisterFlags(fs)
	c.Redis.RegisterFlags(fs)
	c.Tokens.RegisterFlags(fs)
	c.Drain.RegisterFlags(fs)
	c.Log.RegisterFlags(fs)
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.MigrateOnly {
		return c.Postgres.Validate()
	}
	var errs []error
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("public-url %q: want http(s)://host[:port]", c.PublicURL))
		}
	}
	if c.MaxTTL < 0 || c.MaxBody < 1 || c.Timeout <= 0 || c.VAPIDCache < 0 || c.SubCache < 0 || c.RouteBatch < 1 || c.RouteCalls < 1 || c.RouteStreams < 1 {
		errs = append(errs, errors.New("max-ttl, max-body, request-timeout, vapid-cache, subscription-cache, route-batch, route-calls and route-streams must be positive"))
	}
	if c.Timeout >= c.HTTP.WriteTimeout {
		errs = append(errs, errors.New("request-timeout must be shorter than write-timeout, or no answer could be written"))
	}
	return errors.Join(append(errs, c.HTTP.Validate(), c.Postgres.Validate(), c.Redis.Validate(), c.Tokens.Validate(), c.Log.Validate())...)
}

// subCacheSize is the most subscriptions the subscription cache (package subcache)
// holds.
const subCacheSize = 100000

// subCacheTTL is how long a subscription read from Postgres is reused: SubCache,
// or less. A message checked against a cached subscription reaches the router
// within request-timeout, and the router must still see the changes the cache
// missed (queue.ChangeMemory): a longer request-timeout shortens the cache, down to
// none. (A gateway older than the 40 s ChangeMemory keeps changes 10 s: upgrading
// from one, run ingest with -subscription-cache 4s until every gateway is new.)
func (c *Config) subCacheTTL() time.Duration {
	const margin = time.Second
	return max(0, min(c.SubCache, queue.ChangeMemory-c.Timeout-margin))
}

// Logging returns the log settings.
func (c *Config) Logging() *logging.Config { return &c.Log }

// Run runs ingest until ctx ends, then drains.
func Run(ctx context.Context, cfg *Config, log *slog.Logger) error {
	if cfg.MigrateOnly {
		return migrate(ctx, cfg, log)
	}
	log.Info("starting", "listen", cfg.Listen, "admin_listen", cfg.AdminListen, "router", cfg.RouterAddr,
		"postgres", cfg.Postgres.Redacted(), "redis", cfg.Redis.Redacted(), "max_ttl", cfg.MaxTTL, "max_body", cfg.MaxBody,
		"tls", cfg.HTTP.TLS(), "rate_limit_subscription", cfg.RateLimit.Subscription.String(),
		"rate_limit_vapid_key", cfg.RateLimit.VAPIDKey.String(), "subscription_cache_ttl", cfg.subCacheTTL())
	tokens, err := cfg.Tokens.Codec()
	if err != nil {
		return err
	}
	tel, err := telemetry.Setup(ctx, "ingest")
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
	cc, err := grpc.NewClient(cfg.RouterAddr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		rpccodec.DialOption(),
		grpc.WithContextDialer(rawconn.DialTCP),
		grpc.WithStatsHandler(tel.GRPCClientHandler(otelgrpc.NewClientHandler(otelgrpc.WithMeterProvider(telemetry.NoMeter)))),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`))
	if err != nil {
		return fmt.Errorf("router client: %w", err)
	}
	defer cc.Close()
	router := routerbatch.NewStreamed(heraldv1.NewRouterClient(cc), cfg.RouteStreams)
	defer router.Close() // after the batcher's last call (deferred calls run last-first)
	routes := routerbatch.New(router, cfg.RouteBatch, cfg.RouteCalls)

	ln, err := service.Listen(log, "http", cfg.Listen)
	if err != nil {
		return err
	}
	adminLn, err := service.Listen(log, "admin", cfg.AdminListen)
	if err != nil {
		return err
	}
	publicURL := strings.TrimRight(cfg.PublicURL, "/")
	if publicURL == "" {
		scheme := "http://"
		if cfg.HTTP.TLS() {
			scheme = "https://"
		}
		publicURL = scheme + ln.Addr().String()
	}
	api := webpush.NewHandler(webpush.Config{
		PublicURL: publicURL,
		MaxTTL:    cfg.MaxTTL,
		MaxBody:   cfg.MaxBody,
		Timeout:   cfg.Timeout,
		MoreInfo:  cfg.ErrorsURL,
		// Counted by the router, where it stores the message.
		SubscriptionLimit: cfg.RateLimit.Subscription,
	}, tokens, subcache.New(st, cfg.subCacheTTL(), subCacheSize), routes,
		vapid.NewVerifier(cfg.VAPIDCache, vapid.VerifierOptions{Leeway: time.Minute}),
		ratelimit.New(rdb, cfg.Redis.Keys(), cfg.RateLimit), log)
	srv, err := cfg.HTTP.newServer(webpush.Instrument(api, tel.Meter, tel.Tracing()))
	if err != nil {
		return err
	}
	probe := service.NewProbe()
	adminSrv := service.AdminServer(probe, tel.MetricsHandler(), nil)

	// The batcher outlives the HTTP server: it stops once no request can call it.
	routesCtx, stopRoutes := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRoutes()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		routes.Run(routesCtx)
		return nil
	})
	g.Go(func() error { return cfg.HTTP.serve(srv, ln) })
	g.Go(func() error { return service.Serve(adminSrv, adminLn) })
	probe.SetReady(true)
	log.Info("ready", "public_url", publicURL)
	g.Go(func() error {
		<-gctx.Done()
		log.Info("draining")
		probe.SetReady(false)
		service.Wait(context.WithoutCancel(ctx), cfg.Drain.Delay)
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.Drain.Timeout)
		defer cancel()
		// In-flight requests finish: each message is stored or answered as failed.
		err := srv.Shutdown(dctx)
		stopRoutes()                // after Shutdown: no handler is left to route a message
		_ = adminSrv.Shutdown(dctx) // probes only; nothing to lose
		log.Info("drained")
		return err
	})
	return g.Wait()
}

// migrate applies the Postgres migrations; concurrent starts are serialised by an
// advisory lock, so it is safe beside running services.
func migrate(ctx context.Context, cfg *Config, log *slog.Logger) error {
	st, err := store.OpenMigrated(ctx, cfg.Postgres.URL)
	if err != nil {
		return err
	}
	st.Close()
	log.Info("migrated", "postgres", cfg.Postgres.Redacted())
	return nil
}
