// Package lease records which gateway holds each user agent's connection.
//
// A gateway claims a user agent when it says hello; the claim returns a new epoch,
// larger than any before it. Routers look the owner up to deliver, and carry the
// epoch so a gateway can refuse a delivery meant for a connection that was taken
// over. The owner record expires unless its gateway renews it, so a crashed gateway's
// user agents are soon ownerless and their messages wait in their queues; a live
// gateway that could not renew (Redis unreachable) holds its records again once it can.
package lease

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/herald-push/herald/pkg/ids"
	"github.com/herald-push/herald/pkg/rkey"
)

// ErrNoOwner is returned by Lookup when no gateway holds the user agent.
var ErrNoOwner = errors.New("no owner")

var (
	//go:embed claim.lua
	claimLua string
	//go:embed renew.lua
	renewLua string
	//go:embed release.lua
	releaseLua string

	claimScript   = redis.NewScript(claimLua)
	renewScript   = redis.NewScript(renewLua)
	releaseScript = redis.NewScript(releaseLua)
)

// Owner is a user agent's owning gateway.
type Owner struct {
	Gateway string
	Addr    string
	Epoch   uint64
}

// Held is one lease a gateway holds.
type Held struct {
	UAID  ids.UAID
	Epoch uint64
}

// Leases claims, renews and looks up ownership records.
type Leases struct {
	rdb  redis.UniversalClient
	keys rkey.Keys
	ttl  time.Duration
}

// New returns Leases whose records last ttl unless renewed.
func New(rdb redis.UniversalClient, keys rkey.Keys, ttl time.Duration) *Leases {
	return &Leases{rdb: rdb, keys: keys, ttl: ttl}
}

// TTL returns how long a lease lasts without renewal.
func (l *Leases) TTL() time.Duration { return l.ttl }

// Claim makes gateway (reachable at addr) the owner of u and returns the new epoch and
// the previous owner (zero Owner when there was none).
func (l *Leases) Claim(ctx context.Context, u ids.UAID, gateway, addr string) (uint64, Owner, error) {
	res, err := claimScript.Run(ctx, l.rdb, []string{l.keys.Owner(u)}, gateway, addr, l.ttl.Milliseconds()).StringSlice()
	if err != nil {
		return 0, Owner{}, fmt.Errorf("lease claim: %w", err)
	}
	if len(res) != 4 {
		return 0, Owner{}, fmt.Errorf("lease claim: %d results", len(res))
	}
	epoch, err := strconv.ParseUint(res[0], 10, 64)
	if err != nil {
		return 0, Owner{}, fmt.Errorf("lease claim: epoch: %w", err)
	}
	var prev Owner
	if res[1] != "" {
		prev = Owner{Gateway: res[1], Addr: res[2]}
		prev.Epoch, _ = strconv.ParseUint(res[3], 10, 64) // written by claim.lua as an integer
	}
	return epoch, prev, nil
}

// Lookup returns the current owner of u, or ErrNoOwner.
func (l *Leases) Lookup(ctx context.Context, u ids.UAID) (Owner, error) {
	return l.LookupIn(ctx, l.rdb, u).Result()
}

// LookupCmd is a Lookup queued in a pipeline.
type LookupCmd struct {
	cmd *redis.SliceCmd
}

// LookupIn queues a Lookup on c, a client or a pipeline.
func (l *Leases) LookupIn(ctx context.Context, c redis.Cmdable, u ids.UAID) *LookupCmd {
	return &LookupCmd{cmd: c.HMGet(ctx, l.keys.Owner(u), "epoch", "gw", "addr")}
}

// Result returns the owner, or ErrNoOwner.
func (c *LookupCmd) Result() (Owner, error) {
	vals, err := c.cmd.Result()
	if err != nil {
		return Owner{}, fmt.Errorf("lease lookup: %w", err)
	}
	gw, _ := vals[1].(string)
	addr, _ := vals[2].(string)
	es, _ := vals[0].(string)
	if gw == "" || addr == "" {
		return Owner{}, ErrNoOwner
	}
	epoch, err := strconv.ParseUint(es, 10, 64)
	if err != nil {
		return Owner{}, fmt.Errorf("lease lookup: epoch %q: %w", es, err)
	}
	return Owner{Gateway: gw, Addr: addr, Epoch: epoch}, nil
}

// Renew extends the given leases of gateway (its id and gRPC address) in one
// pipeline. It returns those that were lost (taken over, or released), whose
// connections the gateway must close, and those held again: their records had
// expired (Redis was unreachable for longer than a lease lives) and nobody had
// claimed them since, so they are the gateway's again at the same epoch. Messages
// stored while they had no owner were offered to nobody: those connections must
// read their queues again.
func (l *Leases) Renew(ctx context.Context, gateway, addr string, held []Held) (lost, reheld []Held, err error) {
	if len(held) == 0 {
		return nil, nil, nil
	}
	cmds, err := l.renew(ctx, gateway, addr, held, renewScript.EvalSha)
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		// A pipeline cannot fall back from EVALSHA by itself: send the script once.
		cmds, err = l.renew(ctx, gateway, addr, held, renewScript.Eval)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("lease renew: %w", err)
	}
	for i, c := range cmds {
		switch n, _ := c.Int(); n {
		case 0:
			lost = append(lost, held[i])
		case 2:
			reheld = append(reheld, held[i])
		}
	}
	return lost, reheld, nil
}

func (l *Leases) renew(ctx context.Context, gateway, addr string, held []Held, eval func(context.Context, redis.Scripter, []string, ...any) *redis.Cmd) ([]*redis.Cmd, error) {
	cmds := make([]*redis.Cmd, len(held))
	_, err := l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, h := range held {
			cmds[i] = eval(ctx, p, []string{l.keys.Owner(h.UAID)}, strconv.FormatUint(h.Epoch, 10), l.ttl.Milliseconds(), gateway, addr)
		}
		return nil
	})
	return cmds, err
}

// Release gives up u's lease if it is still held at epoch.
func (l *Leases) Release(ctx context.Context, u ids.UAID, epoch uint64) error {
	if err := releaseScript.Run(ctx, l.rdb, []string{l.keys.Owner(u)}, strconv.FormatUint(epoch, 10)).Err(); err != nil {
		return fmt.Errorf("lease release: %w", err)
	}
	return nil
}
