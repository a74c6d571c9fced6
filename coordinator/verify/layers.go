package verify

import (
	"fmt"
	"math"

	"github.com/neurolov/neurolov/shaders"
	"github.com/neurolov/neurolov/tensor"
)

// layer is one linear product of a shard, C = f(A)·B + bias, where f is
// relu for the hidden layers of mlp-infer (A is then the worker's own
// pre-activations of the layer before) and the identity otherwise. All
// slices are row-major views of the shard's tensors; nothing is copied.
type layer struct {
	a       []float32 // m×k
	relu    bool      // the left operand is relu(a)
	b       []float32 // k×n
	bCols   []float32 // b transposed (column j at [j·k, (j+1)·k)), or nil
	bias    []float32 // n, or nil
	c       []float32 // m×n: the result under test
	m, k, n int
	out     int // index of c among the outputs

	// The input tensors holding a (nil when a is the worker's output of
	// the layer before) and b, by which the Verifier caches what it
	// computes from them.
	aIn, bIn *tensor.Tensor
}

// terms is the length K' of each dot product: K, plus one for the bias.
func (l *layer) terms() int {
	if l.bias != nil {
		return l.k + 1
	}
	return l.k
}

// input returns one element of the left operand as float64: f(x).
func (l *layer) input(x float32) float64 {
	if l.relu {
		return relu(x)
	}
	return float64(x)
}

// biasAt returns bias_j, or 0 without a bias.
func (l *layer) biasAt(j int) float64 {
	if l.bias == nil {
		return 0
	}
	return float64(l.bias[j])
}

// exactElem is one output element recomputed in float64.
type exactElem struct {
	val  float64 // Σ_k f(a_ik)·b_kj + bias_j
	abs  float64 // Σ_k |f(a_ik)·b_kj| + |bias_j|
	sumA float64 // Σ_k |f(a_ik)|
	sumB float64 // Σ_k |b_kj|
}

// exact recomputes element (i, j) in float64: O(K). It walks down
// column j of B — contiguous in bCols when the Verifier keeps B
// transposed, else a strided read — and keeps two sets of sums, over even
// and odd k, so that the loads and additions overlap.
func (l *layer) exact(i, j int) exactElem {
	row := l.a[i*l.k : (i+1)*l.k]
	// Column j of B: element kk at col[kk*stride].
	col, stride := l.b[j:], l.n
	if l.bCols != nil {
		col, stride = l.bCols[j*l.k:(j+1)*l.k], 1
	}
	var v0, v1, s0, s1, a0, a1, b0, b1 float64
	kk := 0
	for ; kk+2 <= len(row); kk += 2 {
		x0, x1 := l.input(row[kk]), l.input(row[kk+1])
		y0, y1 := float64(col[kk*stride]), float64(col[(kk+1)*stride])
		ax0, ax1, ay0, ay1 := math.Abs(x0), math.Abs(x1), math.Abs(y0), math.Abs(y1)
		v0 += x0 * y0
		v1 += x1 * y1
		s0 += ax0 * ay0 // |a·b|, exactly
		s1 += ax1 * ay1
		a0 += ax0
		a1 += ax1
		b0 += ay0
		b1 += ay1
	}
	if kk < len(row) {
		x0, y0 := l.input(row[kk]), float64(col[kk*stride])
		v0 += x0 * y0
		s0 += math.Abs(x0) * math.Abs(y0)
		a0 += math.Abs(x0)
		b0 += math.Abs(y0)
	}
	bias := l.biasAt(j)
	return exactElem{
		val:  v0 + v1 + bias,
		abs:  s0 + s1 + math.Abs(bias),
		sumA: a0 + a1,
		sumB: b0 + b1,
	}
}

