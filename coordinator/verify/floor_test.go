package verify_test

import (
	"fmt"
	"math"
	"strings"
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

// TestDecoyRowsCannotChooseTheRecompute is the decoy attack of the review
// of issue 12: a cheater moves every element of a few "decoy" rows by half
// its exact bound, all of one sign, so that those rows go far over the
// probabilistic bound yet pass the exact recompute, and hides a real error
// — one element over its row's FreivaldsFloor (more than 16 times its
// replica tolerance), under the worst-case bound — in another row. Which
// of the flagged rows are recomputed must be the verifier's secret
// choice, not the cheater's: over many results checked with fresh
// secrets, the hidden error is caught at least as often as a uniform
// random choice of the budget's rows among the flagged ones would catch
// it (budget/flagged, less a margin of four standard deviations), and
// every result it escapes is reported with rows unchecked.
func TestDecoyRowsCannotChooseTheRecompute(t *testing.T) {
	const (
		decoys = 8
		trials = 240
	)
	s := benchMatmul512K256
	inputs := s.inputs(t, 51, datasets[0])
	ref := reference(t, s.kernel, inputs)
	m, n := ref[0].Rows(), ref[0].Cols()
	decoyed := cloneAll(ref)
	for i := range decoys {
		for j := range n {
			eb, err := verify.ElementBound(s.kernel, inputs, ref, 0, i, j)
			if err != nil {
				t.Fatal(err)
			}
			decoyed[0].Data[i*n+j] = float32(float64(decoyed[0].Data[i*n+j]) + 0.5*eb)
		}
	}
	var v verify.Verifier
	rng := seeded(52)
	alone := v.Check(s.kernel, inputs, decoyed, rng, 0)
	if !alone.OK || alone.Recomputed == 0 || alone.Recomputed+alone.Unchecked != decoys {
		t.Fatalf("decoys alone: %+v, want a pass with every decoy row flagged and some recomputed", alone)
	}
	budget := alone.Recomputed

	i, j := m-1, n/2
	floor, err := verify.FreivaldsFloor(s.kernel, inputs, ref, 0, i)
	if err != nil {
		t.Fatal(err)
	}
	tol, err := verify.ElementTolerance(s.kernel, inputs, ref, 0, i, j)
	if err != nil {
		t.Fatal(err)
	}
	lie := 8 * floor
	if lie < 16*tol {
		t.Fatalf("the hidden error, %.3g, is not above 16 tolerances (%.3g)", lie, tol)
	}
	bad := cloneAll(decoyed)
	bad[0].Data[i*n+j] = float32(float64(bad[0].Data[i*n+j]) + lie)
	at := fmt.Sprintf("element (%d, %d)", i, j)
	caught := 0
	for trial := range trials {
		vd := v.Check(s.kernel, inputs, bad, rng, 0)
		switch {
		case !vd.OK && vd.Method == verify.MethodRecompute && strings.Contains(vd.Reason, at):
			caught++
		case vd.OK && vd.Recomputed == budget && vd.Unchecked == decoys+1-budget:
		default:
			t.Fatalf("trial %d: %+v, want the hidden error caught by the recompute, or a pass with %d of %d flagged rows unchecked", trial, vd, decoys+1-budget, decoys+1)
		}
	}
	want := float64(budget) / float64(decoys+1)
	rate := float64(caught) / trials
	margin := 4 * math.Sqrt(want*(1-want)/trials)
	t.Logf("an error %.1f× its tolerance (%.0f× its row's floor) among %d decoy rows: caught in %d of %d results (%.2f; a random choice of %d of %d rows gives %.2f)",
		lie/tol, lie/floor, decoys, caught, trials, rate, budget, decoys+1, want)
	if rate < want-margin {
		t.Errorf("the hidden error was caught in %.2f of the results, below the %.2f a random choice of the recomputed rows gives (margin %.2f): the cheater chooses them", rate, want, margin)
	}
}
