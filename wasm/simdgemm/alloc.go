package simdgemm

import "sort"

// align is the alignment of every block: one f32x4 vector.
const align = 16

// arena hands out blocks of the module's linear memory above its heap base.
// First fit over a free list kept sorted by offset, with neighbours merged
// on release, so that a run of shards of the same shapes reuses the same
// blocks. Offset 0 is never returned (the kernel reads 0 as "none").
type arena struct {
	end   uint32            // first byte past the managed memory
	free  []span            // sorted by off, never adjacent
	sizes map[uint32]uint32 // live blocks: offset → size
}

type span struct{ off, n uint32 }

func newArena(base, end uint32) *arena {
	base = roundUp(max(base, align), align)
	a := &arena{end: base, sizes: make(map[uint32]uint32)}
	a.extend(end)
	return a
}

func roundUp(n, to uint32) uint32 { return (n + to - 1) / to * to }

// extend adds [a.end, end) to the free space (after the memory grew).
func (a *arena) extend(end uint32) {
	if end <= a.end {
		return
	}
	a.insert(span{a.end, end - a.end})
	a.end = end
}

// alloc returns the offset of a free block of n bytes (at least one
// vector), or false when no free span is large enough.
func (a *arena) alloc(n uint32) (uint32, bool) {
	n = roundUp(max(n, 1), align)
	for i, s := range a.free {
		if s.n < n {
			continue
		}
		if s.n == n {
			a.free = append(a.free[:i], a.free[i+1:]...)
		} else {
			a.free[i] = span{s.off + n, s.n - n}
		}
		a.sizes[s.off] = n
		return s.off, true
	}
	return 0, false
}

// release frees the block at off. Releasing an offset that is not a live
// block is a programmer error.
func (a *arena) release(off uint32) {
	n, ok := a.sizes[off]
	if !ok {
		panic("simdgemm: release of a block that is not allocated")
	}
	delete(a.sizes, off)
	a.insert(span{off, n})
}

// insert adds s to the free list, merging it with its neighbours.
func (a *arena) insert(s span) {
	i := sort.Search(len(a.free), func(i int) bool { return a.free[i].off > s.off })
	if i > 0 && a.free[i-1].off+a.free[i-1].n == s.off {
		i--
		s = span{a.free[i].off, a.free[i].n + s.n}
		a.free = append(a.free[:i], a.free[i+1:]...)
	}
	if i < len(a.free) && s.off+s.n == a.free[i].off {
		s.n += a.free[i].n
		a.free = append(a.free[:i], a.free[i+1:]...)
	}
	a.free = append(a.free, span{})
	copy(a.free[i+1:], a.free[i:])
	a.free[i] = s
}

// tail is the size of the free span that ends at a.end (0 if none): growing
// the memory by n bytes makes a block of tail+n bytes possible.
func (a *arena) tail() uint32 {
	if len(a.free) == 0 {
		return 0
	}
	last := a.free[len(a.free)-1]
	if last.off+last.n == a.end {
		return last.n
	}
	return 0
}

// inUse returns the bytes held by live blocks.
func (a *arena) inUse() uint32 {
	var n uint32
	for _, s := range a.sizes {
		n += s
	}
	return n
}
