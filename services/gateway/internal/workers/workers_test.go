package workers

import (
	"bytes"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"
)

// goid returns the id of the calling goroutine, from its stack trace's header.
func goid() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	b = b[:bytes.IndexByte(b, ' ')]
	id, err := strconv.ParseUint(string(b), 10, 64)
	if err != nil {
		panic(err)
	}
	return id
}

// run runs fn on p and waits for it.
func run(p *Pool, fn func()) {
	done := make(chan struct{})
	p.Go(func() { fn(); close(done) })
	<-done
}

func TestFunctionsRunOnALongLivedWorker(t *testing.T) {
	p := New(1)
	defer p.Close()
	var ran []uint64
	for range 3 {
		run(p, func() { ran = append(ran, goid()) })
	}
	caller := goid()
	if len(ran) != 3 || ran[0] == caller || ran[1] != ran[0] || ran[2] != ran[0] {
		t.Fatalf("functions ran on goroutines %v (the caller is %d), want one worker for all", ran, caller)
	}
}

func TestABlockedFunctionDoesNotStopOthers(t *testing.T) {
	p := New(1)
	defer p.Close()
	release := make(chan struct{})
	unblock := sync.OnceFunc(func() { close(release) })
	defer unblock() // before Close, which waits for the worker
	blocked := make(chan struct{})
	var first, second, third uint64
	p.Go(func() {
		first = goid()
		close(blocked)
		<-release
	})
	<-blocked
	// The only worker is busy: these run on goroutines of their own, and return
	// while the first still blocks.
	done := make(chan struct{})
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		wg.Go(func() { run(p, func() { second = goid() }) })
		wg.Go(func() { run(p, func() { third = goid() }) })
		wg.Wait()
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("functions waited for a busy worker")
	}
	unblock()
	if second == first || third == first || second == third {
		t.Fatalf("functions ran on goroutines %d, %d, %d; want three", first, second, third)
	}
}

func TestCloseWaitsAndFunctionsRunAfterIt(t *testing.T) {
	p := New(1)
	release := make(chan struct{})
	started := make(chan struct{}, 2)
	var finished sync.WaitGroup
	finished.Add(2)
	for range 2 { // one on the worker, one on a goroutine of its own
		p.Go(func() {
			defer finished.Done()
			started <- struct{}{}
			<-release
		})
	}
	<-started
	<-started
	closed := make(chan struct{})
	go func() { p.Close(); close(closed) }()
	select {
	case <-closed:
		t.Fatal("Close returned while functions still ran")
	case <-time.After(20 * time.Millisecond):
	}
	close(release)
	<-closed
	finished.Wait()
	ran := false
	run(p, func() { ran = true })
	if !ran {
		t.Fatal("a function after Close did not run")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.workers != 1 {
		t.Fatalf("%d workers started, want 1: none after Close", p.workers)
	}
}
