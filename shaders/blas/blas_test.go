//go:build cgo

package blas

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/neurolov/neurolov/shaders"
	"github.com/neurolov/neurolov/tensor"
)

// u is the unit roundoff of float32.
const u = 1.0 / (1 << 24)

// gamma returns γ_terms = terms·u/(1−terms·u), the bound on the relative
// error of a float32 sum of terms products in any order.
func gamma(terms int) float64 { return float64(terms) * u / (1 - float64(terms)*u) }

// bound returns, for each element of z = f(h)·w (+ bias when bias is not
// nil), the most two correctly rounded float32 evaluations in different
// orders may differ by: 2·γ·(Σ_p |f(h_ip)|·|w_pj| + |bias_j|), computed in
// float64, with one more term for the bias.
func bound(h, w, bias []float32, m, k, n int, reluInput bool) []float64 {
	terms := k
	if bias != nil {
		terms++
	}
	g := 2 * gamma(terms)
	out := make([]float64, m*n)
	for i := 0; i < m; i++ {
		row := out[i*n : i*n+n]
		for j := range row {
			if bias != nil {
				row[j] = math.Abs(float64(bias[j]))
			}
		}
		for p := 0; p < k; p++ {
			a := float64(h[i*k+p])
			if reluInput && a < 0 {
				a = 0
			}
			a = math.Abs(a)
			for j, wv := range w[p*n : p*n+n] {
				row[j] += a * math.Abs(float64(wv))
			}
		}
		for j := range row {
			row[j] *= g
		}
	}
	return out
}

// worst returns the largest |got−want|/bound over all elements (0 when all
// agree exactly) and where it occurs; a value above 1 breaks the bound.
func worst(got, want []float32, bnd []float64) (ratio float64, at int) {
	for i := range want {
		d := math.Abs(float64(got[i]) - float64(want[i]))
		if d == 0 {
			continue
		}
		r := math.Inf(1)
		if bnd[i] > 0 {
			r = d / bnd[i]
		}
		if r > ratio || math.IsNaN(d) {
			ratio, at = r, i
		}
	}
	return ratio, at
}

// random returns n values uniform in [-1, 1).
func random(rng *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = 2*rng.Float32() - 1
	}
	return x
}

// shapes are awkward m×k×n: ones, primes, non-multiples of any block size,
// and K = 2048.
var shapes = [][3]int{
	{1, 1, 1}, {1, 7, 1}, {1, 1, 9}, {5, 1, 3}, {2, 3, 5}, {13, 17, 19},
	{31, 64, 33}, {127, 129, 131}, {256, 784, 10}, {1, 2048, 1}, {7, 2048, 13},
	{64, 2048, 65}, {3, 2048, 257},
}

func TestSgemmParity(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, s := range shapes {
		m, k, n := s[0], s[1], s[2]
		t.Run(fmt.Sprintf("%dx%dx%d", m, k, n), func(t *testing.T) {
			a, b := random(rng, m*k), random(rng, k*n)
			want := make([]float32, m*n)
			shaders.MatMul(want, a, b, m, k, n)
			got := random(rng, m*n) // stale contents must be overwritten
			if err := Sgemm(got, a, b, m, k, n); err != nil {
				t.Fatal(err)
			}
			bnd := bound(a, b, nil, m, k, n, false)
			r, at := worst(got, want, bnd)
			if r > 1 {
				t.Fatalf("element %d: got %g, want %g ± %g (%.2f× the bound)", at, got[at], want[at], bnd[at], r)
			}
			t.Logf("max error %.3f of the bound", r)
		})
	}
}

