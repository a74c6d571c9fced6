//go:build !amd64 || purego

package verify

// Without assembly (another architecture, or the purego build tag) the
// checks run the portable kernels of kernels.go.

// useAVX2 is false: no assembly kernels in this build.
const useAVX2 = false

// gemv sets out_i = a_i·x for the rows a_i of a (len(out) rows of
// cols).
func gemv(a []float32, cols int, x, out []float64) { gemvGo(a, cols, x, out) }

// gemv4 sets out[v]_i = a_i·x[v] for four vectors, as four gemv calls.
func gemv4(a []float32, cols int, x, out *[4][]float64) {
	for v := range x {
		gemv(a, cols, x[v], out[v])
	}
}

// gemvAbs sets out_i = a_i·x, outAbs_i = |a_i|·xa and outSq_i = ‖a_i‖₂².
func gemvAbs(a []float32, cols int, x, xa, out, outAbs, outSq []float64) {
	gemvAbsGo(a, cols, x, xa, out, outAbs, outSq)
}

// gemvRelu sets out_i = relu(a_i)·x, outAbs_i = relu(a_i)·xa and outSq_i
// = ‖relu(a_i)‖₂².
func gemvRelu(a []float32, cols int, x, xa, out, outAbs, outSq []float64) {
	gemvReluGo(a, cols, x, xa, out, outAbs, outSq)
}

// sumAbs returns Σ |x_j|.
func sumAbs(x []float32) float64 { return sumAbsGo(x) }

// sumSquares returns Σ x_j².
func sumSquares(x []float32) float64 { return sumSquaresGo(x) }

// addSquares adds x_j² to w_j, as addSquare does.
func addSquares(w []float64, x []float32) { addSquaresGo(w, x) }

// reluNorms returns Σ relu(a_j)², Σ relu(b_j)² and Σ (relu(a_j) −
// relu(b_j))², with the same bits as agreeRowNorms.
func reluNorms(a, b []float32) (sa, sb, sd float64) {
	_, sa, sb, sd = agreeRowNormsGo(a, b, nil, nil, 0, 0, 0, false)
	return sa, sb, sd
}

// agreeRowNorms returns what agreeRow and reluNorms return, in one pass.
func agreeRowNorms(a, b []float32, colConst, w []float64, rowConst, rowFactor, worst float64) (first int, sa, sb, sd float64) {
	return agreeRowNormsGo(a, b, colConst, w, rowConst, rowFactor, worst, true)
}

// agreeRow returns the first j at which !(|a_j − b_j| ≤ worst·tol_j), or
// len(a).
func agreeRow(a, b []float32, colConst, w []float64, rowConst, rowFactor, worst float64) int {
	return agreeRowGo(a, b, colConst, w, rowConst, rowFactor, worst)
}
