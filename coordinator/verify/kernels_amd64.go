//go:build amd64 && !purego

package verify

import "golang.org/x/sys/cpu"

// useAVX2 is set when the CPU (and the OS, which must save the YMM
// registers) runs the assembly kernels of kernels_amd64.s: AVX2 and FMA.
var useAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// The assembly kernels. They trust their callers with the lengths: the
// functions below reslice every argument to what the kernel reads.

//go:noescape
func gemvAVX2(a []float32, cols int, x, out []float64)

//go:noescape
func gemv4AVX2(a []float32, cols int, x0, x1, x2, x3, out0, out1, out2, out3 []float64, rows int)

//go:noescape
func gemvAbsAVX2(a []float32, cols int, x, xa, out, outAbs, outSq []float64)

//go:noescape
func gemvReluAVX2(a []float32, cols int, x, xa, out, outAbs, outSq []float64)

//go:noescape
func sumAbsAVX2(x []float32) float64

//go:noescape
func sumSquaresAVX2(x []float32) float64

//go:noescape
func addSquaresAVX2(w []float64, x []float32)

//go:noescape
func agreeRowNormsAVX2(a, b []float32, colConst, w []float64, rowConst, rowFactor, worst float64, check int, sums *[3]float64) int

//go:noescape
func agreeRowAVX2(a, b []float32, colConst, w []float64, rowConst, rowFactor, worst float64) int

// gemv sets out_i = a_i·x for the rows a_i of a (len(out) rows of
// cols).
func gemv(a []float32, cols int, x, out []float64) {
	a, x = a[:len(out)*cols], x[:cols]
	if !useAVX2 {
		gemvGo(a, cols, x, out)
		return
	}
	gemvAVX2(a, cols, x, out)
	if c4 := cols &^ 3; c4 < cols { // the last few columns
		for i := range out {
			out[i] += dotGo(a[i*cols+c4:(i+1)*cols], x[c4:])
		}
	}
}

// gemv4 sets out[v]_i = a_i·x[v] for four vectors (len(out[v]) rows of
// cols each, the same for all four) in one pass over a that converts
// each element once for the four. Every sum has the bits
// gemv(a, cols, x[v], out[v]) gives it.
func gemv4(a []float32, cols int, x, out *[4][]float64) {
	rows := len(out[0])
	if !useAVX2 || rows < 4 {
		for v := range x {
			gemv(a, cols, x[v], out[v])
		}
		return
	}
	a = a[:rows*cols]
	var xs, outs [4][]float64
	for v := range x {
		xs[v], outs[v] = x[v][:cols], out[v][:rows]
	}
	// Rows in groups of four, as gemv's block path takes them; the rest
	// go through its one-row path, and the last few columns are added
	// after, as gemv adds them.
	r4 := rows &^ 3
	gemv4AVX2(a, cols, xs[0], xs[1], xs[2], xs[3], outs[0], outs[1], outs[2], outs[3], r4)
	c4 := cols &^ 3
	for v := range xs {
		if c4 < cols {
			for i := range r4 {
				outs[v][i] += dotGo(a[i*cols+c4:(i+1)*cols], xs[v][c4:])
			}
		}
		if r4 < rows {
			gemv(a[r4*cols:], cols, xs[v], outs[v][r4:])
		}
	}
}

// gemvAbs sets out_i = a_i·x, outAbs_i = |a_i|·xa and outSq_i = ‖a_i‖₂².
func gemvAbs(a []float32, cols int, x, xa, out, outAbs, outSq []float64) {
	gemvSums(a, cols, x, xa, out, outAbs, outSq, gemvAbsGo, gemvAbsAVX2, dotAbsGo)
}

// gemvRelu sets out_i = relu(a_i)·x, outAbs_i = relu(a_i)·xa and outSq_i
// = ‖relu(a_i)‖₂².
func gemvRelu(a []float32, cols int, x, xa, out, outAbs, outSq []float64) {
	gemvSums(a, cols, x, xa, out, outAbs, outSq, gemvReluGo, gemvReluAVX2, dotReluGo)
}

