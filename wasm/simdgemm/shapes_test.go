package simdgemm

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/neurolov/neurolov/shaders"
	"github.com/neurolov/neurolov/tensor"
)

// The parity cases: awkward shapes (1, primes, non-multiples of the 4×8
// block), shared by the native tests on the fake module and the node tests
// on the real one.
var matmulShapes = [][3]int{
	{1, 1, 1}, {1, 7, 1}, {3, 5, 9}, {4, 8, 8}, {5, 13, 17}, {17, 31, 23},
	{64, 129, 70}, {67, 257, 9},
}

// emptyMatmulShapes have a dimension of 0: the backend refuses them with
// shaders.ErrInputs (shaders.OutputShapes, the one shape rule), as the
// coordinator does at submission.
var emptyMatmulShapes = [][3]int{{2, 0, 3}, {0, 3, 4}, {3, 4, 0}}

var mlpShapes = [][]int{ // batch, then layer widths
	{1, 3, 1}, {7, 13, 9, 5}, {5, 8, 16, 8}, {33, 100, 37, 10}, {256, 784, 512, 256, 10},
}

func randTensor(rng *rand.Rand, scale float32, shape ...int) *tensor.Tensor {
	t := tensor.New(shape...)
	for i := range t.Data {
		t.Data[i] = scale * float32(rng.NormFloat64())
	}
	return t
}

func matmulInputs(rng *rand.Rand, m, k, n int) []*tensor.Tensor {
	return []*tensor.Tensor{randTensor(rng, 1, m, k), randTensor(rng, 1, k, n)}
}

func mlpInputs(rng *rand.Rand, dims []int) []*tensor.Tensor {
	in := []*tensor.Tensor{randTensor(rng, 1, dims[0], dims[1])}
	for l := 1; l+1 < len(dims); l++ {
		k, n := dims[l], dims[l+1]
		in = append(in, randTensor(rng, float32(1/math.Sqrt(float64(k))), k, n), randTensor(rng, 0.1, n))
	}
	return in
}

// checkParity compares outs with the Go reference within the float32 bound
// |Δ| ≤ 2γ_{k+1}(Σ|f(a)||b| + |bias|) of shaders.BoundMatMul. For
// mlp-infer each layer is checked on the input this backend produced (its
// own relu(Z_{l-1})), so that one layer's rounding is not charged to the
// next. It returns the largest |Δ|/bound seen.
func checkParity(t *testing.T, kernel string, in, outs []*tensor.Tensor) float64 {
	t.Helper()
	shapes, err := shaders.OutputShapes(kernel, in)
	if err != nil {
		t.Fatal(err)
	}
	if len(outs) != len(shapes) {
		t.Fatalf("%d outputs, want %d", len(outs), len(shapes))
	}
	worst := 0.0
	layer := func(l int, a, w *tensor.Tensor, bias []float32, relu bool, got *tensor.Tensor) {
		m, k, n := a.Rows(), a.Cols(), w.Cols()
		if got.Rows() != m || got.Cols() != n {
			t.Fatalf("output %d has shape %v, want %v", l, got.Shape, shapes[l])
		}
		want := make([]float32, m*n)
		bs := bias
		if bs == nil {
			bs = make([]float32, n)
		}
		shaders.MatMulBiasReLUIn(want, a.Data, w.Data, bs, m, k, n, relu)
		bound := shaders.BoundMatMul(a.Data, w.Data, bias, m, k, n, shaders.MatMulOpts{ReLUIn: relu})
		for i, g := range got.Data {
			d := math.Abs(float64(g) - float64(want[i]))
			if !(d <= bound[i]) {
				t.Fatalf("output %d element (%d, %d): got %g, want %g: |Δ| %g over the bound %g",
					l, i/n, i%n, g, want[i], d, bound[i])
			}
			if bound[i] > 0 {
				worst = max(worst, d/bound[i])
			}
		}
	}
	switch kernel {
	case shaders.Matmul:
		layer(0, in[0], in[1], nil, false, outs[0])
	case shaders.MLPInfer:
		a := in[0]
		for l := range outs {
			layer(l, a, in[1+2*l], in[2+2*l].Data, l > 0, outs[l])
			a = outs[l]
		}
	}
	return worst
}
