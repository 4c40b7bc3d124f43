package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/herald-push/herald/pkg/mozproto"
	"github.com/herald-push/herald/pkg/pushclient"
	"github.com/herald-push/herald/pkg/queue"
)

// runOffline measures what waiting messages cost and how fast returning user agents
// catch up: every user agent leaves (a normal close), each is sent cfg.offline
// messages, which Herald stores, and then all come back to the gateways they left,
// say hello with their uaid and channel, and read and acknowledge what waited.
// It reports the rate messages were stored at with nobody connected, Redis's memory
// per waiting message, the rate and time of the catch-up, and what was lost.
func runOffline(ctx context.Context, cfg config, agents []*agent) error {
	n := len(agents) * cfg.offline
	auth, err := vapidAuth(cfg, agents)
	if err != nil {
		return err
	}
	// Message seq is agents[seq%len(agents)]'s, as prepare builds them.
	msgs, err := prepare(ctx, cfg, agents, n, auth)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "encrypted %d messages in %s\n", n, msgs.took.Round(time.Millisecond))
	if err := forEach(ctx, agents, func(_ int, a *agent) error {
		return a.cl.Close()
	}); err != nil {
		return fmt.Errorf("leave: %w", err)
	}

	var rdb *redis.Client
	if cfg.redisURL != "" {
		opts, err := redis.ParseURL(cfg.redisURL)
		if err != nil {
			return fmt.Errorf("-redis-url: %w", err)
		}
		rdb = redis.NewClient(opts)
		defer rdb.Close()
	}
	mem0 := usedMemory(ctx, rdb)

	// Store: every message posted while nobody is connected.
	before := sampleAll(cfg.pids)
	var accepted, refused, sendErrs atomic.Int64
	start := time.Now()
	msgs.postAll(ctx, cfg, agents, n, func(_, status int, err error) {
		switch {
		case err != nil:
			sendErrs.Add(1)
		case status == http.StatusCreated:
			accepted.Add(1)
		default:
			refused.Add(1)
		}
	})
	storeTook := time.Since(start)
	stored := sampleAll(cfg.pids)
	mem1 := usedMemory(ctx, rdb)

	// Come back: each user agent to the gateway it left, at -connect-rate.
	t := &tally{seen: make([]atomic.Uint32, n), sentAt: make([]atomic.Int64, n)}
	var firsts atomic.Int64
	caughtUp := make(chan struct{})
	var once sync.Once
	want := accepted.Load()
	clients := make([]*http.Client, len(cfg.sources))
	for i, src := range cfg.sources {
		clients[i] = pushclient.SourceClient(src)
	}
	tick := time.NewTicker(time.Second / time.Duration(max(cfg.connectRate, 1)))
	back := time.Now()
	err = forEach(ctx, agents, func(i int, a *agent) error {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		}
		return a.comeBack(ctx, cfg.gateways[i%len(cfg.gateways)], clients[i%len(clients)], func(n mozproto.Notification) {
			if t.record(a, n, time.Now()) && firsts.Add(1) == want {
				once.Do(func() { close(caughtUp) })
			}
			_ = a.cl.Ack(context.Background(), n) // a lost ack only means a redelivery
		})
	})
	tick.Stop()
	if err != nil {
		return fmt.Errorf("come back: %w", err)
	}
	reconnected := time.Since(back)
	if want == 0 {
		once.Do(func() { close(caughtUp) })
	}
	select {
	case <-caughtUp:
	case <-time.After(30 * time.Second): // what has not arrived by then is reported lost
	case <-ctx.Done():
		return ctx.Err()
	}
	catchUp := time.Since(back)
	done := sampleAll(cfg.pids)
	defer func() {
		for _, a := range agents {
			_ = a.cl.Close() // the run is over
		}
	}()
	// Give the last acks' deletes a moment before reading Redis's memory again.
	time.Sleep(time.Second)
	mem2 := usedMemory(ctx, rdb)

	var dups int64
	for i := range t.seen {
		if c := t.seen[i].Load(); c > 1 {
			dups += int64(c - 1)
		}
	}
	lost := want - firsts.Load()
	fmt.Printf("conditions: %d user agents over %d gateway(s) left (a normal close); each was sent %d messages (%d in all), %d in flight at most, HTTP/1.1 (net/http); TTL %d; %d-byte plaintext (aes128gcm), encrypted before; VAPID %v; then all came back at %d/s to the gateways they left, reading and acknowledging each message; load tool GOMAXPROCS %d\n",
		len(agents), len(cfg.gateways), cfg.offline, n, cfg.concurrency, cfg.ttl, cfg.payload, cfg.vapid, cfg.connectRate, runtime.GOMAXPROCS(0))
	fmt.Printf("stored: %d accepted (201), %d refused, %d transport errors, in %s: %.0f msg/s with nobody connected\n",
		accepted.Load(), refused.Load(), sendErrs.Load(), storeTook.Round(time.Millisecond), float64(accepted.Load())/storeTook.Seconds())
	if mem0 > 0 && mem1 > 0 && accepted.Load() > 0 {
		fmt.Printf("redis: used_memory %.1f → %.1f MiB with them waiting: %.0f bytes per waiting message; %.1f MiB once read and acknowledged (an emptied queue stays while its user agent is connected, and at most %s after it leaves)\n",
			mib(mem0), mib(mem1), float64(mem1-mem0)/float64(accepted.Load()), mib(mem2), queue.IdleLife)
	}
	fmt.Printf("caught up: %d of %d delivered in %s from the first return (all %d back after %s): %.0f msg/s; lost %d, duplicates %d, to the wrong user agent %d, undecodable %d\n",
		firsts.Load(), want, catchUp.Round(time.Millisecond), len(agents), reconnected.Round(time.Millisecond),
		float64(firsts.Load())/catchUp.Seconds(), lost, dups, t.foreign.Load(), t.decryptKO.Load())
	if accepted.Load() > 0 && len(cfg.pids) > 0 {
		printCost(before, stored, accepted.Load(), "messages stored (nobody connected)")
	}
	if firsts.Load() > 0 && len(cfg.pids) > 0 {
		printCost(stored, done, firsts.Load(), "messages delivered on return (the hellos included)")
	}
	if lost > 0 || t.foreign.Load() > 0 {
		return fmt.Errorf("%d accepted messages were not delivered, %d reached the wrong user agent", lost, t.foreign.Load())
	}
	return nil
}

