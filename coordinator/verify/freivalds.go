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
// row, within the threshold |A|·(|B|·r) times Safety·γ_K' (plus flush and
// float64 terms). For mlp-infer it checks Z_1·r ≈ X·(W_1·r) + b_1·r and
// Z_l·r ≈ relu(Z_{l−1})·(W_l·r) + b_l·r with the worker's own Z_{l−1}. It
// costs O(mk + kn + mn) per product and also rejects NaN and ±Inf. See the
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
// The fast path leaves out two terms of the threshold that only make it
// larger, the flush of subnormal B entries (tiny·Σ_k|a_ik|·Σr) and the
// float64 slack of C·r (which needs |C|·r): a row that passes without
// them passes with them. A row that does not is checked again in full.
func (v *Verifier) freivaldsLayer(l *layer, rng *rand.Rand) (float64, *Verdict) {
	r := grow(&v.r, l.n)
	var sumR float64
	for j := range r {
		r[j] = rMin + (rMax-rMin)*rng.Float64()
		sumR += r[j]
	}
	// B·r and |B|·r.
	br, bar := grow(&v.br, l.k), grow(&v.bar, l.k)
	var sumBar float64
	for kk := range br {
		br[kk], bar[kk] = dot2(l.b[kk*l.n:(kk+1)*l.n], r, r)
		sumBar += bar[kk]
	}
	var biasR, biasAbsR float64
	if l.bias != nil {
		biasR, biasAbsR = dot2(l.bias, r, r)
	}
	worst := 0.0
	for i := range l.m {
		arow := l.a[i*l.k : (i+1)*l.k]
		var pred, predAbs float64
		if l.relu {
			pred, predAbs = dot2Relu(arow, br, bar)
		} else {
			pred, predAbs = dot2(arow, br, bar)
		}
		pred += biasR
		predAbs += biasAbsR
		crow := l.c[i*l.n : (i+1)*l.n]
		cr := dot(crow, r)
		d := math.Abs(cr - pred)
		if t := l.threshold(predAbs, 0, sumR, sumBar, 0); d <= t {
			if d > worst*t {
				worst = d / t
			}
			continue
		}
		// The full threshold.
		var aAbs float64
		for _, x := range arow {
			aAbs += math.Abs(l.input(x))
		}
		_, cAbs := dot2(crow, r, r)
		t := l.threshold(predAbs, aAbs, sumR, sumBar, cAbs)
		if d <= t && cAbs <= math.MaxFloat64 { // an Inf in C makes t Inf too
			worst = max(worst, d/t)
			continue
		}
		if vd, ok := diagnose(l, i, -1); ok {
			return 0, &vd
		}
		if math.IsNaN(pred) || math.IsInf(pred, 0) || math.IsNaN(predAbs) || math.IsInf(predAbs, 0) {
			vd := errVerdict(inputsError(l.out))
			return 0, &vd
		}
		return 0, &Verdict{
			Reason: fmt.Sprintf("Freivalds: output %d row %d: C·r = %.9g but A·(B·r) = %.9g, off by %.3g, %.3g× the threshold %.3g",
				l.out, i, cr, pred, d, d/t, t),
			Method: MethodFreivalds,
			Ratio:  d / t,
		}
	}
	return worst, nil
}

// The dot products below run over float32 rows in float64 with four
// independent accumulators each, so that the additions pipeline.

// dot returns Σ x_j·y_j.
func dot(x []float32, y []float64) float64 {
	y = y[:len(x)]
	var s0, s1, s2, s3 float64
	j := 0
	for ; j+4 <= len(x); j += 4 {
		x4, y4 := x[j:j+4:j+4], y[j:j+4:j+4]
		s0 += float64(x4[0]) * y4[0]
		s1 += float64(x4[1]) * y4[1]
		s2 += float64(x4[2]) * y4[2]
		s3 += float64(x4[3]) * y4[3]
	}
	for ; j < len(x); j++ {
		s0 += float64(x[j]) * y[j]
	}
	return (s0 + s1) + (s2 + s3)
}

// dot2 returns Σ x_j·y_j and Σ |x_j|·ya_j.
func dot2(x []float32, y, ya []float64) (s, sa float64) {
	y, ya = y[:len(x)], ya[:len(x)]
	var s0, s1, s2, s3, a0, a1, a2, a3 float64
	j := 0
	for ; j+4 <= len(x); j += 4 {
		x4, y4, ya4 := x[j:j+4:j+4], y[j:j+4:j+4], ya[j:j+4:j+4]
		f0, f1, f2, f3 := float64(x4[0]), float64(x4[1]), float64(x4[2]), float64(x4[3])
		s0 += f0 * y4[0]
		s1 += f1 * y4[1]
		s2 += f2 * y4[2]
		s3 += f3 * y4[3]
		a0 += math.Abs(f0) * ya4[0]
		a1 += math.Abs(f1) * ya4[1]
		a2 += math.Abs(f2) * ya4[2]
		a3 += math.Abs(f3) * ya4[3]
	}
	for ; j < len(x); j++ {
		f := float64(x[j])
		s0 += f * y[j]
		a0 += math.Abs(f) * ya[j]
	}
	return (s0 + s1) + (s2 + s3), (a0 + a1) + (a2 + a3)
}

// dot2Relu returns Σ h_j·y_j and Σ h_j·ya_j for h = relu(x).
func dot2Relu(x []float32, y, ya []float64) (s, sa float64) {
	y, ya = y[:len(x)], ya[:len(x)]
	var s0, s1, s2, s3, a0, a1, a2, a3 float64
	j := 0
	for ; j+4 <= len(x); j += 4 {
		x4, y4, ya4 := x[j:j+4:j+4], y[j:j+4:j+4], ya[j:j+4:j+4]
		h0, h1, h2, h3 := relu(x4[0]), relu(x4[1]), relu(x4[2]), relu(x4[3])
		s0 += h0 * y4[0]
		s1 += h1 * y4[1]
		s2 += h2 * y4[2]
		s3 += h3 * y4[3]
		a0 += h0 * ya4[0]
		a1 += h1 * ya4[1]
		a2 += h2 * ya4[2]
		a3 += h3 * ya4[3]
	}
	for ; j < len(x); j++ {
		h := relu(x[j])
		s0 += h * y[j]
		a0 += h * ya[j]
	}
	return (s0 + s1) + (s2 + s3), (a0 + a1) + (a2 + a3)
}

// relu returns max(x, 0) as float64 without a branch (random signs would
// mispredict half the time): it clears x when its sign bit is set.
func relu(x float32) float64 {
	b := math.Float32bits(x)
	return float64(math.Float32frombits(b &^ uint32(int32(b)>>31)))
}
