package verify

import (
	"errors"
	"fmt"
	"math"

	"github.com/neurolov/neurolov/tensor"
)

// Comparison is the outcome of comparing two results of one shard.
type Comparison struct {
	// Agree is true when every element of every output is within its
	// tolerance.
	Agree bool
	// MaxRatio is the largest |a−b| / tol over all elements (+Inf when an
	// element is NaN or ±Inf); below 1 agrees. Useful for calibration.
	MaxRatio float64
	// Output, Row and Col locate the first element that disagrees (in
	// output order, then row-major); all -1 when the results agree or a
	// result has the wrong form.
	Output, Row, Col int
	// Reason says, for people, why the results disagree ("" when they
	// agree).
	Reason string
}

// Agree compares two results a and b of the same shard element by
// element: |a_ij − b_ij| ≤ tol_ij, where tol_ij (see ElementTolerance) is
// twice the float32 bound Safety·γ_K'·Σ_k|a_ik·b_kj| with the sum bounded
// by Cauchy–Schwarz from row and column norms, ‖A_i‖₂·‖B_·j‖₂ (+|bias_j|),
// plus a tiny term for flushed subnormals and, for mlp-infer layers after
// the first, the difference the replicas carried in from the layer before,
// ‖relu(Z^a_{l−1,i}) − relu(Z^b_{l−1,i})‖₂·‖W_l,·j‖₂ (relu is 1-Lipschitz).
// It costs O(mk + kn + mn) per layer.
//
// The error is non-nil (wrapping ErrUnverifiable) only when the shard
// itself cannot be checked; a result of the wrong form just disagrees.
// Canary results are judged by Agree against the canary's expected
// outputs.
func (v *Verifier) Agree(kernel string, inputs, a, b []*tensor.Tensor) (Comparison, error) {
	return v.compare(kernel, inputs, a, b, nil)
}

// compare is Agree; when ds is not nil it also offers ds every element
// that disagrees (Settle's disputed elements).
func (v *Verifier) compare(kernel string, inputs, a, b []*tensor.Tensor, ds *disputeSample) (Comparison, error) {
	cmp := Comparison{Agree: true, Output: -1, Row: -1, Col: -1}
	var err error
	clear(v.la) // hold no tensors of an earlier shard
	clear(v.lb)
	if v.la, err = appendLayers(v.la[:0], kernel, inputs, a); err != nil {
		return wrongForm(cmp, "result a", err)
	}
	if v.lb, err = appendLayers(v.lb[:0], kernel, inputs, b); err != nil {
		return wrongForm(cmp, "result b", err)
	}
	for li := range v.la {
		if err := v.agreeLayer(&cmp, &v.la[li], &v.lb[li], li == 0, li+1 < len(v.la), ds); err != nil {
			return Comparison{}, err
		}
	}
	return cmp, nil
}

// wrongForm reports a result of the wrong form as a disagreement, or an
// unverifiable shard as an error.
func wrongForm(cmp Comparison, which string, err error) (Comparison, error) {
	if errors.Is(err, ErrUnverifiable) {
		return Comparison{}, err
	}
	cmp.Agree, cmp.MaxRatio = false, math.Inf(1)
	cmp.Reason = which + ": " + err.Error()
	return cmp, nil
}

// agreeLayer compares layer la of replica a with lb of replica b. On the
// first layer it takes the left operand's row norms from the input cache
// (both replicas share it); on later layers it uses the ones the layer
// before left in v.ha, v.hb and v.dh. When next is set it leaves there
// the row norms of relu of this layer's outputs, for the next layer. With
// ds it offers ds every element that disagrees, not only the worst. It
// fails only when the inputs hold NaN or ±Inf.
func (v *Verifier) agreeLayer(cmp *Comparison, la, lb *layer, first, next bool, ds *disputeSample) error {
	m, k, n := la.m, la.k, la.n
	pt := newPairTerms(k, la.terms(), n)
	w, finite := v.inputs.colNorms(la.bIn, k, n)
	if !finite {
		return inputsError(la.out)
	}
	colConst := grow(&v.colConst, n)
	for j := range w {
		colConst[j] = pt.col(w[j], la.biasAt(j))
	}
	if !allFinite(colConst) {
		return inputsError(la.out)
	}
	ha, hb, dh := grow(&v.ha, m), grow(&v.hb, m), grow(&v.dh, m)
	if first {
		// The first layer's left operand is an input: never relu.
		h, finite := v.inputs.rowNorms(la.aIn, m, k)
		if !finite {
			return inputsError(la.out)
		}
		copy(ha, h)
		copy(hb, h)
		clear(dh)
	}
	worst := cmp.MaxRatio
	// skip is the ratio below which agreeRow passes an element over:
	// worst, or at most 1 when every disagreement is wanted.
	skip := func() float64 {
		if ds != nil {
			return min(worst, 1)
		}
		return worst
	}
	for i := range m {
		rowConst, rowFactor := pt.row(ha[i], hb[i], dh[i])
		ra, rb := la.c[i*n:(i+1)*n], lb.c[i*n:(i+1)*n]
		// Below worst·tol (worst < 1 while the replicas agree) is the
		// common case, which agreeRow skips; the rest, NaN included, is
		// noted. The norms for the next layer come in the same pass.
		var j int
		if next {
			var sa, sb, sd float64
			j, sa, sb, sd = agreeRowNorms(ra, rb, colConst, w, rowConst, rowFactor, skip())
			ha[i], hb[i], dh[i] = math.Sqrt(sa), math.Sqrt(sb), math.Sqrt(sd)
		} else {
			j = agreeRow(ra, rb, colConst, w, rowConst, rowFactor, skip())
		}
		for j < n {
			tol := agreeTol(rowConst, colConst[j], rowFactor, w[j])
			d := math.Abs(float64(ra[j]) - float64(rb[j]))
			worst = cmp.note(la.out, i, j, ra[j], rb[j], d, tol, worst)
			if ds != nil && !(d <= tol) {
				ds.add(element{out: la.out, i: i, j: j})
			}
			j++
			j += agreeRow(ra[j:], rb[j:], colConst[j:], w[j:], rowConst, rowFactor, skip())
		}
	}
	cmp.MaxRatio = worst
	return nil
}

// allFinite reports whether no element of xs is NaN or ±Inf.
func allFinite(xs []float64) bool {
	for _, x := range xs {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return false
		}
	}
	return true
}

// note records an element whose ratio d/tol exceeds worst or that
// disagrees, and returns the new largest ratio (+Inf once anything is
// NaN or ±Inf).
func (cmp *Comparison) note(out, i, j int, a, b float32, d, tol, worst float64) float64 {
	r := d / tol
	finite := !math.IsNaN(r) && !math.IsInf(d, 0)
	if !(d <= tol) && cmp.Agree {
		cmp.Agree, cmp.Output, cmp.Row, cmp.Col = false, out, i, j
		if finite {
			cmp.Reason = fmt.Sprintf("output %d element (%d, %d): %.9g and %.9g differ by %.3g, %.3g× the tolerance %.3g",
				out, i, j, a, b, d, r, tol)
		} else {
			cmp.Reason = fmt.Sprintf("output %d element (%d, %d): %v and %v, not both finite", out, i, j, a, b)
		}
	}
	if !finite {
		return math.Inf(1)
	}
	return max(worst, r)
}
