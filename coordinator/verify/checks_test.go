package verify_test

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/neurolov/neurolov/coordinator/verify"
	"github.com/neurolov/neurolov/shaders"
	"github.com/neurolov/neurolov/tensor"
)

// TestSpotCheck perturbs one element of a small result: spot checks that
// sample it catch it above its bound and pass it below.
func TestSpotCheck(t *testing.T) {
	for _, s := range []shard{
		{"matmul", shaders.Matmul, []int{2, 9, 3}},
		{"mlp", shaders.MLPInfer, []int{2, 5, 3, 2}},
	} {
		inputs := s.inputs(t, 21, datasets[0])
		ref := reference(t, s.kernel, inputs)
		for _, e := range elems(ref) {
			out, i, j := e[0], e[1], e[2]
			bound, err := verify.ElementBound(s.kernel, inputs, ref, out, i, j)
			if err != nil {
				t.Fatal(err)
			}
			for _, tc := range []struct {
				multiple float64
				count    int
				ok       bool
			}{
				{2, 200, false}, // 6–12 elements: missed with probability < 1e-8
				{-2, 200, false},
				{0.3, 200, true},
				{2, 0, true},
			} {
				t.Run(fmt.Sprintf("%s/out%d(%d,%d)/%gx/%d", s.name, out, i, j, tc.multiple, tc.count), func(t *testing.T) {
					var v verify.Verifier
					bad := cloneAll(ref)
					// Relative to the exact value, which the reference
					// may already miss by a fraction of the bound.
					exact := exactElement(s.kernel, inputs, ref, out, i, j)
					bad[out].Data[i*bad[out].Cols()+j] = float32(exact + tc.multiple*bound)
					vd := v.SpotCheck(s.kernel, inputs, bad, seeded(22), tc.count)
					if vd.OK != tc.ok {
						t.Fatalf("got %+v, want OK = %v", vd, tc.ok)
					}
					// A wrong hidden element also makes the next layer's
					// row i inconsistent with it, which may be sampled first.
					at := strings.Contains(vd.Reason, fmt.Sprintf("output %d element (%d, %d)", out, i, j)) ||
						strings.Contains(vd.Reason, fmt.Sprintf("output %d element (%d, ", out+1, i))
					if !tc.ok && (vd.Method != verify.MethodSpot || !at) {
						t.Fatalf("wrong verdict %+v", vd)
					}
				})
			}
		}
	}
}

// exactElement recomputes one element in float64.
func exactElement(kernel string, inputs, outs []*tensor.Tensor, out, i, j int) float64 {
	a, w := inputs[0], inputs[1+2*out]
	if out > 0 {
		a = outs[out-1]
	}
	var s float64
	for k := range w.Rows() {
		x := float64(a.At(i, k))
		if out > 0 {
			x = max(x, 0)
		}
		s += x * float64(w.At(k, j))
	}
	if kernel == shaders.MLPInfer {
		s += float64(inputs[2+2*out].Data[j])
	}
	return s
}