func TestMatMulBiasReLUInParity(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, s := range shapes {
		for _, relu := range []bool{false, true} {
			m, k, n := s[0], s[1], s[2]
			t.Run(fmt.Sprintf("%dx%dx%d/relu=%v", m, k, n, relu), func(t *testing.T) {
				h, w, bias := random(rng, m*k), random(rng, k*n), random(rng, n)
				hCopy := append([]float32(nil), h...)
				want := make([]float32, m*n)
				shaders.MatMulBiasReLUIn(want, h, w, bias, m, k, n, relu)
				got := random(rng, m*n)
				if err := MatMulBiasReLUIn(got, h, w, bias, m, k, n, relu); err != nil {
					t.Fatal(err)
				}
				bnd := bound(h, w, bias, m, k, n, relu)
				if r, at := worst(got, want, bnd); r > 1 {
					t.Fatalf("element %d: got %g, want %g ± %g (%.2f× the bound)", at, got[at], want[at], bnd[at], r)
				}
				if r, _ := worst(h, hCopy, make([]float64, len(h))); r != 0 {
					t.Fatal("MatMulBiasReLUIn modified its input h")
				}
			})
		}
	}
}

// TestBoundDetects shows the parity check is not vacuous: a result pushed
// just past the bound fails, and so do the mistakes a fused kernel could
// make (no relu on the input, no bias) on shapes where the honest result
// passes.
func TestBoundDetects(t *testing.T) {
	const m, k, n = 17, 2048, 23
	rng := rand.New(rand.NewPCG(5, 6))
	h, w, bias := random(rng, m*k), random(rng, k*n), random(rng, n)
	want := make([]float32, m*n)
	shaders.MatMulBiasReLUIn(want, h, w, bias, m, k, n, true)
	bnd := bound(h, w, bias, m, k, n, true)

	honest := make([]float32, m*n)
	if err := MatMulBiasReLUIn(honest, h, w, bias, m, k, n, true); err != nil {
		t.Fatal(err)
	}
	if r, _ := worst(honest, want, bnd); r > 1 {
		t.Fatalf("honest result at %.2f× the bound", r)
	}

	perturbed := append([]float32(nil), want...)
	const at = m*n/2 + 1
	perturbed[at] = float32(float64(want[at]) + 1.01*bnd[at])
	if r, _ := worst(perturbed, want, bnd); r <= 1 {
		t.Fatalf("a result 1.01× the bound away passes (%.3f)", r)
	}

	noRelu := make([]float32, m*n)
	if err := MatMulBiasReLUIn(noRelu, h, w, bias, m, k, n, false); err != nil {
		t.Fatal(err)
	}
	if r, _ := worst(noRelu, want, bnd); r <= 1 {
		t.Fatalf("missing relu passes (%.3f× the bound)", r)
	}
	noBias := make([]float32, m*n)
	if err := MatMulBiasReLUIn(noBias, h, w, make([]float32, n), m, k, n, true); err != nil {
		t.Fatal(err)
	}
	if r, _ := worst(noBias, want, bnd); r <= 1 {
		t.Fatalf("missing bias passes (%.3f× the bound)", r)
	}
}

func TestZeroDimensions(t *testing.T) {
	bias := []float32{1, 2, 3}
	tests := []struct {
		name    string
		m, k, n int
		want    []float32
	}{
		{"k=0", 2, 0, 3, []float32{1, 2, 3, 1, 2, 3}},
		{"m=0", 0, 4, 3, nil},
		{"n=0", 2, 4, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			z := []float32{9, 9, 9, 9, 9, 9}[:len(tt.want)]
			h, w := make([]float32, tt.m*tt.k), make([]float32, tt.k*tt.n)
			if err := MatMulBiasReLUIn(z, h, w, bias, tt.m, tt.k, tt.n, true); err != nil {
				t.Fatal(err)
			}
			for i := range tt.want {
				if z[i] != tt.want[i] {
					t.Fatalf("z = %v, want %v", z, tt.want)
				}
			}
			c := []float32{9, 9, 9, 9, 9, 9}[:len(tt.want)]
			if err := Sgemm(c, h, w, tt.m, tt.k, tt.n); err != nil {
				t.Fatal(err)
			}
			for i := range c {
				if c[i] != 0 {
					t.Fatalf("c = %v, want zeros", c)
				}
			}
		})
	}
}

