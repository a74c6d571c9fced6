package shaders

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// benchShapes are the square reference size and the three layers of the
// 784-512-256-10 MLP at a shard of 256 rows.
var benchShapes = []struct {
	name    string
	m, k, n int
}{
	{"1024x1024x1024", 1024, 1024, 1024},
	{"mlp1-256x784x512", 256, 784, 512},
	{"mlp2-256x512x256", 256, 512, 256},
	{"mlp3-256x256x10", 256, 256, 10},
}

// BenchmarkMatMul compares, per shape, this package's kernels (ger: the
// blocked driver over gonum's Sger, MatMul's choice on amd64; go: the same
// driver over the register-tiled pure-Go kernel, the choice elsewhere;
// fused: MatMulBiasReLUIn with relu and bias) with gonum's own Sgemm.
// Run: go test ./shaders -run '^$' -bench MatMul -benchtime 2s
func BenchmarkMatMul(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	for _, sh := range benchShapes {
		m, k, n := sh.m, sh.k, sh.n
		x, y, bias := randSlice(r, m*k), randSlice(r, k*n), randSlice(r, n)
		c := make([]float32, m*n)
		flops := 2 * float64(m) * float64(k) * float64(n)
		variants := []struct {
			name string
			run  func()
		}{
			{"ger", func() { gemm(gemmArgs{c: c, a: x, b: y, m: m, k: k, n: n, kern: kernelGer}) }},
			{"go", func() { gemm(gemmArgs{c: c, a: x, b: y, m: m, k: k, n: n, kern: kernelGo}) }},
			{"fused", func() { MatMulBiasReLUIn(c, x, y, bias, m, k, n, true) }},
			{"gonum-sgemm", func() {
				gonum.Implementation{}.Sgemm(blas.NoTrans, blas.NoTrans, m, n, k, 1, x, k, y, n, 0, c, n)
			}},
		}
		for _, v := range variants {
			b.Run(fmt.Sprintf("%s/%s", sh.name, v.name), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					v.run()
				}
				b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}
