//go:build js

package simdgemm

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"syscall/js"
	"testing"
	"time"

	"github.com/neurolov/neurolov/shaders"
	"github.com/neurolov/neurolov/tensor"
	"github.com/neurolov/neurolov/wasm/internal/jsutil"
)

// These tests run the real gemm.wasm in node (Go's go_js_wasm_exec):
// TestWasmInNode in node_test.go builds the module and runs them with
// NEUROLOV_GEMM_WASM naming it.

func loadModule(tb testing.TB) Module {
	tb.Helper()
	path := os.Getenv("NEUROLOV_GEMM_WASM")
	if path == "" {
		tb.Fatal("NEUROLOV_GEMM_WASM is not set: run `go test ./wasm/simdgemm` natively, which builds gemm.wasm with clang and runs these tests in node")
	}
	fs := js.Global().Get("fs")
	if !fs.Truthy() {
		tb.Fatal("no fs module: these tests run in node through go_js_wasm_exec")
	}
	buf, err := jsutil.Call(fs, "readFileSync", path)
	if err != nil {
		tb.Fatalf("reading %s: %v", path, err)
	}
	res, err := jsutil.Await(js.Global().Get("WebAssembly").Call("instantiate", buf, js.ValueOf(map[string]any{})))
	if err != nil {
		tb.Fatalf("instantiating %s: %v", path, err)
	}
	m, err := Load(res.Get("instance").Get("exports"))
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

func TestParityWasm(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	b := New(loadModule(t), Options{})
	ctx := context.Background()
	run := func(kernel string, in []*tensor.Tensor, name string) {
		outs, err := b.Run(ctx, kernel, in)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		t.Run(name, func(t *testing.T) {
			worst := checkParity(t, kernel, in, outs)
			t.Logf("largest |Δ|/bound %.3g", worst)
		})
	}
	for _, s := range matmulShapes {
		run(shaders.Matmul, matmulInputs(rng, s[0], s[1], s[2]), fmt.Sprintf("matmul%v", s))
	}
	for _, d := range mlpShapes {
		run(shaders.MLPInfer, mlpInputs(rng, d), fmt.Sprintf("mlp%v", d))
	}
	// Special values travel as IEEE arithmetic says: relu(NaN) is NaN in
	// the next layer's input, an Inf weight makes Inf or NaN.
	in := mlpInputs(rng, []int{4, 8, 8, 3})
	in[0].Data[0] = float32(nanValue())
	outs, err := b.Run(ctx, shaders.MLPInfer, in)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := shaders.Reference(shaders.MLPInfer, in)
	for l := range outs {
		for i, g := range outs[l].Data {
			if w := want[l].Data[i]; (g != g) != (w != w) {
				t.Fatalf("layer %d element %d: got %g, the reference %g (NaN must propagate alike)", l, i, g, w)
			}
		}
	}
}

func nanValue() float64 { var z float64; return z / z }

func TestMemoryGrowsWasm(t *testing.T) {
	m := loadModule(t)
	before := m.Size()
	b := New(m, Options{})
	rng := rand.New(rand.NewPCG(13, 14))
	in := matmulInputs(rng, 300, 500, 300) // ~1.8 MB of blocks
	outs, err := b.Run(context.Background(), shaders.Matmul, in)
	if err != nil {
		t.Fatal(err)
	}
	if m.Size() <= before {
		t.Fatalf("memory stayed at %d bytes", before)
	}
	checkParity(t, shaders.Matmul, in, outs)
}

// mlpShard is the benchmark shard: the 784-512-256-10 MLP at batch 256.
func mlpShard() []*tensor.Tensor {
	return mlpInputs(rand.New(rand.NewPCG(1, 1)), []int{256, 784, 512, 256, 10})
}

// BenchmarkMLPWasm times Backend.Run end to end: X copied in, weights
// resident, three fused GEMMs, every Z_l copied back, Go glue included.
func BenchmarkMLPWasm(b *testing.B) {
	be := New(loadModule(b), Options{})
	in := mlpShard()
	flops := shaders.FLOPs(shaders.MLPInfer, in)
	ctx := context.Background()
	if _, err := be.Run(ctx, shaders.MLPInfer, in); err != nil { // packs the weights
		b.Fatal(err)
	}
	b.ResetTimer()
	var times []time.Duration
	for range b.N {
		start := time.Now()
		if _, err := be.Run(ctx, shaders.MLPInfer, in); err != nil {
			b.Fatal(err)
		}
		times = append(times, time.Since(start))
	}
	b.ReportMetric(flops/median(times).Seconds()/1e9, "GFLOP/s")
}

// BenchmarkKernelWasm times the three nl_gemm calls alone, on resident
// buffers: the kernel's own speed, without copies or Go glue.
func BenchmarkKernelWasm(b *testing.B) {
	m := loadModule(b)
	be := New(m, Options{})
	in := mlpShard()
	dims := []int{784, 512, 256, 10}
	r := run{b: be}
	defer r.release()
	x, err := r.input(in[0])
	if err != nil {
		b.Fatal(err)
	}
	var w, bias, z, h [3]uint32
	for l := range 3 {
		if w[l], err = r.prepared(in[1+2*l], prepPackB); err != nil {
			b.Fatal(err)
		}
		if bias[l], err = r.prepared(in[2+2*l], prepBias); err != nil {
			b.Fatal(err)
		}
		if z[l], err = r.scratch(256 * dims[l+1]); err != nil {
			b.Fatal(err)
		}
		if h[l], err = r.scratch(256 * dims[l+1]); err != nil {
			b.Fatal(err)
		}
	}
	flops := shaders.FLOPs(shaders.MLPInfer, in)
	b.ResetTimer()
	var times []time.Duration
	for range b.N {
		start := time.Now()
		a := x
		for l := range 3 {
			m.Gemm(a, dims[l], w[l], bias[l], z[l], h[l], dims[l+1], 256, dims[l], dims[l+1])
			a = h[l]
		}
		times = append(times, time.Since(start))
	}
	b.ReportMetric(flops/median(times).Seconds()/1e9, "GFLOP/s")
}

func median(ts []time.Duration) time.Duration {
	sort.Slice(ts, func(i, j int) bool { return ts[i] < ts[j] })
	return ts[len(ts)/2]
}
