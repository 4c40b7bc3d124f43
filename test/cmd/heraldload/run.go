package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/herald-push/herald/pkg/ece"
	"github.com/herald-push/herald/pkg/sender"
	"github.com/herald-push/herald/pkg/vapid"
)

func run(ctx context.Context, cfg config) error {
	if len(cfg.gateways) == 0 || len(cfg.sources) == 0 || cfg.conns < 1 {
		return errors.New("need -gateways, -sources and -conns")
	}
	if err := checkPrepare(cfg); err != nil {
		return err
	}
	if err := checkOffline(cfg); err != nil {
		return err
	}
	before := sampleAll(cfg.pids)
	start := time.Now()
	connectCfg := cfg
	if cfg.stormKill != "" {
		if len(cfg.gateways) < 2 {
			return errors.New("-storm-kill needs at least two -gateways")
		}
		connectCfg.gateways = cfg.gateways[:1]
	}
	agents, err := connectAll(ctx, connectCfg)
	if err != nil {
		return err
	}
	connectTime := time.Since(start)
	fmt.Fprintf(os.Stderr, "connected %d user agents over %d gateway(s) in %s (%d connections tried again)\n",
		len(agents), len(connectCfg.gateways), connectTime.Round(time.Millisecond), connectRetries.Load())
	if cfg.stormKill != "" {
		return runStorm(ctx, cfg, agents)
	}
	if cfg.offline > 0 {
		return runOffline(ctx, cfg, agents)
	}
	if cfg.rate == 0 || cfg.idle {
		return reportIdle(ctx, cfg, len(agents), before, connectTime)
	}
	return runLoad(ctx, cfg, agents)
}

// reportIdle reports the resident memory each gateway gained per connection.
func reportIdle(ctx context.Context, cfg config, agents int, before map[string]procSample, connectTime time.Duration) error {
	// Let the gateways' heaps settle before reading their size.
	select {
	case <-time.After(5 * time.Second):
	case <-ctx.Done():
	}
	after := sampleAll(cfg.pids)
	fmt.Printf("idle: %d user agents connected and registered over %d gateway(s) in %s (%d source address(es), %d load-tool process(es), GOMAXPROCS %d)\n",
		agents, len(cfg.gateways), connectTime.Round(time.Millisecond), len(cfg.sources), max(cfg.procs, 1), runtime.GOMAXPROCS(0))
	perGateway := agents / max(len(cfg.gateways), 1)
	for _, name := range sortedNames(after) {
		b, a := before[name], after[name]
		fmt.Printf("  %-12s rss %7.1f MiB → %7.1f MiB", name, mib(b.rssBytes), mib(a.rssBytes))
		if perGateway > 0 && a.rssBytes > b.rssBytes {
			fmt.Printf("  = %.1f KiB per connection (if it holds %d)", float64(a.rssBytes-b.rssBytes)/1024/float64(perGateway), perGateway)
		}
		fmt.Println()
	}
	if cfg.idle {
		fmt.Fprintln(os.Stderr, "holding the connections; interrupt to end")
		<-ctx.Done()
	}
	return nil
}

// vapidAuth returns the VAPID Authorization every message of a run is sent with (one
// token reused, as real senders do), or "" without -vapid.
func vapidAuth(cfg config, agents []*agent) (string, error) {
	if !cfg.vapid {
		return "", nil
	}
	key, err := vapid.GenerateKey()
	if err != nil {
		return "", err
	}
	aud, err := sender.Origin(agents[0].sub.Endpoint)
	if err != nil {
		return "", err
	}
	return vapid.Sign(key, aud, "mailto:load@example.com", time.Now().Add(12*time.Hour))
}