// exactRow recomputes row i in float64, O(K·n), walking down the rows of
// B: val_j = Σ_k f(a_ik)·b_kj + bias_j, abs_j = Σ_k |f(a_ik)·b_kj| +
// |bias_j| and sumB_j = Σ_k |b_kj|; it returns Σ_k |f(a_ik)|.
func (l *layer) exactRow(i int, val, abs, sumB []float64) (sumA float64) {
	val, abs, sumB = val[:l.n], abs[:l.n], sumB[:l.n]
	clear(val)
	clear(abs)
	clear(sumB)
	for kk, x := range l.a[i*l.k : (i+1)*l.k] {
		f := l.input(x)
		af := math.Abs(f)
		sumA += af
		for j, y := range l.b[kk*l.n : (kk+1)*l.n] {
			yf := float64(y)
			ay := math.Abs(yf)
			val[j] += f * yf
			abs[j] += af * ay
			sumB[j] += ay
		}
	}
	for j := range l.bias {
		b := float64(l.bias[j])
		val[j] += b
		abs[j] += math.Abs(b)
	}
	return sumA
}

// exactRowCols recomputes row i in float64 as exactRow does, from cols,
// B transposed (column j at [j·k, (j+1)·k)): one gemvAbs over it with the
// row f(a_i) (x and xa, k entries each, are scratch), which runs the
// assembly kernels, where exactRow walks B in scalar Go. It sets val_j
// and abs_j as exactRow does, but sumB_j to √K·‖B_·j‖₂·(1+ε), a bound on
// Σ_k |b_kj| (Cauchy–Schwarz) that is enough for the flush term of an
// element's bound; it returns Σ_k |f(a_ik)|.
func (l *layer) exactRowCols(i int, cols []float32, x, xa, val, abs, sumB []float64) (sumA float64) {
	x, xa, val, abs, sumB = x[:l.k], xa[:l.k], val[:l.n], abs[:l.n], sumB[:l.n]
	for kk, a := range l.a[i*l.k : (i+1)*l.k] {
		f := l.input(a)
		x[kk], xa[kk] = f, math.Abs(f)
		sumA += xa[kk]
	}
	gemvAbs(cols, l.k, x, xa, val, abs, sumB)
	root := math.Sqrt(float64(l.k)) * (1 + slack64(l.k))
	for j, sq := range sumB {
		sumB[j] = root * math.Sqrt(sq)
	}
	for j := range l.bias {
		b := float64(l.bias[j])
		val[j] += b
		abs[j] += math.Abs(b)
	}
	return sumA
}

// Freivalds' worst-case bound for one row is Σ_j r_j·elementBound_ij ≤
// worstTerm(predAbs) + fixedTerms(…), given predAbs = Σ_k|f(a_ik)|·(|B|·r)_k
// + |bias|·r, aAbs = Σ_k|f(a_ik)|, sumR = Σ_j r_j, sumBar = Σ_k (|B|·r)_k,
// and cAbs = |C_i|·r for the float64 slack of C·r. Freivalds passes r ≡
// 1 here, which bounds it for every r in [0, 1]^n.

// worstTerm is the rounding part of the worst-case bound,
// Safety·γ_K'·predAbs.
func (l *layer) worstTerm(predAbs float64) float64 {
	return Safety * shaders.Gamma(l.terms()) * predAbs
}

// fixedTerms is the rest of both of Freivalds' bounds, worst-case and
// probabilistic: the flush of subnormals (at its worst) and the float64
// slack of the check itself.
func (l *layer) fixedTerms(predAbs, aAbs, sumR, sumBar, cAbs float64) float64 {
	t := l.terms()
	flush := tiny * ((float64(2*t+1)+aAbs)*sumR + sumBar)
	return Safety*flush + slack64(t+l.n)*(predAbs+cAbs)
}

