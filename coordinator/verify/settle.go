package verify

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/neurolov/neurolov/shaders"
	"github.com/neurolov/neurolov/tensor"
)

// MethodSettle names a decision taken by recomputing disputed elements
// exactly (Settle) or a sample of rows (Confirm).
const MethodSettle = "settle"

// SettleSamples is how many disputed elements Settle recomputes at most,
// and ConfirmRows how many rows Confirm recomputes: half of them the rows
// Freivalds' residual points at, half at random (see Confirm).
// Four rows cost about 2% of recomputing a 512×512 tile with K = 256 on
// one core and 3% of an mlp-infer batch of 256 through 784-512-256-10
// (BenchmarkConfirm), and find one element wrong by 1.1 tolerances in
// such a shard every time in our trials.
const (
	SettleSamples = 16
	ConfirmRows   = 4
)

// Settlement is the outcome of Settle.
type Settlement struct {
	// Right says, for each result, whether it was within its bound on
	// every element recomputed; Reasons says why each wrong one is wrong
	// ("" for the right ones).
	Right   []bool
	Reasons []string
	// Disputed counts the elements on which two results differ beyond
	// tolerance, once per pair of results that differ there; Checked is
	// how many distinct ones were recomputed. Every one was when
	// Checked covers them all (Complete).
	Disputed, Checked int
	// Complete is true when every disputed element was recomputed.
	Complete bool
}

// element locates one element of a shard's outputs: output out, row i,
// column j.
type element struct{ out, i, j int }

// disputeSample keeps a uniform random sample of at most size of the
// elements offered to it (reservoir sampling), drawing from rng.
type disputeSample struct {
	rng   *rand.Rand
	size  int
	seen  int
	elems []element
}

func (ds *disputeSample) add(e element) {
	ds.seen++
	if len(ds.elems) < ds.size {
		ds.elems = append(ds.elems, e)
		return
	}
	if r := ds.rng.IntN(ds.seen); r < ds.size {
		ds.elems[r] = e
	}
}

// Settle decides a dispute between results of one shard that do not all
// agree (see Agree), by computation rather than by vote: it draws a
// uniform random sample of at most count of the elements on which some
// two results differ beyond tolerance, recomputes each exactly in float64
// and reports, for each result, whether it lies within its bound there
// (the spot check's ElementBound, which no correct float32 result
// exceeds). For an mlp-infer layer after the first it recomputes the
// sampled row's forward pass from X: the row of every earlier layer, each
// element against the result's own row of the layer before (the first
// from X), then the sampled element. A result of the wrong form is wrong.
//
// Two results that each lie within their bound on an element differ there
// by at most the tolerance (the tolerance is at least the sum of the two
// bounds), so on every disputed element at least one result is wrong:
// a dispute between an honest result and a wrong one always finds the
// wrong one out, and never the honest one. When the disputed elements
// outnumber count, a result wrong on few of them may escape the sample
// (Complete is then false). rng must be a secret source drawn after the
// results arrived (NewSecretRand). The error, wrapping ErrUnverifiable,
// says the shard itself cannot be checked.
func (v *Verifier) Settle(kernel string, inputs []*tensor.Tensor, results [][]*tensor.Tensor, rng *rand.Rand, count int) (Settlement, error) {
	st := Settlement{Right: make([]bool, len(results)), Reasons: make([]string, len(results))}
	ls := make([][]layer, len(results))
	var formed []int // results of the right form
	for r, out := range results {
		var err error
		if ls[r], err = appendLayers(nil, kernel, inputs, out); err != nil {
			if errors.Is(err, ErrUnverifiable) {
				return Settlement{}, err
			}
			st.Reasons[r] = err.Error()
			continue
		}
		st.Right[r] = true
		formed = append(formed, r)
	}
	ds := &disputeSample{rng: rng, size: max(count, 0)}
	for x, a := range formed {
		for _, b := range formed[x+1:] {
			if _, err := v.compare(kernel, inputs, results[a], results[b], ds); err != nil {
				return Settlement{}, err
			}
		}
	}
	clear(v.la) // compare's layers: hold no results
	clear(v.lb)
	slices.SortFunc(ds.elems, func(p, q element) int {
		return cmp.Or(cmp.Compare(p.out, q.out), cmp.Compare(p.i, q.i), cmp.Compare(p.j, q.j))
	})
	ds.elems = slices.Compact(ds.elems)
	st.Disputed, st.Checked, st.Complete = ds.seen, len(ds.elems), ds.seen <= ds.size
	for _, r := range formed {
		why, err := v.wrongAt(ls[r], ds.elems)
		if err != nil {
			return Settlement{}, err
		}
		if why != "" {
			st.Right[r], st.Reasons[r] = false, why
		}
	}
	return st, nil
}