// checkOffline refuses an -offline run that cannot be made, before any user agent
// connects: its messages are all encrypted first, within -prepare's bounds.
func checkOffline(cfg config) error {
	switch {
	case cfg.offline == 0:
		return nil
	case cfg.offline < 0:
		return errors.New("-offline must not be negative")
	case cfg.stormKill != "" || cfg.idle || cfg.procs > 1 || cfg.prepare:
		return errors.New("-offline is a run of its own: not with -storm-kill, -idle, -procs or -prepare (it always encrypts first)")
	case cfg.conns*cfg.offline > maxPrepared:
		return fmt.Errorf("-offline: %d messages (-conns × -offline), more than the %d the load tool encrypts ahead", cfg.conns*cfg.offline, maxPrepared)
	}
	return nil
}

// comeBack dials url, hands every notification to onNote from the start, and says
// hello with the agent's uaid and channel.
func (a *agent) comeBack(ctx context.Context, url string, hc *http.Client, onNote func(mozproto.Notification)) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cl, err := pushclient.DialWith(ctx, url, hc)
	if err != nil {
		return err
	}
	a.cl = cl
	cl.OnNotification(onNote)
	hello, err := cl.Hello(ctx, a.uaid, []string{a.channelID})
	if err == nil && hello.UAID != a.uaid {
		err = errors.New("the gateway did not resume the uaid")
	}
	return err
}

// forEach runs f for every agent, 64 at a time, and returns the first error.
func forEach(ctx context.Context, agents []*agent, f func(i int, a *agent) error) error {
	g, _ := errgroup.WithContext(ctx)
	g.SetLimit(64)
	for i, a := range agents {
		g.Go(func() error { return f(i, a) })
	}
	return g.Wait()
}

var usedMemoryLine = regexp.MustCompile(`(?m)^used_memory:(\d+)\r?$`)

// usedMemory is Redis's used_memory in bytes; 0 without a client or when it cannot
// be read (the report then leaves the memory line out).
func usedMemory(ctx context.Context, rdb *redis.Client) int64 {
	if rdb == nil {
		return 0
	}
	info, err := rdb.Info(ctx, "memory").Result()
	if err != nil {
		return 0
	}
	m := usedMemoryLine.FindStringSubmatch(info)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseInt(m[1], 10, 64) // the pattern admits only digits
	return v
}
