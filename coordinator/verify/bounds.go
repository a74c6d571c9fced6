package verify

import (
	"fmt"
	"math"

	"github.com/neurolov/neurolov/shaders"
	"github.com/neurolov/neurolov/tensor"
)

// Constants of the float32 error analysis (see the package documentation);
// u = shaders.Unit = 2^-24 and γ_K = shaders.Gamma(K) = K·u/(1−K·u).
const (
	// Safety multiplies every float32 error bound. Two covers arithmetic
	// that is faithful rather than correctly rounded (1 ulp = 2u per
	// operation: round toward zero, a driver's own fused or reordered
	// operations, an FMA emulated through float64) on top of any summation
	// order and of fused multiply-adds, which the bound already allows.
	Safety = 2.0

	// tiny is the smallest normal float32, 2^-126: the largest error of
	// one operation, or of reading one input, on hardware that flushes
	// subnormal numbers to zero (WGSL allows it).
	tiny = 0x1p-126
	// unit64 is the unit roundoff of float64, in which the checks compute.
	unit64 = 0x1p-53
	// maxTerms is the longest dot product whose error we bound: γ_K needs
	// K·u < 1, and we stop at K·u = 1/2 (K = 2^23), far above any shard.
	maxTerms = 1 << 23
)

// slack64 is a generous bound, relative to the magnitudes summed, on the
// float64 rounding of a check that sums terms values: 4·γ64 and then some.
func slack64(terms int) float64 { return float64(terms+8) * 4 * unit64 }

// flushTerm bounds the error that flushing subnormals to zero adds to one
// output element: every one of the 2K'+1 operations may lose up to tiny,
// and reading a subnormal input as zero loses at most tiny times what it
// multiplies (sumA = Σ_k|a_ik|, sumB = Σ_k|b_kj|).
func flushTerm(terms int, sumA, sumB float64) float64 {
	return tiny * (float64(2*terms+1) + sumA + sumB)
}

// elementBound bounds |c − exact| for one output element computed in
// float32 from terms products whose magnitudes sum to s (Σ_k|a_ik·b_kj| +
// |bias_j|), checked against an exact value computed in float64. It is the
// threshold of a spot check.
func elementBound(terms int, s, sumA, sumB float64) float64 {
	return Safety*(shaders.Gamma(terms)*s+flushTerm(terms, sumA, sumB)) + slack64(terms)*s
}

// pairTerms computes the tolerance of Agree for one linear layer. With
// ha, hb the Euclidean norms of row i of the layer's left operand in
// either replica, dh the norm of their difference and w_j the norm of
// column j of B, the tolerance of element (i, j) is
//
//	tol_ij = (1+ε)·(rowConst_i + colConst_j + rowFactor_i·w_j)
//	rowConst_i  = Safety·tiny·(2·(2K'+1) + √K·(ha+hb))
//	rowFactor_i = Safety·γ_K'·(ha+hb) + dh
//	colConst_j  = Safety·(2·γ_K'·|bias_j| + 2·tiny·√K·w_j)
//
// which is atol + rtol·scale with rtol = 2·Safety·γ_K', scale_ij =
// ((ha+hb)/2)·w_j + |bias_j|, atol the flush terms, plus the propagated
// difference dh·w_j of the layer before.
type pairTerms struct {
	k, terms int
	gamma    float64
	sqrtK    float64
	scale    float64 // 1+ε: float64 rounding of the norms
}

func newPairTerms(k, terms, n int) pairTerms {
	return pairTerms{
		k: k, terms: terms,
		gamma: shaders.Gamma(terms),
		sqrtK: math.Sqrt(float64(k)),
		scale: 1 + slack64(terms+n),
	}
}

// row returns rowConst_i and rowFactor_i, both already multiplied by 1+ε.
func (t pairTerms) row(ha, hb, dh float64) (rowConst, rowFactor float64) {
	rowConst = Safety * tiny * (float64(2*(2*t.terms+1)) + t.sqrtK*(ha+hb))
	rowFactor = Safety*t.gamma*(ha+hb) + dh
	return rowConst * t.scale, rowFactor * t.scale
}

// col returns colConst_j, already multiplied by 1+ε.
func (t pairTerms) col(w, bias float64) float64 {
	return Safety * (2*t.gamma*math.Abs(bias) + 2*tiny*t.sqrtK*w) * t.scale
}

// ElementBound returns the bound used by spot checks for element (i, j) of
// output out: how far a correct float32 result may lie from the exact
// value, Safety·(γ_K'·Σ_k|a_ik·b_kj| + flush terms) plus float64 slack,
// where K' counts the bias as one more term. For mlp-infer the left
// operand of layer l > 1 is relu of outputs[l−1], the worker's own
// pre-activations. It costs O(K).
func ElementBound(kernel string, inputs, outputs []*tensor.Tensor, out, i, j int) (float64, error) {
	l, err := layerAt(kernel, inputs, outputs, out, i, j)
	if err != nil {
		return 0, err
	}
	e := l.exact(i, j)
	return elementBound(l.terms(), e.abs, e.sumA, e.sumB), nil
}

