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
// row, within the threshold |A|·(|B|·1) times Safety·γ_K' (plus flush and
// float64 terms), the bound for r ≡ 1 and so for every r drawn. For
// mlp-infer it checks Z_1·r ≈ X·(W_1·r) + b_1·r and Z_l·r ≈
// relu(Z_{l−1})·(W_l·r) + b_l·r with the worker's own Z_{l−1}. It costs
// O(mk + kn + mn) per product, O(mk + mn) more than B·r when the
// Verifier has seen B before, and also rejects NaN and ±Inf. See the
// package documentation for what it cannot catch.
func (v *Verifier) Freivalds(kernel string, inputs, outputs []*tensor.Tensor, rng *rand.Rand) Verdict {
	ls, bad := v.layers(kernel, inputs, outputs)
	if bad != nil {
		return *bad
	}
	return v.freivalds(ls, rng)
}

func (v *Verifier) freivalds(ls []layer, rng *rand.Rand) Verdict {
	worst := 0.0
	for li := range ls {
		ratio, bad := v.freivaldsLayer(&ls[li], rng)
		if bad != nil {
			return *bad
		}
		worst = max(worst, ratio)
	}
	return Verdict{OK: true, Method: MethodFreivalds, Ratio: worst}
}

// freivaldsLayer checks one product and returns the largest
// |C·r − A·(B·r)| / threshold over its rows, or a failed Verdict.
//
// The threshold is the bound for r ≡ 1, which holds for every r drawn
// (its entries are below 1): Safety·γ_K'·(|A|·s + Σ|bias|)_i plus flush
// and float64 terms, where s_k = Σ_j |b_kj| depends on B alone and is
// cached. So the check makes one pass over B (B·r), one over A
// (A·(B·r) and |A|·s together) and one over C (C·r).
//
// It runs in two phases, which CheckAll separates: drawProduct draws r
// and computes B·r, checkProduct does everything after. The inputs are
// checked first (productInputs), so that a shard whose B or bias is not
// finite draws nothing.
func (v *Verifier) freivaldsLayer(l *layer, rng *rand.Rand) (float64, *Verdict) {
	in, bad := v.productInputs(l)
	if bad != nil {
		return 0, bad
	}
	r, br := grow(&v.r, l.n), grow(&v.br, l.k)
	drawProduct(l, rng, r, br)
	return v.checkProduct(l, in, r, br)
}

// productIn is what Freivalds' threshold needs from a product's B and
// bias: s_k = Σ_j |b_kj| (cached per B), Σ_k s_k and Σ_j |bias_j|.
type productIn struct {
	s             []float64
	sumS, biasAbs float64
}

// productInputs looks up (or computes) what the threshold needs from l's
// B and bias, or returns a failed Verdict when they are not finite.
func (v *Verifier) productInputs(l *layer) (productIn, *Verdict) {
	s, sumS, finite := v.inputs.rowAbs(l.bIn, l.k, l.n)
	biasAbs := sumAbs(l.bias)
	if !finite || math.IsNaN(biasAbs) || math.IsInf(biasAbs, 0) {
		vd := errVerdict(inputsError(l.out))
		return productIn{}, &vd
	}
	return productIn{s, sumS, biasAbs}, nil
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

// checkProduct is the second phase of checking l, given its vector r and
// br = B·r: it computes A·(B·r) and |A|·s, C·r and the thresholds, and
// returns the largest ratio or a failed Verdict.
//
// The fast path leaves out two terms of the threshold that only make it
// larger, the flush of subnormal A entries (tiny·Σ_k|a_ik|·n) and the
// float64 slack of C·r (which needs |C_i|·1): a row that passes without
// them passes with them. A row that does not is checked again in full.
func (v *Verifier) checkProduct(l *layer, in productIn, r, br []float64) (float64, *Verdict) {
	s, sumS, biasAbs := in.s, in.sumS, in.biasAbs
	biasR := dot(l.bias, r)
	pred, predAbs, cr := grow(&v.pred, l.m), grow(&v.predAbs, l.m), grow(&v.cr, l.m)
	if l.relu {
		gemvRelu(l.a, l.k, br, s, pred, predAbs)
	} else {
		gemvAbs(l.a, l.k, br, s, pred, predAbs)
	}
	gemv(l.c, l.n, r, cr)
	sumR := float64(l.n) // Σ_j r_j with r ≡ 1
	worst := 0.0
	for i := range l.m {
		p, pAbs := pred[i]+biasR, predAbs[i]+biasAbs
		d := math.Abs(cr[i] - p)
		// An infinite threshold means inputs that are not finite.
		if t := l.threshold(pAbs, 0, sumR, sumS, 0); d <= t && t <= math.MaxFloat64 {
			if d > worst*t {
				worst = d / t
			}
			continue
		}
		// The full threshold.
		arow, crow := l.a[i*l.k:(i+1)*l.k], l.c[i*l.n:(i+1)*l.n]
		var aAbs float64
		for _, x := range arow {
			aAbs += math.Abs(l.input(x))
		}
		t := l.threshold(pAbs, aAbs, sumR, sumS, sumAbs(crow))
		if d <= t && t <= math.MaxFloat64 { // an Inf in C makes t Inf too
			worst = max(worst, d/t)
			continue
		}
		if vd, ok := diagnose(l, i, -1); ok {
			return 0, &vd
		}
		if math.IsNaN(p) || math.IsInf(p, 0) || math.IsNaN(pAbs) || math.IsInf(pAbs, 0) {
			vd := errVerdict(inputsError(l.out))
			return 0, &vd
		}
		return 0, &Verdict{
			Reason: fmt.Sprintf("Freivalds: output %d row %d: C·r = %.9g but A·(B·r) = %.9g, off by %.3g, %.3g× the threshold %.3g",
				l.out, i, cr[i], p, d, d/t, t),
			Method: MethodFreivalds,
			Ratio:  d / t,
		}
	}
	return worst, nil
}
