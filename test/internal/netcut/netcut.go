// Package netcut is a TCP proxy on loopback that a test can cut and restore, so that
// a service loses a server (Redis, Postgres) the way it would on a real network: its
// open connections break and new ones are dropped as soon as they are made, until
// the proxy is restored.
package netcut

import (
	"io"
	"net"
	"sync"
	"testing"
)

// Proxy forwards each connection it accepts to its target.
type Proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup // the accept loop and every forwarding goroutine
}

// New starts a Proxy to target (host:port) on a loopback port of its own, and stops
// it in t.Cleanup.
func New(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Go(p.accept)
	t.Cleanup(func() {
		ln.Close()
		p.closeAll()
		p.wg.Wait()
	})
	return p
}

// Addr is the proxy's address, host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Cut breaks every open connection and drops new ones until Restore.
func (p *Proxy) Cut() {
	p.mu.Lock()
	p.cut = true
	p.mu.Unlock()
	p.closeAll()
}

// Restore forwards new connections again.
func (p *Proxy) Restore() {
	p.mu.Lock()
	p.cut = false
	p.mu.Unlock()
}

func (p *Proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // the listener closed: the test is over
		}
		p.mu.Lock()
		cut := p.cut
		p.mu.Unlock()
		if cut {
			c.Close()
			continue
		}
		p.wg.Go(func() { p.forward(c) })
	}
}

// forward copies between c and a new connection to the target until either side
// ends or the proxy is cut.
func (p *Proxy) forward(c net.Conn) {
	defer c.Close()
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer up.Close()
	if !p.track(c, up) {
		return // cut meanwhile
	}
	defer p.untrack(c, up)
	done := make(chan struct{}, 2)
	// Both copies end once either side ends or the proxy is cut; forward waits for them.
	copyTo := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src) // how it ended says nothing the test needs
		dst.Close()
		src.Close()
		done <- struct{}{}
	}
	go copyTo(up, c)
	go copyTo(c, up)
	<-done
	<-done
}

func (p *Proxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut {
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *Proxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.conns, c)
	}
}

func (p *Proxy) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
}