// ElementTolerance returns the tolerance Agree applies to element (i, j)
// of output out when outputs is compared with a replica equal to it in
// every earlier layer (so nothing propagates): perturbing that element by
// more than this makes Agree fail, by at most this keeps it passing.
// Test harnesses use it to perturb an element by an exact multiple of its
// tolerance. It costs O(K).
func ElementTolerance(kernel string, inputs, outputs []*tensor.Tensor, out, i, j int) (float64, error) {
	l, err := layerAt(kernel, inputs, outputs, out, i, j)
	if err != nil {
		return 0, err
	}
	// The same sums, in the same order and rounded the same way, as
	// Agree's.
	row := l.a[i*l.k : (i+1)*l.k]
	var h float64
	if l.relu {
		sa, _, _ := reluNorms(row, row)
		h = math.Sqrt(sa)
	} else {
		h = rowNorm(row)
	}
	w := colNorm(l.b, l.k, l.n, j)
	pt := newPairTerms(l.k, l.terms(), l.n)
	rowConst, rowFactor := pt.row(h, h, 0)
	return agreeTol(rowConst, pt.col(w, l.biasAt(j)), rowFactor, w), nil
}

// FreivaldsFloor returns, for row i of output out, the size above which a
// single perturbed element of that row — or any error pattern in the row
// whose entries share one sign and whose magnitudes add up to more — is
// caught by Freivalds on a single result, whatever the random vector,
// provided the honest rounding of the rest of the row obeys the
// probabilistic bound and the rest of the result stays under it (see the
// package documentation): min(max(4·T_p, 1.5·e), 3·T_w), where T_p and
// T_w are the row's probabilistic and worst-case thresholds for r ≡ 1,
// which bound those of every r drawn, and e is the largest element bound
// of the row by Cauchy–Schwarz. Above 4·T_p the row is over T_p (each r_j
// is at least 1/2, and honest rounding takes at most T_p), so it is
// flagged for an exact recompute; the budget covers at least one row per
// product, so a row flagged alone is recomputed, and an element more than
// 1.5 times its bound off is beyond it whatever its honest rounding.
// Above 3·T_w the row is over the worst-case bound, which honest rounding
// never is, and fails whatever else the result holds.
//
// Between the two, the floor is not a guarantee against a result that
// puts more rows over T_p than the budget covers (a cheater's within-bound
// "decoys", or data that breaks the model): a uniform random sample of
// the flagged rows, the verifier's secret choice, is recomputed, so such
// an error is caught with probability budget/flagged, and a result it
// escapes reports the rest (Verdict.Unchecked > 0): it is Doubtful, which
// the scheduler never accepts on one worker's word. Smaller patterns, and
// patterns whose signs vary along the row, may pass. It costs O(K·n).
func FreivaldsFloor(kernel string, inputs, outputs []*tensor.Tensor, out, i int) (float64, error) {
	l, err := layerAt(kernel, inputs, outputs, out, i, 0)
	if err != nil {
		return 0, err
	}
	// Row sums of |B| (the worst-case terms with r ≡ 1), column sums of
	// |B| and column norms (the element bounds and the probabilistic
	// terms).
	colAbs, colSq := make([]float64, l.n), make([]float64, l.n)
	var pred, sumBar, aAbs, sq, cAbs float64
	for kk := range l.k {
		var s float64
		for j, x := range l.b[kk*l.n : (kk+1)*l.n] {
			y := float64(x)
			s += math.Abs(y)
			colAbs[j] += math.Abs(y)
			colSq[j] += y * y
		}
		sumBar += s
		a := math.Abs(l.input(l.a[i*l.k+kk]))
		pred += a * s
		aAbs += a
		sq += a * a
	}
	for _, x := range l.bias {
		pred += math.Abs(float64(x))
	}
	for _, x := range l.c[i*l.n : (i+1)*l.n] {
		cAbs += math.Abs(float64(x))
	}
	ones := make([]float64, l.n)
	for j := range ones {
		ones[j] = 1
		colSq[j] = math.Sqrt(colSq[j])
	}
	h, e := math.Sqrt(sq), 0.0
	for j, w := range colSq {
		e = max(e, elementBound(l.terms(), h*w+math.Abs(l.biasAt(j)), aAbs, colAbs[j]))
	}
	ex := l.fixedTerms(pred, aAbs, float64(l.n), sumBar, cAbs)
	tw := l.worstTerm(pred) + ex
	tp := newProbBound(l, ones, colSq).term(sq) + ex
	return min(max(4*tp, 1.5*e), 3*tw) * (1 + 0x1p-20), nil
}

// layerAt checks the shard and returns the layer holding element (i, j)
// of output out.
func layerAt(kernel string, inputs, outputs []*tensor.Tensor, out, i, j int) (*layer, error) {
	ls, err := appendLayers(nil, kernel, inputs, outputs)
	if err != nil {
		return nil, err
	}
	if out < 0 || out >= len(ls) {
		return nil, fmt.Errorf("%w: output %d of %d", ErrIndex, out, len(ls))
	}
	l := &ls[out]
	if i < 0 || i >= l.m || j < 0 || j >= l.n {
		return nil, fmt.Errorf("%w: element (%d, %d) of output %d, which is %d×%d", ErrIndex, i, j, out, l.m, l.n)
	}
	return l, nil
}
