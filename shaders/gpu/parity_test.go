//go:build js || (cgo && (darwin || windows || (linux && (amd64 || arm64))))

package gpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/neurolov/neurolov/shaders"
	"github.com/neurolov/neurolov/tensor"
)

// Parity: every kernel on the GPU against its CPU reference in package
// shaders, over awkward shapes, within the per-element bounds of
// shaders.Bound* (derived from float32 error analysis; see ops_bound.go).
// The worst measured |GPU − CPU| / bound per kernel is logged, and printed
// at the end of a verbose run.

var ratios = struct {
	sync.Mutex
	m map[string]float64
}{m: map[string]float64{}}

func printRatios() {
	if !testing.Verbose() || len(ratios.m) == 0 {
		return
	}
	names := make([]string, 0, len(ratios.m))
	for k := range ratios.m {
		names = append(names, k)
	}
	sort.Strings(names)
	fmt.Fprintln(os.Stderr, "max |GPU − CPU| / bound per kernel:")
	for _, k := range names {
		fmt.Fprintf(os.Stderr, "  %-24s %.3g\n", k, ratios.m[k])
	}
}

// expect checks got against want within bound and records the ratio.
func expect(t *testing.T, kernel, what string, got, want []float32, bound []float64) {
	t.Helper()
	r := shaders.CheckBound(got, want, bound)
	ratios.Lock()
	ratios.m[kernel] = max(ratios.m[kernel], r.MaxRatio)
	ratios.Unlock()
	if !r.OK {
		i := r.Worst
		if i >= 0 && i < len(got) && i < len(want) && i < len(bound) {
			t.Errorf("%s %s: element %d GPU %v CPU %v |Δ| %.3g > bound %.3g (ratio %.3g)", kernel, what, i, got[i], want[i], math.Abs(float64(got[i]-want[i])), bound[i], r.MaxRatio)
		} else {
			t.Errorf("%s %s: lengths GPU %d CPU %d bound %d", kernel, what, len(got), len(want), len(bound))
		}
	}
}

func uniform(r *rand.Rand, n int, scale float32) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = (2*r.Float32() - 1) * scale
	}
	return s
}

// up uploads a copy of data.
func up(t testing.TB, d *Device, data []float32, shape ...int) *Tensor {
	t.Helper()
	tt, err := tensor.FromData(append([]float32(nil), data...), shape...)
	if err != nil {
		t.Fatal(err)
	}
	g, err := d.Upload(tt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Release)
	return g
}

// read reads a tensor back and releases it.
func read(t *testing.T, d *Device, g *Tensor) []float32 {
	t.Helper()
	out, err := d.Read(g)
	if err != nil {
		t.Fatal(err)
	}
	g.Release()
	return out.Data
}

// readKeep reads several tensors with one submission, keeping them.
func readKeep(t *testing.T, d *Device, ts ...*Tensor) [][]float32 {
	t.Helper()
	d.mu.Lock()
	outs, err := d.readAll(ts)
	d.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	res := make([][]float32, len(outs))
	for i, o := range outs {
		res[i] = o.Data
	}
	return res
}

// matmulShapes are m, k, n: ones, primes, non-multiples of every tile, a
// large k, vec4-aligned ones.
var matmulShapes = [][3]int{
	{1, 1, 1}, {1, 7, 1}, {2, 3, 5}, {7, 13, 11}, {37, 53, 29}, {64, 64, 64}, {65, 63, 67},
	{5, 8, 12}, {31, 2048, 17}, {1, 2048, 3}, {24, 2048, 16}, {131, 129, 127}, {257, 9, 1},
}

// matmulOpts enumerates every combination of the options (and a bias or
// not) as i runs over 0..47.
func matmulOpts(i int) (shaders.MatMulOpts, bool) {
	return shaders.MatMulOpts{
		TransA: i&1 != 0, TransB: i&2 != 0, ReLUIn: i&4 != 0, Act: shaders.Act(i / 8 % 3),
	}, i/24%2 == 1
}