// mlpInputs returns X (batch×widths[0]) and a (W, b) pair per layer.
func mlpInputs(rng *rand.Rand, batch int, widths ...int) []*tensor.Tensor {
	in := []*tensor.Tensor{{Shape: []int{batch, widths[0]}, Data: random(rng, batch*widths[0])}}
	for l := 1; l < len(widths); l++ {
		in = append(in,
			&tensor.Tensor{Shape: []int{widths[l-1], widths[l]}, Data: random(rng, widths[l-1]*widths[l])},
			&tensor.Tensor{Shape: []int{widths[l]}, Data: random(rng, widths[l])})
	}
	return in
}

// newOuts returns zeroed outputs of kernel on inputs.
func newOuts(t testing.TB, kernel string, inputs []*tensor.Tensor) []*tensor.Tensor {
	t.Helper()
	shapes, err := shaders.OutputShapes(kernel, inputs)
	if err != nil {
		t.Fatal(err)
	}
	outs := make([]*tensor.Tensor, len(shapes))
	for i, s := range shapes {
		outs[i] = tensor.New(s...)
	}
	return outs
}

func TestRunIntoMatmul(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, s := range shapes {
		m, k, n := s[0], s[1], s[2]
		inputs := []*tensor.Tensor{
			{Shape: []int{m, k}, Data: random(rng, m*k)},
			{Shape: []int{k, n}, Data: random(rng, k*n)},
		}
		want, err := shaders.Reference(shaders.Matmul, inputs)
		if err != nil {
			t.Fatal(err)
		}
		outs := newOuts(t, shaders.Matmul, inputs)
		if err := RunInto(shaders.Matmul, inputs, outs); err != nil {
			t.Fatal(err)
		}
		bnd := bound(inputs[0].Data, inputs[1].Data, nil, m, k, n, false)
		if r, at := worst(outs[0].Data, want[0].Data, bnd); r > 1 {
			t.Fatalf("%v: element %d at %.2f× the bound", s, at, r)
		}
	}
}

// TestRunIntoMLP checks every layer of mlp-infer against the reference
// layer applied to the same input (this backend's previous layer), since
// the two backends' earlier layers already differ by rounding.
func TestRunIntoMLP(t *testing.T) {
	tests := []struct {
		batch  int
		widths []int
	}{
		{1, []int{1, 1}},
		{3, []int{13, 7, 1, 5}},
		{17, []int{31, 2048, 29}},
		{256, []int{784, 512, 256, 10}},
	}
	rng := rand.New(rand.NewPCG(9, 10))
	for _, tt := range tests {
		t.Run(fmt.Sprintf("b%d-%v", tt.batch, tt.widths), func(t *testing.T) {
			inputs := mlpInputs(rng, tt.batch, tt.widths...)
			outs := newOuts(t, shaders.MLPInfer, inputs)
			if err := RunInto(shaders.MLPInfer, inputs, outs); err != nil {
				t.Fatal(err)
			}
			ref, err := shaders.Reference(shaders.MLPInfer, inputs)
			if err != nil {
				t.Fatal(err)
			}
			h := inputs[0]
			for l, z := range outs {
				w, b := inputs[1+2*l], inputs[2+2*l]
				if l > 0 {
					h = outs[l-1]
				}
				m, k, n := tt.batch, w.Rows(), w.Cols()
				want := make([]float32, m*n)
				shaders.MatMulBiasReLUIn(want, h.Data, w.Data, b.Data, m, k, n, l > 0)
				bnd := bound(h.Data, w.Data, b.Data, m, k, n, l > 0)
				if r, at := worst(z.Data, want, bnd); r > 1 {
					t.Fatalf("layer %d element %d: got %g, want %g ± %g", l+1, at, z.Data[at], want[at], bnd[at])
				}
			}
			// End to end the logits still agree closely with the reference.
			last := len(outs) - 1
			for i, v := range outs[last].Data {
				if d := math.Abs(float64(v - ref[last].Data[i])); d > 1e-3*(1+math.Abs(float64(v))) {
					t.Fatalf("logit %d: %g vs reference %g", i, v, ref[last].Data[i])
				}
			}
		})
	}
}

