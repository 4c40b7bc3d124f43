package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/herald-push/herald/pkg/rawconn"
)

// The floor subcommand (heraldload floor) measures what the bare transports cost on
// this machine, without Herald: an HTTP/1.1 server answering Web Push sized POSTs
// with 201 (what ingest does around its handler), a WebSocket server writing
// notification frames and reading ack frames (what the gateway does around its
// sessions), and a gRPC server answering batches of messages on herald.v1's
// DeliverStream (one of the two hops between the services). The server runs in a process of its own, with the GOMAXPROCS the
// benchmarks give Herald, and its CPU is read from /proc as heraldload reads
// Herald's. Its figures are the floor under Herald's own (docs/benchmarks.md).

// floorConfig is one floor run.
type floorConfig struct {
	proto    string // "http", "ws" or "grpc"
	server   string // "net/http" or "lean" (http only)
	raw      bool   // the server's connections through rawconn
	rate     int
	conns    int
	duration time.Duration
	warmup   time.Duration
	procs    int // the server's GOMAXPROCS
	batch    int // messages per call (grpc only)
}

const floorUsage = `usage: heraldload floor [-proto http|ws|grpc] [-server net/http|lean] [-raw] [-rate N] [-conns N] [-batch N] [-duration D]`

// runFloor runs the floor subcommand with its arguments and prints its report to out.
func runFloor(ctx context.Context, args []string, out io.Writer) error {
	var cfg floorConfig
	fs := flag.NewFlagSet("heraldload floor", flag.ContinueOnError)
	fs.StringVar(&cfg.proto, "proto", "http", "http: POSTs answered 201; ws: notification frames written, ack frames read; grpc: batches of messages answered on DeliverStream")
	fs.StringVar(&cfg.server, "server", "net/http", "with -proto http: net/http (as ingest), or lean: a loop of http.ReadRequest and a written answer, without net/http's timeouts, per-request context and background read")
	fs.BoolVar(&cfg.raw, "raw", true, "the server reads and writes with raw system calls (package rawconn), as Herald's services do")
	fs.IntVar(&cfg.rate, "rate", 5000, "requests or notifications per second")
	fs.IntVar(&cfg.conns, "conns", 0, "connections (default 64 for http, as heraldload's requests in flight; 1000 for ws); for grpc, calls in flight on one connection (default 4, as ingest's -route-calls)")
	fs.IntVar(&cfg.batch, "batch", 5, "with -proto grpc: messages per call (5 is the mean of ingest's calls to the router at 5,000/s)")
	fs.DurationVar(&cfg.duration, "duration", 10*time.Second, "measured window")
	fs.DurationVar(&cfg.warmup, "warmup", 2*time.Second, "load before the window")
	fs.IntVar(&cfg.procs, "procs", 1, "the server's GOMAXPROCS (the benchmarks' PROCS=1)")
	serve := fs.Bool("serve", false, "internal: be the server, print its address, and serve until stdin closes")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if cfg.proto != "http" && cfg.proto != "ws" && cfg.proto != "grpc" || cfg.server != "net/http" && cfg.server != "lean" || cfg.rate <= 0 || cfg.batch <= 0 {
		return errors.New(floorUsage)
	}
	if cfg.conns <= 0 {
		cfg.conns = map[string]int{"http": 64, "ws": 1000, "grpc": 4}[cfg.proto]
	}
	if cfg.proto != "grpc" {
		cfg.batch = 1 // a request or a notification each
	}
	if *serve {
		return floorServe(cfg, os.Stdin, os.Stdout)
	}
	return floorRun(ctx, cfg, args, out)
}