func runMatMul(t *testing.T, d *Device, r *rand.Rand, variant string, m, k, n int, o shaders.MatMulOpts, withBias bool) {
	t.Helper()
	a, b := uniform(r, m*k, 1), uniform(r, k*n, 1)
	ashape, bshape := []int{m, k}, []int{k, n}
	if o.TransA {
		ashape = []int{k, m}
	}
	if o.TransB {
		bshape = []int{n, k}
	}
	var bias []float32
	var gbias *Tensor
	if withBias {
		bias = uniform(r, n, 1)
		if o.Act == shaders.ActGELU {
			bias = uniform(r, n, 12) // reach GELU's saturation on both sides
		}
		gbias = up(t, d, bias, n)
	}
	c, err := d.MatMulVariant(variant, up(t, d, a, ashape...), up(t, d, b, bshape...), gbias, o)
	if err != nil {
		t.Fatalf("%s %dx%dx%d %+v: %v", variant, m, k, n, o, err)
	}
	want := make([]float32, m*n)
	shaders.MatMulFused(want, a, b, bias, m, k, n, o)
	what := fmt.Sprintf("%s %dx%dx%d %+v bias %v", variant, m, k, n, o, withBias)
	expect(t, "matmul/"+o.Act.String(), what, read(t, d, c), want, shaders.BoundMatMul(a, b, bias, m, k, n, o))
}

func TestMatMulParity(t *testing.T) {
	d := device(t)
	r := rand.New(rand.NewPCG(11, 12))
	for vi, v := range Variants {
		if d.fits(v) != nil {
			t.Logf("%s does not fit this device", v.Name())
			continue
		}
		for si, s := range matmulShapes {
			runMatMul(t, d, r, v.Name(), s[0], s[1], s[2], shaders.MatMulOpts{}, false)
			o, bias := matmulOpts((si*7 + vi*5) % 48)
			runMatMul(t, d, r, v.Name(), s[0], s[1], s[2], o, bias)
		}
	}
	// Every option combination on one awkward shape, chosen variant.
	for i := range 48 {
		o, bias := matmulOpts(i)
		runMatMul(t, d, r, d.Info().Variant, 19, 23, 21, o, bias)
	}
}

// runParityRuns counts TestRunParity's runs: each draws other weights, so
// that the weight cache starts cold for them under -count=N too.
var runParityRuns atomic.Uint64

func TestRunParity(t *testing.T) {
	d := device(t)
	r := rand.New(rand.NewPCG(13, 14+runParityRuns.Add(1)))
	a, _ := tensor.FromData(uniform(r, 33*70, 1), 33, 70)
	b, _ := tensor.FromData(uniform(r, 70*45, 1), 70, 45)
	out, err := d.Run(shaders.Matmul, []*tensor.Tensor{a, b})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := shaders.Reference(shaders.Matmul, []*tensor.Tensor{a, b})
	expect(t, "run/matmul", "33x70x45", out[0].Data, want[0].Data, shaders.BoundMatMul(a.Data, b.Data, nil, 33, 70, 45, shaders.MatMulOpts{}))

	// mlp-infer, 784-512-256-10 at small batches. Each layer is checked
	// as the coordinator does: from the worker's own previous layer.
	widths := []int{784, 512, 256, 10}
	inputs := []*tensor.Tensor{nil}
	for l := 1; l < len(widths); l++ {
		w, _ := tensor.FromData(uniform(r, widths[l-1]*widths[l], 1/float32(math.Sqrt(float64(widths[l-1])))), widths[l-1], widths[l])
		bias, _ := tensor.FromData(uniform(r, widths[l], 0.1), widths[l])
		inputs = append(inputs, w, bias)
	}
	h0, m0, _ := d.WeightCacheStats()
	for pass, batch := range []int{7, 16} {
		x, _ := tensor.FromData(uniform(r, batch*784, 1), batch, 784)
		inputs[0] = x
		zs, err := d.Run(shaders.MLPInfer, inputs)
		if err != nil {
			t.Fatal(err)
		}
		if len(zs) != 3 {
			t.Fatalf("mlp-infer returned %d outputs", len(zs))
		}
		h := x
		for l, z := range zs {
			w, bias := inputs[1+2*l], inputs[2+2*l]
			o := shaders.MatMulOpts{ReLUIn: l > 0}
			want := make([]float32, batch*w.Cols())
			shaders.MatMulFused(want, h.Data, w.Data, bias.Data, batch, w.Rows(), w.Cols(), o)
			expect(t, "run/mlp-infer", fmt.Sprintf("pass %d layer %d", pass, l+1), z.Data, want,
				shaders.BoundMatMul(h.Data, w.Data, bias.Data, batch, w.Rows(), w.Cols(), o))
			h = z
		}
	}
	// The first pass uploads the six weights and biases, the second finds
	// them all on the device.
	h1, m1, bytes := d.WeightCacheStats()
	if m1-m0 != 6 || h1-h0 != 6 {
		t.Errorf("weight cache: %d hits, %d misses over two passes; want 6 and 6", h1-h0, m1-m0)
	}
	if bytes <= 0 {
		t.Errorf("weight cache holds %d bytes", bytes)
	}
}

