package verify

import (
	"cmp"
	mrand "math/rand/v2"
	"slices"
	"unsafe"

	"github.com/neurolov/neurolov/tensor"
)

// Item is one result to check: its shard's kernel and inputs, and the
// worker's outputs.
type Item struct {
	Kernel          string
	Inputs, Outputs []*tensor.Tensor
}

// batchItem is one item of CheckAll: its layers, v.batch[lo:hi], or that
// its shapes failed (bad; its verdict is already set).
type batchItem struct {
	lo, hi int
	bad    bool
}

// batchVec locates one layer's r (n entries) in v.rs and its B·r (k
// entries) in v.brs.
type batchVec struct{ r, br int }

// productBlock is the size of the blocks of rows of a shared B that
// CheckAll multiplies by every vector in turn: small enough to stay in
// the L2 cache (and leave room for the vectors), so that the block is
// read from memory once however many results share B.
const productBlock = 64 << 10

// CheckAll checks every item as Check does — the same checks, the same
// thresholds, spots spot checks each — and returns their verdicts in
// the order of items (nil for none). An item whose shapes fail gets the
// Verdict Check gives it and leaves the others undisturbed.
//
// Every item gets its own fresh vectors, one per product as in Check,
// used for that item only, even when two items share tensors (the same
// result twice gets two independent sets). They are drawn from rng in
// item order and layer order before any is used, so the caller must
// call CheckAll only once every item's result has arrived (as Check must
// be called only after its result has). Items whose products share a
// right-hand matrix — the same *tensor.Tensor viewed with the same
// shape: every weight of an mlp-infer job, the B of a column of matmul
// tiles — compute their B·r_v in one pass over it, in blocks of rows
// that stay in cache while every vector is applied, so that B is read
// from memory once per batch rather than once per item; the rest of each
// check (A, C, spot checks, then the next item) runs item by item, and
// spot checks draw from rng after all the vectors.
//
// Given the same vectors, each Verdict is exactly the one Check gives.
// A batch of one is Check itself: the same draws, the same Verdict and
// rng left in the same state (a larger batch draws every item's vectors
// even for an item that fails before its last product).
func (v *Verifier) CheckAll(items []Item, rng *mrand.Rand, spots int) []Verdict {
	if len(items) == 0 {
		return nil
	}
	if len(items) == 1 {
		it := &items[0]
		return []Verdict{v.Check(it.Kernel, it.Inputs, it.Outputs, rng, spots)}
	}
	out := make([]Verdict, len(items))
	clear(v.batch) // hold no tensors of an earlier batch
	v.batch, v.items = v.batch[:0], v.items[:0]
	for i := range items {
		it := &items[i]
		lo := len(v.batch)
		var err error
		v.batch, err = appendLayers(v.batch, it.Kernel, it.Inputs, it.Outputs)
		if err != nil {
			clear(v.batch[lo:]) // the layers appended before the error
			v.batch = v.batch[:lo]
			out[i] = errVerdict(err)
			v.items = append(v.items, batchItem{lo: lo, hi: lo, bad: true})
			continue
		}
		v.items = append(v.items, batchItem{lo: lo, hi: len(v.batch)})
	}

	// Phase one: every vector, in item order and layer order, then the
	// products B·r, one pass per distinct B.
	v.vecs = v.vecs[:0]
	nr, nbr := 0, 0
	for li := range v.batch {
		v.vecs = append(v.vecs, batchVec{nr, nbr})
		nr += v.batch[li].n
		nbr += v.batch[li].k
	}
	rs, brs := grow(&v.rs, nr), grow(&v.brs, nbr)
	for li := range v.batch {
		at := v.vecs[li].r
		drawVector(rs[at:at+v.batch[li].n], rng)
	}
	v.batchProducts(rs, brs)

	// Phase two, item by item: the rest of Freivalds' check, then the
	// spot checks, as Check does.
	for i, it := range v.items {
		if it.bad {
			continue
		}
		ls := v.batch[it.lo:it.hi]
		out[i] = v.withSpots(ls, v.freivaldsDrawn(ls, v.vecs[it.lo:it.hi], rs, brs), rng, spots)
	}
	clear(v.batch)
	v.batch = v.batch[:0]
	return out
}