// floorRun starts the server process, loads it, and reports.
func floorRun(ctx context.Context, cfg floorConfig, args []string, out io.Writer) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, self, append([]string{"floor", "-serve"}, args...)...)
	cmd.Env = append(os.Environ(), "GOMAXPROCS="+strconv.Itoa(cfg.procs))
	stdin, stdout, err := startPiped(cmd)
	if err != nil {
		return err
	}
	defer func() {
		stdin.Close()  // the server ends when its stdin does
		_ = cmd.Wait() // its exit status says nothing the report has not
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		return fmt.Errorf("floor server: %w", err)
	}
	addr := strings.TrimSpace(strings.TrimPrefix(line, "listening "))

	var done atomic.Int64
	lctx, cancel := context.WithCancel(ctx)
	ready := make(chan struct{})
	loadErr := make(chan error, 1)
	go func() {
		switch cfg.proto {
		case "http":
			loadErr <- floorPost(lctx, cfg, addr, ready, &done)
		case "ws":
			loadErr <- floorAck(lctx, cfg, addr, ready, &done)
		default:
			loadErr <- floorCall(lctx, cfg, addr, ready, &done)
		}
	}()
	defer func() {
		cancel()
		<-loadErr // the load's goroutines have ended; what they met once cancelled does not count
	}()
	select {
	case <-ready:
	case err := <-loadErr:
		loadErr <- err // for the deferred receive
		return err
	}
	wait := func(d time.Duration) error {
		select {
		case <-time.After(d):
			return nil
		case err := <-loadErr:
			if err == nil {
				err = errors.New("the load ended early")
			}
			loadErr <- err // for the deferred receive
			return err
		}
	}
	if err := wait(cfg.warmup); err != nil {
		return err
	}
	s0, err := sampleProc(cmd.Process.Pid)
	if err != nil {
		return err
	}
	c0, n0, t0 := selfCPU(), done.Load(), time.Now()
	if err := wait(cfg.duration); err != nil {
		return err
	}
	s1, err := sampleProc(cmd.Process.Pid)
	if err != nil {
		return err
	}
	c1, n1, t1 := selfCPU(), done.Load(), time.Now()
	n := n1 - n0
	if n <= 0 {
		return errors.New("nothing completed in the window")
	}
	what := map[string]string{"http": "POSTs answered 201", "ws": "notifications written and acked",
		"grpc": fmt.Sprintf("messages answered in DeliverStream calls of %d", cfg.batch)}[cfg.proto]
	server := map[string]string{"http": cfg.server, "ws": "coder/websocket", "grpc": "grpc-go"}[cfg.proto]
	conns := fmt.Sprintf("%d connections", cfg.conns)
	if cfg.proto == "grpc" {
		conns = fmt.Sprintf("%d calls in flight on one connection (the router's pool)", cfg.conns)
	}
	fmt.Fprintf(out, "floor: %s, %s server (raw I/O %v, GOMAXPROCS %d), %s, offered %d/s for %s\n",
		what, server, cfg.raw, cfg.procs, conns, cfg.rate, cfg.duration)
	fmt.Fprintf(out, "completed: %.0f/s\n", float64(n)/t1.Sub(t0).Seconds())
	fmt.Fprintf(out, "server: %.4f CPU-s per 1,000 (rss %.1f MiB); this client: %.4f\n",
		(s1.cpuSeconds-s0.cpuSeconds)*1000/float64(n), mib(s1.rssBytes), (c1-c0)*1000/float64(n))
	return nil
}

// selfCPU is this process's CPU seconds; 0 if /proc cannot be read.
func selfCPU() float64 {
	s, err := sampleProc(os.Getpid())
	if err != nil {
		return 0
	}
	return s.cpuSeconds
}

// floorServe listens on loopback, prints "listening <addr>", and serves until stop
// (its stdin) ends.
func floorServe(cfg floorConfig, stop io.Reader, out io.Writer) error {
	var ln net.Listener
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	if cfg.raw {
		ln = rawconn.Listener{Listener: ln}
	}
	defer ln.Close()
	fmt.Fprintf(out, "listening %s\n", ln.Addr())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		_, _ = io.Copy(io.Discard, stop) // until the parent closes it or exits
		cancel()
		ln.Close()
	}()
	switch {
	case cfg.proto == "ws":
		return serveNotifications(ctx, cfg, ln)
	case cfg.proto == "grpc":
		return serveBatches(ctx, ln)
	case cfg.server == "lean":
		return serveLean(ln)
	default:
		srv := &http.Server{
			Handler:           http.HandlerFunc(answer201),
			ReadHeaderTimeout: 10 * time.Second, // ingest's defaults
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       90 * time.Second,
		}
		if err := srv.Serve(ln); ctx.Err() == nil {
			return err
		}
		return nil
	}
}

