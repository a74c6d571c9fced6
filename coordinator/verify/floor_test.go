package verify_test

import (
	"testing"

	"github.com/neurolov/neurolov/coordinator/verify"
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
