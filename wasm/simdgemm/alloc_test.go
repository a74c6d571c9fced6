package simdgemm

import (
	"math/rand/v2"
	"testing"
)

func TestArena(t *testing.T) {
	a := newArena(100, 1100) // base rounds up to 112
	x, ok := a.alloc(10)
	if !ok || x != 112 {
		t.Fatalf("first block at %d (%v), want 112", x, ok)
	}
	y, _ := a.alloc(32)
	z, _ := a.alloc(16)
	if y != 128 || z != 160 {
		t.Fatalf("blocks at %d, %d; want 128, 160", y, z)
	}
	a.release(y)
	if w, _ := a.alloc(20); w != 128 {
		t.Fatalf("first fit: got %d, want 128 (the freed block)", w)
	}
	a.release(128)
	a.release(x)
	a.release(z)
	if len(a.free) != 1 || a.free[0] != (span{112, 1100 - 112}) {
		t.Fatalf("free list after releasing everything: %v, want one span [112, 1100)", a.free)
	}
	if _, ok := a.alloc(2000); ok {
		t.Fatal("a block larger than the arena was handed out")
	}
	if a.tail() != 988 {
		t.Fatalf("tail %d, want 988", a.tail())
	}
	a.extend(2200)
	if b, ok := a.alloc(2000); !ok || b != 112 {
		t.Fatalf("after extend: block at %d (%v), want 112: the grown memory merges with the free tail", b, ok)
	}
	if a.tail() != 2200-112-2000 {
		t.Fatalf("tail %d", a.tail())
	}
}

func TestArenaZeroSize(t *testing.T) {
	a := newArena(0, 64) // never hands out offset 0
	x, _ := a.alloc(0)
	y, _ := a.alloc(0)
	if x == 0 || x == y {
		t.Fatalf("zero-size blocks at %d and %d: want distinct, non-zero offsets", x, y)
	}
}

func TestArenaReleaseUnknownPanics(t *testing.T) {
	a := newArena(16, 1024)
	defer func() {
		if recover() == nil {
			t.Fatal("releasing a block never allocated did not panic")
		}
	}()
	a.release(16)
}

// TestArenaRandom checks the invariants under random traffic: live blocks
// never overlap, stay aligned and inside the arena, the free list stays
// sorted and merged, and free plus live bytes cover the arena.
func TestArenaRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	a := newArena(48, 1<<16)
	var live []uint32
	for step := range 5000 {
		if len(live) > 0 && rng.IntN(2) == 0 {
			i := rng.IntN(len(live))
			a.release(live[i])
			live = append(live[:i], live[i+1:]...)
		} else if off, ok := a.alloc(uint32(rng.IntN(900))); ok {
			live = append(live, off)
		}
		if step%7 == 0 {
			checkArena(t, a)
		}
	}
	for _, off := range live {
		a.release(off)
	}
	checkArena(t, a)
	if len(a.free) != 1 {
		t.Fatalf("free list not merged back into one span: %v", a.free)
	}
}

func checkArena(t *testing.T, a *arena) {
	t.Helper()
	type blk struct{ off, n uint32 }
	var all []blk
	var total uint32
	for _, s := range a.free {
		all = append(all, blk(s))
		total += s.n
	}
	for i := 1; i < len(a.free); i++ {
		if a.free[i-1].off+a.free[i-1].n >= a.free[i].off {
			t.Fatalf("free list unsorted or unmerged: %v", a.free)
		}
	}
	for off, n := range a.sizes {
		if off%align != 0 || n%align != 0 {
			t.Fatalf("block %d+%d not aligned", off, n)
		}
		all = append(all, blk{off, n})
		total += n
	}
	base := roundUp(48, align)
	if total != a.end-base {
		t.Fatalf("free %v and live blocks cover %d bytes, want %d", a.free, total, a.end-base)
	}
	for i, x := range all {
		if x.off < base || x.off+x.n > a.end {
			t.Fatalf("span %v outside [%d, %d)", x, base, a.end)
		}
		for _, y := range all[i+1:] {
			if x.off < y.off+y.n && y.off < x.off+x.n {
				t.Fatalf("spans %v and %v overlap", x, y)
			}
		}
	}
}
