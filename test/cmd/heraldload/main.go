// Command heraldload is Herald's load tool. It connects many user agents to the
// gateways, sends messages through ingest at a fixed rate with bounded concurrency,
// and reports what was delivered, how fast, and what it cost each service:
//
//	heraldload -gateways ws://127.0.0.1:8080/ -conns 1000 -rate 5000 -duration 30s \
//	    -pids ingest=$(pgrep -x ingest),router=$(pgrep -x router),gateway=$(pgrep -x gateway)
//
// Every figure is printed with the conditions it was measured under.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/herald-push/herald/pkg/flagenv"
)

type config struct {
	gateways    []string
	sources     []string
	conns       int
	rate        int
	duration    time.Duration
	warmup      time.Duration
	concurrency int
	ttl         int
	payload     int
	vapid       bool
	pids        map[string]int
	idle        bool
	connectRate int
	procs       int
	stormKill   string
	offline     int
	redisURL    string
	child       bool
	prepare     bool
	h2c         bool
	netHTTP     bool
}

// rawHTTP says whether a -prepare run posts with the load tool's own HTTP/1.1
// client (rawPoster) rather than net/http's.
func (c config) rawHTTP() bool { return c.prepare && !c.h2c && !c.netHTTP }

// messages is how many messages a load run sends: the warm-up's and the window's.
func (c config) messages() int {
	return int(float64(c.rate) * (c.warmup + c.duration).Seconds())
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "floor" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		err := runFloor(ctx, os.Args[2:], os.Stdout)
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, "heraldload floor:", err)
			os.Exit(1)
		}
		return
	}
	var cfg config
	fs := flag.NewFlagSet("heraldload", flag.ExitOnError)
	gateways := fs.String("gateways", "ws://127.0.0.1:8080/", "comma-separated gateway WebSocket URLs; user agents are spread over them")
	sources := fs.String("sources", "127.0.0.1", "comma-separated loopback source addresses for user-agent connections (each has ~28k ports)")
	fs.IntVar(&cfg.conns, "conns", 1000, "user agents to connect")
	fs.IntVar(&cfg.rate, "rate", 1000, "messages per second to send (0: only connect, for idle-memory runs)")
	fs.DurationVar(&cfg.duration, "duration", 20*time.Second, "how long to send")
	fs.DurationVar(&cfg.warmup, "warmup", 2*time.Second, "sending before measuring starts")
	fs.IntVar(&cfg.concurrency, "concurrency", 64, "most requests in flight to ingest")
	fs.IntVar(&cfg.ttl, "ttl", 60, "TTL of each message")
	fs.IntVar(&cfg.payload, "payload", 64, "plaintext bytes per message")
	fs.BoolVar(&cfg.prepare, "prepare", false, "encrypt every message of the run before the warm-up and only POST them while measuring, so that the load tool's encryption does not compete with Herald for the cores; latency is then timed from each POST (at most 2,000,000 messages)")
	fs.BoolVar(&cfg.h2c, "h2c", false, "send to ingest over cleartext HTTP/2 (prior knowledge): the concurrent requests share one connection, instead of one HTTP/1.1 connection each")
	fs.BoolVar(&cfg.netHTTP, "net-http", false, "with -prepare, post with net/http's client instead of the load tool's own HTTP/1.1 client, which writes and reads each request on its sender's goroutine")
	fs.BoolVar(&cfg.vapid, "vapid", true, "sign with VAPID (one token reused, as real senders do)")
	pids := fs.String("pids", "", "name=pid,… of processes whose CPU and memory to report (e.g. ingest=1,router=2,gateway=3)")
	fs.BoolVar(&cfg.idle, "idle", false, "connect, report gateway memory per connection, then hold until interrupted")
	fs.IntVar(&cfg.connectRate, "connect-rate", 2000, "new connections per second while connecting")
	fs.IntVar(&cfg.procs, "procs", 1, "load-tool processes sharing -conns, for idle runs past one process's open-files limit (each connection is a file)")
	fs.BoolVar(&cfg.child, "child", false, "internal: run as one of -procs children")
	cpuProfile := fs.String("cpuprofile", "", "write the load tool's own CPU profile to this file")
	fs.StringVar(&cfg.stormKill, "storm-kill", "", "reconnect storm: connect every user agent to the first gateway, SIGKILL the process of this -pids name, send each user agent a message, and time their reconnection to the other gateways")
	fs.IntVar(&cfg.offline, "offline", 0, "offline catch-up: every user agent leaves, is sent this many messages, and comes back to read them; reports Redis's memory per waiting message and the catch-up's rate")
	fs.StringVar(&cfg.redisURL, "redis-url", "", "Redis whose used_memory -offline reports (HERALD_REDIS_URL, as the services; empty: not reported)")
	if err := flagenv.Parse(fs, os.Args[1:], nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	cfg.gateways = splitList(*gateways)
	cfg.sources = splitList(*sources)
	var err error
	if cfg.pids, err = parsePids(*pids); err != nil {
		fmt.Fprintln(os.Stderr, "heraldload:", err)
		os.Exit(2)
	}
	stopProfile := func() {}
	if *cpuProfile != "" {
		if stopProfile, err = startCPUProfile(*cpuProfile); err != nil {
			fmt.Fprintln(os.Stderr, "heraldload:", err)
			os.Exit(2)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	switch {
	case cfg.child:
		err = runChild(ctx, cfg)
	case cfg.procs > 1:
		err = runProcs(ctx, cfg, os.Args[1:])
	default:
		err = run(ctx, cfg)
	}
	stopProfile()
	if err != nil {
		fmt.Fprintln(os.Stderr, "heraldload:", err)
		os.Exit(1)
	}
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func parsePids(s string) (map[string]int, error) {
	out := map[string]int{}
	for _, kv := range splitList(s) {
		name, v, ok := strings.Cut(kv, "=")
		var pid int
		if _, err := fmt.Sscanf(v, "%d", &pid); !ok || err != nil || pid <= 0 {
			return nil, fmt.Errorf("-pids: %q is not name=pid", kv)
		}
		if _, dup := out[name]; dup {
			// Several processes of one service (replicas) are summed under the name.
			name = fmt.Sprintf("%s#%d", name, len(out))
		}
		out[name] = pid
	}
	return out, nil
}

// startCPUProfile profiles the load tool into path until the returned function is called.
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
