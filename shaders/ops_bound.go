package shaders

import (
	"math"
)

// Error bounds: how far a correct GPU result may be from the CPU reference.
//
// Each Bound* function returns, per output element, a bound on
// |GPU − CPU| for one kernel on the given inputs, derived from float32
// rounding error analysis (Higham, "Accuracy and Stability of Numerical
// Algorithms") and the accuracy WGSL guarantees for its builtins:
// exp (3 + 2|x|) ULP, log 3 ULP (absolute 2⁻²¹ on [0.5, 2]), division
// 2.5 ULP, inverseSqrt 2 ULP, sqrt as 1/inverseSqrt. With u = 2⁻²⁴ (Unit),
// one ULP of y is at most 2u·|y|. Each backend's error against exact
// arithmetic is bounded by the same expression E, so |GPU − CPU| ≤ 2E; the
// functions return 2E, with first-order terms inflated by 1% to cover the
// second-order ones, plus a floor of a few 2⁻¹²⁶ for GPUs that flush
// subnormals to zero. The derivations:
//
//   - matmul: each element is a dot product of length k plus the bias, so
//     E = γ_{k+1}·(Σ_p |f(a_ip)||b_pj| + |bias_j|), for any summation order,
//     with or without fused multiply-adds. ReLU is 1-Lipschitz and exact, so
//     the bound passes through it; GELU has Lipschitz constant 1.13 and its
//     own evaluation error (below), so the GELU bound is 1.13·B + 32u·(|z| + B)
//     where B is the bound on the pre-activation z.
//   - gelu(x): tanh_stable's e = exp(−2|y|) has relative error (6 + 18|y|)u
//     (the exp bound plus the rounding of y), so tanh is off by at most 26u
//     absolutely (|y|·e ≤ 1/(2e)); gelu = 0.5x(1 + t) is then off by 16u·|x|.
//   - softmax: with d_j = x_j − max, exp(d_j) has relative error
//     ε_j = (6 + 5|d_j|)u, the row sum S relative error ε_S = γ_n + Σ e_j ε_j/S,
//     and y_j = e_j/S relative error ε_j + ε_S + 5u.
//   - cross-entropy: log S is off by ε_S plus log's own error, each term
//     t_j(log S − d_j) by γ_{n+2} relative, so the loss by
//     Σ|t_j|(Δlog S + u|d_j|) + γ_{n+2}Σ|t_j|(|log S| + |d_j|); the gradient
//     by |scale|·(y_j(ε_j + ε_S + 5u) + 2u|y_j − t_j|).
//   - relu backward: exact (bound 0). gelu backward: gelu'(x) is off by
//     15u + 32u·|x|·|du| + 9u·|gelu'(x)| (du = d(√(2/π)(x + 0.044715x³))/dx),
//     times |dh|, plus the product's rounding.
//   - axpby, SGD, Adam: a few roundings per element, γ_2 to γ_4 relative to the
//     magnitudes of the summands, propagated through each step; Adam adds
//     sqrt (9u) and division (5u).
//   - column and row sums: γ_n·Σ|x| over the n summands.
//   - layer norm: the mean is off by γ_{n+5}·mean|x|, each x_j − μ by that
//     plus u|x_j − μ|; the variance by 2·mean(|d_j|Δd_j) + γ_{n+5}σ²;
//     r = (σ² + eps)^(-1/2) by half the variance's relative error plus 4u.
//   - im2col: a copy, exact (bound 0).
//
// The bounds are worst cases: measured GPU/CPU differences are typically a
// small fraction of them (the parity tests in shaders/gpu log the ratio).

// Unit is the unit roundoff of float32, u = 2⁻²⁴.
const Unit = 0x1p-24

// tiny is the smallest normal float32: an absolute floor per operation for
// GPUs that flush subnormal results to zero.
const tiny = 0x1p-126

// first covers the second-order terms the first-order bounds leave out.
const first = 1.01

// Gamma returns γ_n = n·u/(1 − n·u), the relative error bound of n float32
// roundings; +Inf when n·u ≥ 1.
func Gamma(n int) float64 {
	nu := float64(n) * Unit
	if nu >= 1 {
		return math.Inf(1)
	}
	return nu / (1 - nu)
}

// GELULipschitz bounds |gelu'(x)| over all x (the maximum is about 1.129,
// near x = 1.5).
const GELULipschitz = 1.13

