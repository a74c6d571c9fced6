package verify

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/neurolov/neurolov/tensor"
)

// The entries of Freivalds' vector are uniform in [rMin, rMax): positive,
// so that an error of one sign along a row adds up instead of cancelling,
// and at least rMin, so that no output element escapes the check (an
// entry near zero would let that column's error through).
const (
	rMin = 0.5
	rMax = 1.0
)

// Freivalds checks every linear product of a result with a fresh random
// vector r per product: C·r against A·(B·r) (+ bias·r) in float64, row by
// row. A row passes when the difference is within both the worst-case
// bound of the float32 error analysis (Safety·γ_K'·|A|·(|B|·1), plus
// flush and float64 terms, the bound for every r drawn) and the
// probabilistic bound (λ·√K'·u·‖(|A_i|·|B|+|bias|)∘r‖₂ from norms, see
// the package documentation); it fails above the worst-case bound; in
// between, the row is recomputed exactly (every such row, or a secret
// uniform random sample of them as large as a budget) and fails only if
// an element is beyond its bound. For mlp-infer
// it checks Z_1·r ≈ X·(W_1·r) + b_1·r and Z_l·r ≈ relu(Z_{l−1})·(W_l·r) +
// b_l·r with the worker's own Z_{l−1}. It costs O(mk + kn + mn) per
// product, O(mk + mn) more than B·r when the Verifier has seen B before,
// plus O(K·n) per row recomputed, and also rejects NaN and ±Inf. See the
// package documentation for what it cannot catch.
func (v *Verifier) Freivalds(kernel string, inputs, outputs []*tensor.Tensor, rng *rand.Rand) Verdict {
	ls, bad := v.layers(kernel, inputs, outputs)
	if bad != nil {
		return *bad
	}
	return v.freivalds(ls, rng)
}

func (v *Verifier) freivalds(ls []layer, rng *rand.Rand) Verdict {
	var sum Verdict
	for li := range ls {
		vd := v.freivaldsLayer(&ls[li], rng)
		if !vd.OK {
			return vd
		}
		sum = addPassed(sum, vd)
	}
	sum.OK, sum.Method = true, MethodFreivalds
	return sum
}

// addPassed adds the passing verdict of one product to sum, the verdict
// of the products before it.
func addPassed(sum, vd Verdict) Verdict {
	sum.Ratio = max(sum.Ratio, vd.Ratio)
	sum.Recomputed += vd.Recomputed
	sum.Unchecked += vd.Unchecked
	return sum
}

// freivaldsLayer checks one product.
//
// It runs in two phases, which CheckAll separates: drawProduct draws r
// and computes B·r, checkProduct does everything after. The inputs are
// checked first (productInputs), so that a shard whose B or bias is not
// finite draws nothing.
func (v *Verifier) freivaldsLayer(l *layer, rng *rand.Rand) Verdict {
	in, bad := v.productInputs(l)
	if bad != nil {
		return *bad
	}
	r, br := grow(&v.r, l.n), grow(&v.br, l.k)
	drawProduct(l, rng, r, br)
	return v.checkProduct(l, in, r, br)
}

// productIn is what Freivalds' thresholds need from a product's B and
// bias: s_k = Σ_j |b_kj| and the column norms w_j = ‖B_·j‖₂ (both cached
// per B), Σ_k s_k and Σ_j |bias_j|.
type productIn struct {
	s, w          []float64
	sumS, biasAbs float64
}

// productInputs looks up (or computes) what the thresholds need from l's
// B and bias, or returns a failed Verdict when they are not finite.
func (v *Verifier) productInputs(l *layer) (productIn, *Verdict) {
	s, sumS, finite := v.inputs.rowAbs(l.bIn, l.k, l.n)
	w, wFinite := v.inputs.colNorms(l.bIn, l.k, l.n)
	biasAbs := sumAbs(l.bias)
	if !finite || !wFinite || math.IsNaN(biasAbs) || math.IsInf(biasAbs, 0) {
		vd := errVerdict(inputsError(l.out))
		return productIn{}, &vd
	}
	return productIn{s, w, sumS, biasAbs}, nil
}

// drawVector fills r with Freivalds' entries, uniform in [rMin, rMax).
func drawVector(r []float64, rng *rand.Rand) {
	for j := range r {
		r[j] = rMin + (rMax-rMin)*rng.Float64()
	}
}