// TestFreivaldsFloor measures the smallest multiple of an element's
// tolerance that Freivalds always catches when it is the only error, on a
// 512×512 tile with K = 512, and checks it against FreivaldsFloor: above
// the floor every draw catches it, well below it every draw passes it.
func TestFreivaldsFloor(t *testing.T) {
	if testing.Short() {
		t.Skip("the floor takes seconds to measure; run without -short")
	}
	const draws = 40
	s := shard{"matmul-512", shaders.Matmul, []int{512, 512, 512}}
	inputs := s.inputs(t, 23, datasets[0])
	ref := reference(t, s.kernel, inputs)
	var v verify.Verifier
	rng := seeded(24)
	for _, e := range [][2]int{{0, 0}, {100, 300}, {511, 511}} {
		i, j := e[0], e[1]
		tol, err := verify.ElementTolerance(s.kernel, inputs, ref, 0, i, j)
		if err != nil {
			t.Fatal(err)
		}
		floor, err := verify.FreivaldsFloor(s.kernel, inputs, ref, 0, i)
		if err != nil {
			t.Fatal(err)
		}
		// caught counts the draws that catch a perturbation of c·tol.
		caught := func(c float64) int {
			bad := cloneAll(ref)
			bad[0].Data[i*512+j] += float32(c * tol)
			n := 0
			for range draws {
				if vd := v.Freivalds(s.kernel, inputs, bad, rng); !vd.OK {
					n++
				}
			}
			return n
		}
		always, never := math.Inf(1), 0.0
		for c := 1.0; c < 1e5; c *= 1.25 {
			switch n := caught(c); {
			case n == 0:
				never = c
			case n == draws && always > c:
				always = c
			}
			if always < c {
				break
			}
		}
		t.Logf("element (%d, %d): tolerance %.3g; passes every draw up to %.0f×, caught by every draw from %.0f×; FreivaldsFloor = %.0f× (N = 512)",
			i, j, tol, never, always, floor/tol)
		if always > floor/tol {
			t.Errorf("measured floor %.0f× above FreivaldsFloor %.0f×", always, floor/tol)
		}
		if n := caught(floor / tol * 1.001); n != draws {
			t.Errorf("a perturbation at FreivaldsFloor passed %d of %d draws", draws-n, draws)
		}
		if never < floor/tol/8 {
			t.Errorf("perturbations of %.0f× already caught: the floor %.0f× is far too pessimistic", never*1.25, floor/tol)
		}
	}
}

// TestCanary disguises verified shards and judges results for them.
func TestCanary(t *testing.T) {
	for _, s := range []shard{
		{"matmul", shaders.Matmul, []int{9, 17, 6}},
		{"matmul-1x1x1", shaders.Matmul, []int{1, 1, 1}},
		{"matmul-1xkx1", shaders.Matmul, []int{1, 33, 1}},
		{"mlp", shaders.MLPInfer, []int{8, 13, 7, 3}},
		{"mlp-2rows", shaders.MLPInfer, []int{2, 4, 3}},
	} {
		t.Run(s.name, func(t *testing.T) {
			var v verify.Verifier
			inputs := s.inputs(t, 31, datasets[0])
			verified := orders[2].run(t, s.kernel, inputs) // some honest worker's result
			cin, want, err := verify.MakeCanary(s.kernel, inputs, verified, seeded(32))
			if err != nil {
				t.Fatal(err)
			}
			if len(cin) != len(inputs) || len(want) != len(verified) {
				t.Fatalf("canary has %d inputs and %d outputs", len(cin), len(want))
			}
			for i := range cin {
				if !tensor.SameShape(cin[i], inputs[i]) {
					t.Fatalf("input %d has shape %v, want %v", i, cin[i].Shape, inputs[i].Shape)
				}
				weight := s.kernel == shaders.MLPInfer && i > 0
				if same := cin[i].Hash() == inputs[i].Hash(); same != weight {
					t.Fatalf("input %d: same hash = %v, want %v", i, same, weight)
				}
				if weight && cin[i] != inputs[i] {
					t.Fatalf("weight %d was copied", i)
				}
			}
			// Honest workers pass the canary, in any summation order.
			for _, o := range orders {
				res := o.run(t, s.kernel, cin)
				cmp, err := v.Agree(s.kernel, cin, res, want)
				if err != nil || !cmp.Agree {
					t.Fatalf("%s: honest canary result rejected: %+v, %v", o.name, cmp, err)
				}
			}
			if vd := v.Check(s.kernel, cin, want, seeded(33), 8); !vd.OK {
				t.Fatalf("expected outputs fail Check: %+v", vd)
			}
			// A worker answering the original shard's result fails, as
			// does a perturbed answer.
			last := len(want) - 1
			tol, err := verify.ElementTolerance(s.kernel, cin, want, last, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			bad := cloneAll(want)
			bad[last].Data[0] += float32(1.5 * tol)
			cheats := map[string][]*tensor.Tensor{"perturbed": bad}
			if !slices.Equal(want[last].Data, verified[last].Data) { // a 1×1 canary may only flip signs twice
				cheats["original"] = verified
			}
			for name, res := range cheats {
				cmp, err := v.Agree(s.kernel, cin, res, want)
				if err != nil || cmp.Agree {
					t.Errorf("%s result passes the canary: %+v, %v", name, cmp, err)
				}
			}
		})
	}
}

// TestCanaryImpossible: shards that no permutation changes.
func TestCanaryImpossible(t *testing.T) {
	oneRow := shard{"mlp", shaders.MLPInfer, []int{1, 4, 3}}.inputs(t, 34, datasets[0])
	sameRows := shard{"mlp", shaders.MLPInfer, []int{3, 4, 3}}.inputs(t, 34, datasets[0])
	for i := range sameRows[0].Data {
		sameRows[0].Data[i] = sameRows[0].Data[i%4]
	}
	zeros := []*tensor.Tensor{tensor.New(3, 4), tensor.New(4, 2)}
	for _, tc := range []struct {
		name   string
		kernel string
		inputs []*tensor.Tensor
		err    error
	}{
		{"mlp-one-row", shaders.MLPInfer, oneRow, verify.ErrCanary},
		{"mlp-equal-rows", shaders.MLPInfer, sameRows, verify.ErrCanary},
		{"matmul-zeros", shaders.Matmul, zeros, verify.ErrCanary},
		{"bad-inputs", shaders.Matmul, zeros[:1], verify.ErrUnverifiable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var outs []*tensor.Tensor
			if tc.err != verify.ErrUnverifiable {
				outs = reference(t, tc.kernel, tc.inputs)
			}
			_, _, err := verify.MakeCanary(tc.kernel, tc.inputs, outs, seeded(35))
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
		})
	}
}

