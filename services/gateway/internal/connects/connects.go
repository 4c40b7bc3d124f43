// Package connects gathers the hellos of returning user agents into shared
// Postgres statements.
//
// Every hello that resumes a uaid records the connection and reads the user agent's
// subscriptions. After a gateway is lost, thousands of its user agents say hello to
// the others within a second or two; one round trip each, over a pool of a few
// connections, queues them behind each other (on a busy machine each round trip
// waits for Postgres's process and the gateway's to be scheduled), and hellos then
// outwait their storage bound and fail. A Batcher has at most a few statements in
// flight, each for every hello that arrived meanwhile.
package connects

import (
	"context"
	"time"

	"github.com/herald-push/herald/pkg/ids"
	"github.com/herald-push/herald/pkg/store"
)

// Store is what a Batcher needs of the Postgres store.
type Store interface {
	ConnectMany(ctx context.Context, us []ids.UAID, now time.Time) (map[ids.UAID][]store.Subscription, error)
}

// Batcher is Connect for many concurrent callers: each caller's request waits in a
// queue, and callers take turns (at most calls at once) sending what is queued, up
// to max user agents in one statement. At a trickle each statement carries one
// hello and nothing waits; under a storm they fill up. No goroutine of its own runs:
// a caller waiting for its turn returns as soon as its context ends, a caller
// sending returns when its statement does (by the latest deadline in it).
type Batcher struct {
	st    Store
	max   int
	slots chan struct{} // a token per statement in flight
	queue chan *call    // requests not yet sent; bounded, see Connect
}

// call is one Connect waiting for its answer.
type call struct {
	ctx  context.Context
	u    ids.UAID
	now  time.Time
	subs []store.Subscription
	err  error
	done chan struct{}
}

// New returns a Batcher over st with at most calls statements in flight, each for at
// most max user agents.
func New(st Store, calls, max int) *Batcher {
	return &Batcher{st: st, max: max, slots: make(chan struct{}, calls), queue: make(chan *call, calls*max)}
}

// Connect records that u connected at now and returns its subscriptions, or
// store.ErrNotFound: store.Store.Connect's contract, shared with other hellos.
func (b *Batcher) Connect(ctx context.Context, u ids.UAID, now time.Time) ([]store.Subscription, error) {
	c := &call{ctx: ctx, u: u, now: now, done: make(chan struct{})}
	// The queue holds what calls statements carry; past that, callers wait to queue,
	// as they would have waited for a pool connection.
	select {
	case b.queue <- c:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	for {
		select {
		case <-c.done:
			return c.subs, c.err
		default:
		}
		select {
		case <-c.done:
			return c.subs, c.err
		case b.slots <- struct{}{}:
			sent := b.send()
			<-b.slots
			if sent == 0 {
				// Nothing was queued, so c is in a statement another caller sent.
				select {
				case <-c.done:
					return c.subs, c.err
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// send takes what is queued, up to b.max, sends it in one statement, and returns how
// many calls it took.
func (b *Batcher) send() int {
	var (
		batch    []*call
		us       []ids.UAID
		now      time.Time
		deadline time.Time
		bounded  = true
	)
take:
	for len(batch) < b.max {
		select {
		case c := <-b.queue:
			if c.ctx.Err() != nil {
				continue // its caller has gone
			}
			batch = append(batch, c)
			us = append(us, c.u)
			if c.now.After(now) {
				now = c.now
			}
			if dl, ok := c.ctx.Deadline(); !ok {
				bounded = false
			} else if dl.After(deadline) {
				deadline = dl
			}
		default:
			break take
		}
	}
	if len(batch) == 0 {
		return 0
	}
	// The statement serves every caller in it: none's cancellation ends it, and it
	// lasts until the latest deadline among them.
	ctx := context.WithoutCancel(batch[0].ctx)
	if bounded {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	known, err := b.st.ConnectMany(ctx, us, now)
	for _, c := range batch {
		switch subs, ok := known[c.u]; {
		case err != nil:
			c.err = err
		case !ok:
			c.err = store.ErrNotFound
		default:
			c.subs = subs
		}
		close(c.done)
	}
	return len(batch)
}
