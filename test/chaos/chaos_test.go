package chaos

import (
	"context"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/herald-push/herald/pkg/sender"
	"github.com/herald-push/herald/test/internal/cluster"
)

// profile sizes a run.
type profile struct {
	agents   int
	messages int
	duration time.Duration
	senders  int
}

func chosenProfile() profile {
	if os.Getenv("HERALD_CHAOS") == "full" {
		return profile{agents: 3000, messages: 30000, duration: 60 * time.Second, senders: 64}
	}
	return profile{agents: 300, messages: 4000, duration: 12 * time.Second, senders: 16}
}

func TestChaos(t *testing.T) { testChaos(t) }

// TestChaosRedisCluster runs the same with every service on a Redis Cluster.
func TestChaosRedisCluster(t *testing.T) { testChaos(t, cluster.WithRedisCluster()) }

func testChaos(t *testing.T, opts ...cluster.Option) {
	p := chosenProfile()
	opts = append(opts, cluster.WithEnv("HERALD_LOG_LEVEL=info", "HERALD_DRAIN_WINDOW=2s", "HERALD_MAX_QUEUE_LEN=100000"))
	c := cluster.Start(t, opts...)
	c.AddRouter()
	c.AddIngest(c.Routers[1])
	c.AddGateway()
	c.AddGateway()

	live := &gateways{}
	var liveProcs []*cluster.Process
	refresh := func() {
		urls := make([]string, len(liveProcs))
		for i, g := range liveProcs {
			urls[i] = "ws://" + g.Addr("websocket") + "/"
		}
		live.set(urls)
	}
	liveProcs = append(liveProcs, c.Gateways...)
	refresh()

	l := &ledger{target: make([]atomic.Int32, p.messages), copies: make([]atomic.Int32, p.messages)}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	agents := make([]*agent, p.agents)
	var running sync.WaitGroup
	for i := range agents {
		a, err := newAgent(i)
		if err != nil {
			t.Fatal(err)
		}
		agents[i] = a
		running.Go(func() { a.run(ctx, live, l) })
	}
	defer func() { stop(); running.Wait() }()
	for i, a := range agents {
		select {
		case <-a.ready:
		case <-time.After(30 * time.Second):
			t.Fatalf("user agent %d never subscribed", i)
		}
	}
	t.Logf("%d user agents subscribed over %d gateways", len(agents), len(liveProcs))

	// Disruptions, spread over the sending: a crash, a drain, and a new gateway after each.
	disrupt := func(at time.Duration, what string, f func()) func(context.Context) error {
		return func(ctx context.Context) error {
			select {
			case <-time.After(at):
			case <-ctx.Done():
				return nil
			}
			t.Logf("%s: %s", at, what)
			f()
			return nil
		}
	}
	var mu sync.Mutex
	events := []func(context.Context) error{}
	for cycle := time.Duration(0); cycle+p.duration/4 < p.duration; cycle += p.duration / 2 {
		events = append(events,
			disrupt(cycle+p.duration/8, "kill -9 a gateway", func() {
				mu.Lock()
				victim := liveProcs[0]
				liveProcs = liveProcs[1:]
				refresh()
				mu.Unlock()
				victim.Kill()
			}),
			disrupt(cycle+p.duration/4, "start a gateway", func() {
				g := c.AddGateway()
				mu.Lock()
				liveProcs = append(liveProcs, g)
				refresh()
				mu.Unlock()
			}),
			disrupt(cycle+3*p.duration/8, "drain a gateway (SIGTERM)", func() {
				mu.Lock()
				victim := liveProcs[0]
				liveProcs = liveProcs[1:]
				refresh()
				mu.Unlock()
				if err := victim.Stop(30 * time.Second); err != nil {
					t.Errorf("drained gateway exited with %v", err)
				}
			}),
			disrupt(cycle+p.duration/2-p.duration/16, "start a gateway", func() {
				g := c.AddGateway()
				mu.Lock()
				liveProcs = append(liveProcs, g)
				refresh()
				mu.Unlock()
			}),
		)
	}

	// A crash of a router and of an ingest: what they had answered 201 is stored;
	// what they had not, the sender saw fail.
	var ingests atomic.Pointer[[]*cluster.Process]
	ingests.Store(&c.Ingests)
	events = append(events, disrupt(p.duration*6/10, "kill -9 a router and an ingest, start new ones", func() {
		in := *ingests.Load()
		survivors := []*cluster.Process{in[0]}
		ingests.Store(&survivors)
		in[1].Kill()
		c.Routers[1].Kill()
		fresh := append([]*cluster.Process{in[0]}, c.AddIngest(c.AddRouter()))
		ingests.Store(&fresh)
	}))

	var accepted, refused atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	for _, e := range events {
		g.Go(func() error { return e(gctx) })
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: p.senders}, Timeout: 10 * time.Second}
	seqs := make(chan int)
	for range p.senders {
		g.Go(func() error {
			for seq := range seqs {
				target := seq % len(agents)
				in := *ingests.Load()
				ingest := in[seq%len(in)]
				sub, _ := agents[target].subscription("http://" + ingest.Addr("http"))
				res, err := sender.Send(gctx, sub, payload(uint64(seq), target), sender.Options{TTL: 600, Client: client})
				if err == nil && res.Status == http.StatusCreated {
					l.target[seq].Store(int32(target + 1))
					accepted.Add(1)
				} else {
					refused.Add(1)
				}
			}
			return nil
		})
	}
	interval := p.duration / time.Duration(p.messages)
	tick := time.NewTicker(interval)
	for seq := range p.messages {
		<-tick.C
		seqs <- seq
	}
	tick.Stop()
	close(seqs)
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}

	// Every accepted message must arrive; give reconnections time.
	missing := func() (n int) {
		for i := range l.target {
			if l.target[i].Load() != 0 && l.copies[i].Load() == 0 {
				n++
			}
		}
		return n
	}
	deadline := time.Now().Add(60 * time.Second)
	for missing() > 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	var dups, copies int64
	for i := range l.copies {
		n := int64(l.copies[i].Load())
		copies += n
		if n > 1 {
			dups += n - 1
		}
	}
	var connects int64
	for _, a := range agents {
		connects += a.connects.Load()
	}
	t.Logf("messages: %d sent, %d accepted (201), %d not accepted; arrived %d copies, %d duplicates (%.2f%% of accepted); %d connections made by %d user agents",
		p.messages, accepted.Load(), refused.Load(), copies, dups, 100*float64(dups)/float64(max(accepted.Load(), 1)), connects, len(agents))
	if n := missing(); n > 0 {
		t.Errorf("%d messages answered 201 never arrived", n)
	}
	if n := l.misrouted.Load(); n > 0 {
		t.Errorf("%d messages reached a user agent they were not for", n)
	}
	if accepted.Load() < int64(p.messages)/2 {
		t.Errorf("only %d of %d messages accepted: the disruptions should not stop ingest", accepted.Load(), p.messages)
	}
}
