package verify

import "math"

// The inner loops of the checks: float32 rows against float64 vectors,
// accumulated in float64. Each has a portable Go version here (the *Go
// functions) and, on amd64 with AVX2 and FMA, an assembly version
// (kernels_amd64.s); the unsuffixed functions the checks call pick one
// (kernels_amd64.go, kernels_other.go). The gemv kernels take all the
// rows of a matrix in one call, so that the assembly can work on four
// rows at once.
//
// Versions may sum in different orders, and the assembly fuses
// multiplies and adds, so their results differ within float64 rounding:
// every bound here allows for any order (slack64). Where Agree and
// ElementTolerance must reproduce the same number, they share the code
// that computes it: agreeTol and addSquare are elementwise and unfused,
// so that every version gives the same bits, and reluNorms runs the very
// steps of agreeRowNorms. The callers pass vectors at least as long as
// the rows; the dispatchers reslice them, so a short one panics before
// any assembly runs.

// dotGo returns Σ x_j·y_j.
func dotGo(x []float32, y []float64) float64 {
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

// dotAbsGo returns Σ x_j·y_j, Σ |x_j|·ya_j and Σ x_j².
func dotAbsGo(x []float32, y, ya []float64) (s, sa, sq float64) {
	y, ya = y[:len(x)], ya[:len(x)]
	var s0, s1, s2, s3, a0, a1, a2, a3, q0, q1, q2, q3 float64
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
		q0 += f0 * f0
		q1 += f1 * f1
		q2 += f2 * f2
		q3 += f3 * f3
	}
	for ; j < len(x); j++ {
		f := float64(x[j])
		s0 += f * y[j]
		a0 += math.Abs(f) * ya[j]
		q0 += f * f
	}
	return (s0 + s1) + (s2 + s3), (a0 + a1) + (a2 + a3), (q0 + q1) + (q2 + q3)
}

// dotReluGo returns Σ h_j·y_j, Σ h_j·ya_j and Σ h_j² for h = relu(x).
func dotReluGo(x []float32, y, ya []float64) (s, sa, sq float64) {
	y, ya = y[:len(x)], ya[:len(x)]
	var s0, s1, s2, s3, a0, a1, a2, a3, q0, q1, q2, q3 float64
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
		q0 += h0 * h0
		q1 += h1 * h1
		q2 += h2 * h2
		q3 += h3 * h3
	}
	for ; j < len(x); j++ {
		h := relu(x[j])
		s0 += h * y[j]
		a0 += h * ya[j]
		q0 += h * h
	}
	return (s0 + s1) + (s2 + s3), (a0 + a1) + (a2 + a3), (q0 + q1) + (q2 + q3)
}

// gemvGo sets out_i = a_i·x for the rows a_i of a (len(out) rows of
// cols).
func gemvGo(a []float32, cols int, x, out []float64) {
	a = a[:len(out)*cols]
	for i := range out {
		out[i] = dotGo(a[i*cols:(i+1)*cols], x)
	}
}

// gemvAbsGo sets out_i = a_i·x, outAbs_i = |a_i|·xa and outSq_i =
// ‖a_i‖₂².
func gemvAbsGo(a []float32, cols int, x, xa, out, outAbs, outSq []float64) {
	a, outAbs, outSq = a[:len(out)*cols], outAbs[:len(out)], outSq[:len(out)]
	for i := range out {
		out[i], outAbs[i], outSq[i] = dotAbsGo(a[i*cols:(i+1)*cols], x, xa)
	}
}

// gemvReluGo sets out_i = relu(a_i)·x, outAbs_i = relu(a_i)·xa and
// outSq_i = ‖relu(a_i)‖₂².
func gemvReluGo(a []float32, cols int, x, xa, out, outAbs, outSq []float64) {
	a, outAbs, outSq = a[:len(out)*cols], outAbs[:len(out)], outSq[:len(out)]
	for i := range out {
		out[i], outAbs[i], outSq[i] = dotReluGo(a[i*cols:(i+1)*cols], x, xa)
	}
}

// dot returns Σ x_j·y_j.
func dot(x []float32, y []float64) float64 {
	var out [1]float64
	gemv(x, len(x), y, out[:])
	return out[0]
}