// runLoad sends at the configured rate and reports deliveries, latency and cost.
func runLoad(ctx context.Context, cfg config, agents []*agent) error {
	total := cfg.messages()
	t := &tally{seen: make([]atomic.Uint32, total)}
	if cfg.prepare {
		t.sentAt = make([]atomic.Int64, total)
	}
	for _, a := range agents {
		a.receive(t)
	}
	defer func() {
		for _, a := range agents {
			_ = a.cl.Close() // ending the run; the gateway sees a normal close
		}
	}()

	auth, err := vapidAuth(cfg, agents)
	if err != nil {
		return err
	}
	client := &http.Client{Transport: ingestTransport(cfg), Timeout: 10 * time.Second}
	var prep *prepared
	if cfg.prepare {
		fmt.Fprintf(os.Stderr, "encrypting %d messages before the warm-up (-prepare)\n", total)
		var err error
		if prep, err = prepare(ctx, cfg, agents, total, auth); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "encrypted %d messages in %s\n", total, prep.took.Round(time.Millisecond))
	}

	var (
		okSent   atomic.Int64
		failed   sync.Map // status → *atomic.Int64
		sendErrs atomic.Int64
		skipped  atomic.Int64
	)
	jobs := make(chan uint64, cfg.concurrency)
	var senders sync.WaitGroup
	for range cfg.concurrency {
		senders.Go(func() {
			var rp *rawPoster
			if cfg.rawHTTP() {
				rp = newRawPoster(prep.header, client.Timeout)
				defer rp.close()
			}
			for seq := range jobs {
				a := agents[seq%uint64(len(agents))]
				var status int
				var err error
				posted := time.Now()
				if prep != nil {
					t.sentAt[seq].Store(posted.UnixNano())
				}
				switch {
				case rp != nil:
					status, err = prep.postRaw(ctx, rp, seq)
				case prep != nil:
					status, err = prep.post(ctx, client, a.sub.Endpoint, seq)
				default:
					var res sender.Result
					res, err = sender.Send(ctx, a.sub, makePayload(seq, cfg.payload, time.Now()), sender.Options{
						TTL: cfg.ttl, Authorization: auth, Client: client, Encrypt: []ece.Option{ece.WithSecrets(&t.secrets)},
					})
					status = res.Status
				}
				t.answer(time.Since(posted))
				switch {
				case err != nil:
					sendErrs.Add(1)
				case status == http.StatusCreated:
					okSent.Add(1)
				default:
					c, _ := failed.LoadOrStore(status, new(atomic.Int64))
					c.(*atomic.Int64).Add(1)
				}
			}
		})
	}

	// Pace: every millisecond, release the messages due by then.
	var (
		seq          uint64
		measureStart time.Time
		cpuStart     map[string]procSample
		recvStart    int64
	)
	begin := time.Now()
	tick := time.NewTicker(time.Millisecond)
	for seq < uint64(total) {
		select {
		case <-ctx.Done():
			tick.Stop()
			close(jobs)
			senders.Wait()
			return ctx.Err()
		case now := <-tick.C:
			if measureStart.IsZero() && now.Sub(begin) >= cfg.warmup {
				measureStart, cpuStart, recvStart = now, sampleAll(cfg.pids), t.received.Load()
				t.mu.Lock()
				t.measuring = true
				t.mu.Unlock()
			}
			due := min(uint64(now.Sub(begin).Seconds()*float64(cfg.rate)), uint64(total))
			for ; seq < due; seq++ {
				select {
				case jobs <- seq:
				default:
					// The senders are all busy: the offered rate is not reached.
					skipped.Add(1)
				}
			}
		}
	}
	tick.Stop()
	close(jobs)
	senders.Wait()
	sendEnd := time.Now()
	// Wait for the stragglers: until everything accepted arrived, or 10 s of nothing new.
	last, lastChange := t.received.Load(), time.Now()
	for t.received.Load() < okSent.Load() && time.Since(lastChange) < 10*time.Second {
		time.Sleep(50 * time.Millisecond)
		if r := t.received.Load(); r != last {
			last, lastChange = r, time.Now()
		}
	}
	t.mu.Lock()
	t.measuring = false
	lat := append([]time.Duration(nil), t.latencies...)
	answered := append([]time.Duration(nil), t.answered...)
	t.mu.Unlock()
	cpuEnd := sampleAll(cfg.pids)
	window := sendEnd.Sub(measureStart)
	delivered := t.received.Load() - recvStart

	var lost, dups int64
	for i := range t.seen {
		switch n := t.seen[i].Load(); {
		case n > 1:
			dups += int64(n - 1)
		}
	}
	lost = okSent.Load() - (t.received.Load() - dups)
	slices.Sort(lat)
	slices.Sort(answered)

	proto := "HTTP/1.1 (net/http), a connection per request in flight"
	switch {
	case cfg.h2c:
		proto = "cleartext HTTP/2 (h2c), the requests multiplexed"
	case cfg.rawHTTP():
		proto = "HTTP/1.1 (the load tool's own client), a connection per request in flight"
	}
	encrypted := "encrypted while sending, latency timed from before encrypting"
	if prep != nil {
		encrypted = "bodies encrypted before the measured window (-prepare), latency timed from each POST"
	}
	fmt.Printf("conditions: %d user agents over %d gateway(s), %d source address(es); offered %d msg/s for %s after %s warm-up; %d in flight at most, %s; TTL %d; %d-byte plaintext (aes128gcm); VAPID %v (one token reused); each message encrypted with a fresh sender key and decrypted with the user agent's keys, the ECDH secret computed once; %s; load tool GOMAXPROCS %d\n",
		len(agents), len(cfg.gateways), len(cfg.sources), cfg.rate, cfg.duration, cfg.warmup, cfg.concurrency, proto, cfg.ttl, cfg.payload, cfg.vapid, encrypted, runtime.GOMAXPROCS(0))
	if prep != nil {
		fmt.Printf("prepared: %d bodies (%.1f MiB) encrypted before the warm-up in %s, %.2f CPU-s of the load tool (not in the cost below)\n",
			total, mib(int64(len(prep.bodies))), prep.took.Round(time.Millisecond), prep.cpu)
		if prep.unremembered > 0 {
			fmt.Printf("  %d of their ECDH secrets past ece.Secrets' bound: receiving those computes the secret again, inside the window\n", prep.unremembered)
		}
	}
	fmt.Printf("sent: %d accepted (201), %d refused, %d transport errors, %d not sent (senders busy)\n",
		okSent.Load(), countFailed(&failed), sendErrs.Load(), skipped.Load())
	failed.Range(func(k, v any) bool {
		fmt.Printf("  status %v: %d\n", k, v.(*atomic.Int64).Load())
		return true
	})
	fmt.Printf("delivered: %d of %d accepted; lost %d, duplicates %d, to the wrong user agent %d, undecodable %d\n",
		t.received.Load()-dups, okSent.Load(), lost, dups, t.foreign.Load(), t.decryptKO.Load())
	fmt.Printf("throughput (measured window %s): %.0f delivered msg/s\n", window.Round(time.Millisecond), float64(delivered)/window.Seconds())
	printLatency("publish→receive", lat)
	printLatency("publish→answer (ingest's status)", answered)
	if delivered > 0 && len(cpuEnd) > 0 {
		printCost(cpuStart, cpuEnd, delivered, "delivered messages (measured window)")
	}
	if lost > 0 || t.foreign.Load() > 0 {
		return fmt.Errorf("%d accepted messages were not delivered, %d reached the wrong user agent", lost, t.foreign.Load())
	}
	return nil
}

