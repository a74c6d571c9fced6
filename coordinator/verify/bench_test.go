package verify_test

import (
	"fmt"
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

// The shards of `neurolov bench verify`: a 512×512 matmul tile with
// K = 256 and an mlp-infer batch of 256 through 784-512-256-10.
var (
	benchMatmul512K256 = shard{"matmul-512x256x512", shaders.Matmul, []int{512, 256, 512}}
	benchMLP256        = shard{"mlp-256x784-512-256-10", shaders.MLPInfer, []int{256, 784, 512, 256, 10}}
)

// benchCheck measures Check with 8 spots: "first" with a new Verifier
// per call (nothing cached: the first result of a shard whose inputs the
// Verifier has not seen), "steady" with one Verifier checking the same
// shard again and again with a new random vector each time (every input
// quantity cached, as for a shard whose B or weights were seen before),
// and "cold" as steady but with the CPU caches flushed before each call
// (every tensor read from memory).
func benchCheck(b *testing.B, s shard) {
	inputs := s.inputs(b, 41, datasets[0])
	outs := reference(b, s.kernel, inputs)
	for _, mode := range []string{"first", "steady", "cold"} {
		b.Run(mode, func(b *testing.B) {
			var v verify.Verifier
			rng := seeded(42)
			b.ReportAllocs()
			for b.Loop() {
				switch mode {
				case "first":
					v = verify.Verifier{}
				case "cold":
					b.StopTimer()
					evictCaches()
					b.StartTimer()
				}
				if vd := v.Check(s.kernel, inputs, outs, rng, 8); !vd.OK {
					b.Fatal(vd)
				}
			}
		})
	}
}

// evictBuf is larger than the last-level cache: writing it evicts the
// shard's tensors, as the traffic between two results of a busy
// coordinator does.
var evictBuf = make([]byte, 64<<20)

// evictCaches writes evictBuf once.
func evictCaches() {
	for i := 0; i < len(evictBuf); i += 64 {
		evictBuf[i]++
	}
}

// benchAgree measures Agree on two replicas, "first" and "steady" as in
// benchCheck.
func benchAgree(b *testing.B, s shard) {
	inputs := s.inputs(b, 41, datasets[0])
	outs := reference(b, s.kernel, inputs)
	other := orders[1].run(b, s.kernel, inputs) // reverse order: not bit-identical
	for _, first := range []bool{true, false} {
		name := "steady"
		if first {
			name = "first"
		}
		b.Run(name, func(b *testing.B) {
			var v verify.Verifier
			b.ReportAllocs()
			for b.Loop() {
				if first {
					v = verify.Verifier{}
				}
				if cmp, err := v.Agree(s.kernel, inputs, outs, other); err != nil || !cmp.Agree {
					b.Fatal(cmp, err)
				}
			}
		})
	}
}

// BenchmarkCheckMatmul512K256 is Check on a bench-verify matmul tile.
func BenchmarkCheckMatmul512K256(b *testing.B) { benchCheck(b, benchMatmul512K256) }

// BenchmarkCheckMLP256 is Check on a bench-verify mlp-infer shard.
func BenchmarkCheckMLP256(b *testing.B) { benchCheck(b, benchMLP256) }

// BenchmarkAgreeMatmul512K256 is Agree on a bench-verify matmul tile.
func BenchmarkAgreeMatmul512K256(b *testing.B) { benchAgree(b, benchMatmul512K256) }

// BenchmarkAgreeMLP256 is Agree on a bench-verify mlp-infer shard.
func BenchmarkAgreeMLP256(b *testing.B) { benchAgree(b, benchMLP256) }

// BenchmarkMakeCanary measures deriving a canary from a bench-verify
// shard: permuted copies of its inputs and outputs.
func BenchmarkMakeCanary(b *testing.B) {
	for _, s := range []shard{benchMatmul512K256, benchMLP256} {
		b.Run(s.name, func(b *testing.B) {
			inputs := s.inputs(b, 41, datasets[0])
			outs := reference(b, s.kernel, inputs)
			rng := seeded(43)
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := verify.MakeCanary(s.kernel, inputs, outs, rng); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCheckAll measures a burst of 8 results that share their right-hand
// matrices — 8 mlp-infer shards of a job (batch 256 through
// 784-512-256-10, each its own X, the same weight tensors) and 8 matmul
// tiles of a column (512×256 · 256×512, the same B) — checked with 8 spots
// each, every tensor read from memory: "check" runs 8 Checks with the CPU
// caches flushed before each (as benchCheck's cold), "check-burst" 8 Checks
// after one flush, "checkall" one CheckAll after one flush. The Verifier
// has seen the inputs before (steady state). Metric ns/item.
func BenchmarkCheckAll(b *testing.B) {
	const burst = 8
	for _, s := range []struct {
		name  string
		items func(b *testing.B) []verify.Item
	}{
		{"mlp-256x784-512-256-10", func(b *testing.B) []verify.Item { return sharedMLP(b, 41, burst, 256, 784, 512, 256, 10) }},
		{"matmul-512x256x512", func(b *testing.B) []verify.Item { return sharedMatmul(b, 41, burst, 512, 256, 512) }},
	} {
		items := s.items(b)
		for _, mode := range []string{"check", "check-burst", "checkall"} {
			b.Run(s.name+"/"+mode, func(b *testing.B) {
				var v verify.Verifier
				rng := seeded(42)
				v.CheckAll(items, rng, 8) // the inputs' statistics cached
				b.ReportAllocs()
				for b.Loop() {
					b.StopTimer()
					evictCaches()
					b.StartTimer()
					if mode == "checkall" {
						for i, vd := range v.CheckAll(items, rng, 8) {
							if !vd.OK {
								b.Fatal(i, vd)
							}
						}
						continue
					}
					for i, it := range items {
						if mode == "check" && i > 0 {
							b.StopTimer()
							evictCaches()
							b.StartTimer()
						}
						if vd := v.Check(it.Kernel, it.Inputs, it.Outputs, rng, 8); !vd.OK {
							b.Fatal(i, vd)
						}
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/burst, "ns/item")
			})
		}
	}
}

// BenchmarkConfirm measures Confirm on the bench-verify shards with
// several numbers of rows, and reports it as a fraction of recomputing
// the shard with shaders.Reference on one core (metric "of-reference";
// ConfirmRows is chosen to keep it near 0.03).
// The Verifier has seen the inputs before (steady state).
func BenchmarkConfirm(b *testing.B) {
	for _, s := range []shard{benchMatmul512K256, benchMLP256} {
		inputs := s.inputs(b, 41, datasets[0])
		outs := reference(b, s.kernel, inputs)
		ref := referenceNs(b, s)
		for _, rows := range []int{1, 2, 4, 8, 16} {
			b.Run(fmt.Sprintf("%s/rows-%d", s.name, rows), func(b *testing.B) {
				var v verify.Verifier
				rng := seeded(42)
				v.Confirm(s.kernel, inputs, outs, rng, rows)
				b.ReportAllocs()
				for b.Loop() {
					if vd := v.Confirm(s.kernel, inputs, outs, rng, rows); !vd.OK {
						b.Fatal(vd)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/ref, "of-reference")
			})
		}
	}
}