// TestSteadyStateAllocations checks that the BLAS glue allocates nothing
// once warm: MatMulBiasReLUIn (its relu scratch is pooled) not at all, and
// RunInto no more than the shaders.OutputShapes call it validates with.
func TestSteadyStateAllocations(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	inputs := mlpInputs(rng, 64, 784, 512, 256, 10)
	outs := newOuts(t, shaders.MLPInfer, inputs)
	h, w, b := outs[0], inputs[3], inputs[4]
	var err error
	layer := testing.AllocsPerRun(20, func() {
		err = MatMulBiasReLUIn(outs[1].Data, h.Data, w.Data, b.Data, h.Rows(), w.Rows(), w.Cols(), true)
	})
	if err != nil {
		t.Fatal(err)
	}
	if layer != 0 {
		t.Errorf("MatMulBiasReLUIn allocates %.1f times per call in steady state", layer)
	}
	run := testing.AllocsPerRun(20, func() { err = RunInto(shaders.MLPInfer, inputs, outs) })
	if err != nil {
		t.Fatal(err)
	}
	check := testing.AllocsPerRun(20, func() { _, err = shaders.OutputShapes(shaders.MLPInfer, inputs) })
	if run > check {
		t.Errorf("RunInto allocates %.1f times per run, shaders.OutputShapes alone %.1f", run, check)
	}
	t.Logf("RunInto: %.0f allocations per run, all in shaders.OutputShapes", run)
}

func TestErrors(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	buf := random(rng, 64)
	mat := func(r, c int) *tensor.Tensor { return tensor.New(r, c) }
	tests := []struct {
		name string
		run  func() error
		want error
	}{
		{"negative dimension", func() error { return Sgemm(buf, buf[:4], buf[4:8], -1, 2, 2) }, ErrShape},
		{"short a", func() error { return Sgemm(make([]float32, 4), buf[:3], buf[4:8], 2, 2, 2) }, ErrShape},
		{"short b", func() error { return Sgemm(make([]float32, 4), buf[:4], buf[4:7], 2, 2, 2) }, ErrShape},
		{"short c", func() error { return Sgemm(make([]float32, 3), buf[:4], buf[4:8], 2, 2, 2) }, ErrShape},
		{"c overlaps a", func() error { return Sgemm(buf[2:6], buf[:4], buf[8:12], 2, 2, 2) }, ErrShape},
		{"c is b", func() error { return Sgemm(buf[:4], buf[8:12], buf[:4], 2, 2, 2) }, ErrShape},
		{"short bias", func() error {
			return MatMulBiasReLUIn(make([]float32, 4), buf[:4], buf[4:8], buf[8:9], 2, 2, 2, false)
		}, ErrShape},
		{"z overlaps bias", func() error { return MatMulBiasReLUIn(buf[8:12], buf[:4], buf[4:8], buf[11:13], 2, 2, 2, true) }, ErrShape},
		{"unknown kernel", func() error { return RunInto("conv", nil, nil) }, shaders.ErrUnknownKernel},
		{"mismatched inputs", func() error {
			return RunInto(shaders.Matmul, []*tensor.Tensor{mat(2, 3), mat(4, 2)}, []*tensor.Tensor{mat(2, 2)})
		}, shaders.ErrInputs},
		{"wrong output shape", func() error {
			return RunInto(shaders.Matmul, []*tensor.Tensor{mat(2, 3), mat(3, 2)}, []*tensor.Tensor{mat(2, 3)})
		}, ErrShape},
		{"missing output", func() error {
			return RunInto(shaders.Matmul, []*tensor.Tensor{mat(2, 3), mat(3, 2)}, []*tensor.Tensor{nil})
		}, ErrShape},
		{"output data short of its shape", func() error {
			return RunInto(shaders.Matmul, []*tensor.Tensor{mat(2, 3), mat(3, 2)}, []*tensor.Tensor{{Shape: []int{2, 2}, Data: buf[:3]}})
		}, ErrShape},
		{"input data short of its shape", func() error {
			return RunInto(shaders.Matmul, []*tensor.Tensor{{Shape: []int{2, 3}, Data: buf[:5]}, mat(3, 2)}, []*tensor.Tensor{mat(2, 2)})
		}, ErrShape},
		{"too few outputs", func() error {
			in := mlpInputs(rng, 2, 3, 4, 5)
			return RunInto(shaders.MLPInfer, in, []*tensor.Tensor{mat(2, 4)})
		}, ErrShape},
		{"mlp outputs alias", func() error {
			in := mlpInputs(rng, 2, 3, 4, 4)
			z := mat(2, 4)
			return RunInto(shaders.MLPInfer, in, []*tensor.Tensor{z, z})
		}, ErrShape},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.run(); !errors.Is(err, tt.want) {
				t.Fatalf("error %v, want %v", err, tt.want)
			}
		})
	}
}