// freivaldsDrawn is freivalds for layers whose vectors and products are
// already computed (vecs locates them in rs and brs).
func (v *Verifier) freivaldsDrawn(ls []layer, vecs []batchVec, rs, brs []float64) Verdict {
	var sum Verdict
	for li := range ls {
		l, at := &ls[li], vecs[li]
		in, bad := v.productInputs(l)
		if bad != nil {
			return *bad
		}
		vd := v.checkProduct(l, in, rs[at.r:at.r+l.n], brs[at.br:at.br+l.k])
		if !vd.OK {
			return vd
		}
		sum = addPassed(sum, vd)
	}
	sum.OK, sum.Method = true, MethodFreivalds
	return sum
}

// batchProducts sets every layer's B·r in brs: it sorts the layers by
// their B (tensor, then shape) and computes each group's products in one
// pass.
func (v *Verifier) batchProducts(rs, brs []float64) {
	ls := v.batch
	order := v.order[:0]
	for li := range ls {
		order = append(order, int32(li))
	}
	v.order = order
	slices.SortFunc(order, func(x, y int32) int {
		if c := compareB(&ls[x], &ls[y]); c != 0 {
			return c
		}
		return cmp.Compare(x, y)
	})
	for lo := 0; lo < len(order); {
		hi := lo + 1
		for hi < len(order) && compareB(&ls[order[lo]], &ls[order[hi]]) == 0 {
			hi++
		}
		v.groupProducts(order[lo:hi], rs, brs)
		lo = hi
	}
}

// compareB orders layers by their right-hand matrix: the tensor, then
// the shape it is viewed with. Layers that compare equal multiply the
// same data.
func compareB(a, b *layer) int {
	if c := cmp.Compare(uintptr(unsafe.Pointer(a.bIn)), uintptr(unsafe.Pointer(b.bIn))); c != 0 {
		return c
	}
	if c := cmp.Compare(a.k, b.k); c != 0 {
		return c
	}
	return cmp.Compare(a.n, b.n)
}

// groupProducts sets B·r for the layers group, which share B. One layer
// takes one gemv; several walk B in blocks of rows that fit productBlock
// and apply every vector to each block, four at a time with gemv4 (which
// converts each element once for the four) and the rest with gemv, so
// that the block is read from memory once and converted once per four
// vectors. A block holds a multiple of four rows, so that gemv groups the
// rows as it does over the whole of B, and gemv4 sums as gemv does: every
// product has the bits one gemv gives.
func (v *Verifier) groupProducts(group []int32, rs, brs []float64) {
	l := &v.batch[group[0]]
	k, n := l.k, l.n
	if len(group) == 1 {
		at := v.vecs[group[0]]
		gemv(l.b, n, rs[at.r:at.r+n], brs[at.br:at.br+k])
		return
	}
	rows := max(4, productBlock/(4*max(n, 1))&^3)
	for i0 := 0; i0 < k; i0 += rows {
		i1 := min(i0+rows, k)
		block := l.b[i0*n : i1*n]
		g := group
		for ; len(g) >= 4; g = g[4:] { // four vectors per pass over the block
			var x, out [4][]float64
			for q, li := range g[:4] {
				at := v.vecs[li]
				x[q], out[q] = rs[at.r:at.r+n], brs[at.br+i0:at.br+i1]
			}
			gemv4(block, n, &x, &out)
		}
		for _, li := range g {
			at := v.vecs[li]
			gemv(block, n, rs[at.r:at.r+n], brs[at.br+i0:at.br+i1])
		}
	}
}