func TestBandedSubmissions(t *testing.T) {
	// A tiny MaxSubmit cuts a product into one band of workgroup rows per
	// submission (lavapipe's 5-second bug is avoided the same way).
	d, err := Open(Options{TuneCache: "-", Variant: "reg4x4-8x8", MaxSubmit: 1})
	if err != nil {
		t.Fatalf("%v (apt-get install libvulkan1 mesa-vulkan-drivers)", err)
	}
	defer d.Close()
	r := rand.New(rand.NewPCG(15, 16))
	m, k, n := 200, 33, 40
	before := d.submits
	for _, o := range []shaders.MatMulOpts{{}, {TransB: true, Act: shaders.ActReLU}} {
		runMatMul(t, d, r, "reg4x4-8x8", m, k, n, o, true)
	}
	bands := ceilDiv(m, 32)
	if got := d.submits - before; got < 2*bands {
		t.Errorf("%d submissions for two %d-row products, want at least %d (one per %d-row band)", got, m, 2*bands, 32)
	}
}

func TestSoftmaxParity(t *testing.T) {
	d := device(t)
	r := rand.New(rand.NewPCG(17, 18))
	for _, s := range [][2]int{{1, 1}, {1, 5}, {3, 64}, {7, 65}, {2, 1000}, {130, 10}} {
		rows, cols := s[0], s[1]
		x := uniform(r, rows*cols, 30)
		x[len(x)-1] = 1e4 // a naive exp overflows
		y, err := d.Softmax(up(t, d, x, rows, cols))
		if err != nil {
			t.Fatal(err)
		}
		want := make([]float32, rows*cols)
		shaders.Softmax(want, x, rows, cols)
		expect(t, "softmax", fmt.Sprint(s), read(t, d, y), want, shaders.BoundSoftmax(x, rows, cols))
	}
}

func TestCrossEntropyParity(t *testing.T) {
	d := device(t)
	r := rand.New(rand.NewPCG(19, 20))
	for i, s := range [][2]int{{1, 1}, {1, 5}, {3, 64}, {7, 65}, {2, 1000}, {130, 10}} {
		rows, cols := s[0], s[1]
		z := uniform(r, rows*cols, 8)
		tg := make([]float32, rows*cols)
		for row := 0; row < rows; row++ {
			if i == 3 { // soft targets
				var sum float32
				for j := 0; j < cols; j++ {
					tg[row*cols+j] = r.Float32()
					sum += tg[row*cols+j]
				}
				for j := 0; j < cols; j++ {
					tg[row*cols+j] /= sum
				}
				continue
			}
			tg[row*cols+r.IntN(cols)] = 1
		}
		scale := 1 / float32(rows)
		loss, grad, err := d.SoftmaxCrossEntropy(up(t, d, z, rows, cols), up(t, d, tg, rows, cols), scale)
		if err != nil {
			t.Fatal(err)
		}
		wl, wg := make([]float32, rows), make([]float32, rows*cols)
		shaders.SoftmaxCrossEntropy(wl, wg, z, tg, rows, cols, scale)
		bl, bg := shaders.BoundSoftmaxCrossEntropy(z, tg, rows, cols, scale)
		expect(t, "xent/loss", fmt.Sprint(s), read(t, d, loss), wl, bl)
		expect(t, "xent/grad", fmt.Sprint(s), read(t, d, grad), wg, bg)
	}
}

func TestLayerNormParity(t *testing.T) {
	d := device(t)
	r := rand.New(rand.NewPCG(21, 22))
	for _, s := range [][2]int{{1, 1}, {1, 7}, {3, 64}, {5, 65}, {2, 1000}, {70, 13}} {
		rows, cols := s[0], s[1]
		x := uniform(r, rows*cols, 2)
		for j := 0; j < cols; j++ {
			x[j] += 500 // a large mean in the first row
		}
		gamma, beta := uniform(r, cols, 2), uniform(r, cols, 1)
		eps := float32(1e-5)
		y, err := d.LayerNorm(up(t, d, x, rows, cols), up(t, d, gamma, cols), up(t, d, beta, cols), eps)
		if err != nil {
			t.Fatal(err)
		}
		want := make([]float32, rows*cols)
		shaders.LayerNorm(want, x, gamma, beta, rows, cols, eps)
		expect(t, "layernorm", fmt.Sprint(s), read(t, d, y), want, shaders.BoundLayerNorm(x, gamma, beta, rows, cols, eps))
	}
}