// gemvSums runs one of the three-sum gemv kernels: the portable one
// without AVX2, else the assembly for the first cols&^3 columns and the
// portable dot product for the rest.
func gemvSums(a []float32, cols int, x, xa, out, outAbs, outSq []float64,
	portable, asm func(a []float32, cols int, x, xa, out, outAbs, outSq []float64),
	tail func(x []float32, y, ya []float64) (s, sa, sq float64)) {
	a, x, xa, outAbs, outSq = a[:len(out)*cols], x[:cols], xa[:cols], outAbs[:len(out)], outSq[:len(out)]
	if !useAVX2 {
		portable(a, cols, x, xa, out, outAbs, outSq)
		return
	}
	asm(a, cols, x, xa, out, outAbs, outSq)
	if c4 := cols &^ 3; c4 < cols {
		for i := range out {
			s, sa, sq := tail(a[i*cols+c4:(i+1)*cols], x[c4:], xa[c4:])
			out[i] += s
			outAbs[i] += sa
			outSq[i] += sq
		}
	}
}

// sumAbs returns Σ |x_j|.
func sumAbs(x []float32) float64 {
	if useAVX2 {
		return sumAbsAVX2(x)
	}
	return sumAbsGo(x)
}

// sumSquares returns Σ x_j².
func sumSquares(x []float32) float64 {
	if useAVX2 {
		return sumSquaresAVX2(x)
	}
	return sumSquaresGo(x)
}

// addSquares adds x_j² to w_j, as addSquare does.
func addSquares(w []float64, x []float32) {
	w = w[:len(x)]
	if useAVX2 {
		addSquaresAVX2(w, x)
		return
	}
	addSquaresGo(w, x)
}

// reluNorms returns Σ relu(a_j)², Σ relu(b_j)² and Σ (relu(a_j) −
// relu(b_j))², with the same bits as agreeRowNorms.
func reluNorms(a, b []float32) (sa, sb, sd float64) {
	b = b[:len(a)]
	if !useAVX2 {
		_, sa, sb, sd = agreeRowNormsGo(a, b, nil, nil, 0, 0, 0, false)
		return sa, sb, sd
	}
	var sums [3]float64
	agreeRowNormsAVX2(a, b, nil, nil, 0, 0, 0, 0, &sums)
	n4 := len(a) &^ 3
	_, sa, sb, sd = agreeRowNormsGo(a[n4:], b[n4:], nil, nil, 0, 0, 0, false)
	return sums[0] + sa, sums[1] + sb, sums[2] + sd
}

// agreeRowNorms returns what agreeRow and reluNorms return, in one pass.
func agreeRowNorms(a, b []float32, colConst, w []float64, rowConst, rowFactor, worst float64) (first int, sa, sb, sd float64) {
	b, colConst, w = b[:len(a)], colConst[:len(a)], w[:len(a)]
	if !useAVX2 {
		return agreeRowNormsGo(a, b, colConst, w, rowConst, rowFactor, worst, true)
	}
	var sums [3]float64
	first = agreeRowNormsAVX2(a, b, colConst, w, rowConst, rowFactor, worst, 1, &sums)
	n4 := len(a) &^ 3
	tail, sa, sb, sd := agreeRowNormsGo(a[n4:], b[n4:], colConst[n4:], w[n4:], rowConst, rowFactor, worst, true)
	if first == n4 {
		first += tail
	}
	return first, sums[0] + sa, sums[1] + sb, sums[2] + sd
}

// agreeRow returns the first j at which !(|a_j − b_j| ≤ worst·tol_j), or
// len(a).
func agreeRow(a, b []float32, colConst, w []float64, rowConst, rowFactor, worst float64) int {
	b, colConst, w = b[:len(a)], colConst[:len(a)], w[:len(a)]
	if !useAVX2 {
		return agreeRowGo(a, b, colConst, w, rowConst, rowFactor, worst)
	}
	j := agreeRowAVX2(a, b, colConst, w, rowConst, rowFactor, worst)
	if n4 := len(a) &^ 3; j < n4 {
		return j
	}
	return j + agreeRowGo(a[j:], b[j:], colConst[j:], w[j:], rowConst, rowFactor, worst)
}
