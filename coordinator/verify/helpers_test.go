package verify_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/neurolov/neurolov/shaders"
	"github.com/neurolov/neurolov/tensor"
)

// gen fills a rows×cols matrix.
type gen func(rng *rand.Rand, rows, cols int) []float32

// normal draws N(0, 1) entries.
func normal(rng *rand.Rand, rows, cols int) []float32 {
	d := make([]float32, rows*cols)
	for i := range d {
		d[i] = float32(rng.NormFloat64())
	}
	return d
}

// wideRange draws N(0, 1)·2^U(−20, 20): a dynamic range of 2^40.
func wideRange(rng *rand.Rand, rows, cols int) []float32 {
	d := make([]float32, rows*cols)
	for i := range d {
		d[i] = float32(rng.NormFloat64() * math.Exp2(40*rng.Float64()-20))
	}
	return d
}

// constant returns a generator of equal entries: a float32 sum of many
// equal values accumulates the most one-signed rounding error.
func constant(v float32) gen {
	return func(_ *rand.Rand, rows, cols int) []float32 {
		d := make([]float32, rows*cols)
		for i := range d {
			d[i] = v
		}
		return d
	}
}

// data names a way of drawing the inputs of a shard.
type data struct {
	name string
	a, b gen
	// cancel makes each dot product cancel almost to zero: the second
	// half of the inner dimension repeats A and negates B (plus 0.1%).
	cancel bool
}

var datasets = []data{
	{name: "normal", a: normal, b: normal},
	{name: "wide-range", a: wideRange, b: wideRange},
	{name: "cancel", a: normal, b: normal, cancel: true},
	{name: "equal-sums", a: constant(1), b: constant(0.1)},
}

func mustFromData(t testing.TB, d []float32, shape ...int) *tensor.Tensor {
	t.Helper()
	x, err := tensor.FromData(d, shape...)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// matmulInputs draws A (m×k) and B (k×n).
func matmulInputs(t testing.TB, rng *rand.Rand, d data, m, k, n int) []*tensor.Tensor {
	a, b := d.a(rng, m, k), d.b(rng, k, n)
	if d.cancel {
		half := k / 2
		for i := range m {
			copy(a[i*k+half:i*k+2*half], a[i*k:i*k+half])
		}
		for kk := range half {
			for j := range n {
				b[(half+kk)*n+j] = -b[kk*n+j] * float32(1+1e-3*rng.NormFloat64())
			}
		}
	}
	return []*tensor.Tensor{mustFromData(t, a, m, k), mustFromData(t, b, k, n)}
}

// mlpInputs draws X (batch×widths[0]) with d, and weights of scale
// 1/√fan-in and small biases with normal.
func mlpInputs(t testing.TB, rng *rand.Rand, d data, batch int, widths ...int) []*tensor.Tensor {
	in := matmulInputs(t, rng, d, batch, widths[0], widths[1])
	x, w1 := in[0], in[1]
	scale(w1.Data, 1/math.Sqrt(float64(widths[0])))
	out := []*tensor.Tensor{x, w1, mustFromData(t, scaled(normal(rng, 1, widths[1]), 0.1), widths[1])}
	for l := 2; l < len(widths); l++ {
		w := scaled(normal(rng, widths[l-1], widths[l]), 1/math.Sqrt(float64(widths[l-1])))
		b := scaled(normal(rng, 1, widths[l]), 0.1)
		out = append(out, mustFromData(t, w, widths[l-1], widths[l]), mustFromData(t, b, widths[l]))
	}
	return out
}

func scale(d []float32, s float64) {
	for i := range d {
		d[i] = float32(float64(d[i]) * s)
	}
}

func scaled(d []float32, s float64) []float32 { scale(d, s); return d }

// An order is one honest way to evaluate float32 dot products.
type order struct {
	name string
	dot  func(p []float32) float32 // sums the float32 products p (fma: see below)
	fma  bool                      // accumulate a·b+s with one rounding instead
}

var orders = []order{
	{name: "forward", dot: func(p []float32) float32 {
		var s float32
		for _, x := range p {
			s += x
		}
		return s
	}},
	{name: "reverse", dot: func(p []float32) float32 {
		var s float32
		for k := len(p) - 1; k >= 0; k-- {
			s += p[k]
		}
		return s
	}},
	{name: "blocked-16", dot: func(p []float32) float32 {
		var s float32
		for k := 0; k < len(p); k += 16 {
			var b float32
			for _, x := range p[k:min(k+16, len(p))] {
				b += x
			}
			s += b
		}
		return s
	}},
	{name: "pairwise", dot: pairwise},
	{name: "fma", fma: true},
	{name: "float64", dot: func(p []float32) float32 {
		var s float64
		for _, x := range p {
			s += float64(x)
		}
		return float32(s)
	}},
}

func pairwise(p []float32) float32 {
	if len(p) <= 2 {
		var s float32
		for _, x := range p {
			s += x
		}
		return s
	}
	h := len(p) / 2
	return pairwise(p[:h]) + pairwise(p[h:])
}

// matmul computes relu?(a)·b (+ bias) honestly in float32 with order o.
func (o order) matmul(a, b, bias []float32, m, k, n int, relu bool) []float32 {
	c := make([]float32, m*n)
	p := make([]float32, k)
	for i := range m {
		for j := range n {
			var s float32
			if o.fma {
				for kk := range k {
					x := a[i*k+kk]
					if relu {
						x = max(x, 0)
					}
					s = float32(float64(x)*float64(b[kk*n+j]) + float64(s))
				}
			} else {
				for kk := range k {
					x := a[i*k+kk]
					if relu {
						x = max(x, 0)
					}
					p[kk] = x * b[kk*n+j]
				}
				s = o.dot(p)
			}
			if bias != nil {
				s += bias[j]
			}
			c[i*n+j] = s
		}
	}
	return c
}

// run computes the outputs of kernel with order o.
func (o order) run(t testing.TB, kernel string, inputs []*tensor.Tensor) []*tensor.Tensor {
	t.Helper()
	shapes, err := shaders.OutputShapes(kernel, inputs)
	if err != nil {
		t.Fatal(err)
	}
	outs := make([]*tensor.Tensor, len(shapes))
	h := inputs[0]
	for l, s := range shapes {
		var bias []float32
		w := inputs[1+2*l]
		if kernel == shaders.MLPInfer {
			bias = inputs[2+2*l].Data
		}
		outs[l] = mustFromData(t, o.matmul(h.Data, w.Data, bias, s[0], w.Rows(), s[1], l > 0), s...)
		h = outs[l]
	}
	return outs
}

func reference(t testing.TB, kernel string, inputs []*tensor.Tensor) []*tensor.Tensor {
	t.Helper()
	outs, err := shaders.Reference(kernel, inputs)
	if err != nil {
		t.Fatal(err)
	}
	return outs
}

func cloneAll(ts []*tensor.Tensor) []*tensor.Tensor {
	c := make([]*tensor.Tensor, len(ts))
	for i, t := range ts {
		c[i] = t.Clone()
	}
	return c
}

func seeded(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x5eed)) }
