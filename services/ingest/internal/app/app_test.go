package app

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/herald-push/herald/pkg/flagenv"
	"github.com/herald-push/herald/pkg/queue"
	"github.com/herald-push/herald/pkg/token"
)

// parse returns the configuration for args and env, as main builds it.
func parse(t *testing.T, args []string, env map[string]string) Config {
	t.Helper()
	var cfg Config
	fs := flag.NewFlagSet("ingest", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	if err := flagenv.Parse(fs, args, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestConfigDefaultsValidate(t *testing.T) {
	cfg := parse(t, nil, map[string]string{"HERALD_TOKEN_KEYS": token.GenerateKey()})
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.TLS() || cfg.RateLimit.Subscription.String() != "600/1m" || cfg.RateLimit.VAPIDKey.Enabled() {
		t.Fatalf("defaults: %+v", cfg)
	}
}

func TestConfigValidate(t *testing.T) {
	key := token.GenerateKey()
	for _, tc := range []struct {
		name string
		args []string
		want string // in the error; "" for none
	}{
		{name: "rate limits from flags", args: []string{"-rate-limit-subscription", "10/s", "-rate-limit-vapid-key", "1000/1h"}},
		{name: "TLS pair", args: []string{"-tls-cert", "c.pem", "-tls-key", "k.pem"}},
		{name: "TLS cert alone", args: []string{"-tls-cert", "c.pem"}, want: "tls-cert and tls-key"},
		{name: "zero read timeout", args: []string{"-read-timeout", "0s"}, want: "read-timeout"},
		{name: "request timeout over write timeout", args: []string{"-request-timeout", "1m", "-write-timeout", "30s"}, want: "request-timeout must be shorter"},
		{name: "small header limit", args: []string{"-max-header-bytes", "100"}, want: "max-header-bytes"},
		{name: "bad public URL", args: []string{"-public-url", "push.example.net"}, want: "public-url"},
		{name: "no batch", args: []string{"-route-batch", "0"}, want: "route-batch"},
		{name: "negative subscription cache", args: []string{"-subscription-cache", "-1s"}, want: "subscription-cache"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := parse(t, tc.args, map[string]string{"HERALD_TOKEN_KEYS": key})
			err := cfg.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one about %q", err, tc.want)
			}
		})
	}
}

func TestBadRateLimitFlag(t *testing.T) {
	var cfg Config
	fs := flag.NewFlagSet("ingest", flag.ContinueOnError)
	fs.SetOutput(new(strings.Builder))
	cfg.RegisterFlags(fs)
	if err := flagenv.Parse(fs, nil, func(k string) string {
		if k == "HERALD_RATE_LIMIT_SUBSCRIPTION" {
			return "lots"
		}
		return ""
	}); err == nil {
		t.Fatal("HERALD_RATE_LIMIT_SUBSCRIPTION=lots accepted")
	}
}

func TestNewServerTLSFiles(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.pem")
	if err := os.WriteFile(bad, []byte("not PEM"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := HTTPConfig{TLSCert: bad, TLSKey: bad}
	if _, err := c.newServer(nil); err == nil || !strings.Contains(err.Error(), "TLS certificate") {
		t.Fatalf("err = %v", err)
	}
	c = HTTPConfig{}
	srv, err := c.newServer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !srv.Protocols.HTTP1() || !srv.Protocols.UnencryptedHTTP2() || srv.Protocols.HTTP2() {
		t.Fatalf("cleartext protocols %v", srv.Protocols)
	}
}

func TestSubscriptionCacheShorterThanChangeMemory(t *testing.T) {
	for _, tc := range []struct {
		timeout, cache, want time.Duration
	}{
		{5 * time.Second, 30 * time.Second, 30 * time.Second},
		{time.Second, 30 * time.Second, 30 * time.Second},
		{10 * time.Second, 30 * time.Second, 29 * time.Second},
		{37 * time.Second, 30 * time.Second, 2 * time.Second},
		{39 * time.Second, 30 * time.Second, 0},
		{5 * time.Second, 4 * time.Second, 4 * time.Second},
		{5 * time.Second, time.Hour, 34 * time.Second},
		{5 * time.Second, 0, 0},
	} {
		cfg := Config{Timeout: tc.timeout, SubCache: tc.cache}
		got := cfg.subCacheTTL()
		if got != tc.want || (got > 0 && got+tc.timeout >= queue.ChangeMemory) {
			t.Errorf("request-timeout %v, subscription-cache %v: cache TTL %v, want %v", tc.timeout, tc.cache, got, tc.want)
		}
	}
}