// geluEvalErr bounds one backend's error in evaluating gelu(x).
func geluEvalErr(x float64) float64 { return 16 * Unit * math.Abs(x) }

// BoundMatMul bounds |GPU − CPU| per element of MatMulFused(c, a, b, bias,
// m, k, n, o). It costs two products of the same shape.
func BoundMatMul(a, b, bias []float32, m, k, n int, o MatMulOpts) []float64 {
	if o.TransA {
		a = transpose(a, k, m)
	}
	if o.TransB {
		b = transpose(b, n, k)
	}
	absA := make([]float32, m*k)
	for i, v := range a[:m*k] {
		if o.ReLUIn {
			v = max(v, 0)
		}
		absA[i] = float32(math.Abs(float64(v)))
	}
	absB := make([]float32, k*n)
	for i, v := range b[:k*n] {
		absB[i] = float32(math.Abs(float64(v)))
	}
	s := make([]float32, m*n)
	MatMul(s, absA, absB, m, k, n) // |f(A)|·|B| in float32: ≤ (1+γ_k) too small
	var z []float32
	if o.Act == ActGELU {
		z = make([]float32, m*n)
		MatMulFused(z, a, b, bias, m, k, n, MatMulOpts{ReLUIn: o.ReLUIn})
	}
	gk, g := Gamma(k), Gamma(k+1)
	floor := 2 * float64(k+2) * tiny
	out := make([]float64, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			sum := float64(s[i*n+j]) / (1 - gk)
			if bias != nil {
				sum += math.Abs(float64(bias[j]))
			}
			bz := 2*first*g*sum + floor
			if o.Act == ActGELU {
				bz = GELULipschitz*bz + 2*first*geluEvalErr(math.Abs(float64(z[i*n+j]))+bz) + floor
			}
			out[i*n+j] = bz
		}
	}
	return out
}

// softmaxRow returns, for one row x, e_j = exp(x_j − max), S = Σ e_j (in
// float64), and each exp's relative error ε_j and S's relative error ε_S.
func softmaxRow(x []float32) (e, eps []float64, s, epsS float64) {
	m := math.Inf(-1)
	for _, v := range x {
		m = max(m, float64(v))
	}
	e = make([]float64, len(x))
	eps = make([]float64, len(x))
	for j, v := range x {
		d := float64(v) - m
		e[j] = math.Exp(d)
		eps[j] = (6 + 5*math.Abs(d)) * Unit
		s += e[j]
	}
	var w float64
	for j := range e {
		w += e[j] * eps[j]
	}
	epsS = Gamma(len(x)) + w/s
	return e, eps, s, epsS
}

// BoundSoftmax bounds |GPU − CPU| per element of Softmax.
func BoundSoftmax(x []float32, rows, cols int) []float64 {
	out := make([]float64, rows*cols)
	for i := 0; i < rows; i++ {
		e, eps, s, epsS := softmaxRow(x[i*cols : i*cols+cols])
		for j := range e {
			out[i*cols+j] = 2*first*(e[j]/s)*(eps[j]+epsS+5*Unit) + 2*tiny
		}
	}
	return out
}

// BoundSoftmaxCrossEntropy bounds |GPU − CPU| per element of the loss and
// the gradient of SoftmaxCrossEntropy.
func BoundSoftmaxCrossEntropy(z, t []float32, rows, cols int, scale float32) (loss, grad []float64) {
	loss = make([]float64, rows)
	grad = make([]float64, rows*cols)
	sc := math.Abs(float64(scale))
	for i := 0; i < rows; i++ {
		zi, ti := z[i*cols:i*cols+cols], t[i*cols:i*cols+cols]
		e, eps, s, epsS := softmaxRow(zi)
		m := math.Inf(-1)
		for _, v := range zi {
			m = max(m, float64(v))
		}
		ls := math.Log(s)
		logErr := 6 * Unit * math.Abs(ls)
		if s >= 0.5 && s <= 2 {
			logErr = 0x1p-21
		}
		dl := epsS + logErr
		gam := Gamma(cols + 2)
		var bl float64
		for j := range e {
			d := math.Abs(float64(zi[j]) - m)
			tj := math.Abs(float64(ti[j]))
			bl += tj*(dl+Unit*d) + gam*tj*(math.Abs(ls)+d)
			y := e[j] / s
			grad[i*cols+j] = 2*first*sc*(y*(eps[j]+epsS+5*Unit)+2*Unit*math.Abs(y-float64(ti[j]))) + 2*tiny
		}
		loss[i] = 2*first*bl + float64(cols+2)*tiny
	}
	return loss, grad
}

