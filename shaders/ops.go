package shaders

import (
	"fmt"
	"math"
)

// CPU references of the WGSL kernels. Each has the semantics of its shader
// (named in the comment), computed in float32 arithmetic on the CPU; the two
// agree within the bounds of ops_bound.go, not bit for bit (summation order,
// fused multiply-adds and the GPU's exp differ). Slices are row-major;
// a slice shorter than its shape panics (a programmer error).

// Act is the activation applied by a matmul epilogue or differentiated by
// ActBackward. The values match ACT_* in wgsl/common.wgsl.
type Act uint32

// Activations.
const (
	ActNone Act = 0 // identity
	ActReLU Act = 1 // max(x, 0)
	ActGELU Act = 2 // GELU, tanh form (see GELU)
)

// String returns the activation's name.
func (a Act) String() string {
	switch a {
	case ActNone:
		return "none"
	case ActReLU:
		return "relu"
	case ActGELU:
		return "gelu"
	}
	return fmt.Sprintf("act(%d)", uint32(a))
}

// MatMulOpts are the options of the fused product
// C = act(f(op(A))·op(B) + bias).
type MatMulOpts struct {
	TransA bool // A is stored k×m and op(A) = Aᵀ
	TransB bool // B is stored n×k and op(B) = Bᵀ
	ReLUIn bool // f = relu (the input of an MLP layer after the first), else identity
	Act    Act  // activation of the epilogue
}

// geluSat is where float32 tanh saturates: beyond it gelu is x or 0 and
// gelu' is 1 or 0 exactly (GELU_SAT in common.wgsl).
const geluSat = 10

const (
	geluC = 0.7978845608028654 // √(2/π)
	geluA = 0.044715
)

// GELU is gelu(x) = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), the tanh form
// the kernels use (WGSL has no erf).
func GELU(x float32) float32 {
	if x > geluSat {
		return x
	}
	if x < -geluSat {
		return 0
	}
	v := float64(x)
	return float32(0.5 * v * (1 + math.Tanh(geluC*(v+geluA*v*v*v))))
}

// GELUGrad is the derivative of GELU.
func GELUGrad(x float32) float32 {
	if x > geluSat {
		return 1
	}
	if x < -geluSat {
		return 0
	}
	v := float64(x)
	t := math.Tanh(geluC * (v + geluA*v*v*v))
	du := geluC * (1 + 3*geluA*v*v)
	return float32(0.5*(1+t) + 0.5*v*(1-t*t)*du)
}

func activate(x float32, a Act) float32 {
	switch a {
	case ActReLU:
		return max(x, 0)
	case ActGELU:
		return GELU(x)
	}
	return x
}

// MatMulFused computes c = act(f(op(A))·op(B) + bias) (shaders matmul_reg and
// matmul_tile): op(A) is m×k, op(B) is k×n, bias has n elements or is nil,
// c is m×n and overwritten. The product is MatMul (or MatMulBiasReLUIn),
// after transposing operands that are stored transposed.
func MatMulFused(c, a, b, bias []float32, m, k, n int, o MatMulOpts) {
	if o.TransA {
		a = transpose(a, k, m)
	}
	if o.TransB {
		b = transpose(b, n, k)
	}
	if bias == nil && !o.ReLUIn {
		MatMul(c, a, b, m, k, n)
	} else {
		if bias == nil {
			bias = make([]float32, n)
		}
		MatMulBiasReLUIn(c, a, b, bias, m, k, n, o.ReLUIn)
	}
	if o.Act != ActNone {
		for i, v := range c[:m*n] {
			c[i] = activate(v, o.Act)
		}
	}
}

// transpose returns the cols×rows transpose of the rows×cols matrix x.
func transpose(x []float32, rows, cols int) []float32 {
	t := make([]float32, rows*cols)
	for i := 0; i < rows; i++ {
		for j, v := range x[i*cols : i*cols+cols] {
			t[j*rows+i] = v
		}
	}
	return t
}

// Softmax computes the row softmax y = exp(x − max)/Σ exp(x − max) of the
// rows×cols matrix x (shader softmax). y may alias x.
func Softmax(y, x []float32, rows, cols int) {
	for i := 0; i < rows; i++ {
		xi, yi := x[i*cols:i*cols+cols], y[i*cols:i*cols+cols]
		m, s := rowMaxExpSum(xi)
		for j, v := range xi {
			yi[j] = expf(v-m) / s
		}
	}
}

// rowMaxExpSum returns the maximum of x and Σ exp(x − max).
func rowMaxExpSum(x []float32) (m, s float32) {
	m = float32(math.Inf(-1))
	for _, v := range x {
		m = max(m, v)
	}
	for _, v := range x {
		s += expf(v - m)
	}
	return m, s
}