// answer201 reads a push message's body and answers as ingest does.
func answer201(w http.ResponseWriter, r *http.Request) {
	if _, err := io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, 4096)); err != nil {
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		return
	}
	w.Header().Set("Location", "http://127.0.0.1/m/gAAAAABnZmxvb3ItbWVzc2FnZS1pZC1vZi10aGUtcmlnaHQtbGVuZ3Ro")
	w.Header().Set("TTL", "60")
	w.WriteHeader(http.StatusCreated)
}

// leanWriter is the http.ResponseWriter of serveLean: it keeps the answer until the
// handler returns.
type leanWriter struct {
	h    http.Header
	code int
	body []byte
}

func (w *leanWriter) Header() http.Header         { return w.h }
func (w *leanWriter) WriteHeader(code int)        { w.code = code }
func (w *leanWriter) Write(b []byte) (int, error) { w.body = append(w.body, b...); return len(b), nil }

// serveLean serves HTTP/1.1 keep-alive connections with the standard library's
// request parser and nothing else of net/http's server.
func serveLean(ln net.Listener) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			return nil // the listener closed: the run is over
		}
		go func() {
			defer c.Close()
			br, bw := bufio.NewReader(c), bufio.NewWriter(c)
			w := &leanWriter{h: http.Header{}}
			for {
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				clear(w.h)
				w.code, w.body = http.StatusOK, w.body[:0]
				answer201(w, req)
				if _, err := io.Copy(io.Discard, req.Body); err != nil {
					return
				}
				fmt.Fprintf(bw, "HTTP/1.1 %d %s\r\n", w.code, http.StatusText(w.code))
				w.h.Set("Content-Length", strconv.Itoa(len(w.body)))
				w.h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
				_ = w.h.Write(bw) // bw's error shows at Flush
				bw.WriteString("\r\n")
				bw.Write(w.body)
				if bw.Flush() != nil {
					return
				}
			}
		}()
	}
}

// floorNotification is a notification frame the size of the gateway's for a 64-byte
// message (aes128gcm, base64url).
var floorNotification = []byte(`{"messageType":"notification","channelID":"3f0c8d52-6a53-4c5e-9d61-0a3c2f8e4b7d","version":"gAAAAABnZmxvb3ItdmVyc2lvbi1vZi1hLW5vdGlmaWNhdGlvbi10aGF0LWlzLWFib3V0LXRoaXMtbG9uZw","ttl":60,"data":"` +
	strings.Repeat("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo", 5) + `","headers":{"encoding":"aes128gcm"}}`)

// serveNotifications accepts WebSocket connections and writes notifications to them
// in turn at cfg.rate, in 5 ms rounds (fewer timer wakes than one per frame), while a
// reader per connection reads the acks.
func serveNotifications(ctx context.Context, cfg floorConfig, ln net.Listener) error {
	var (
		mu    sync.Mutex
		conns []*websocket.Conn
	)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
		for {
			_, rd, err := c.Reader(ctx)
			if err != nil {
				return
			}
			if _, err := io.ReadAll(rd); err != nil {
				return
			}
		}
	})}
	go func() {
		const round = 5 * time.Millisecond
		t := time.NewTicker(round)
		defer t.Stop()
		next, owed := 0, 0.0
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			mu.Lock()
			cs := conns
			mu.Unlock()
			if len(cs) == 0 {
				continue
			}
			owed += float64(cfg.rate) * round.Seconds()
			for ; owed >= 1; owed-- {
				next = (next + 1) % len(cs)
				_ = cs[next].Write(ctx, websocket.MessageText, floorNotification) // a failed connection stops acking; the count shows it
			}
		}
	}()
	if err := srv.Serve(ln); ctx.Err() == nil {
		return err
	}
	return nil
}