// drawProduct is the first phase of checking l: it draws r (l.n entries)
// and sets br = B·r (l.k entries).
func drawProduct(l *layer, rng *rand.Rand, r, br []float64) {
	drawVector(r, rng)
	gemv(l.b, l.n, r, br)
}

// residuals computes, for l with its vector r and br = B·r, A·(B·r),
// |A|·s and ‖A_i‖₂² in one pass over A (v.pred, v.predAbs, v.predSq) and
// C·r in one over C (v.cr), and returns the probabilistic bound's terms
// for r and bias·r: row i's residual is |cr_i − (pred_i + bias·r)|.
func (v *Verifier) residuals(l *layer, in productIn, r, br []float64) (probBound, float64) {
	pred, predAbs, predSq, cr := grow(&v.pred, l.m), grow(&v.predAbs, l.m), grow(&v.predSq, l.m), grow(&v.cr, l.m)
	if l.relu {
		gemvRelu(l.a, l.k, br, in.s, pred, predAbs, predSq)
	} else {
		gemvAbs(l.a, l.k, br, in.s, pred, predAbs, predSq)
	}
	gemv(l.c, l.n, r, cr)
	return newProbBound(l, r, in.w), dot(l.bias, r)
}

// flaggedRow is a row over the probabilistic bound but within the
// worst-case one: d/T_p is how far over.
type flaggedRow struct {
	i     int
	ratio float64
}

// checkProduct is the second phase of checking l, given its vector r and
// br = B·r: it computes A·(B·r), |A|·s and ‖A_i‖₂² in one pass over A,
// C·r in one over C, then each row's two thresholds; rows over the
// probabilistic one go to recomputeRows.
//
// The fast path leaves out terms of the thresholds that only make them
// larger, the flush of subnormal A entries (tiny·Σ_k|a_ik|·n) and the
// float64 slack of C·r (which needs |C_i|·1): a row that passes without
// them passes with them. A row that does not is judged again in full.
func (v *Verifier) checkProduct(l *layer, in productIn, r, br []float64) Verdict {
	sumS, biasAbs := in.sumS, in.biasAbs
	pb, biasR := v.residuals(l, in, r, br)
	pred, predAbs, predSq, cr := v.pred, v.predAbs, v.predSq, v.cr
	sumR := float64(l.n) // Σ_j r_j with r ≡ 1
	worst := 0.0
	v.flagged = v.flagged[:0]
	for i := range l.m {
		p, pAbs := pred[i]+biasR, predAbs[i]+biasAbs
		d := math.Abs(cr[i] - p)
		// An infinite threshold means inputs that are not finite.
		ex := l.fixedTerms(pAbs, 0, sumR, sumS, 0)
		if tw := l.worstTerm(pAbs) + ex; d <= tw && d <= pb.term(predSq[i])+ex && tw <= math.MaxFloat64 {
			worst = max(worst, d/tw)
			continue
		}
		// The full thresholds.
		arow, crow := l.a[i*l.k:(i+1)*l.k], l.c[i*l.n:(i+1)*l.n]
		var aAbs float64
		for _, x := range arow {
			aAbs += math.Abs(l.input(x))
		}
		ex = l.fixedTerms(pAbs, aAbs, sumR, sumS, sumAbs(crow))
		if tw := l.worstTerm(pAbs) + ex; d <= tw && tw <= math.MaxFloat64 { // an Inf in C makes tw Inf too
			worst = max(worst, d/tw)
			if tp := pb.term(predSq[i]) + ex; d > tp {
				v.flagged = append(v.flagged, flaggedRow{i, d / tp})
			}
			continue
		}
		if vd, ok := diagnose(l, i, -1); ok {
			return vd
		}
		if math.IsNaN(p) || math.IsInf(p, 0) || math.IsNaN(pAbs) || math.IsInf(pAbs, 0) {
			return errVerdict(inputsError(l.out))
		}
		tw := l.worstTerm(pAbs) + ex
		return Verdict{
			Reason: fmt.Sprintf("Freivalds: output %d row %d: C·r = %.9g but A·(B·r) = %.9g, off by %.3g, %.3g× the threshold %.3g",
				l.out, i, cr[i], p, d, d/tw, tw),
			Method: MethodFreivalds,
			Ratio:  d / tw,
		}
	}
	vd := v.recomputeRows(l, r)
	vd.Ratio = max(vd.Ratio, worst)
	return vd
}
