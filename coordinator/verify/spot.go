package verify

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/neurolov/neurolov/tensor"
)

// SpotCheck recomputes count output elements, drawn uniformly (with
// replacement) over all the outputs of the result, exactly in float64 at
// O(K) each, and compares each with its own bound (ElementBound). It
// catches any perturbation above that bound in an element it draws, so a
// result with e wrong elements out of N escapes with probability
// (1 − e/N)^count.
func (v *Verifier) SpotCheck(kernel string, inputs, outputs []*tensor.Tensor, rng *rand.Rand, count int) Verdict {
	ls, bad := v.layers(kernel, inputs, outputs)
	if bad != nil {
		return *bad
	}
	return v.spotCheck(ls, rng, count)
}

func (v *Verifier) spotCheck(ls []layer, rng *rand.Rand, count int) Verdict {
	total := 0
	for i := range ls {
		total += ls[i].m * ls[i].n
	}
	worst := 0.0
	for range count {
		if total == 0 {
			break
		}
		g := rng.IntN(total)
		li := 0
		for g >= ls[li].m*ls[li].n {
			g -= ls[li].m * ls[li].n
			li++
		}
		l := &ls[li]
		if l.bCols == nil && l.bIn != nil {
			l.bCols = v.inputs.columns(l.bIn, l.k, l.n)
		}
		i, j := g/l.n, g%l.n
		e := l.exact(i, j)
		bound := elementBound(l.terms(), e.abs, e.sumA, e.sumB)
		got := float64(l.c[i*l.n+j])
		d := math.Abs(got - e.val)
		if d <= bound {
			worst = max(worst, d/bound)
			continue
		}
		if vd, ok := diagnose(l, i, j); ok {
			return vd
		}
		if math.IsNaN(e.val) || math.IsInf(e.abs, 0) || math.IsInf(bound, 0) {
			return errVerdict(inputsError(l.out))
		}
		return Verdict{
			Reason: fmt.Sprintf("spot check: output %d element (%d, %d) = %.9g but exact value %.9g, off by %.3g, %.3g× its bound %.3g",
				l.out, i, j, got, e.val, d, d/bound, bound),
			Method: MethodSpot,
			Ratio:  d / bound,
		}
	}
	return Verdict{OK: true, Method: MethodSpot, Ratio: worst}
}
