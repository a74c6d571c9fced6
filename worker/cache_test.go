package worker

import (
	"testing"

	"github.com/neurolov/neurolov/tensor"
)

func TestCacheEvictsLeastRecentlyUsedWithinBudget(t *testing.T) {
	c := newCache(3 * 4 * 100) // three 100-element tensors
	h := func(b byte) [32]byte { return [32]byte{b} }
	for b := byte(1); b <= 3; b++ {
		c.put(h(b), tensor.New(100))
	}
	if c.get(h(1)) == nil { // touch 1: 2 is now the oldest
		t.Fatal("tensor 1 missing")
	}
	c.put(h(4), tensor.New(100))
	if c.get(h(2)) != nil {
		t.Fatal("tensor 2 should have been evicted")
	}
	for _, b := range []byte{1, 3, 4} {
		if c.get(h(b)) == nil {
			t.Fatalf("tensor %d evicted", b)
		}
	}
	if c.used != 3*4*100 {
		t.Fatalf("used = %d", c.used)
	}
	// A tensor larger than the budget is kept alone (the shard needs it).
	c.put(h(9), tensor.New(1000))
	if c.get(h(9)) == nil || c.order.Len() != 1 {
		t.Fatalf("oversized tensor: %d entries", c.order.Len())
	}
}
