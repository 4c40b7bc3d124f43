package cluster

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Process is one running service.
type Process struct {
	Name string
	cmd  *exec.Cmd

	mu    sync.Mutex
	lines []string
	addrs map[string]string
	ready chan struct{}
	done  chan struct{}
	err   error
}

// startProcess runs a built binary with args and env, and waits until it logs
// "ready" (or exits).
func startProcess(t testing.TB, name string, args, env []string) *Process {
	t.Helper()
	p := &Process{Name: name, addrs: map[string]string{}, ready: make(chan struct{}), done: make(chan struct{})}
	p.cmd = exec.Command(Bin(name), args...)
	p.cmd.Env = env
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stdout = io.Discard
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	scanDone := make(chan struct{})
	go func() {
		defer close(scanDone)
		p.scan(stderr)
	}()
	go func() {
		<-scanDone // Wait closes the pipe; read it to the end first.
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if err := p.Stop(15 * time.Second); err != nil {
			t.Errorf("%s did not exit cleanly: %v", name, err)
		}
		if t.Failed() {
			t.Logf("%s log:\n%s", name, p.Log())
		}
	})
	select {
	case <-p.ready:
	case <-p.done:
		t.Fatalf("%s exited at start: %v\n%s", name, p.err, p.Log())
	case <-time.After(30 * time.Second):
		t.Fatalf("%s not ready after 30s\n%s", name, p.Log())
	}
	return p
}

// scan records log lines and picks out listener addresses and readiness.
func (p *Process) scan(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	readyOnce := sync.Once{}
	for sc.Scan() {
		line := sc.Text()
		var rec struct {
			Msg      string `json:"msg"`
			Listener string `json:"listener"`
			Addr     string `json:"addr"`
		}
		_ = json.Unmarshal([]byte(line), &rec) // non-JSON lines are kept as they are
		p.mu.Lock()
		p.lines = append(p.lines, line)
		if rec.Msg == "listening" {
			p.addrs[rec.Listener] = rec.Addr
		}
		p.mu.Unlock()
		if rec.Msg == "ready" {
			readyOnce.Do(func() { close(p.ready) })
		}
	}
}

// Addr returns the address a listener of the process logged.
func (p *Process) Addr(listener string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addrs[listener]
}

// Pid returns the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Log returns every line the process wrote so far.
func (p *Process) Log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

// Lines returns the log lines so far.
func (p *Process) Lines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lines...)
}

// Stop sends SIGTERM and waits for a clean exit; it is safe to call twice.
func (p *Process) Stop(timeout time.Duration) error {
	select {
	case <-p.done:
		return p.exitErr()
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	select {
	case <-p.done:
		return p.exitErr()
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill() // it already failed to stop; the error below says so
		<-p.done
		return fmt.Errorf("still running %s after SIGTERM", timeout)
	}
}

// Kill ends the process with SIGKILL, as a crash would.
func (p *Process) Kill() {
	_ = p.cmd.Process.Kill() // it may have exited already
	<-p.done
	p.mu.Lock()
	p.err = nil // a killed process is not a failed stop
	p.mu.Unlock()
}

func (p *Process) exitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// WaitExit waits for the process to end by itself.
func (p *Process) WaitExit(ctx context.Context) error {
	select {
	case <-p.done:
		return p.exitErr()
	case <-ctx.Done():
		return ctx.Err()
	}
}