// appendLayers checks inputs and outputs against kernel and appends the
// shard's linear products to dst. Problems with the inputs (the
// coordinator's own data) wrap ErrUnverifiable; problems with the outputs
// (the worker's) wrap ErrResult. It checks exactly what
// shaders.OutputShapes checks, plus that every tensor's data fits its
// shape, without allocating.
func appendLayers(dst []layer, kernel string, inputs, outputs []*tensor.Tensor) ([]layer, error) {
	start := len(dst)
	for i, t := range inputs {
		if t == nil || tensor.NumElements(t.Shape) != len(t.Data) {
			return dst, fmt.Errorf("%w: %w: input %d is nil or its data does not fit its shape", ErrUnverifiable, shaders.ErrInputs, i)
		}
		for _, d := range t.Shape {
			if d < 1 { // as shaders.OutputShapes: nothing to check (and exact would read past a row)
				return dst, fmt.Errorf("%w: %w: input %d has an empty dimension, %v", ErrUnverifiable, shaders.ErrInputs, i, t.Shape)
			}
		}
	}
	switch kernel {
	case shaders.Matmul:
		if len(inputs) != 2 || !inputs[0].Is2D(-1, -1) || !inputs[1].Is2D(inputs[0].Cols(), -1) {
			return dst, fmt.Errorf("%w: %w: matmul takes A (m×k) and B (k×n)", ErrUnverifiable, shaders.ErrInputs)
		}
		a, b := inputs[0], inputs[1]
		if len(outputs) != 1 {
			return dst, fmt.Errorf("%w: matmul returns 1 output, got %d", ErrResult, len(outputs))
		}
		l := layer{a: a.Data, b: b.Data, m: a.Rows(), k: a.Cols(), n: b.Cols(), aIn: a, bIn: b}
		if err := l.setResult(outputs, 0); err != nil {
			return dst, err
		}
		dst = append(dst, l)
	case shaders.MLPInfer:
		if len(inputs) < 3 || len(inputs)%2 != 1 || !inputs[0].Is2D(-1, -1) {
			return dst, fmt.Errorf("%w: %w: mlp-infer takes X (b×d0) and (W, b) pairs, got %d inputs", ErrUnverifiable, shaders.ErrInputs, len(inputs))
		}
		x := inputs[0]
		layers := len(inputs) / 2
		width := x.Cols()
		for li := range layers {
			w, bias := inputs[1+2*li], inputs[2+2*li]
			if !w.Is2D(width, -1) || len(bias.Shape) != 1 || bias.Shape[0] != w.Cols() {
				return dst, fmt.Errorf("%w: %w: mlp-infer layer %d: W %v, b %v after width %d", ErrUnverifiable, shaders.ErrInputs, li+1, w.Shape, bias.Shape, width)
			}
			width = w.Cols()
		}
		if len(outputs) != layers {
			return dst, fmt.Errorf("%w: mlp-infer of %d layers returns %d outputs, got %d", ErrResult, layers, layers, len(outputs))
		}
		prev, prevIn := x.Data, x
		for li := range layers {
			w, bias := inputs[1+2*li], inputs[2+2*li]
			l := layer{a: prev, relu: li > 0, b: w.Data, bias: bias.Data, m: x.Rows(), k: w.Rows(), n: w.Cols(), aIn: prevIn, bIn: w}
			if err := l.setResult(outputs, li); err != nil {
				return dst, err
			}
			dst = append(dst, l)
			prev, prevIn = l.c, nil
		}
	default:
		return dst, fmt.Errorf("%w: %w: %q", ErrUnverifiable, shaders.ErrUnknownKernel, kernel)
	}
	for i := start; i < len(dst); i++ {
		if dst[i].terms() >= maxTerms {
			return dst, fmt.Errorf("%w: dot products of length %d are too long for a float32 error bound", ErrUnverifiable, dst[i].terms())
		}
	}
	return dst, nil
}

// setResult points l.c at outputs[out] after checking its shape.
func (l *layer) setResult(outputs []*tensor.Tensor, out int) error {
	t := outputs[out]
	if t == nil || !t.Is2D(l.m, l.n) || len(t.Data) != l.m*l.n {
		var shape []int
		if t != nil {
			shape = t.Shape
		}
		return fmt.Errorf("%w: output %d has shape %v, want [%d %d]", ErrResult, out, shape, l.m, l.n)
	}
	l.c, l.out = t.Data, out
	return nil
}
