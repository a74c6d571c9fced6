//go:build cgo

package blas

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/neurolov/neurolov/shaders"
	"github.com/neurolov/neurolov/tensor"
)

// threadCounts are the OpenBLAS thread counts benchmarks run at: one core,
// and the start-up default (all cores).
var threadCounts = []struct {
	name string
	n    int
}{{"threads=1", 1}, {"threads=default", 0}}

// withThreads runs the benchmark with OpenBLAS set to n threads (0: the
// default) and restores the previous count afterwards.
func withThreads(b *testing.B, n int) {
	b.Helper()
	prev := Threads()
	if err := SetThreads(n); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = SetThreads(prev) })
	b.ReportMetric(float64(Threads()), "threads")
}

// BenchmarkSgemm measures bare OpenBLAS sgemm, m×k×n.
func BenchmarkSgemm(b *testing.B) {
	for _, s := range [][3]int{{1024, 1024, 1024}, {4096, 4096, 1024}} {
		m, k, n := s[0], s[1], s[2]
		for _, tc := range threadCounts {
			b.Run(fmt.Sprintf("%dx%dx%d/%s", m, k, n, tc.name), func(b *testing.B) {
				withThreads(b, tc.n)
				rng := rand.New(rand.NewPCG(1, 1))
				a, bm, c := random(rng, m*k), random(rng, k*n), make([]float32, m*n)
				flops := 2 * float64(m) * float64(k) * float64(n)
				start := time.Now()
				for b.Loop() {
					if err := Sgemm(c, a, bm, m, k, n); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(GFLOPS(flops*float64(b.N), time.Since(start)), "GFLOP/s")
			})
		}
	}
}

// mlpShard is the reference MLP shard: 784-512-256-10 at batch 256.
type mlpShard struct {
	inputs, outs []*tensor.Tensor
	bare         []*tensor.Tensor // outputs for the bare sgemm calls
	flops        float64          // shaders.FLOPs of the shard
}

func newMLPShard(b *testing.B) *mlpShard {
	s := &mlpShard{inputs: mlpInputs(rand.New(rand.NewPCG(2, 2)), 256, 784, 512, 256, 10)}
	s.outs = newOuts(b, shaders.MLPInfer, s.inputs)
	s.bare = newOuts(b, shaders.MLPInfer, s.inputs)
	s.flops = shaders.FLOPs(shaders.MLPInfer, s.inputs)
	return s
}

// runInto runs the shard the way a CPU worker does.
func (s *mlpShard) runInto(b *testing.B) {
	if err := RunInto(shaders.MLPInfer, s.inputs, s.outs); err != nil {
		b.Fatal(err)
	}
}

// sgemms runs bare sgemm on the shard's three shapes: no bias, no relu, no
// checks beyond Sgemm's own.
func (s *mlpShard) sgemms(b *testing.B) {
	h := s.inputs[0]
	for l, z := range s.bare {
		w := s.inputs[1+2*l]
		if l > 0 {
			h = s.bare[l-1]
		}
		if err := Sgemm(z.Data, h.Data, w.Data, h.Rows(), w.Rows(), w.Cols()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMLP measures the MLP shard (784-512-256-10, batch 256) through
// RunInto, bare sgemm on the same three shapes, and both interleaved, which
// reports the glue ratio: RunInto's throughput over bare sgemm's (the goal is
// at least 0.8). Both count the shard's shaders.FLOPs, so the GFLOP/s of
// the two are in the ratio of their times.
func BenchmarkMLP(b *testing.B) {
	for _, tc := range threadCounts {
		b.Run(tc.name+"/runinto", func(b *testing.B) {
			withThreads(b, tc.n)
			s := newMLPShard(b)
			start := time.Now()
			for b.Loop() {
				s.runInto(b)
			}
			b.ReportMetric(GFLOPS(s.flops*float64(b.N), time.Since(start)), "GFLOP/s")
		})
		b.Run(tc.name+"/bare-sgemm", func(b *testing.B) {
			withThreads(b, tc.n)
			s := newMLPShard(b)
			start := time.Now()
			for b.Loop() {
				s.sgemms(b)
			}
			b.ReportMetric(GFLOPS(s.flops*float64(b.N), time.Since(start)), "GFLOP/s")
		})
		b.Run(tc.name+"/glue-ratio", func(b *testing.B) {
			withThreads(b, tc.n)
			s := newMLPShard(b)
			var glue, bare time.Duration
			for b.Loop() {
				t0 := time.Now()
				s.runInto(b)
				t1 := time.Now()
				s.sgemms(b)
				glue += t1.Sub(t0)
				bare += time.Since(t1)
			}
			b.ReportMetric(GFLOPS(s.flops*float64(b.N), glue), "runinto-GFLOP/s")
			b.ReportMetric(GFLOPS(s.flops*float64(b.N), bare), "sgemm-GFLOP/s")
			b.ReportMetric(bare.Seconds()/glue.Seconds(), "x-of-sgemm")
		})
	}
}