// BoundActBackward bounds |GPU − CPU| per element of ActBackward: zero for
// ReLU and the identity, which are exact.
func BoundActBackward(z, dh []float32, a Act) []float64 {
	out := make([]float64, len(z))
	if a != ActGELU {
		return out
	}
	for i, zv := range z {
		x := float64(zv)
		if math.Abs(x) > geluSat {
			continue // gelu' is exactly 0 or 1
		}
		du := geluC * (1 + 3*geluA*x*x)
		gp := math.Abs(float64(GELUGrad(zv)))
		eg := 15*Unit + 32*Unit*math.Abs(x)*du + 9*Unit*gp
		h := math.Abs(float64(dh[i]))
		out[i] = 2*first*(h*eg+Unit*h*gp) + 2*tiny
	}
	return out
}

// BoundAxpby bounds |GPU − CPU| per element of Axpby.
func BoundAxpby(x, y []float32, alpha, beta float32) []float64 {
	out := make([]float64, len(x))
	g := Gamma(2)
	for i, v := range x {
		s := math.Abs(float64(alpha) * float64(v))
		if beta != 0 {
			s += math.Abs(float64(beta) * float64(y[i]))
		}
		out[i] = 2*first*g*s + 2*tiny
	}
	return out
}

// BoundSGD bounds |GPU − CPU| per element of the updated weights and
// momentum of SGDStep(w, g, v, c) (the inputs before the step).
func BoundSGD(w, g, v []float32, c SGDConfig) (bw, bv []float64) {
	bw = make([]float64, len(w))
	bv = make([]float64, len(w))
	g2 := Gamma(2)
	lr, mu, wd := float64(c.LR), float64(c.Momentum), float64(c.WeightDecay)
	for i := range w {
		wi, gi, vi := float64(w[i]), float64(g[i]), float64(v[i])
		gp := gi + wd*wi
		dg := g2 * (math.Abs(gi) + math.Abs(wd*wi))
		vn := mu*vi + gp
		dv := dg + g2*(math.Abs(mu*vi)+math.Abs(gp))
		dw := math.Abs(lr)*dv + g2*(math.Abs(wi)+math.Abs(lr*vn))
		bv[i] = 2*first*dv + 4*tiny
		bw[i] = 2*first*dw + 6*tiny
	}
	return bw, bv
}

// BoundAdam bounds |GPU − CPU| per element of the updated weights and
// moments of AdamStep(w, g, m, v, c, t) (the inputs before the step).
func BoundAdam(w, g, m, v []float32, c AdamConfig, t int) (bw, bm, bv []float64) {
	p := c.Params(len(w), t)
	bw = make([]float64, len(w))
	bm = make([]float64, len(w))
	bv = make([]float64, len(w))
	b1, b2 := float64(p.Beta1), float64(p.Beta2)
	ob1, ob2 := float64(1-p.Beta1), float64(1-p.Beta2) // the same float32 constants on both sides
	lr, c1, c2, eps, wd := float64(p.LR), float64(p.C1), float64(p.C2), float64(p.Eps), float64(p.WeightDecay)
	for i := range w {
		wi, gi, mi, vi := float64(w[i]), float64(g[i]), float64(m[i]), float64(v[i])
		gp := gi + wd*wi
		dg := Gamma(2) * (math.Abs(gi) + math.Abs(wd*wi))
		mn := b1*mi + ob1*gp
		dm := ob1*dg + Gamma(3)*(math.Abs(b1*mi)+math.Abs(ob1*gp))
		vn := b2*vi + ob2*gp*gp
		dv := ob2*(2*math.Abs(gp)*dg) + Gamma(4)*(math.Abs(b2*vi)+ob2*gp*gp)
		sq := math.Sqrt(vn * c2)
		den := sq + eps
		relV := Unit
		if vn > 0 {
			relV += dv / vn
		}
		dden := sq*(relV/2+9*Unit) + Unit*den
		num := lr * mn * c1
		dnum := math.Abs(lr*c1)*dm + 2*Unit*math.Abs(num)
		step := num / den
		ds := dnum/den + math.Abs(step)*dden/den + 5*Unit*math.Abs(step)
		dw := ds + Unit*math.Abs(wi-step)
		bm[i] = 2*first*dm + 4*tiny
		bv[i] = 2*first*dv + 4*tiny
		bw[i] = 2*first*dw + 8*tiny
	}
	return bw, bm, bv
}

