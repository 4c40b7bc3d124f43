package vapid

import (
	"container/list"
	"strings"
	"sync"
)

// cacheKey is the exact token and key strings a verification was for.
// Keying on both means a cached token never vouches for another key.
type cacheKey struct {
	token, key string
}

type cacheEntry struct {
	key    cacheKey
	claims Claims
}

// verifiedCache is a bounded least-recently-used map from credentials to
// the claims of their verified token. It is safe for concurrent use. A nil
// *verifiedCache caches nothing.
type verifiedCache struct {
	limit int

	mu    sync.Mutex
	order *list.List // of *cacheEntry, most recently used first
	index map[cacheKey]*list.Element
}

// newVerifiedCache returns a cache of at most limit entries, or nil if limit
// is not positive.
func newVerifiedCache(limit int) *verifiedCache {
	if limit <= 0 {
		return nil
	}
	return &verifiedCache{limit: limit, order: list.New(), index: make(map[cacheKey]*list.Element)}
}

func (c *verifiedCache) get(k cacheKey) (Claims, bool) {
	if c == nil {
		return Claims{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.index[k]
	if !ok {
		return Claims{}, false
	}
	c.order.MoveToFront(e)
	return e.Value.(*cacheEntry).claims, true
}

// add records claims for k, evicting the least recently used entry if the
// cache is full.
func (c *verifiedCache) add(k cacheKey, claims Claims) {
	if c == nil {
		return
	}
	// The strings may point into a larger request buffer; keep only the
	// bytes the key needs.
	k = cacheKey{strings.Clone(k.token), strings.Clone(k.key)}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.index[k]; ok {
		e.Value.(*cacheEntry).claims = claims
		c.order.MoveToFront(e)
		return
	}
	c.index[k] = c.order.PushFront(&cacheEntry{key: k, claims: claims})
	if c.order.Len() > c.limit {
		oldest := c.order.Back()
		c.order.Remove(oldest)
		delete(c.index, oldest.Value.(*cacheEntry).key)
	}
}

func (c *verifiedCache) remove(k cacheKey) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.index[k]; ok {
		c.order.Remove(e)
		delete(c.index, k)
	}
}

func (c *verifiedCache) len() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
