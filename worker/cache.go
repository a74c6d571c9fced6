package worker

import (
	"container/list"
	"sync"

	"github.com/neurolov/neurolov/tensor"
)

// cache keeps tensors by content hash (weights, shared B tiles) up to a
// byte budget, evicting the least recently used.
type cache struct {
	mu    sync.Mutex
	max   int64
	used  int64
	order *list.List // front = most recent; values are *entry
	items map[[32]byte]*list.Element
}

type entry struct {
	hash [32]byte
	t    *tensor.Tensor
}

func newCache(max int64) *cache {
	return &cache{max: max, order: list.New(), items: make(map[[32]byte]*list.Element)}
}

func (c *cache) get(h [32]byte) *tensor.Tensor {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[h]; ok {
		c.order.MoveToFront(e)
		return e.Value.(*entry).t
	}
	return nil
}

func (c *cache) put(h [32]byte, t *tensor.Tensor) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.items[h]; ok {
		return
	}
	c.items[h] = c.order.PushFront(&entry{hash: h, t: t})
	c.used += 4 * int64(t.Len())
	for c.used > c.max && c.order.Len() > 1 {
		old := c.order.Back()
		e := old.Value.(*entry)
		c.order.Remove(old)
		delete(c.items, e.hash)
		c.used -= 4 * int64(e.t.Len())
	}
}
