package verify_test

import (
	"runtime"
	"testing"
	"time"

	"github.com/neurolov/neurolov/coordinator/verify"
	"github.com/neurolov/neurolov/shaders"
)

// benchShards are the planner's shard sizes: a 512-wide matmul tile and an
// mlp-infer batch of 256 through 784-512-256-10.
var benchShards = []shard{
	{"matmul-512", shaders.Matmul, []int{512, 512, 512}},
	{"mlp-256x784-512-256-10", shaders.MLPInfer, []int{256, 784, 512, 256, 10}},
}

// referenceNs times shaders.Reference on one shard on one core (Check
// runs on one core too; Reference splits large products over
// GOMAXPROCS goroutines): the best of three.
func referenceNs(b *testing.B, s shard) float64 {
	inputs := s.inputs(b, 41, datasets[0])
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	best := time.Duration(1<<63 - 1)
	for range 3 {
		start := time.Now()
		if _, err := shaders.Reference(s.kernel, inputs); err != nil {
			b.Fatal(err)
		}
		best = min(best, time.Since(start))
	}
	return float64(best.Nanoseconds())
}

// BenchmarkCheck measures Check (Freivalds and 8 spot checks) and reports
// its cost as a fraction of recomputing the shard with shaders.Reference
// on one core (metric "of-reference"; the goal is ≤ 0.10).
func BenchmarkCheck(b *testing.B) {
	for _, s := range benchShards {
		b.Run(s.name, func(b *testing.B) {
			inputs := s.inputs(b, 41, datasets[0])
			outs := reference(b, s.kernel, inputs)
			ref := referenceNs(b, s)
			var v verify.Verifier
			rng := seeded(42)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if vd := v.Check(s.kernel, inputs, outs, rng, 8); !vd.OK {
					b.Fatal(vd)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/ref, "of-reference")
		})
	}
}

// BenchmarkAgree measures comparing two replicas of one shard.
func BenchmarkAgree(b *testing.B) {
	for _, s := range benchShards {
		b.Run(s.name, func(b *testing.B) {
			inputs := s.inputs(b, 41, datasets[0])
			outs := reference(b, s.kernel, inputs)
			other := cloneAll(outs)
			ref := referenceNs(b, s)
			var v verify.Verifier
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if cmp, err := v.Agree(s.kernel, inputs, outs, other); err != nil || !cmp.Agree {
					b.Fatal(cmp, err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/ref, "of-reference")
		})
	}
}

// BenchmarkReference is the cost Check is compared with (run it with
// -cpu 1 for the one-core figure the other benchmarks divide by).
func BenchmarkReference(b *testing.B) {
	for _, s := range benchShards {
		b.Run(s.name, func(b *testing.B) {
			inputs := s.inputs(b, 41, datasets[0])
			for b.Loop() {
				if _, err := shaders.Reference(s.kernel, inputs); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCheckTiny is the per-result cost on the tiny shards of the
// dispatch benchmark.
func BenchmarkCheckTiny(b *testing.B) {
	s := shard{"matmul-8", shaders.Matmul, []int{8, 8, 8}}
	inputs := s.inputs(b, 43, datasets[0])
	outs := reference(b, s.kernel, inputs)
	var v verify.Verifier
	rng := seeded(44)
	b.ReportAllocs()
	for b.Loop() {
		if vd := v.Check(s.kernel, inputs, outs, rng, 2); !vd.OK {
			b.Fatal(vd)
		}
	}
}
