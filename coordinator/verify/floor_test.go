package verify_test

import (
	"testing"

	"github.com/neurolov/neurolov/coordinator/verify"
	"github.com/neurolov/neurolov/shaders"
)

// TestFewWrongElementsCaught is the Sybil ring's cheat of issue 12: four
// elements of one 512×512 tile (K = 256, the tile of bench verify), each
// wrong by 60 times its replica tolerance, in random places and of random
// signs. Check must reject every such result on its own, with no replica.
func TestFewWrongElementsCaught(t *testing.T) {
	const (
		trials = 24
		wrong  = 4
		factor = 60
	)
	s := benchMatmul512K256
	inputs := s.inputs(t, 51, datasets[0])
	ref := reference(t, s.kernel, inputs)
	m, n := ref[0].Rows(), ref[0].Cols()
	var v verify.Verifier
	rng, pick := seeded(52), seeded(53)
	passed := 0
	for trial := range trials {
		bad := cloneAll(ref)
		for range wrong {
			i, j := pick.IntN(m), pick.IntN(n)
			tol, err := verify.ElementTolerance(s.kernel, inputs, ref, 0, i, j)
			if err != nil {
				t.Fatal(err)
			}
			sign := float32(1)
			if pick.IntN(2) == 0 {
				sign = -1
			}
			bad[0].Data[i*n+j] += sign * float32(factor*tol)
		}
		if vd := v.Check(s.kernel, inputs, bad, rng, 8); vd.OK {
			passed++
			t.Logf("trial %d: %d elements wrong by %d× their tolerance passed Check (ratio %.3g)", trial, wrong, factor, vd.Ratio)
		}
	}
	if passed > 0 {
		t.Errorf("%d of %d results with %d elements wrong by %d× their tolerance passed Check", passed, trials, wrong, factor)
	}
	if vd := v.Check(s.kernel, inputs, ref, rng, 8); !vd.OK {
		t.Fatalf("honest result rejected: %+v", vd)
	}
}

// TestFloorAlwaysCaught perturbs one element of an honest result of each
// bench verify shard — every layer of the mlp-infer shard — by just over
// its row's FreivaldsFloor, of either sign, in many random places and
// under many random vectors: Check must catch every one, with no spot
// checks. The floor must be at most 16 times the element's replica
// tolerance (the goal of issue 12); the largest multiple is logged.
func TestFloorAlwaysCaught(t *testing.T) {
	trials := 150
	if testing.Short() {
		trials = 30
	}
	for _, s := range []shard{benchMatmul512K256, benchMLP256} {
		t.Run(s.name, func(t *testing.T) {
			inputs := s.inputs(t, 54, datasets[0])
			ref := orders[2].run(t, s.kernel, inputs) // blocked: not the reference's order
			var v verify.Verifier
			rng, pick := seeded(55), seeded(56)
			worst := make([]float64, len(ref))
			for trial := range trials {
				out := trial % len(ref)
				m, n := ref[out].Rows(), ref[out].Cols()
				i, j := pick.IntN(m), pick.IntN(n)
				floor, err := verify.FreivaldsFloor(s.kernel, inputs, ref, out, i)
				if err != nil {
					t.Fatal(err)
				}
				tol, err := verify.ElementTolerance(s.kernel, inputs, ref, out, i, j)
				if err != nil {
					t.Fatal(err)
				}
				worst[out] = max(worst[out], floor/tol)
				delta := 1.001 * floor
				if pick.IntN(2) == 0 {
					delta = -delta
				}
				bad := cloneAll(ref)
				bad[out].Data[i*n+j] = float32(float64(bad[out].Data[i*n+j]) + delta)
				if vd := v.Check(s.kernel, inputs, bad, rng, 0); vd.OK {
					t.Fatalf("output %d element (%d, %d) off by %.3g (its row's floor, %.3g× its tolerance) passed: %+v", out, i, j, delta, floor/tol, vd)
				}
			}
			for out, w := range worst {
				t.Logf("output %d: FreivaldsFloor up to %.2f× the replica tolerance", out, w)
				if w > 16 {
					t.Errorf("output %d: floor %.2f× the replica tolerance, above 16×", out, w)
				}
			}
			if vd := v.Check(s.kernel, inputs, ref, rng, 8); !vd.OK || vd.Recomputed != 0 {
				t.Fatalf("honest result rejected or recomputed: %+v", vd)
			}
		})
	}
}

// TestHonestOverProbabilisticBound checks results whose honest rounding
// breaks the probabilistic bound's model — inputs of equal entries, so
// that every element of a row repeats the same roundings — in every
// summation order: their rows go over the probabilistic bound, are
// recomputed, and pass; and the rows beyond the budget are counted.
func TestHonestOverProbabilisticBound(t *testing.T) {
	s := shard{"matmul-64x300x96", shaders.Matmul, []int{64, 300, 96}}
	inputs := s.inputs(t, 57, data{name: "equal", a: constant(1), b: constant(0.1)})
	var v verify.Verifier
	rng := seeded(58)
	over := 0
	for _, o := range orders {
		outs := o.run(t, s.kernel, inputs)
		vd := v.Check(s.kernel, inputs, outs, rng, 8)
		if !vd.OK {
			t.Fatalf("%s: honest result rejected: %+v", o.name, vd)
		}
		t.Logf("%s: %d rows recomputed, %d left unchecked, ratio %.3g", o.name, vd.Recomputed, vd.Unchecked, vd.Ratio)
		if vd.Recomputed > 0 {
			over++
		}
	}
	if over == 0 {
		t.Fatal("no honest result went over the probabilistic bound: the test tests nothing")
	}
}
