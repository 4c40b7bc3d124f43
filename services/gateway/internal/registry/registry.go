// Package registry holds the connected user agents of one gateway, sharded by uaid so
// that deliveries for different user agents do not contend on one lock.
package registry

import (
	"sync"

	"github.com/herald-push/herald/pkg/ids"
)

const shards = 64

// Registry maps uaids to values (the gateway stores its sessions).
type Registry[V comparable] struct {
	shards [shards]shard[V]
}

type shard[V comparable] struct {
	mu sync.RWMutex
	m  map[ids.UAID]V
}

// New returns an empty Registry.
func New[V comparable]() *Registry[V] {
	r := &Registry[V]{}
	for i := range r.shards {
		r.shards[i].m = map[ids.UAID]V{}
	}
	return r
}

func (r *Registry[V]) shard(u ids.UAID) *shard[V] {
	// uaids are random, so their first byte spreads evenly.
	return &r.shards[int(u[0])%shards]
}

// Put stores v for u and returns the value it replaced, if any.
func (r *Registry[V]) Put(u ids.UAID, v V) (old V, replaced bool) {
	s := r.shard(u)
	s.mu.Lock()
	defer s.mu.Unlock()
	old, replaced = s.m[u]
	s.m[u] = v
	return old, replaced
}

// Get returns the value for u.
func (r *Registry[V]) Get(u ids.UAID) (V, bool) {
	s := r.shard(u)
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, ok := s.m[u]
	return v, ok
}

// Remove deletes u's entry only if it still holds v, so that a closing connection
// does not remove the newer one that took over.
func (r *Registry[V]) Remove(u ids.UAID, v V) bool {
	s := r.shard(u)
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.m[u]; ok && cur == v {
		delete(s.m, u)
		return true
	}
	return false
}

// Len returns the number of entries.
func (r *Registry[V]) Len() int {
	n := 0
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}

// Each calls f for every entry, one shard at a time, without holding a lock while f runs.
func (r *Registry[V]) Each(f func(ids.UAID, V)) {
	type kv struct {
		u ids.UAID
		v V
	}
	var batch []kv
	for i := range r.shards {
		s := &r.shards[i]
		batch = batch[:0]
		s.mu.RLock()
		for u, v := range s.m {
			batch = append(batch, kv{u, v})
		}
		s.mu.RUnlock()
		for _, e := range batch {
			f(e.u, e.v)
		}
	}
}
