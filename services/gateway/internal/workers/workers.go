// Package workers runs functions on long-lived goroutines whose stacks have
// already grown, so that the goroutines that hand them over stay shallow, or need
// not exist.
//
// A goroutine's stack grows to the deepest call it ever made (Redis, Postgres,
// JSON, logging: 8 to 16 KiB) and shrinks only at garbage collections, by half
// each time. A connection must not hold such a stack while it is idle, which is
// most of its life; starting a fresh goroutine for each event instead costs a
// goroutine start and the growth of its stack, a copy per doubling, every time. A
// Pool's workers have grown their stacks once.
package workers

import "sync"

// Pool runs functions on at most max long-lived workers, started as they are
// needed. When every worker is busy, a function runs on a goroutine of its own: a
// function may block (on Redis, on Postgres, on another connection's teardown), so
// waiting for a worker could deadlock.
type Pool struct {
	max int
	// calls is unbuffered: a send succeeds only when a worker is idle and waiting.
	calls chan func()
	quit  chan struct{}

	// mu orders wg.Add before Close's wg.Wait.
	mu      sync.Mutex
	workers int
	closed  bool
	// wg counts the workers and the goroutines started when none was free.
	wg sync.WaitGroup
}

// New returns a Pool of at most max workers.
func New(max int) *Pool {
	return &Pool{max: max, calls: make(chan func()), quit: make(chan struct{})}
}

// Go runs fn on an idle worker, or on a new one, or when the pool has max busy
// workers, on a goroutine of its own. It does not wait for fn. Go is shallow and
// allocates nothing when a worker is idle, so that it may be called from a
// goroutine that must stay small. A function value that is made once (a method
// value kept in a field) and handed over many times costs nothing either.
func (p *Pool) Go(fn func()) {
	select {
	case p.calls <- fn:
		return
	default:
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.closed:
		// Nothing waits any more: the owner closed the pool once nothing it
		// owns could hand it work, and this is a straggler of that.
		go fn()
	case p.workers < p.max:
		p.workers++
		p.wg.Add(1)
		go p.work(fn)
	default:
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			fn()
		}()
	}
}

func (p *Pool) work(fn func()) {
	defer p.wg.Done()
	for {
		fn()
		select {
		case fn = <-p.calls:
		case <-p.quit:
			return
		}
	}
}

// Close ends the workers once their functions returned, and waits for them and
// for the functions that ran on goroutines of their own.
func (p *Pool) Close() {
	p.mu.Lock()
	closed := p.closed
	p.closed = true
	p.mu.Unlock()
	if !closed {
		close(p.quit)
	}
	p.wg.Wait()
}