// heraldServices are the processes whose CPU the cost target sums; Redis,
// Postgres and the load tool are reported beside them.
var heraldServices = map[string]bool{"ingest": true, "router": true}

func isHerald(name string) bool {
	return heraldServices[name] || strings.HasPrefix(name, "gateway")
}

// printCost prints each process's CPU seconds per 1,000 of n (what: what n counts,
// and over which window), Herald's services summed apart from Redis, Postgres (with
// its backends) and the load tool.
func printCost(start, end map[string]procSample, n int64, what string) {
	fmt.Printf("cost: CPU seconds per 1,000 %s:\n", what)
	var herald, others float64
	for _, name := range sortedNames(end) {
		d := end[name].cpuSeconds - start[name].cpuSeconds
		per := d / float64(n) * 1000
		if isHerald(name) {
			herald += per
		} else {
			others += per
		}
		fmt.Printf("  %-12s %.4f   (rss %.1f MiB)\n", name, per, mib(end[name].rssBytes))
	}
	fmt.Printf("  %-12s %.4f   (ingest + router + gateways)\n", "herald", herald)
	fmt.Printf("  %-12s %.4f   (Redis, Postgres, the load tool)\n", "beside it", others)
}

// printLatency prints the percentiles of sorted, latencies of what, if any.
func printLatency(what string, sorted []time.Duration) {
	if len(sorted) == 0 {
		return
	}
	fmt.Printf("latency %s: p50 %s  p99 %s  p999 %s  max %s  (%d samples)\n",
		what, pct(sorted, 0.50), pct(sorted, 0.99), pct(sorted, 0.999), sorted[len(sorted)-1].Round(time.Microsecond), len(sorted))
}

func countFailed(m *sync.Map) int64 {
	var n int64
	m.Range(func(_, v any) bool { n += v.(*atomic.Int64).Load(); return true })
	return n
}

func pct(sorted []time.Duration, p float64) time.Duration {
	i := int(float64(len(sorted)-1) * p)
	return sorted[i].Round(time.Microsecond)
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func sortedNames[V any](m map[string]V) []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// ingestTransport is the HTTP transport to ingest: HTTP/1.1 with a kept-alive
// connection per request in flight, or with -h2c cleartext HTTP/2, which ingest
// also speaks (prior knowledge, no upgrade).
func ingestTransport(cfg config) *http.Transport {
	tr := &http.Transport{MaxIdleConnsPerHost: cfg.concurrency, MaxConnsPerHost: cfg.concurrency}
	if cfg.h2c {
		tr.Protocols = new(http.Protocols)
		tr.Protocols.SetUnencryptedHTTP2(true)
	}
	return tr
}