func expf(x float32) float32 { return float32(math.Exp(float64(x))) }

// SoftmaxCrossEntropy computes, for logits z and target distributions t
// (rows×cols; one-hot rows for class labels), the per-row loss
// loss[i] = Σ_j t[i,j]·(log S_i − (z[i,j] − m_i)) and the gradient
// grad[i,j] = scale·(softmax(z)[i,j] − t[i,j]) (shader xent). Use
// scale = 1/rows for the gradient of the mean loss.
func SoftmaxCrossEntropy(loss, grad, z, t []float32, rows, cols int, scale float32) {
	for i := 0; i < rows; i++ {
		zi, ti, gi := z[i*cols:i*cols+cols], t[i*cols:i*cols+cols], grad[i*cols:i*cols+cols]
		m, s := rowMaxExpSum(zi)
		ls := float32(math.Log(float64(s)))
		var l float32
		for j, v := range zi {
			d := v - m
			l += ti[j] * (ls - d)
			gi[j] = scale * (expf(d)/s - ti[j])
		}
		loss[i] = l
	}
}

// ActBackward computes dz = dh·act'(z) elementwise (shader act_backward);
// ReLU's derivative at 0 is 0.
func ActBackward(dz, z, dh []float32, a Act) {
	for i, x := range z {
		d := dh[i]
		switch a {
		case ActReLU:
			if !(x > 0) {
				d = 0
			}
		case ActGELU:
			d *= GELUGrad(x)
		}
		dz[i] = d
	}
}

// Axpby computes out = alpha·x + beta·y elementwise (shader axpby); y is not
// read when beta is 0. out may alias x or y.
func Axpby(out, x, y []float32, alpha, beta float32) {
	for i, v := range x {
		r := alpha * v
		if beta != 0 {
			r += beta * y[i]
		}
		out[i] = r
	}
}

// SGDConfig configures SGD with momentum and L2 weight decay.
type SGDConfig struct {
	LR, Momentum, WeightDecay float32
}

// Params returns the kernel parameters for n weights.
func (c SGDConfig) Params(n int) SGDParams {
	return SGDParams{N: uint32(n), LR: c.LR, Momentum: c.Momentum, WeightDecay: c.WeightDecay}
}

// SGDStep updates w and its momentum buffer v in place from gradient g
// (shader sgd): g' = g + wd·w, v = momentum·v + g', w = w − lr·v.
func SGDStep(w, g, v []float32, c SGDConfig) {
	for i, wi := range w {
		gi := g[i] + c.WeightDecay*wi
		vi := c.Momentum*v[i] + gi
		v[i] = vi
		w[i] = wi - c.LR*vi
	}
}

// AdamConfig configures Adam with L2 weight decay added to the gradient.
type AdamConfig struct {
	LR, Beta1, Beta2, Eps, WeightDecay float32
}

// Params returns the kernel parameters for n weights at step t (1, 2, …).
func (c AdamConfig) Params(n, t int) AdamParams {
	return AdamParams{
		N: uint32(n), LR: c.LR, Beta1: c.Beta1, Beta2: c.Beta2, Eps: c.Eps, WeightDecay: c.WeightDecay,
		C1: float32(1 / (1 - math.Pow(float64(c.Beta1), float64(t)))),
		C2: float32(1 / (1 - math.Pow(float64(c.Beta2), float64(t)))),
	}
}

// AdamStep updates w and the moment buffers m and v in place from gradient
// g at step t (shader adam).
func AdamStep(w, g, m, v []float32, c AdamConfig, t int) {
	p := c.Params(len(w), t)
	for i, wi := range w {
		gi := g[i] + p.WeightDecay*wi
		mi := p.Beta1*m[i] + (1-p.Beta1)*gi
		vi := p.Beta2*v[i] + (1-p.Beta2)*(gi*gi)
		m[i], v[i] = mi, vi
		w[i] = wi - p.LR*(mi*p.C1)/(float32(math.Sqrt(float64(vi*p.C2)))+p.Eps)
	}
}

// ColSums sets out[j] = Σ_i x[i,j] for the rows×cols matrix x (shader reduce,
// axis 0): the bias gradient from dZ.
func ColSums(out, x []float32, rows, cols int) {
	out = out[:cols]
	clear(out)
	for i := 0; i < rows; i++ {
		for j, v := range x[i*cols : i*cols+cols] {
			out[j] += v
		}
	}
}

// RowSums sets out[i] = Σ_j x[i,j] (shader reduce, axis 1).
func RowSums(out, x []float32, rows, cols int) {
	for i := 0; i < rows; i++ {
		var s float32
		for _, v := range x[i*cols : i*cols+cols] {
			s += v
		}
		out[i] = s
	}
}