// BoundColSums bounds |GPU − CPU| per element of ColSums.
func BoundColSums(x []float32, rows, cols int) []float64 {
	out := make([]float64, cols)
	for i := 0; i < rows; i++ {
		for j, v := range x[i*cols : i*cols+cols] {
			out[j] += math.Abs(float64(v))
		}
	}
	g := Gamma(rows)
	for j := range out {
		out[j] = 2*first*g*out[j] + float64(rows)*tiny
	}
	return out
}

// BoundRowSums bounds |GPU − CPU| per element of RowSums.
func BoundRowSums(x []float32, rows, cols int) []float64 {
	out := make([]float64, rows)
	g := Gamma(cols)
	for i := 0; i < rows; i++ {
		var s float64
		for _, v := range x[i*cols : i*cols+cols] {
			s += math.Abs(float64(v))
		}
		out[i] = 2*first*g*s + float64(cols)*tiny
	}
	return out
}

// BoundLayerNorm bounds |GPU − CPU| per element of LayerNorm.
func BoundLayerNorm(x, gamma, beta []float32, rows, cols int, eps float32) []float64 {
	out := make([]float64, rows*cols)
	n := float64(cols)
	gn := Gamma(cols + 5)
	for i := 0; i < rows; i++ {
		xi := x[i*cols : i*cols+cols]
		var s, sa float64
		for _, v := range xi {
			s += float64(v)
			sa += math.Abs(float64(v))
		}
		mean := s / n
		dmean := gn * sa / n
		var q, cross float64
		for _, v := range xi {
			d := float64(v) - mean
			q += d * d
			cross += math.Abs(d) * (dmean + Unit*math.Abs(d))
		}
		variance := q / n
		dvar := first*2*cross/n + gn*variance
		ve := variance + float64(eps)
		r := 1 / math.Sqrt(ve)
		relR := (dvar+Unit*ve)/ve/2 + 4*Unit
		for j, v := range xi {
			d := float64(v) - mean
			dd := dmean + Unit*math.Abs(d)
			gj := math.Abs(float64(gamma[j]))
			y := d*r*float64(gamma[j]) + float64(beta[j])
			dy := r*gj*dd + math.Abs(d)*r*gj*(relR+2*Unit) + Unit*math.Abs(y)
			out[i*cols+j] = 2*first*dy + float64(cols+8)*tiny
		}
	}
	return out
}

// BoundCheck is the outcome of comparing a result against a reference
// within per-element bounds.
type BoundCheck struct {
	MaxRatio float64 // max over elements of |got − want| / bound (0/0 counts as 0)
	Worst    int     // index of that element (-1 when there are none)
	MaxAbs   float64 // max |got − want|
	OK       bool    // every element within its bound (MaxRatio ≤ 1)
}

// CheckBound compares got with want element by element against bound.
// NaN matches only NaN and an infinity only itself; any other difference
// where the bound is 0 counts as an infinite ratio.
func CheckBound(got, want []float32, bound []float64) BoundCheck {
	r := BoundCheck{Worst: -1, OK: len(got) == len(want) && len(want) == len(bound)}
	if !r.OK {
		r.MaxRatio = math.Inf(1)
		return r
	}
	for i := range want {
		g, w := float64(got[i]), float64(want[i])
		var ratio, diff float64
		switch {
		case math.IsNaN(g) || math.IsNaN(w):
			if !(math.IsNaN(g) && math.IsNaN(w)) {
				ratio, diff = math.Inf(1), math.Inf(1)
			}
		case math.IsInf(g, 0) || math.IsInf(w, 0):
			if g != w {
				ratio, diff = math.Inf(1), math.Inf(1)
			}
		default:
			diff = math.Abs(g - w)
			if diff > 0 {
				ratio = diff / bound[i]
			}
		}
		r.MaxAbs = max(r.MaxAbs, diff)
		if ratio > r.MaxRatio || r.Worst < 0 {
			r.MaxRatio, r.Worst = max(ratio, r.MaxRatio), i
		}
	}
	r.OK = r.MaxRatio <= 1
	return r
}
