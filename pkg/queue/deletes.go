package queue

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/herald-push/herald/pkg/ids"
)

// Deleter deletes messages for many callers in group commits: the deletes queued
// at the moment go together in one pipeline, one XDEL per caller, and each caller
// waits for the result of its own. A gateway acknowledges messages for all its
// connections through one Deleter, which turns a Redis round trip per ack into one
// per batch; on a Redis Cluster the pipeline goes to each node its keys live on.
//
// With no linger it adds no waiting: when no pipeline is in flight a delete goes
// at once, and the deletes that arrive while one is in flight ride together in the
// next. A linger has the first delete of a pipeline wait that long for others (a
// full pipeline goes at once): at a few thousand acks a second, a Redis round trip
// is too short for more than one or two to meet in it, and each pipeline costs the
// gateway and Redis a write, a read and a wake of their own. Delete returns only
// once the entries are gone (or the delete failed), as Queue.Delete does, so that
// an acknowledged message is never sent again.
type Deleter struct {
	q        *Queue
	maxBatch int
	linger   time.Duration

	// wake holds a token when Run has something to look at: the first delete of a
	// pipeline, or a full one.
	wake chan struct{}

	mu sync.Mutex
	// pending are the deletes waiting for the next pipeline. Each caller queues one
	// and waits for it, so there are never more than there are callers.
	pending []*deleteCall
	// stopped is set when Run returns: Delete then runs its own XDEL.
	stopped bool
}

// deleteCall is one caller's delete; Run sets n and err, then signals done.
type deleteCall struct {
	ctx  context.Context
	key  string
	ids  []string
	n    int64
	err  error
	done chan struct{}
}

// NewDeleter returns a Deleter over q that puts at most maxBatch deletes in one
// pipeline, the first of them waiting at most linger for the others. Deletes are
// batched only while Run runs.
func NewDeleter(q *Queue, maxBatch int, linger time.Duration) *Deleter {
	return &Deleter{q: q, maxBatch: max(maxBatch, 1), linger: max(linger, 0), wake: make(chan struct{}, 1)}
}

// Delete removes messages by entry id and reports how many were still there, as
// Queue.Delete does, in the next pipeline. If ctx ends first it returns ctx's
// error; the delete may still happen.
func (d *Deleter) Delete(ctx context.Context, u ids.UAID, entryIDs ...string) (int64, error) {
	valid := validEntryIDs(entryIDs)
	if len(valid) == 0 {
		return 0, nil
	}
	c := &deleteCall{ctx: ctx, key: d.q.keys.Queue(u), ids: valid, done: make(chan struct{}, 1)}
	d.mu.Lock()
	if d.stopped {
		d.mu.Unlock()
		return d.q.Delete(ctx, u, valid...)
	}
	d.pending = append(d.pending, c)
	n := len(d.pending)
	d.mu.Unlock()
	// Run takes every pending delete each time it looks, so only the first of a
	// pipeline, and the one that fills it, need to wake it: the others would cost
	// it a wake each while it lingers.
	if n == 1 || n >= d.maxBatch {
		select {
		case d.wake <- struct{}{}:
		default: // a token is already waiting
		}
	}
	select {
	case <-c.done:
		return c.n, c.err
	case <-ctx.Done():
		return 0, fmt.Errorf("queue delete: %w", ctx.Err())
	}
}

// validEntryIDs returns the ids that have the form of an entry id: XDEL fails on a
// malformed one, and such a message cannot be in the queue anyway.
func validEntryIDs(entryIDs []string) []string {
	for i, id := range entryIDs {
		if !IsEntryID(id) {
			// A copy: the caller's slice is not ours to change.
			valid := slices.Clone(entryIDs[:i])
			for _, id := range entryIDs[i+1:] {
				if IsEntryID(id) {
					valid = append(valid, id)
				}
			}
			return valid
		}
	}
	return entryIDs
}

