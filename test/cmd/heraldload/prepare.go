package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/herald-push/herald/pkg/ece"
)

// With -prepare, every request body of a load run is encrypted before the warm-up,
// so that the load tool's RFC 8291 work (a fresh P-256 key and an ECDH per message)
// does not compete with Herald for the cores inside the measured window: sending
// is then a POST of bytes already built.

// Bounds on what -prepare keeps in memory: the bodies themselves, and per message
// the ECDH secret ece.Secrets remembers for the receiving side (about 200 bytes).
const (
	maxPrepared      = 2_000_000
	maxPreparedBytes = 2 << 30
)

// preparedBodySize is the length of an aes128gcm body carrying payload bytes in one
// record: the header, the payload, the padding delimiter and the 16-byte tag.
func preparedBodySize(payload int) int {
	return ece.HeaderSize + max(payload, payloadHeader) + 1 + 16
}

// checkPrepare refuses a -prepare run whose bodies would not fit the bounds, before
// any user agent connects.
func checkPrepare(cfg config) error {
	if !cfg.prepare {
		return nil
	}
	if cfg.stormKill != "" || cfg.idle || cfg.rate == 0 || cfg.procs > 1 {
		return errors.New("-prepare is for load runs (-rate > 0), not -idle, -rate 0, -procs or -storm-kill")
	}
	n := cfg.messages()
	if n > maxPrepared {
		return fmt.Errorf("-prepare: the run sends %d messages (-rate × (-warmup + -duration)), more than the %d it keeps in memory; lower -rate or shorten -duration", n, maxPrepared)
	}
	if b := int64(n) * int64(preparedBodySize(cfg.payload)); b > maxPreparedBytes {
		return fmt.Errorf("-prepare: %d bodies of %d bytes take %.0f MiB, more than the %d MiB it keeps in memory; lower -rate, -duration or -payload",
			n, preparedBodySize(cfg.payload), mib(b), maxPreparedBytes>>20)
	}
	return nil
}

// prepared holds the encrypted body of every message of a run and the headers they
// are all sent with.
type prepared struct {
	// bodies holds message seq's body at [seq*size, (seq+1)*size): one allocation
	// without pointers, which the collector does not scan during the run.
	bodies []byte
	size   int
	header http.Header
	// targets[i] is where agents[i]'s messages go, for the load tool's own HTTP/1.1
	// client (rawPoster).
	targets []target
	// took and cpu are what preparing cost: wall time and the load tool's CPU seconds.
	took time.Duration
	cpu  float64
	// unremembered counts the messages whose ECDH secret ece.Secrets did not keep
	// (past its bound): receiving them computes the secret again, in the window.
	unremembered int
}

// prepare encrypts n messages, message seq for agents[seq%len(agents)] as runLoad
// sends them, each with a fresh sender key (ece.Encrypt's default, as sender.Send
// does), remembering each secret in its user agent's ece.Secrets. auth is the reused
// VAPID Authorization, empty for none.
func prepare(ctx context.Context, cfg config, agents []*agent, n int, auth string) (*prepared, error) {
	cpuBefore, cpuErr := sampleProc(os.Getpid())
	start := time.Now()
	p := &prepared{size: preparedBodySize(cfg.payload), header: http.Header{}}
	// The headers sender.Send sets for an encrypted payload.
	p.header.Set("TTL", strconv.Itoa(cfg.ttl))
	p.header.Set("Content-Encoding", "aes128gcm")
	p.header.Set("Content-Type", "application/octet-stream")
	if auth != "" {
		p.header.Set("Authorization", auth)
	}
	p.bodies = make([]byte, n*p.size)
	uaPublic := make([][]byte, len(agents))
	for i, a := range agents {
		uaPublic[i] = a.priv.PublicKey().Bytes()
	}
	if cfg.rawHTTP() {
		p.targets = make([]target, len(agents))
		for i, a := range agents {
			var err error
			if p.targets[i], err = parseTarget(a.sub.Endpoint); err != nil {
				return nil, err
			}
		}
	}

	var done atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	workers := runtime.GOMAXPROCS(0)
	for w := range workers {
		g.Go(func() error {
			for seq := w; seq < n; seq += workers {
				if gctx.Err() != nil {
					return gctx.Err()
				}
				i := seq % len(agents)
				a := agents[i]
				// The time field stays zero: the send time is taken at the POST
				// (tally.sentAt), not when the body was built.
				body, err := ece.Encrypt(makePayload(uint64(seq), cfg.payload, time.Unix(0, 0)), uaPublic[i], a.auth, ece.WithSecrets(&a.secrets))
				if err != nil {
					return fmt.Errorf("prepare message %d: %w", seq, err)
				}
				if len(body) != p.size {
					return fmt.Errorf("prepare message %d: body is %d bytes, want %d", seq, len(body), p.size)
				}
				copy(p.bodies[seq*p.size:], body)
				if d := done.Add(1); d%100_000 == 0 {
					fmt.Fprintf(os.Stderr, "prepared %d of %d bodies\n", d, n)
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	remembered := 0
	for _, a := range agents {
		remembered += a.secrets.Len()
	}
	p.unremembered = n - remembered
	// Collect preparation's garbage now rather than during the warm-up or the window.
	runtime.GC()
	p.took = time.Since(start)
	// A failed sample only leaves the CPU figure out (it stays zero).
	if cpuAfter, err := sampleProc(os.Getpid()); err == nil && cpuErr == nil {
		p.cpu = cpuAfter.cpuSeconds - cpuBefore.cpuSeconds
	}
	return p, nil
}

// body returns message seq's encrypted body.
func (p *prepared) body(seq uint64) []byte {
	return p.bodies[int(seq)*p.size : (int(seq)+1)*p.size]
}

// postRaw sends message seq's prepared body to agents[seq%len(agents)] with the load
// tool's own HTTP/1.1 client, and returns the push service's status.
func (p *prepared) postRaw(ctx context.Context, rp *rawPoster, seq uint64) (int, error) {
	return rp.post(ctx, p.targets[seq%uint64(len(p.targets))], p.body(seq))
}

// postAll posts messages 0 to n-1, message seq to agents[seq%len(agents)] (the order
// prepare built them in), cfg.concurrency at a time over net/http's client, and hands
// each answer to answered, on the sender's goroutine (status 0 with a transport error).
func (p *prepared) postAll(ctx context.Context, cfg config, agents []*agent, n int, answered func(seq, status int, err error)) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: cfg.concurrency, MaxConnsPerHost: cfg.concurrency}, Timeout: 30 * time.Second}
	jobs := make(chan int)
	var senders sync.WaitGroup
	for range cfg.concurrency {
		senders.Go(func() {
			for seq := range jobs {
				status, err := p.post(ctx, client, agents[seq%len(agents)].sub.Endpoint, uint64(seq))
				answered(seq, status, err)
			}
		})
	}
	for seq := range n {
		jobs <- seq
	}
	close(jobs)
	senders.Wait()
}

// post sends message seq's prepared body to endpoint, as sender.Send would have
// sent it, and returns the push service's status.
func (p *prepared) post(ctx context.Context, client *http.Client, endpoint string, seq uint64) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(p.body(seq)))
	if err != nil {
		return 0, err
	}
	// A copy per request: the client owns a request's headers while sending it.
	req.Header = p.header.Clone()
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	// Read the answer as sender.Send does, so that the connection is reused.
	if _, err := io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)); err != nil {
		return 0, err
	}
	return resp.StatusCode, nil
}
