package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// One process may open 20,000 files, one per connection: an idle run past that
// (-procs N) runs N copies of the load tool as children, each holding a share of
// the connections, and reports for them all.

// childReady is the line a child prints once its user agents are connected.
const childReady = "heraldload-child: connected"

// runChild connects this process's share, tells the parent, and holds the
// connections until the parent closes the child's stdin or ctx ends.
func runChild(ctx context.Context, cfg config) error {
	start := time.Now()
	agents, err := connectAll(ctx, cfg)
	if err != nil {
		return err
	}
	if n := connectRetries.Load(); n > 0 {
		fmt.Fprintf(os.Stderr, "heraldload: %d connections were tried again\n", n)
	}
	fmt.Printf("%s %d %d\n", childReady, len(agents), time.Since(start).Milliseconds())
	eof := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin) // ends when the parent closes the pipe
		close(eof)
	}()
	select {
	case <-eof:
	case <-ctx.Done():
	}
	for _, a := range agents {
		_ = a.cl.Close() // ending the run; the gateway sees a normal close
	}
	return nil
}

// runProcs runs cfg.procs children with a share of the connections each, sums what
// they connected, and reports the gateways' memory per connection.
func runProcs(ctx context.Context, cfg config, args []string) error {
	if cfg.rate != 0 && !cfg.idle {
		return errors.New("-procs > 1 is for idle runs (-rate 0 or -idle)")
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	before := sampleAll(cfg.pids)
	start := time.Now()
	type child struct {
		cmd   *exec.Cmd
		stdin io.WriteCloser
	}
	var (
		children []child
		mu       sync.Mutex
		total    int
		wg       sync.WaitGroup
		errs     = make(chan error, cfg.procs)
	)
	defer func() {
		for _, c := range children {
			_ = c.stdin.Close() // tells the child to end
		}
		for _, c := range children {
			_ = c.cmd.Wait() // its error was reported when it failed to connect
		}
		wg.Wait()
	}()
	for i := range cfg.procs {
		n := cfg.conns / cfg.procs
		if i < cfg.conns%cfg.procs {
			n++
		}
		// Later flags win: the child keeps every setting but these.
		cargs := append(append([]string(nil), args...),
			"-procs=1", "-child", "-pids=", "-conns="+strconv.Itoa(n),
			"-connect-rate="+strconv.Itoa(max(cfg.connectRate/cfg.procs, 1)))
		cmd := exec.Command(self, cargs...)
		stdin, stdout, err := startPiped(cmd)
		if err != nil {
			return fmt.Errorf("start child %d: %w", i, err)
		}
		children = append(children, child{cmd: cmd, stdin: stdin})
		wg.Go(func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				if rest, ok := strings.CutPrefix(sc.Text(), childReady+" "); ok {
					var got, ms int
					if _, err := fmt.Sscanf(rest, "%d %d", &got, &ms); err == nil {
						mu.Lock()
						total += got
						mu.Unlock()
						errs <- nil
						_, _ = io.Copy(io.Discard, stdout) // until the child ends
						return
					}
				}
			}
			errs <- fmt.Errorf("child %d ended before connecting its %d user agents", i, n)
		})
	}
	for range cfg.procs {
		select {
		case err := <-errs:
			if err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	connectTime := time.Since(start)
	fmt.Fprintf(os.Stderr, "connected %d user agents over %d gateway(s) from %d processes in %s\n",
		total, len(cfg.gateways), cfg.procs, connectTime.Round(time.Millisecond))
	err = reportIdle(ctx, cfg, total, before, connectTime)
	for _, c := range children {
		_ = c.stdin.Close() // tells the child to end; closing twice is harmless
	}
	wg.Wait()
	return err
}

// startPiped starts cmd with a pipe to its stdin (closing it tells a child of the
// load tool to end) and one from its stdout; what it writes to stderr is ours.
func startPiped(cmd *exec.Cmd) (stdin io.WriteCloser, stdout io.ReadCloser, err error) {
	cmd.Stderr = os.Stderr
	if stdin, err = cmd.StdinPipe(); err != nil {
		return nil, nil, err
	}
	if stdout, err = cmd.StdoutPipe(); err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	return stdin, stdout, nil
}
