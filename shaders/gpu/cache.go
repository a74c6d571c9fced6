package gpu

import (
	"container/list"
	"math/bits"
)

// sizeClass rounds a buffer size up to the pool's size class: a power of
// two, at least 256 bytes, so that buffers are reused across similar shapes.
func sizeClass(n uint64) uint64 {
	if n <= 256 {
		return 256
	}
	return 1 << bits.Len64(n-1)
}

// pool keeps idle buffers by (usage, size class) for reuse, up to maxIdle
// bytes; beyond that, put destroys them. B is the buffer type (a WebGPU
// buffer; a fake in tests).
type pool[B any] struct {
	free    map[poolKey][]B
	idle    int64
	maxIdle int64
	destroy func(B)
}

type poolKey struct {
	usage uint64
	size  uint64
}

func newPool[B any](maxIdle int64, destroy func(B)) *pool[B] {
	return &pool[B]{free: make(map[poolKey][]B), maxIdle: maxIdle, destroy: destroy}
}

// get returns an idle buffer of the class, if any.
func (p *pool[B]) get(usage, class uint64) (B, bool) {
	k := poolKey{usage, class}
	l := p.free[k]
	if len(l) == 0 {
		var zero B
		return zero, false
	}
	b := l[len(l)-1]
	p.free[k] = l[:len(l)-1]
	p.idle -= int64(class)
	return b, true
}

// put makes b idle, or destroys it when the pool is full.
func (p *pool[B]) put(usage, class uint64, b B) {
	if p.idle+int64(class) > p.maxIdle {
		p.destroy(b)
		return
	}
	k := poolKey{usage, class}
	p.free[k] = append(p.free[k], b)
	p.idle += int64(class)
}

// drain destroys every idle buffer.
func (p *pool[B]) drain() {
	for k, l := range p.free {
		for _, b := range l {
			p.destroy(b)
		}
		delete(p.free, k)
	}
	p.idle = 0
}

// weightCache maps tensor content hashes to device copies, least recently
// used first out. Entries that callers hold (refs > 0) are never evicted;
// the unheld ones are kept within maxBytes. V is the device tensor.
type weightCache[V any] struct {
	entries  map[[32]byte]*list.Element
	lru      list.List // of *weightEntry[V], most recent at the front
	bytes    int64     // all entries
	maxBytes int64
	evict    func(V)
	hits     int64
	misses   int64
}

type weightEntry[V any] struct {
	key   [32]byte
	val   V
	bytes int64
	refs  int
}

func newWeightCache[V any](maxBytes int64, evict func(V)) *weightCache[V] {
	return &weightCache[V]{entries: make(map[[32]byte]*list.Element), maxBytes: maxBytes, evict: evict}
}

// acquire returns the cached value for key and takes a reference to it.
func (c *weightCache[V]) acquire(key [32]byte) (V, bool) {
	e, ok := c.entries[key]
	if !ok {
		c.misses++
		var zero V
		return zero, false
	}
	c.hits++
	c.lru.MoveToFront(e)
	w := e.Value.(*weightEntry[V])
	w.refs++
	return w.val, true
}

// add inserts a value the caller holds (one reference) and evicts unheld
// entries beyond the budget.
func (c *weightCache[V]) add(key [32]byte, val V, bytes int64) {
	w := &weightEntry[V]{key: key, val: val, bytes: bytes, refs: 1}
	c.entries[key] = c.lru.PushFront(w)
	c.bytes += bytes
	c.trim()
}

// release drops a reference taken by acquire or add.
func (c *weightCache[V]) release(key [32]byte) {
	if e, ok := c.entries[key]; ok {
		w := e.Value.(*weightEntry[V])
		if w.refs > 0 {
			w.refs--
		}
		c.trim()
	}
}

// trim evicts unheld entries, least recent first, while over budget.
func (c *weightCache[V]) trim() {
	for e := c.lru.Back(); e != nil && c.bytes > c.maxBytes; {
		prev := e.Prev()
		w := e.Value.(*weightEntry[V])
		if w.refs == 0 {
			c.lru.Remove(e)
			delete(c.entries, w.key)
			c.bytes -= w.bytes
			c.evict(w.val)
		}
		e = prev
	}
}

// clear evicts everything, held or not.
func (c *weightCache[V]) clear() {
	for e := c.lru.Front(); e != nil; e = e.Next() {
		c.evict(e.Value.(*weightEntry[V]).val)
	}
	c.lru.Init()
	clear(c.entries)
	c.bytes = 0
}