// wrongAt recomputes elems of a result whose layers are ls, and the rows
// of the layers before each (see Settle), and says why the first wrong one
// is wrong, or "" when every one lies within its bound.
func (v *Verifier) wrongAt(ls []layer, elems []element) (string, error) {
	done := make(map[int]bool) // rows whose forward pass was recomputed
	for _, e := range elems {
		if e.out > 0 && !done[e.i] {
			done[e.i] = true
			for li := range e.out {
				if why, err := v.wrongRow(&ls[li], e.i); why != "" || err != nil {
					return why, err
				}
			}
		}
		if why, err := v.wrongElem(&ls[e.out], e.i, e.j); why != "" || err != nil {
			return why, err
		}
	}
	return "", nil
}

// wrongRow recomputes row i of l exactly, from B transposed (which it
// keeps in the input cache), and says why its first element beyond its
// bound is wrong (see wrongElem).
func (v *Verifier) wrongRow(l *layer, i int) (string, error) {
	if l.bIn == nil { // nothing to cache B's transpose by
		for j := range l.n {
			if why, err := v.wrongElem(l, i, j); why != "" || err != nil {
				return why, err
			}
		}
		return "", nil
	}
	cols := v.inputs.transposed(l.bIn, l.k, l.n)
	val, abs, sumB := grow(&v.rowVal, l.n), grow(&v.rowAbs, l.n), grow(&v.rowSumB, l.n)
	sumA := l.exactRowCols(i, cols, grow(&v.rowX, l.k), grow(&v.rowXA, l.k), val, abs, sumB)
	for j := range l.n {
		if why, err := l.wrongAgainst(i, j, exactElem{val: val[j], abs: abs[j], sumA: sumA, sumB: sumB[j]}); why != "" || err != nil {
			return why, err
		}
	}
	return "", nil
}

// wrongElem recomputes element (i, j) of l exactly and says why it lies
// beyond its bound, or "" when it does not. Inputs holding NaN or ±Inf
// are an error wrapping ErrUnverifiable.
func (v *Verifier) wrongElem(l *layer, i, j int) (string, error) {
	if l.bCols == nil && l.bIn != nil {
		l.bCols = v.inputs.columns(l.bIn, l.k, l.n)
	}
	return l.wrongAgainst(i, j, l.exact(i, j))
}

// wrongAgainst says why element (i, j) of l lies beyond its bound given
// e, its exact recomputation, or "" when it does not (see wrongElem).
func (l *layer) wrongAgainst(i, j int, e exactElem) (string, error) {
	if math.IsNaN(e.val) || math.IsInf(e.abs, 0) {
		return "", inputsError(l.out)
	}
	bound := elementBound(l.terms(), e.abs, e.sumA, e.sumB)
	got := float64(l.c[i*l.n+j])
	if d := math.Abs(got - e.val); !(d <= bound) {
		return fmt.Sprintf("output %d element (%d, %d) = %.9g but exact value %.9g, off by %.3g, %.3g× its bound %.3g",
			l.out, i, j, got, e.val, d, d/bound, bound), nil
	}
	return "", nil
}