// Run sends the pipelines until ctx ends, then sends what is still pending and
// returns; Delete calls after that go straight to Redis. Call it once, and end
// its ctx when the callers are gone (after the gateway's connections closed).
func (d *Deleter) Run(ctx context.Context) {
	// Pipelines run to the end even when ctx does: their callers are waiting.
	base := context.WithoutCancel(ctx)
	var (
		buf   []*deleteCall
		cmds  []*redis.IntCmd
		timer *time.Timer
	)
	if d.linger > 0 {
		timer = time.NewTimer(d.linger)
		timer.Stop()
	}
	for {
		stop := false
		select {
		case <-d.wake:
			if timer != nil {
				stop = d.lingerFor(ctx, timer)
			}
		case <-ctx.Done():
			stop = true
		}
		for {
			batch := d.take(buf, stop)
			if len(batch) == 0 {
				break
			}
			cmds = d.exec(base, batch, cmds)
			clear(batch) // let the calls go
			buf = batch
		}
		if stop {
			return
		}
	}
}

// lingerFor waits, at most the linger, until the pending deletes fill a pipeline;
// it returns at once when none is pending (the token was for deletes a pipeline
// already took). It reports whether ctx ended meanwhile.
func (d *Deleter) lingerFor(ctx context.Context, timer *time.Timer) (stopped bool) {
	timer.Reset(d.linger)
	defer timer.Stop()
	for {
		d.mu.Lock()
		n := len(d.pending)
		d.mu.Unlock()
		if n == 0 || n >= d.maxBatch {
			return false
		}
		select {
		case <-d.wake: // the pipeline filled up
		case <-timer.C:
			return false
		case <-ctx.Done():
			return true
		}
	}
}

// take moves up to maxBatch pending deletes into buf and returns them; stop marks
// the Deleter stopped once nothing is pending, under the same lock, so that no
// delete is left behind.
func (d *Deleter) take(buf []*deleteCall, stop bool) []*deleteCall {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.pending) == 0 {
		d.stopped = d.stopped || stop
		return nil
	}
	if len(d.pending) <= d.maxBatch {
		// Swap the buffers: the pending slice is handed over whole.
		batch := d.pending
		d.pending = buf[:0]
		return batch
	}
	batch := append(buf[:0], d.pending[:d.maxBatch]...)
	n := copy(d.pending, d.pending[d.maxBatch:])
	clear(d.pending[n:])
	d.pending = d.pending[:n]
	return batch
}

// exec runs one pipeline and hands each caller its result. Callers whose context
// ended meanwhile have returned, and are left out. The pipeline runs until the
// latest deadline of its callers; cmds is reused from the last call.
func (d *Deleter) exec(base context.Context, batch []*deleteCall, cmds []*redis.IntCmd) []*redis.IntCmd {
	var (
		deadline time.Time
		bounded  = true
	)
	live := batch[:0]
	for _, c := range batch {
		if c.ctx.Err() != nil {
			continue
		}
		live = append(live, c)
		if dl, ok := c.ctx.Deadline(); !ok {
			bounded = false
		} else if dl.After(deadline) {
			deadline = dl
		}
	}
	clear(batch[len(live):])
	if len(live) == 0 {
		return cmds
	}
	ctx := base
	if bounded {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(base, deadline)
		defer cancel()
	}
	pipe := d.q.rdb.Pipeline()
	cmds = cmds[:0]
	for _, c := range live {
		cmds = append(cmds, pipe.XDel(ctx, c.key, c.ids...))
	}
	// Exec's error is the first failed command's; each command carries its own,
	// and on a Cluster a node that fails fails only the deletes it holds.
	_, _ = pipe.Exec(ctx)
	for i, c := range live {
		c.n, c.err = cmds[i].Result()
		if c.err != nil {
			c.n, c.err = 0, fmt.Errorf("queue delete: %w", c.err)
		}
		c.done <- struct{}{}
	}
	clear(cmds) // the commands hold their callers' ids
	return cmds
}
