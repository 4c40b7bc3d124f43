// Package ratelimit holds ingest's rate limits, per subscription and per VAPID key,
// and counts the messages signed with each VAPID key in Redis, so that a limit
// holds however many ingest replicas share the traffic.
//
// The per-subscription limit is ingest's policy, but the router counts it (package
// queue, Limit), in the same Redis script that stores the message, whose keys share
// the subscription's hash slot: a message costs ingest no Redis call of its own.
// A VAPID key's count spans many user agents, so no such script holds it.
package ratelimit

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/herald-push/herald/pkg/rkey"
)

var (
	//go:embed gcra.lua
	gcraSource string
	//go:embed refund.lua
	refundSource string

	gcra   = redis.NewScript(gcraSource)
	refund = redis.NewScript(refundSource)
)

// Limit allows Count events per Period, up to Count of them at once: the generic
// cell rate algorithm lets a quiet sender burst, then spaces events Period/Count
// apart. A zero Count means no limit.
type Limit struct {
	Count  int64
	Period time.Duration
}

// ParseLimit reads a limit written "<count>/<period>", as in "600/1m", "10/s" or
// "100000/1h"; "0" (or "") is no limit.
func ParseLimit(s string) (Limit, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "0" {
		return Limit{}, nil
	}
	count, period, ok := strings.Cut(s, "/")
	if !ok {
		return Limit{}, fmt.Errorf("rate limit %q: want <count>/<period>, e.g. 600/1m, or 0 for none", s)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(count), 10, 64)
	if err != nil || n < 0 {
		return Limit{}, fmt.Errorf("rate limit %q: count must be a non-negative integer", s)
	}
	period = strings.TrimSpace(period)
	if period != "" && (period[0] < '0' || period[0] > '9') {
		period = "1" + period // "10/s" is "10/1s"
	}
	d, err := time.ParseDuration(period)
	if err != nil || d <= 0 {
		return Limit{}, fmt.Errorf("rate limit %q: period must be a positive duration like 1s, 1m or 1h", s)
	}
	if n == 0 {
		return Limit{}, nil
	}
	return Limit{Count: n, Period: d}, nil
}

// Enabled reports whether l limits anything.
func (l Limit) Enabled() bool { return l.Count > 0 }

// String writes l as ParseLimit reads it.
func (l Limit) String() string {
	if !l.Enabled() {
		return "0"
	}
	// "1m" rather than time.Duration's "1m0s".
	p := l.Period.String()
	if strings.HasSuffix(p, "m0s") {
		p = strings.TrimSuffix(p, "0s")
	}
	if strings.HasSuffix(p, "h0m") {
		p = strings.TrimSuffix(p, "0m")
	}
	return strconv.FormatInt(l.Count, 10) + "/" + p
}

// Set parses s into l, so that a Limit is a flag.Value.
func (l *Limit) Set(s string) error {
	v, err := ParseLimit(s)
	if err != nil {
		return err
	}
	*l = v
	return nil
}

// Config holds the limits.
type Config struct {
	// Subscription limits the messages accepted for one push endpoint. Ingest
	// passes it with each message, and the router counts it.
	Subscription Limit
	// VAPIDKey limits the messages accepted under one application server key,
	// over all its subscriptions. Messages without VAPID are not counted.
	VAPIDKey Limit
}

// RegisterFlags registers -rate-limit-subscription and -rate-limit-vapid-key.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Subscription = Limit{Count: 600, Period: time.Minute}
	fs.Var(&c.Subscription, "rate-limit-subscription", "messages accepted per push endpoint, as <count>/<period> (bursts of up to count); 0 for no limit")
	fs.Var(&c.VAPIDKey, "rate-limit-vapid-key", "messages accepted per VAPID key over all its subscriptions, as <count>/<period>; 0 for no limit")
}

// Limiter counts messages against the VAPID key limit (the subscription limit is
// the router's to count). It is safe for concurrent use.
type Limiter struct {
	rdb  redis.Scripter
	keys rkey.Keys
	cfg  Config
}

// New returns a Limiter keeping its counts in rdb under keys.
func New(rdb redis.Scripter, keys rkey.Keys, cfg Config) *Limiter {
	return &Limiter{rdb: rdb, keys: keys, cfg: cfg}
}

// VAPIDKey counts one message signed with an application server's public key
// (the 65-byte point). It returns 0 if the message is allowed, else how long until
// one would be (and then counts nothing).
func (l *Limiter) VAPIDKey(ctx context.Context, publicKey []byte) (time.Duration, error) {
	if !l.cfg.VAPIDKey.Enabled() {
		return 0, nil
	}
	return l.allow(ctx, l.keys.RateVAPIDKey(Fingerprint(publicKey)), l.cfg.VAPIDKey)
}

// RefundVAPIDKey gives back a message VAPIDKey allowed, when a later check refused
// it: a refused message counts against no limit.
func (l *Limiter) RefundVAPIDKey(ctx context.Context, publicKey []byte) error {
	if !l.cfg.VAPIDKey.Enabled() {
		return nil
	}
	return l.refund(ctx, l.keys.RateVAPIDKey(Fingerprint(publicKey)), l.cfg.VAPIDKey)
}

// Fingerprint names a public key in keys and logs: the first 16 bytes of its
// SHA-256, in hex.
func Fingerprint(publicKey []byte) string {
	sum := sha256.Sum256(publicKey)
	return hex.EncodeToString(sum[:16])
}

// interval is the emission interval of lim in µs: the time one event occupies.
func interval(lim Limit) int64 { return max(lim.Period.Microseconds()/lim.Count, 1) }

func (l *Limiter) allow(ctx context.Context, key string, lim Limit) (time.Duration, error) {
	iv := interval(lim)
	wait, err := gcra.Run(ctx, l.rdb, []string{key}, iv, iv*lim.Count).Int64()
	if err != nil {
		return 0, fmt.Errorf("rate limit: %w", err)
	}
	if wait < 0 {
		return 0, errors.New("rate limit: negative wait")
	}
	return time.Duration(wait) * time.Microsecond, nil
}

func (l *Limiter) refund(ctx context.Context, key string, lim Limit) error {
	if err := refund.Run(ctx, l.rdb, []string{key}, interval(lim)).Err(); err != nil {
		return fmt.Errorf("rate limit refund: %w", err)
	}
	return nil
}
