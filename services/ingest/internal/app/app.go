// Package app wires ingest: configuration, Postgres, the router client, the HTTP API
// for application servers, and the drain.
package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/herald-push/herald/pkg/logging"
	"github.com/herald-push/herald/pkg/service"
	"github.com/herald-push/herald/pkg/store"
	"github.com/herald-push/herald/pkg/token"
	"github.com/herald-push/herald/pkg/vapid"
	heraldv1 "github.com/herald-push/herald/proto/herald/v1"
	"github.com/herald-push/herald/services/ingest/internal/webpush"
)

// defaultMaxTTL is Mozilla's push service's maximum TTL: 60 days.
const defaultMaxTTL = 60 * 24 * 60 * 60

// Config is ingest's configuration.
type Config struct {
	Listen      string
	AdminListen string
	PublicURL   string
	RouterAddr  string
	MaxTTL      int64
	MaxBody     int64
	Timeout     time.Duration
	VAPIDCache  int

	Postgres store.Config
	Tokens   token.Config
	Drain    service.DrainConfig
	Log      logging.Config
}

// RegisterFlags registers every setting.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Listen, "listen", "127.0.0.1:8000", "address of the HTTP API for application servers")
	fs.StringVar(&c.AdminListen, "admin-listen", "127.0.0.1:8001", "address of /livez, /readyz")
	fs.StringVar(&c.PublicURL, "public-url", "", "public base URL of this API, as in push endpoints (default: http://<listen address>)")
	fs.StringVar(&c.RouterAddr, "router-addr", "127.0.0.1:8090", "gRPC address of the router (a DNS name balances over its addresses)")
	fs.Int64Var(&c.MaxTTL, "max-ttl", defaultMaxTTL, "largest TTL applied, in seconds; larger ones are clamped")
	fs.Int64Var(&c.MaxBody, "max-body", 4096, "largest encrypted body accepted, in bytes")
	fs.DurationVar(&c.Timeout, "request-timeout", 5*time.Second, "bound on the work done for one request")
	fs.IntVar(&c.VAPIDCache, "vapid-cache", 10000, "verified VAPID tokens kept until they expire")
	c.Postgres.RegisterFlags(fs)
	c.Tokens.RegisterFlags(fs)
	c.Drain.RegisterFlags(fs)
	c.Log.RegisterFlags(fs)
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	var errs []error
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("public-url %q: want http(s)://host[:port]", c.PublicURL))
		}
	}
	if c.MaxTTL < 0 || c.MaxBody < 1 || c.Timeout <= 0 || c.VAPIDCache < 0 {
		errs = append(errs, errors.New("max-ttl, max-body, request-timeout and vapid-cache must be positive"))
	}
	return errors.Join(append(errs, c.Postgres.Validate(), c.Tokens.Validate(), c.Log.Validate())...)
}

// Run runs ingest until ctx ends, then drains.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	log.Info("starting", "listen", cfg.Listen, "admin_listen", cfg.AdminListen, "router", cfg.RouterAddr,
		"postgres", cfg.Postgres.Redacted(), "max_ttl", cfg.MaxTTL, "max_body", cfg.MaxBody)
	tokens, err := cfg.Tokens.Codec()
	if err != nil {
		return err
	}
	st, err := store.Open(ctx, cfg.Postgres.URL)
	if err != nil {
		return err
	}
	defer st.Close()
	if _, err := st.Migrate(ctx); err != nil {
		return err
	}
	cc, err := grpc.NewClient(cfg.RouterAddr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`))
	if err != nil {
		return fmt.Errorf("router client: %w", err)
	}
	defer cc.Close()

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
		publicURL = "http://" + ln.Addr().String()
	}
	api := webpush.NewHandler(webpush.Config{
		PublicURL: publicURL,
		MaxTTL:    cfg.MaxTTL,
		MaxBody:   cfg.MaxBody,
		Timeout:   cfg.Timeout,
	}, tokens, st, heraldv1.NewRouterClient(cc), vapid.NewVerifier(cfg.VAPIDCache, vapid.VerifierOptions{Leeway: time.Minute}), log)
	srv := &http.Server{Handler: api, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, MaxHeaderBytes: 16 << 10}
	probe := service.NewProbe(st.Ping)
	adminMux := http.NewServeMux()
	probe.Register(adminMux)
	adminSrv := &http.Server{Handler: adminMux, ReadHeaderTimeout: 10 * time.Second}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return service.Serve(srv, ln) })
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
		_ = adminSrv.Shutdown(dctx) // probes only; nothing to lose
		log.Info("drained")
		return err
	})
	return g.Wait()
}