func TestSumsParity(t *testing.T) {
	d := device(t)
	r := rand.New(rand.NewPCG(23, 24))
	for _, s := range [][2]int{{1, 1}, {1, 300}, {300, 1}, {37, 101}, {256, 10}, {3, 70000}} {
		rows, cols := s[0], s[1]
		x := uniform(r, rows*cols, 1)
		gx := up(t, d, x, rows, cols)
		cs, err := d.ColSums(gx)
		if err != nil {
			t.Fatal(err)
		}
		rs, err := d.RowSums(gx)
		if err != nil {
			t.Fatal(err)
		}
		wc, wr := make([]float32, cols), make([]float32, rows)
		shaders.ColSums(wc, x, rows, cols)
		shaders.RowSums(wr, x, rows, cols)
		expect(t, "reduce/cols", fmt.Sprint(s), read(t, d, cs), wc, shaders.BoundColSums(x, rows, cols))
		expect(t, "reduce/rows", fmt.Sprint(s), read(t, d, rs), wr, shaders.BoundRowSums(x, rows, cols))
	}
}

func TestElementwiseParity(t *testing.T) {
	d := device(t)
	r := rand.New(rand.NewPCG(25, 26))
	for _, n := range []int{1, 63, 64, 65, 1000, 70001} {
		z := uniform(r, n, 12)
		z[0] = 0
		dh := uniform(r, n, 2)
		for _, act := range []shaders.Act{shaders.ActNone, shaders.ActReLU, shaders.ActGELU} {
			dz, err := d.ActBackward(up(t, d, z, n), up(t, d, dh, n), act)
			if err != nil {
				t.Fatal(err)
			}
			want := make([]float32, n)
			shaders.ActBackward(want, z, dh, act)
			expect(t, "act_backward/"+act.String(), fmt.Sprint(n), read(t, d, dz), want, shaders.BoundActBackward(z, dh, act))
		}
		x, y := uniform(r, n, 3), uniform(r, n, 3)
		for _, ab := range [][2]float32{{1, 1}, {0.5, -2}, {3, 0}} {
			out, err := d.Axpby(up(t, d, x, n), up(t, d, y, n), ab[0], ab[1])
			if err != nil {
				t.Fatal(err)
			}
			want := make([]float32, n)
			shaders.Axpby(want, x, y, ab[0], ab[1])
			expect(t, "axpby", fmt.Sprint(n, ab), read(t, d, out), want, shaders.BoundAxpby(x, y, ab[0], ab[1]))
		}
	}
}

func TestOptimizerParity(t *testing.T) {
	d := device(t)
	r := rand.New(rand.NewPCG(27, 28))
	for _, n := range []int{1, 65, 5000} {
		w, g, v := uniform(r, n, 1), uniform(r, n, 1), uniform(r, n, 0.1)
		c := shaders.SGDConfig{LR: 0.05, Momentum: 0.9, WeightDecay: 1e-3}
		gw, gv := up(t, d, w, n), up(t, d, v, n)
		if err := d.SGDStep(gw, up(t, d, g, n), gv, c); err != nil {
			t.Fatal(err)
		}
		bw, bv := shaders.BoundSGD(w, g, v, c)
		shaders.SGDStep(w, g, v, c)
		got := readKeep(t, d, gw, gv)
		expect(t, "sgd/w", fmt.Sprint(n), got[0], w, bw)
		expect(t, "sgd/v", fmt.Sprint(n), got[1], v, bv)

		ac := shaders.AdamConfig{LR: 1e-2, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 1e-3}
		w, m, v2 := uniform(r, n, 1), uniform(r, n, 0.1), make([]float32, n)
		for i := range v2 {
			v2[i] = r.Float32() * 0.01
		}
		gw, gm, gv2 := up(t, d, w, n), up(t, d, m, n), up(t, d, v2, n)
		for step := 1; step <= 2; step++ {
			g := uniform(r, n, 1)
			if err := d.AdamStep(gw, up(t, d, g, n), gm, gv2, ac, step); err != nil {
				t.Fatal(err)
			}
			bw, bm, bv := shaders.BoundAdam(w, g, m, v2, ac, step)
			shaders.AdamStep(w, g, m, v2, ac, step)
			got := readKeep(t, d, gw, gm, gv2)
			expect(t, "adam/w", fmt.Sprint(n, step), got[0], w, bw)
			expect(t, "adam/m", fmt.Sprint(n, step), got[1], m, bm)
			expect(t, "adam/v", fmt.Sprint(n, step), got[2], v2, bv)
			// The next step starts both sides from the GPU's state, so each
			// comparison is within the bound of one step.
			w, m, v2 = got[0], got[1], got[2]
		}
	}
}