// floorPost connects cfg.conns kept-alive connections, closes ready, and posts at
// cfg.rate, one request in flight on each, counting the 201s in done.
func floorPost(ctx context.Context, cfg floorConfig, addr string, ready chan<- struct{}, done *atomic.Int64) error {
	body := strings.Repeat("b", 230) // a 64-byte message, aes128gcm
	req := []byte("POST /wpush/v2/gAAAAABnZmxvb3ItdG9rZW4tb2YtdGhlLXNhbWUtbGVuZ3RoLWFzLWFuLWVuZHBvaW50LXRva2VuLWZvci10aGUtZmxvb3ItcnVu HTTP/1.1\r\n" +
		"Host: " + addr + "\r\nTTL: 60\r\nContent-Encoding: aes128gcm\r\nContent-Type: application/octet-stream\r\n" +
		"Authorization: vapid t=eyJ0eXAiOiJKV1QiLCJhbGciOiJFUzI1NiJ9." + strings.Repeat("eyJhdWQiOiJodHRw", 8) + "." + strings.Repeat("c2lnbmF0dXJl", 7) +
		", k=B" + strings.Repeat("a", 86) + "\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
	conns := make([]net.Conn, 0, cfg.conns)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range cfg.conns {
		c, err := rawconn.Dialer(&net.Dialer{})(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		conns = append(conns, c)
	}
	close(ready)
	tokens := floorPacer(ctx, cfg)
	errs := make(chan error, cfg.conns)
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Go(func() {
			br := bufio.NewReader(c)
			for range tokens {
				if _, err := c.Write(req); err != nil {
					errs <- err
					return
				}
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					errs <- err
					return
				}
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusCreated {
					errs <- fmt.Errorf("answer %d, %v", resp.StatusCode, err)
					return
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// floorAck connects cfg.conns WebSocket clients, closes ready, and acks every
// notification, counting the acks in done.
func floorAck(ctx context.Context, cfg floorConfig, addr string, ready chan<- struct{}, done *atomic.Int64) error {
	ack := []byte(`{"messageType":"ack","updates":[{"channelID":"3f0c8d52-6a53-4c5e-9d61-0a3c2f8e4b7d","version":"gAAAAABnZmxvb3ItdmVyc2lvbi1vZi1hLW5vdGlmaWNhdGlvbi10aGF0LWlzLWFib3V0LXRoaXMtbG9uZw","code":100}]}`)
	hc := &http.Client{Transport: &http.Transport{DialContext: rawconn.Dialer(&net.Dialer{}), MaxIdleConnsPerHost: -1}}
	conns := make([]*websocket.Conn, 0, cfg.conns)
	defer func() {
		for _, c := range conns {
			c.CloseNow()
		}
	}()
	for range cfg.conns {
		c, _, err := websocket.Dial(ctx, "ws://"+addr+"/", &websocket.DialOptions{HTTPClient: hc})
		if err != nil {
			return err
		}
		conns = append(conns, c)
	}
	close(ready)
	errs := make(chan error, cfg.conns)
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Go(func() {
			buf := make([]byte, 0, 1024)
			for {
				_, rd, err := c.Reader(ctx)
				if err != nil {
					errs <- err
					return
				}
				if buf, err = readInto(buf[:0], rd); err != nil {
					errs <- err
					return
				}
				if err := c.Write(ctx, websocket.MessageText, ack); err != nil {
					errs <- err
					return
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; ctx.Err() == nil {
		return err
	}
	return nil
}

// readInto appends what r holds to buf.
func readInto(buf []byte, r io.Reader) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// floorPacer hands out cfg.rate tokens a second, in 5 ms rounds, until ctx ends; a
// token no sender was free to take is dropped, as heraldload's are. It holds a token
// for each sender (each message of a batch), and at least two rounds' worth.
func floorPacer(ctx context.Context, cfg floorConfig) <-chan struct{} {
	const round = 5 * time.Millisecond
	tokens := make(chan struct{}, max(cfg.conns*cfg.batch, int(2*float64(cfg.rate)*round.Seconds())))
	go func() {
		defer close(tokens)
		t := time.NewTicker(round)
		defer t.Stop()
		owed := 0.0
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			for owed += float64(cfg.rate) * round.Seconds(); owed >= 1; owed-- {
				select {
				case tokens <- struct{}{}:
				default:
				}
			}
		}
	}()
	return tokens
}
