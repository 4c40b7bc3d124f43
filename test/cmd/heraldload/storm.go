package main

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/herald-push/herald/pkg/ece"
	"github.com/herald-push/herald/pkg/pushclient"
)

// runStorm kills the gateway every user agent is connected to and measures how long
// they take to be owned again elsewhere (their hello answered on another gateway),
// while each is sent one message, which must arrive after the reconnection.
func runStorm(ctx context.Context, cfg config, agents []*agent) error {
	victim, ok := cfg.pids[cfg.stormKill]
	if !ok {
		return fmt.Errorf("-storm-kill %q is not a name in -pids", cfg.stormKill)
	}
	others := cfg.gateways[1:]
	clients := make([]*http.Client, len(cfg.sources))
	for i, src := range cfg.sources {
		clients[i] = pushclient.SourceClient(src)
	}
	// Each user agent's message is encrypted before the kill, so that the load tool's
	// RFC 8291 work does not compete with the reconnections for the cores.
	msgs, err := prepare(ctx, cfg, agents, len(agents), "")
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "encrypted %d messages before the kill in %s\n", len(agents), msgs.took.Round(time.Millisecond))
	before := sampleAll(cfg.pids)
	killed := time.Now()
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill %s (%d): %w", cfg.stormKill, victim, err)
	}

	// Each user agent reconnects once its connection is gone, after a random delay
	// of up to a second, as clients with jittered backoff do.
	owned := make([]time.Duration, len(agents))
	var failed atomic.Int64
	var wg sync.WaitGroup
	for i, a := range agents {
		wg.Go(func() {
			<-a.cl.Done()
			_ = a.cl.Drop() // the gateway is dead; release the socket
			time.Sleep(time.Duration(rand.Int64N(int64(time.Second))))
			for attempt := 0; ; attempt++ {
				err := a.reconnect(ctx, others[i%len(others)], clients[i%len(clients)])
				if err == nil {
					owned[i] = time.Since(killed)
					return
				}
				if attempt == 5 || ctx.Err() != nil {
					failed.Add(1)
					return
				}
				time.Sleep(time.Duration(100*(attempt+1)) * time.Millisecond)
			}
		})
	}

	// Meanwhile, one message to each user agent: message i is agents[i]'s.
	var accepted atomic.Int64
	sent := make([]bool, len(agents))
	msgs.postAll(ctx, cfg, agents, len(agents), func(i, status int, err error) {
		if err == nil && status == http.StatusCreated {
			sent[i] = true
			accepted.Add(1)
		}
	})
	wg.Wait()
	after := sampleAll(cfg.pids)

	// Every accepted message must arrive at its user agent.
	var lost atomic.Int64
	var recv sync.WaitGroup
	for i, a := range agents {
		if !sent[i] || owned[i] == 0 {
			continue
		}
		recv.Go(func() {
			if !a.await(ctx, uint64(i), 30*time.Second) {
				lost.Add(1)
			}
		})
	}
	recv.Wait()

	var times []time.Duration
	for _, d := range owned {
		if d > 0 {
			times = append(times, d)
		}
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	fmt.Printf("conditions: %d user agents on one gateway, SIGKILLed; they reconnect to %d other gateway(s) after 0-1 s of jitter; each sent one message, encrypted before the kill; %d source address(es); load tool GOMAXPROCS %d\n",
		len(agents), len(others), len(cfg.sources), runtime.GOMAXPROCS(0))
	if len(times) > 0 {
		fmt.Printf("owned again: %d of %d, the last %s after the kill (p50 %s, p99 %s); %d failed to reconnect\n",
			len(times), len(agents), times[len(times)-1].Round(time.Millisecond), pct(times, 0.5), pct(times, 0.99), failed.Load())
	}
	fmt.Printf("messages sent during the storm: %d accepted (201), %d lost\n", accepted.Load(), lost.Load())
	printCost(before, after, int64(len(agents)), "reconnections (from the kill until the last was owned again and the last message sent)")
	for _, a := range agents {
		_ = a.cl.Close() // the run is over
	}
	if failed.Load() > 0 || lost.Load() > 0 {
		return errors.New("some user agents were not owned again or lost a message")
	}
	return nil
}

// reconnect dials url and says hello with the agent's uaid and channel.
func (a *agent) reconnect(ctx context.Context, url string, hc *http.Client) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cl, err := pushclient.DialWith(ctx, url, hc)
	if err != nil {
		return err
	}
	hello, err := cl.Hello(ctx, a.uaid, []string{a.channelID})
	if err != nil || hello.UAID != a.uaid {
		_ = cl.Close() // a failed hello: the next attempt dials again
		if err == nil {
			err = errors.New("the gateway did not resume the uaid")
		}
		return err
	}
	a.cl = cl
	return nil
}

// await reads notifications until the one carrying seq arrives, acking each.
func (a *agent) await(ctx context.Context, seq uint64, within time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	for {
		n, err := a.cl.Next(ctx)
		if err != nil {
			return false
		}
		_ = a.cl.Ack(ctx, n) // a lost ack only means a redelivery
		body, err := base64.RawURLEncoding.DecodeString(n.Data)
		if err != nil {
			continue
		}
		plain, err := ece.Decrypt(body, a.priv, a.auth)
		if err == nil && len(plain) >= 8 && binary.BigEndian.Uint64(plain) == seq {
			return true
		}
	}
}