func TestThreads(t *testing.T) {
	start := Threads()
	if start < 1 {
		t.Fatalf("Threads() = %d at start-up", start)
	}
	t.Cleanup(func() { _ = SetThreads(start) })
	for _, n := range []int{1, 2} {
		if err := SetThreads(n); err != nil {
			t.Fatal(err)
		}
		if got := Threads(); got != n {
			t.Fatalf("after SetThreads(%d), Threads() = %d", n, got)
		}
	}
	if err := SetThreads(0); err != nil {
		t.Fatal(err)
	}
	if got := Threads(); got != defaultThreads {
		t.Fatalf("SetThreads(0) left %d threads, want the start-up %d", got, defaultThreads)
	}
}

// TestConcurrent runs products of different shapes from several goroutines
// at once: OpenBLAS calls and the scratch pool must not interfere.
func TestConcurrent(t *testing.T) {
	const workers, rounds = 4, 8
	rng := rand.New(rand.NewPCG(15, 16))
	type job struct {
		inputs, outs, want []*tensor.Tensor
	}
	jobs := make([]job, workers)
	for i := range jobs {
		in := mlpInputs(rng, 8+i*13, 50+i*31, 64+i*7, 10)
		want, err := shaders.Reference(shaders.MLPInfer, in)
		if err != nil {
			t.Fatal(err)
		}
		jobs[i] = job{in, newOuts(t, shaders.MLPInfer, in), want}
	}
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for i := range jobs {
		wg.Go(func() {
			for range rounds {
				if err := RunInto(shaders.MLPInfer, jobs[i].inputs, jobs[i].outs); err != nil {
					errs[i] = err
					return
				}
			}
		})
	}
	wg.Wait()
	for i, j := range jobs {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		for l := range j.outs {
			for e, v := range j.outs[l].Data {
				if d := math.Abs(float64(v - j.want[l].Data[e])); d > 1e-4*(1+math.Abs(float64(v))) {
					t.Fatalf("job %d layer %d element %d: %g vs reference %g", i, l+1, e, v, j.want[l].Data[e])
				}
			}
		}
	}
}

func ExampleSgemm() {
	a := []float32{1, 2, 3, 4, 5, 6} // 2×3
	b := []float32{1, 0, 0, 1, 1, 1} // 3×2
	c := make([]float32, 4)
	if err := Sgemm(c, a, b, 2, 3, 2); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(c)
	// Output: [4 5 10 11]
}

func ExampleRunInto() {
	x, _ := tensor.FromData([]float32{1, -1}, 1, 2)
	w1, _ := tensor.FromData([]float32{1, 0, 0, 1}, 2, 2)
	b1, _ := tensor.FromData([]float32{0, 0}, 2)
	w2, _ := tensor.FromData([]float32{1, 1}, 2, 1)
	b2, _ := tensor.FromData([]float32{0.5}, 1)
	outs := []*tensor.Tensor{tensor.New(1, 2), tensor.New(1, 1)}
	if err := RunInto(shaders.MLPInfer, []*tensor.Tensor{x, w1, b1, w2, b2}, outs); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(outs[0].Data, outs[1].Data) // Z_1 keeps the negative; layer 2 sees relu(Z_1)
	// Output: [1 -1] [1.5]
}