// TestSecretRand checks that production sources are seeded apart and
// drive the checks like any other source.
func TestSecretRand(t *testing.T) {
	a, b := verify.NewSecretRand(), verify.NewSecretRand()
	if x, y := [2]uint64{a.Uint64(), a.Uint64()}, [2]uint64{b.Uint64(), b.Uint64()}; x == y {
		t.Fatal("two secret sources return the same stream")
	}
	s := shard{"mlp", shaders.MLPInfer, []int{8, 13, 7, 3}}
	inputs := s.inputs(t, 36, datasets[0])
	var v verify.Verifier
	if vd := v.Check(s.kernel, inputs, reference(t, s.kernel, inputs), a, 4); !vd.OK {
		t.Fatalf("honest result rejected: %+v", vd)
	}
}

// TestHelpersRejectBadIndex covers the element helpers' errors.
func TestHelpersRejectBadIndex(t *testing.T) {
	s := shard{"matmul", shaders.Matmul, []int{2, 3, 4}}
	inputs := s.inputs(t, 37, datasets[0])
	ref := reference(t, s.kernel, inputs)
	for _, idx := range [][3]int{{1, 0, 0}, {0, 2, 0}, {0, 0, 4}, {0, -1, 0}} {
		_, err1 := verify.ElementTolerance(s.kernel, inputs, ref, idx[0], idx[1], idx[2])
		_, err2 := verify.ElementBound(s.kernel, inputs, ref, idx[0], idx[1], idx[2])
		_, err3 := verify.FreivaldsFloor(s.kernel, inputs, ref, idx[0], idx[1])
		if !errors.Is(err1, verify.ErrIndex) || !errors.Is(err2, verify.ErrIndex) || (idx[2] == 0 && !errors.Is(err3, verify.ErrIndex)) {
			t.Errorf("%v: errors %v, %v, %v", idx, err1, err2, err3)
		}
	}
}

// TestAllocations: checking a result allocates nothing in steady state.
func TestAllocations(t *testing.T) {
	s := shard{"mlp", shaders.MLPInfer, []int{16, 32, 24, 10}}
	inputs := s.inputs(t, 38, datasets[0])
	ref := reference(t, s.kernel, inputs)
	other := orders[1].run(t, s.kernel, inputs)
	var v verify.Verifier
	rng := seeded(39)
	for name, f := range map[string]func(){
		"Check": func() { v.Check(s.kernel, inputs, ref, rng, 8) },
		"Agree": func() { _, _ = v.Agree(s.kernel, inputs, ref, other) },
	} {
		f()
		if n := testing.AllocsPerRun(20, f); n != 0 {
			t.Errorf("%s allocates %v times per call", name, n)
		}
	}
}