func TestIm2ColParity(t *testing.T) {
	d := device(t)
	r := rand.New(rand.NewPCG(29, 30))
	for _, g := range []shaders.ConvGeom{
		{Batch: 1, Channels: 1, Height: 1, Width: 1, KernelH: 1, KernelW: 1},
		{Batch: 2, Channels: 3, Height: 7, Width: 5, KernelH: 3, KernelW: 3, PadH: 1, PadW: 1},
		{Batch: 3, Channels: 2, Height: 9, Width: 8, KernelH: 3, KernelW: 2, StrideH: 2, StrideW: 3, PadH: 2},
		{Batch: 4, Channels: 1, Height: 28, Width: 28, KernelH: 5, KernelW: 5, PadH: 2, PadW: 2},
	} {
		x := uniform(r, g.InputLen(), 1)
		cols, err := d.Im2Col(up(t, d, x, g.Batch, g.Channels, g.Height, g.Width), g)
		if err != nil {
			t.Fatal(err)
		}
		want := make([]float32, g.Rows()*g.Cols())
		shaders.Im2Col(want, x, g)
		expect(t, "im2col", fmt.Sprintf("%+v", g), read(t, d, cols), want, make([]float64, len(want)))
	}
}

// TestPerturbationPastBoundFails shows the comparison has teeth: the
// honest GPU result passes; moving one element to the first float32 past
// its bound fails, and to the last float32 within it passes.
func TestPerturbationPastBoundFails(t *testing.T) {
	d := device(t)
	r := rand.New(rand.NewPCG(31, 32))
	m, k, n := 37, 1031, 29
	a, b := uniform(r, m*k, 1), uniform(r, k*n, 1)
	c, err := d.MatMul(up(t, d, a, m, k), up(t, d, b, k, n), nil, shaders.MatMulOpts{})
	if err != nil {
		t.Fatal(err)
	}
	want := make([]float32, m*n)
	shaders.MatMulFused(want, a, b, nil, m, k, n, shaders.MatMulOpts{})
	x := uniform(r, 50, 20)
	sm, err := d.Softmax(up(t, d, x, 5, 10))
	if err != nil {
		t.Fatal(err)
	}
	smWant := make([]float32, 50)
	shaders.Softmax(smWant, x, 5, 10)
	for _, tc := range []struct {
		name      string
		got, want []float32
		bound     []float64
	}{
		{"matmul", read(t, d, c), want, shaders.BoundMatMul(a, b, nil, m, k, n, shaders.MatMulOpts{})},
		{"softmax", read(t, d, sm), smWant, shaders.BoundSoftmax(x, 5, 10)},
	} {
		if res := shaders.CheckBound(tc.got, tc.want, tc.bound); !res.OK {
			t.Fatalf("%s: honest result fails: %+v", tc.name, res)
		}
		for _, i := range []int{0, len(tc.want) / 3, len(tc.want) / 2, len(tc.want) - 1} {
			for _, dir := range []float32{1, -1} {
				in, past := edges(tc.want[i], tc.bound[i], dir)
				p := append([]float32(nil), tc.got...)
				p[i] = in
				if res := shaders.CheckBound(p, tc.want, tc.bound); !res.OK {
					t.Errorf("%s element %d at %v, the last float32 within the bound %.3g of %v: rejected (ratio %.6f)", tc.name, i, in, tc.bound[i], tc.want[i], res.MaxRatio)
				}
				p[i] = past
				if res := shaders.CheckBound(p, tc.want, tc.bound); res.OK {
					t.Errorf("%s element %d at %v, the first float32 past the bound %.3g of %v: accepted (ratio %.6f)", tc.name, i, past, tc.bound[i], tc.want[i], res.MaxRatio)
				}
			}
		}
	}
}

// edges returns the float32 values on either side of want+dir·bound: the
// farthest still within the bound and the nearest past it.
func edges(want float32, bound float64, dir float32) (in, past float32) {
	away := float32(math.Inf(int(dir)))
	outside := func(v float32) bool { return math.Abs(float64(v)-float64(want)) > bound }
	p := float32(float64(want) + float64(dir)*bound)
	for outside(p) {
		p = math.Nextafter32(p, want)
	}
	for !outside(math.Nextafter32(p, away)) {
		p = math.Nextafter32(p, away)
	}
	return p, math.Nextafter32(p, away)
}
