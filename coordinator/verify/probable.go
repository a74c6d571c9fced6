package verify

import (
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"

	"github.com/neurolov/neurolov/shaders"
)

// Freivalds' probabilistic bound (see the package documentation). Model
// each rounding of an honest float32 evaluation as an independent error
// of mean zero and size at most u times the value rounded (round to
// nearest). Row i of C·r − A·(B·r) is then the end of a martingale whose
// steps — the roundings of every element of the row, in any order — are
// bounded by r_j·u·(1+γ_K')·S_ij, at most K' of them per element (K'
// products and K'−1 additions, or K' fused multiply-adds, with Σ_k
// p_k² ≤ S_ij²). By Azuma's inequality it exceeds
//
//	T_p = λ·u·√K'·(1+γ_K')·√(Σ_j r_j²·S_ij²)
//
// with probability at most 2·exp(−λ²/2), and S_ij ≤ ‖f(A_i)‖₂·‖B_·j‖₂ +
// |bias_j| (Cauchy–Schwarz) makes it cost O(n) per product and O(1) per
// row. Arithmetic that breaks the model (directed rounding, data whose
// roundings repeat from one element to the next) may exceed it honestly,
// so a row over T_p is never failed for it: it is recomputed exactly.

// lambda is the probabilistic bound's confidence factor: an honest row
// that obeys the model exceeds the bound with probability at most
// 2·exp(−18) ≈ 3·10⁻⁸. It costs only recomputes, never a wrong verdict.
const lambda = 6.0

// probBound holds what T_p needs from a product and its vector r: the
// constant factor and, with w_j = ‖B_·j‖₂ and β the bias, q2 = Σ r_j²·w_j²,
// q1 = Σ r_j²·w_j·|β_j| and q0 = Σ r_j²·β_j², so that for row i with h =
// ‖f(A_i)‖₂, Σ_j r_j²·(h·w_j + |β_j|)² = h²·q2 + 2h·q1 + q0.
type probBound struct {
	scale      float64
	q2, q1, q0 float64
}

// newProbBound computes l's probabilistic bound for the vector r, given
// the column norms w of B.
func newProbBound(l *layer, r, w []float64) probBound {
	r, w = r[:l.n], w[:l.n]
	var q2, q1, q0 float64
	if l.bias == nil {
		for j, x := range r {
			q2 += x * x * w[j] * w[j]
		}
	} else {
		bias := l.bias[:l.n]
		for j, x := range r {
			r2, b := x*x, math.Abs(float64(bias[j]))
			q2 += r2 * w[j] * w[j]
			q1 += r2 * w[j] * b
			q0 += r2 * b * b
		}
	}
	t := l.terms()
	// 1+slack64: the float64 rounding of the norms and of these sums.
	scale := lambda * shaders.Unit * math.Sqrt(float64(t)) * (1 + shaders.Gamma(t)) * (1 + slack64(l.k+l.n))
	return probBound{scale: scale, q2: q2, q1: q1, q0: q0}
}

// term returns the rounding part of T_p for a row whose left operand has
// squared norm sq; fixedTerms adds the rest.
func (p probBound) term(sq float64) float64 {
	return p.scale * math.Sqrt(sq*p.q2+2*math.Sqrt(sq)*p.q1+p.q0)
}

// recomputeBudget is how many rows of l a check recomputes at most:
// about what the check of l costs itself, (mk + kn + mn)/(K'·n) rows, and
// at least one.
func (l *layer) recomputeBudget() int {
	return max(1, (l.m*l.k+l.k*l.n+l.m*l.n)/(l.terms()*max(l.n, 1)))
}

// recomputeRows recomputes exactly the rows of l that checkProduct
// flagged (v.flagged: over the probabilistic bound, within the
// worst-case one) — all of them when they fit l's budget, else a uniform
// random sample of as many as the budget — and fails the result at the
// first element beyond its bound. The Verdict counts the rows recomputed
// and those the budget left unchecked.
//
// The sample is the verifier's secret, not the worker's choice: it is
// drawn with randomness derived from r, l's secret vector (sampleSeed),
// so it is as fresh and as unpredictable as r, and CheckAll, which draws
// the same vectors, recomputes the same rows as Check. No row is
// recomputed for being the most over: how far over a row goes is the
// worker's to choose (within-bound errors of one sign on a few "decoy"
// rows put them far over), so a rank would let it spend the budget on
// rows it made pass. A row the worker wants hidden among F flagged rows
// is recomputed with probability budget/F, whatever the others hold.
func (v *Verifier) recomputeRows(l *layer, r []float64) Verdict {
	fl := v.flagged
	n := min(len(fl), l.recomputeBudget())
	if n < len(fl) {
		sampleRows(fl, n, r)
	}
	worst := 0.0
	for _, f := range fl[:n] {
		ratio, bad := v.recomputeRow(l, f)
		if bad != nil {
			return *bad
		}
		worst = max(worst, ratio)
	}
	return Verdict{OK: true, Method: MethodFreivalds, Ratio: worst, Recomputed: n, Unchecked: len(fl) - n}
}

// sampleRows moves a uniform random sample of n of the rows fl to
// fl[:n] (a partial Fisher–Yates shuffle), drawing from a PCG source
// seeded by sampleSeed(r). An index below k is the high word of a 64-bit
// draw times k, biased by at most k/2⁶⁴.
func sampleRows(fl []flaggedRow, n int, r []float64) {
	var src rand.PCG
	src.Seed(sampleSeed(r))
	for x := range n {
		hi, _ := bits.Mul64(src.Uint64(), uint64(len(fl)-x))
		y := x + int(hi)
		fl[x], fl[y] = fl[y], fl[x]
	}
}

// sampleSeed hashes every entry of the secret vector r (some 52 random
// bits each, from the Verifier's secret source) into a seed of 128 bits,
// with splitmix64's finaliser: O(n), and only when the flagged rows
// exceed the budget.
func sampleSeed(r []float64) (uint64, uint64) {
	h1, h2 := uint64(0x9e3779b97f4a7c15), uint64(len(r))
	for _, x := range r {
		h1 = mix64(h1 ^ math.Float64bits(x))
		h2 = mix64(h2 + h1)
	}
	return h1, h2
}

// mix64 is splitmix64's finaliser: a bijection of 64-bit words whose
// every output bit depends on every input bit.
func mix64(z uint64) uint64 {
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// recomputeRow recomputes row f.i of l exactly, O(K·n), and returns the
// largest |c_ij − exact_ij| / elementBound_ij, or a failed Verdict at
// the first element beyond its bound.
func (v *Verifier) recomputeRow(l *layer, f flaggedRow) (float64, *Verdict) {
	val, abs, sumB := grow(&v.rowVal, l.n), grow(&v.rowAbs, l.n), grow(&v.rowSumB, l.n)
	sumA := l.exactRow(f.i, val, abs, sumB)
	terms := l.terms()
	worst := 0.0
	for j, c := range l.c[f.i*l.n : (f.i+1)*l.n] {
		bound := elementBound(terms, abs[j], sumA, sumB[j])
		d := math.Abs(float64(c) - val[j])
		if d <= bound {
			worst = max(worst, d/bound)
			continue
		}
		return 0, &Verdict{
			Reason: fmt.Sprintf("Freivalds: output %d row %d is %.3g× its probabilistic bound; recomputed exactly, element (%d, %d) = %.9g but exact value %.9g, off by %.3g, %.3g× its bound %.3g",
				l.out, f.i, f.ratio, f.i, j, c, val[j], d, d/bound, bound),
			Method: MethodRecompute,
			Ratio:  d / bound,
		}
	}
	return worst, nil
}