// sumAbsGo returns Σ |x_j|.
func sumAbsGo(x []float32) float64 {
	var s0, s1, s2, s3 float64
	j := 0
	for ; j+4 <= len(x); j += 4 {
		x4 := x[j : j+4 : j+4]
		s0 += math.Abs(float64(x4[0]))
		s1 += math.Abs(float64(x4[1]))
		s2 += math.Abs(float64(x4[2]))
		s3 += math.Abs(float64(x4[3]))
	}
	for ; j < len(x); j++ {
		s0 += math.Abs(float64(x[j]))
	}
	return (s0 + s1) + (s2 + s3)
}

// sumSquaresGo returns Σ x_j².
func sumSquaresGo(x []float32) float64 {
	var s0, s1, s2, s3 float64
	j := 0
	for ; j+4 <= len(x); j += 4 {
		x4 := x[j : j+4 : j+4]
		f0, f1, f2, f3 := float64(x4[0]), float64(x4[1]), float64(x4[2]), float64(x4[3])
		s0 += f0 * f0
		s1 += f1 * f1
		s2 += f2 * f2
		s3 += f3 * f3
	}
	for ; j < len(x); j++ {
		f := float64(x[j])
		s0 += f * f
	}
	return (s0 + s1) + (s2 + s3)
}

// addSquaresGo adds x_j² to w_j, rounding the square before the sum (the
// conversion stops the compiler fusing them), as every version does: a
// column norm summed by addSquares row after row has the same bits as
// one summed element by element with addSquare.
func addSquaresGo(w []float64, x []float32) {
	w = w[:len(x)]
	for j, f := range x {
		w[j] = addSquare(w[j], f)
	}
}

// addSquare returns w + x², the square rounded first.
func addSquare(w float64, x float32) float64 {
	f := float64(x)
	return w + float64(f*f)
}

// agreeRowNormsGo returns Σ relu(a_j)², Σ relu(b_j)² and Σ (relu(a_j) −
// relu(b_j))², and, when check is set, the first j at which
// !(|a_j − b_j| ≤ worst·tol_j) as agreeRowGo does (len(a) when there is
// none, or when check is not set; colConst and w may then be nil).
func agreeRowNormsGo(a, b []float32, colConst, w []float64, rowConst, rowFactor, worst float64, check bool) (first int, sa, sb, sd float64) {
	b = b[:len(a)]
	if check {
		colConst, w = colConst[:len(a)], w[:len(a)]
	}
	first = len(a)
	for j, x := range a {
		ha, hb := relu(x), relu(b[j])
		sa += ha * ha
		sb += hb * hb
		sd += (ha - hb) * (ha - hb)
		if check && first == len(a) {
			tol := agreeTol(rowConst, colConst[j], rowFactor, w[j])
			if d := math.Abs(float64(x) - float64(b[j])); !(d <= worst*tol) {
				first = j
			}
		}
	}
	return first, sa, sb, sd
}

// agreeTol is Agree's tolerance of an element from its row and column
// terms, rounded the same way by every version of agreeRow and by
// ElementTolerance: (rowConst + colConst) + rowFactor·w, unfused.
func agreeTol(rowConst, colConst, rowFactor, w float64) float64 {
	return rowConst + colConst + float64(rowFactor*w)
}

// agreeRowGo returns the first j at which !(|a_j − b_j| ≤ worst·tol_j),
// with tol_j = agreeTol(rowConst, colConst_j, rowFactor, w_j) (NaN
// included), or len(a) when there is none.
func agreeRowGo(a, b []float32, colConst, w []float64, rowConst, rowFactor, worst float64) int {
	b, colConst, w = b[:len(a)], colConst[:len(a)], w[:len(a)]
	for j, x := range a {
		tol := agreeTol(rowConst, colConst[j], rowFactor, w[j])
		if d := math.Abs(float64(x) - float64(b[j])); !(d <= worst*tol) {
			return j
		}
	}
	return len(a)
}

// relu returns x when x > 0 and +0 otherwise (NaN included), as float64,
// without a branch (random signs would mispredict half the time): read
// as an integer, a float32 is above zero exactly when it lies in
// [1, 0x7f800000] (+Inf), and +0 is 0. The assembly's VMAXPS and VMAXPD
// against zero give the same.
func relu(x float32) float64 {
	b := math.Float32bits(x)
	return float64(math.Float32frombits(b &^ uint32((0x7f800000-int64(b))>>63)))
}
