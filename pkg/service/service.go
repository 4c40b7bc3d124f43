// Package service holds the lifecycle every Herald service shares: listeners that
// announce their address, the admin endpoint with liveness and readiness, and the
// helpers of an orderly drain.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync/atomic"
	"time"

	"github.com/herald-push/herald/pkg/rawconn"
)

// Listen opens a TCP listener and logs its real address, which tests read to find
// services started on port 0. The connections it accepts read and write with raw
// system calls (package rawconn).
func Listen(log *slog.Logger, name, addr string) (net.Listener, error) {
	return listen(log, name, addr, 0)
}

// grpcUserTimeout is the TCP_USER_TIMEOUT grpc-go sets on the connections it serves
// (its server keepalive's Timeout, 20 s by default); it cannot on a wrapped one.
const grpcUserTimeout = 20 * time.Second

// ListenGRPC is Listen for a gRPC server: its connections also get the TCP user
// timeout grpc-go would have set on them, so that a peer gone without a word is
// dropped 20 s after the data sent to it stopped being acknowledged.
func ListenGRPC(log *slog.Logger, addr string) (net.Listener, error) {
	return listen(log, "grpc", addr, grpcUserTimeout)
}

func listen(log *slog.Logger, name, addr string, userTimeout time.Duration) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s on %s: %w", name, addr, err)
	}
	log.Info("listening", "listener", name, "addr", ln.Addr().String())
	return rawconn.Listener{Listener: ln, TCPUserTimeout: userTimeout}, nil
}

// Probe answers liveness and readiness. A service is live as long as it runs, and
// ready from SetReady(true) until the drain begins.
//
// Readiness says nothing of Redis or Postgres. Every replica shares them, so an
// outage would make every replica unready at once: the load balancer would then
// refuse application servers instead of letting ingest answer 503 with Retry-After,
// and might cut the user agents' connections that gateways keep through an outage.
// Their health is in each service's metrics and logs.
type Probe struct {
	ready atomic.Bool
}

// NewProbe returns a Probe, not ready until SetReady(true).
func NewProbe() *Probe { return &Probe{} }

// SetReady sets readiness.
func (p *Probe) SetReady(ready bool) { p.ready.Store(ready) }

// Ready reports readiness.
func (p *Probe) Ready() bool { return p.ready.Load() }

// Register adds /livez and /readyz to mux.
func (p *Probe) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n")) // a failed write means the prober left
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !p.ready.Load() {
			http.Error(w, "draining or starting", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n")) // a failed write means the prober left
	})
}

// AdminServer returns the server of a service's admin port: /livez and /readyz from
// probe, /metrics from metrics, and the profiler, added to mux (which may hold the
// service's own admin routes; nil for none).
func AdminServer(probe *Probe, metrics http.Handler, mux *http.ServeMux) *http.Server {
	if mux == nil {
		mux = http.NewServeMux()
	}
	probe.Register(mux)
	mux.Handle("GET /metrics", metrics)
	RegisterProfiling(mux)
	return &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
}

// RegisterProfiling adds Go's profiler (/debug/pprof/) to mux: CPU, heap and
// goroutine profiles of a running service, on its admin port only.
func RegisterProfiling(mux *http.ServeMux) {
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
}

// Serve runs srv on ln until Shutdown; a clean shutdown is not an error.
func Serve(srv *http.Server, ln net.Listener) error {
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Wait blocks for d or until ctx is done.
func Wait(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// GracefulStop stops a gRPC server gracefully, or hard when ctx ends first.
func GracefulStop(ctx context.Context, s interface {
	GracefulStop()
	Stop()
}) {
	done := make(chan struct{})
	go func() { s.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.Stop()
		<-done
	}
}

// DrainConfig holds the timings of a drain.
type DrainConfig struct {
	// Delay is how long readiness reports false before intake stops, so that load
	// balancers stop sending new work first.
	Delay time.Duration
	// Timeout bounds the whole drain; what is still open then is cut.
	Timeout time.Duration
}

// RegisterFlags registers -drain-delay and -drain-timeout.
func (c *DrainConfig) RegisterFlags(fs interface {
	DurationVar(p *time.Duration, name string, value time.Duration, usage string)
}) {
	fs.DurationVar(&c.Delay, "drain-delay", 0, "time between readiness going false and intake stopping (5s behind a Kubernetes Service)")
	fs.DurationVar(&c.Timeout, "drain-timeout", 30*time.Second, "deadline of the whole drain")
}