// LayerNorm normalizes each row of the rows×cols matrix x:
// y = (x − μ)/sqrt(σ² + eps)·gamma + beta, with the row mean μ and the
// two-pass variance σ² (shader layernorm).
func LayerNorm(y, x, gamma, beta []float32, rows, cols int, eps float32) {
	nf := float32(cols)
	for i := 0; i < rows; i++ {
		xi, yi := x[i*cols:i*cols+cols], y[i*cols:i*cols+cols]
		var s float32
		for _, v := range xi {
			s += v
		}
		mean := s / nf
		var q float32
		for _, v := range xi {
			d := v - mean
			q += d * d
		}
		r := float32(1 / math.Sqrt(float64(q/nf+eps)))
		for j, v := range xi {
			yi[j] = (v-mean)*r*gamma[j] + beta[j]
		}
	}
}

// ConvGeom is the geometry of a 2-D convolution over an NCHW input.
type ConvGeom struct {
	Batch, Channels, Height, Width int
	KernelH, KernelW               int
	StrideH, StrideW               int // 0 means 1
	PadH, PadW                     int
}

func (g ConvGeom) strides() (int, int) { return max(g.StrideH, 1), max(g.StrideW, 1) }

// OutH is the output height.
func (g ConvGeom) OutH() int {
	sh, _ := g.strides()
	return (g.Height+2*g.PadH-g.KernelH)/sh + 1
}

// OutW is the output width.
func (g ConvGeom) OutW() int {
	_, sw := g.strides()
	return (g.Width+2*g.PadW-g.KernelW)/sw + 1
}

// Rows is the number of rows of the im2col matrix: one per output pixel.
func (g ConvGeom) Rows() int { return g.Batch * g.OutH() * g.OutW() }

// Cols is the number of columns of the im2col matrix: Channels·KernelH·KernelW.
func (g ConvGeom) Cols() int { return g.Channels * g.KernelH * g.KernelW }

// InputLen is the number of elements of the NCHW input.
func (g ConvGeom) InputLen() int { return g.Batch * g.Channels * g.Height * g.Width }

// Valid reports whether the geometry describes a non-empty convolution.
func (g ConvGeom) Valid() bool {
	return g.Batch > 0 && g.Channels > 0 && g.Height > 0 && g.Width > 0 &&
		g.KernelH > 0 && g.KernelW > 0 && g.StrideH >= 0 && g.StrideW >= 0 &&
		g.PadH >= 0 && g.PadW >= 0 &&
		g.Height+2*g.PadH >= g.KernelH && g.Width+2*g.PadW >= g.KernelW
}

// Params returns the kernel parameters.
func (g ConvGeom) Params() Im2ColParams {
	sh, sw := g.strides()
	return Im2ColParams{
		Batch: uint32(g.Batch), Ch: uint32(g.Channels), H: uint32(g.Height), W: uint32(g.Width),
		KH: uint32(g.KernelH), KW: uint32(g.KernelW), StrideH: uint32(sh), StrideW: uint32(sw),
		PadH: uint32(g.PadH), PadW: uint32(g.PadW), OutH: uint32(g.OutH()), OutW: uint32(g.OutW()),
	}
}

// Im2Col unfolds the NCHW input x into cols, a Rows()×Cols() matrix whose
// row (b, oy, ox) holds the input patch under the kernel at that output
// pixel, channel-major then ky then kx, zero outside the input (shader
// im2col). A convolution with weights W ((Channels·KernelH·KernelW)×outCh)
// is MatMulFused(cols, W, bias, act), an NHWC output.
func Im2Col(cols, x []float32, g ConvGeom) {
	sh, sw := g.strides()
	oh, ow := g.OutH(), g.OutW()
	nc := g.Cols()
	r := 0
	for b := 0; b < g.Batch; b++ {
		for oy := 0; oy < oh; oy++ {
			for ox := 0; ox < ow; ox++ {
				row := cols[r*nc : r*nc+nc]
				q := 0
				for c := 0; c < g.Channels; c++ {
					for ky := 0; ky < g.KernelH; ky++ {
						iy := oy*sh + ky - g.PadH
						for kx := 0; kx < g.KernelW; kx++ {
							ix := ox*sw + kx - g.PadW
							var v float32
							if iy >= 0 && ix >= 0 && iy < g.Height && ix < g.Width {
								v = x[((b*g.Channels+c)*g.Height+iy)*g.Width+ix]
							}
							row[q] = v
							q++
						}
					}
				}
				r++
			}
		}
	}
}