// Confirm recomputes exactly rows rows of a result — every element of
// each, and for mlp-infer the row's whole forward pass from X, every
// layer against the result's own layer before — and passes it when every
// element lies within its bound. It is the coordinator's own confirmation
// of a result, beyond the worker's word and the replicas' agreement: a
// result must pass it (or a Settle) before it may become a canary's known
// answer.
//
// Which rows: it first takes Freivalds' residual of every row,
// |C·r − A·(B·r)|_i over the row's probabilistic bound, with a fresh
// vector per product drawn from rng (the largest over the layers, for
// mlp-infer), then recomputes the ⌈rows/2⌉ rows whose residual is largest
// and ⌊rows/2⌋ drawn uniformly from the others. An element wrong by a few
// tolerances lifts its row's residual far above an honest row's, which
// stays well under the bound, so the first half finds a few wrong
// elements with high probability, where rows drawn at random would find
// four in a 512-row tile about rows/128 of the time. The random half is
// what is left against a result that lifts more rows than the first half
// covers (errors within their bounds on rows of its choosing): an error
// in one row is then found with probability about (rows/2)/m. rng must be
// a secret source (NewSecretRand). It costs a Freivalds pass, O(mk + kn +
// mn) per product, and O(rows·Σ K·N) for the rows; the first Confirm or
// Settle of a B also transposes it, which the Verifier then keeps.
func (v *Verifier) Confirm(kernel string, inputs, outputs []*tensor.Tensor, rng *rand.Rand, rows int) Verdict {
	ls, bad := v.layers(kernel, inputs, outputs)
	if bad != nil {
		return *bad
	}
	defer clear(v.la) // hold no result
	if rows <= 0 || ls[0].m == 0 {
		return Verdict{OK: true, Method: MethodSettle}
	}
	rank, bad := v.rankRows(ls, rng)
	if bad != nil {
		return *bad
	}
	for _, f := range pickRows(rank, rows, rng) {
		for li := range ls {
			why, err := v.wrongRow(&ls[li], f.i)
			if err != nil {
				return errVerdict(err)
			}
			if why != "" {
				return Verdict{Reason: "confirmation: " + why, Method: MethodSettle}
			}
		}
	}
	return Verdict{OK: true, Method: MethodSettle}
}

// rankRows returns every row of the layers ls (which share their rows)
// with its Freivalds residual over its probabilistic bound, the largest
// over the layers (+Inf for NaN), drawing each product's vector from rng;
// or a failed Verdict when the inputs are not finite.
func (v *Verifier) rankRows(ls []layer, rng *rand.Rand) ([]flaggedRow, *Verdict) {
	m := ls[0].m
	rank := v.ranked[:0]
	for i := range m {
		rank = append(rank, flaggedRow{i: i})
	}
	v.ranked = rank
	for li := range ls {
		l := &ls[li]
		in, bad := v.productInputs(l)
		if bad != nil {
			return nil, bad
		}
		r, br := grow(&v.r, l.n), grow(&v.br, l.k)
		drawProduct(l, rng, r, br)
		pb, biasR := v.residuals(l, in, r, br)
		for i := range m {
			score := math.Abs(v.cr[i]-(v.pred[i]+biasR)) / (pb.term(v.predSq[i]) + tiny)
			if math.IsNaN(score) {
				score = math.Inf(1)
			}
			rank[i].ratio = max(rank[i].ratio, score)
		}
	}
	return rank, nil
}

// pickRows moves to the front of rank the min(rows, len(rank)) rows
// Confirm recomputes — the ⌈rows/2⌉ of largest ratio, then ⌊rows/2⌋ drawn
// uniformly from the rest (a partial Fisher–Yates shuffle) — and returns
// them. Choosing the first few by selection costs O(len(rank)) each.
func pickRows(rank []flaggedRow, rows int, rng *rand.Rand) []flaggedRow {
	total := min(rows, len(rank))
	top := min((rows+1)/2, total)
	for x := range top {
		best := x
		for y := x + 1; y < len(rank); y++ {
			if rank[y].ratio > rank[best].ratio {
				best = y
			}
		}
		rank[x], rank[best] = rank[best], rank[x]
	}
	for x := top; x < total; x++ {
		y := x + rng.IntN(len(rank)-x)
		rank[x], rank[y] = rank[y], rank[x]
	}
	return rank[:total]
}

// Doable reports why a shard of kernel with inputs can never be computed
// (an error wrapping ErrUnverifiable), or nil: its inputs must fit the
// kernel and every dimension must be at least 1. It is what the coordinator knows of a shard
// without a result, and it costs O(len(inputs)).
func Doable(kernel string, inputs []*tensor.Tensor) error {
	for i, t := range inputs {
		if t == nil || tensor.NumElements(t.Shape) != len(t.Data) {
			return fmt.Errorf("%w: %w: input %d is nil or its data does not fit its shape", ErrUnverifiable, shaders.ErrInputs, i)
		}
		if slices.Contains(t.Shape, 0) {
			return fmt.Errorf("%w: %w: input %d has the empty shape %v", ErrUnverifiable, shaders.ErrInputs, i, t.Shape)
		}
	}
	if _, err := shaders.OutputShapes(kernel, inputs); err != nil {
		return fmt.Errorf("%w: %w", ErrUnverifiable, err)
	}
	return nil
}
