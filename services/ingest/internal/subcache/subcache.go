// Package subcache keeps the subscriptions ingest looked up in Postgres for a few
// seconds, so that a stream of messages to one endpoint costs one query, not one
// each.
//
// Only found subscriptions are kept, and a cached one may be stale: unregistered,
// or registered again with another application server key, since it was read. The
// gateway records each such change where the router checks every message
// (queue.ChangeMemory, longer than any entry lives here), and the router refuses a
// message whose subscription changed: NotFound, or Aborted for another key, after
// which ingest calls Forget and looks the subscription up again.
package subcache

import (
	"context"
	"sync"
	"time"

	"github.com/herald-push/herald/pkg/ids"
	"github.com/herald-push/herald/pkg/store"
)

// Store finds a subscription in Postgres.
type Store interface {
	Subscription(ctx context.Context, u ids.UAID, ch ids.ChannelID) (store.Subscription, error)
}

// shards spreads the entries over this many locks; uaids are random, so their
// last byte spreads them evenly.
const shards = 64

// Cache is a Store that remembers what it found for a while.
type Cache struct {
	store    Store
	ttl      time.Duration
	perShard int
	now      func() time.Time
	shards   [shards]shard
}

type shard struct {
	mu sync.Mutex
	m  map[key]entry
}

type key struct {
	u  ids.UAID
	ch ids.ChannelID
}

type entry struct {
	appKey  []byte
	expires time.Time
}

// New returns a Cache in front of st keeping each found subscription for ttl, and
// at most about size of them. A ttl of 0 (or a size below 1) caches nothing.
func New(st Store, ttl time.Duration, size int) *Cache {
	c := &Cache{store: st, ttl: ttl, perShard: (size + shards - 1) / shards, now: time.Now}
	for i := range c.shards {
		c.shards[i].m = map[key]entry{}
	}
	return c
}

func (c *Cache) shard(u ids.UAID) *shard { return &c.shards[u[len(u)-1]%shards] }

// Subscription returns the subscription of u's channel ch, from the cache when it
// holds it, else from the store; store.ErrNotFound when there is none.
func (c *Cache) Subscription(ctx context.Context, u ids.UAID, ch ids.ChannelID) (store.Subscription, error) {
	if c.ttl <= 0 || c.perShard < 1 {
		return c.store.Subscription(ctx, u, ch)
	}
	k := key{u, ch}
	sh := c.shard(u)
	// Taken before the query: an entry must not outlive the change records of a
	// change made while the query ran.
	now := c.now()
	sh.mu.Lock()
	e, ok := sh.m[k]
	sh.mu.Unlock()
	if ok && now.Before(e.expires) {
		return store.Subscription{UAID: u, ChannelID: ch, AppServerKey: e.appKey}, nil
	}
	sub, err := c.store.Subscription(ctx, u, ch)
	if err != nil {
		return sub, err
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if _, ok := sh.m[k]; !ok && len(sh.m) >= c.perShard {
		sh.evict(now)
	}
	sh.m[k] = entry{appKey: sub.AppServerKey, expires: now.Add(c.ttl)}
	return sub, nil
}

// evict makes room for one entry, in constant time: of a few entries taken in the
// map's unspecified (close enough to random) order, an expired one, else the first.
func (sh *shard) evict(now time.Time) {
	const look = 8
	var victim key
	n := 0
	for k, e := range sh.m {
		if n == 0 {
			victim = k
		}
		if !now.Before(e.expires) {
			victim = k
			break
		}
		if n++; n == look {
			break
		}
	}
	delete(sh.m, victim)
}

// Forget drops u's channel ch, which the router found changed.
func (c *Cache) Forget(u ids.UAID, ch ids.ChannelID) {
	sh := c.shard(u)
	sh.mu.Lock()
	delete(sh.m, key{u, ch})
	sh.mu.Unlock()
}
