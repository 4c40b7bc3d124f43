package telemetry

import (
	"maps"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Attrs is an attribute set made ready to measure with. Building a set (sorting,
// hashing) and wrapping it in an option cost more than the measurement itself, and
// metric.WithAttributes does both on every call; an Attrs does them once. Its
// options are held in the slices that Add and Record take, so passing them with
// `...` does not allocate either (a single option argument to an interface method
// escapes to the heap).
type Attrs struct {
	opt    metric.MeasurementOption
	add    []metric.AddOption
	record []metric.RecordOption
}

// NewAttrs builds the set of kvs once.
func NewAttrs(kvs ...attribute.KeyValue) *Attrs {
	o := metric.WithAttributeSet(attribute.NewSet(kvs...))
	return &Attrs{opt: o, add: []metric.AddOption{o}, record: []metric.RecordOption{o}}
}

// AddOptions are the options of a counter's Add: c.Add(ctx, n, a.AddOptions()...).
// They are shared: do not change them.
func (a *Attrs) AddOptions() []metric.AddOption { return a.add }

// RecordOptions are the options of a histogram's Record: h.Record(ctx, v,
// a.RecordOptions()...). They are shared: do not change them.
func (a *Attrs) RecordOptions() []metric.RecordOption { return a.record }

// Option is the measurement option alone, for a call site that takes one.
func (a *Attrs) Option() metric.MeasurementOption { return a.opt }

// maxCachedAttrs bounds an AttrCache. Herald's keys are few (command names, gRPC
// methods and codes, HTTP statuses), but some come and go (gateway addresses) or
// come from the network (an HTTP Host header).
const maxCachedAttrs = 256

// AttrCache hands out the Attrs of keys whose attribute sets are built on first
// use: for attributes known only when measuring (a Redis command's name, a gRPC
// call's method and code). Reads take no lock: the map is replaced, never changed,
// and only a new key takes the mutex. Once it holds maxCachedAttrs keys it starts
// afresh, so that keys that come and go cannot grow it without bound.
type AttrCache[K comparable] struct {
	build func(K) []attribute.KeyValue
	mu    sync.Mutex // held to add a key
	m     atomic.Pointer[map[K]*Attrs]
}

// NewAttrCache returns a cache whose keys' attributes are build(key); build is
// called once per key (again if the cache started afresh), never concurrently.
func NewAttrCache[K comparable](build func(K) []attribute.KeyValue) *AttrCache[K] {
	return &AttrCache[K]{build: build}
}

// Get returns the Attrs of k.
func (c *AttrCache[K]) Get(k K) *Attrs {
	if m := c.m.Load(); m != nil {
		if a, ok := (*m)[k]; ok {
			return a
		}
	}
	return c.add(k)
}

func (c *AttrCache[K]) add(k K) *Attrs {
	c.mu.Lock()
	defer c.mu.Unlock()
	var old map[K]*Attrs
	if p := c.m.Load(); p != nil {
		old = *p
	}
	if a, ok := old[k]; ok {
		return a // added while this call waited for the mutex
	}
	if len(old) >= maxCachedAttrs {
		old = nil
	}
	m := make(map[K]*Attrs, len(old)+1)
	maps.Copy(m, old)
	a := NewAttrs(c.build(k)...)
	m[k] = a
	c.m.Store(&m)
	return a
}
