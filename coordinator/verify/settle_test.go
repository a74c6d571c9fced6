package verify_test

import (
	"errors"
	"math"
	"slices"
	"testing"

	"github.com/neurolov/neurolov/coordinator/verify"
	"github.com/neurolov/neurolov/shaders"
	"github.com/neurolov/neurolov/tensor"
)

// perturbAt moves elements (out, i, j) of a copy of outs by multiple
// times each one's tolerance.
func perturbAt(t *testing.T, kernel string, inputs, outs []*tensor.Tensor, multiple float64, at ...[3]int) []*tensor.Tensor {
	t.Helper()
	bad := cloneAll(outs)
	for _, e := range at {
		tol, err := verify.ElementTolerance(kernel, inputs, outs, e[0], e[1], e[2])
		if err != nil {
			t.Fatal(err)
		}
		bad[e[0]].Data[e[1]*bad[e[0]].Cols()+e[2]] += float32(multiple * tol)
	}
	return bad
}

// TestSettleFindsTheWrongSide: two honest results (two summation orders)
// and a ring of two identical wrong ones, each perturbing 4 elements by
// 60 tolerances: the ring is wrong, the honest results right, however
// the results are outnumbered.
func TestSettleFindsTheWrongSide(t *testing.T) {
	for _, s := range []shard{
		{"matmul", shaders.Matmul, []int{33, 64, 17}},
		{"mlp-last-layer", shaders.MLPInfer, []int{9, 13, 11, 5}},
		{"mlp-hidden-layer", shaders.MLPInfer, []int{9, 13, 11, 5}},
	} {
		for _, d := range datasets {
			t.Run(s.name+"/"+d.name, func(t *testing.T) {
				inputs := s.inputs(t, 31, d)
				ref := reference(t, s.kernel, inputs)
				other := orders[1].run(t, s.kernel, inputs)
				out := len(ref) - 1
				if s.name == "mlp-hidden-layer" {
					out = 0
				}
				m, n := ref[out].Rows(), ref[out].Cols()
				ring := perturbAt(t, s.kernel, inputs, ref, 60, [3]int{out, 0, 0}, [3]int{out, m - 1, n - 1}, [3]int{out, m / 2, n / 3}, [3]int{out, 1, n - 2})
				if s.name == "mlp-hidden-layer" {
					// A cheater carries its hidden error forward honestly.
					next := orders[0].matmul(ring[0].Data, inputs[3].Data, inputs[4].Data, m, inputs[3].Rows(), inputs[3].Cols(), true)
					copy(ring[1].Data, next)
				}
				var v verify.Verifier
				for _, results := range [][][]*tensor.Tensor{
					{ref, ring},
					{ring, other, cloneAll(ring)},
					{cloneAll(ring), ring, ref, other},
				} {
					st, err := v.Settle(s.kernel, inputs, results, seeded(32), verify.SettleSamples)
					if err != nil {
						t.Fatal(err)
					}
					for r, res := range results {
						wantRight := !slices.Equal(res[out].Data, ring[out].Data)
						if st.Right[r] != wantRight {
							t.Fatalf("result %d right = %v, want %v: %+v", r, st.Right[r], wantRight, st)
						}
						if !wantRight && st.Reasons[r] == "" {
							t.Fatalf("result %d wrong without a reason", r)
						}
					}
					if !st.Complete || st.Checked == 0 || st.Checked > 4 {
						t.Fatalf("settlement %+v, want the 4 disputed elements all recomputed", st)
					}
				}
			})
		}
	}
}

// TestSettleBoundedSample: a cheater that moves every element by 3
// tolerances disputes more elements than Settle recomputes; it is still
// found wrong, the honest result right, and the settlement says it is
// incomplete.
func TestSettleBoundedSample(t *testing.T) {
	s := shard{"matmul", shaders.Matmul, []int{33, 64, 17}}
	inputs := s.inputs(t, 41, datasets[0])
	ref := reference(t, s.kernel, inputs)
	var all [][3]int
	for i := range 33 {
		for j := range 17 {
			all = append(all, [3]int{0, i, j})
		}
	}
	bad := perturbAt(t, s.kernel, inputs, ref, 3, all...)
	var v verify.Verifier
	st, err := v.Settle(s.kernel, inputs, [][]*tensor.Tensor{bad, ref}, seeded(42), verify.SettleSamples)
	if err != nil {
		t.Fatal(err)
	}
	if st.Right[0] || !st.Right[1] || st.Complete || st.Disputed != 33*17 || st.Checked != verify.SettleSamples {
		t.Fatalf("settlement %+v", st)
	}
}

// TestSettleHonestResults: honest results in every summation order, on
// every data set, are never found wrong, and agreeing results dispute
// nothing.
func TestSettleHonestResults(t *testing.T) {
	for _, s := range honestShards {
		for _, d := range datasets {
			t.Run(s.name+"/"+d.name, func(t *testing.T) {
				inputs := s.inputs(t, 51, d)
				var results [][]*tensor.Tensor
				for _, o := range orders {
					results = append(results, o.run(t, s.kernel, inputs))
				}
				var v verify.Verifier
				st, err := v.Settle(s.kernel, inputs, results, seeded(52), verify.SettleSamples)
				if err != nil {
					t.Fatal(err)
				}
				if slices.Contains(st.Right, false) || st.Disputed != 0 || !st.Complete {
					t.Fatalf("honest results settled as %+v", st)
				}
				for r := range results {
					if vd := v.Confirm(s.kernel, inputs, results[r], seeded(53), 3); !vd.OK {
						t.Fatalf("%s result not confirmed: %+v", orders[r].name, vd)
					}
				}
			})
		}
	}
}

// TestSettleWrongForm: a result of the wrong form is wrong; an
// unverifiable shard is an error.
func TestSettleWrongForm(t *testing.T) {
	s := shard{"matmul", shaders.Matmul, []int{4, 5, 3}}
	inputs := s.inputs(t, 61, datasets[0])
	ref := reference(t, s.kernel, inputs)
	var v verify.Verifier
	st, err := v.Settle(s.kernel, inputs, [][]*tensor.Tensor{ref, {tensor.New(2, 2)}}, seeded(62), verify.SettleSamples)
	if err != nil || !st.Right[0] || st.Right[1] || st.Reasons[1] == "" {
		t.Fatalf("settlement %+v, %v", st, err)
	}
	nan := cloneAll(inputs)
	nan[0].Data[0] = float32(math.NaN())
	if _, err := v.Settle(s.kernel, nan, [][]*tensor.Tensor{ref, perturbAt(t, s.kernel, inputs, ref, 5, [3]int{0, 0, 0})}, seeded(63), verify.SettleSamples); !errors.Is(err, verify.ErrUnverifiable) {
		t.Fatalf("inputs holding NaN: %v, want ErrUnverifiable", err)
	}
}

// TestConfirmCatchesAWrongRow: Confirm recomputes whole rows, so an error
// above its bound in every row (here one element of each, of the first
// layer for mlp-infer) is always caught.
func TestConfirmCatchesAWrongRow(t *testing.T) {
	for _, s := range []shard{
		{"matmul", shaders.Matmul, []int{6, 9, 7}},
		{"mlp", shaders.MLPInfer, []int{6, 9, 7, 3}},
	} {
		inputs := s.inputs(t, 71, datasets[0])
		ref := reference(t, s.kernel, inputs)
		var at [][3]int
		for i := range 6 {
			at = append(at, [3]int{0, i, i})
		}
		bad := perturbAt(t, s.kernel, inputs, ref, 4, at...)
		var v verify.Verifier
		for seed := range uint64(5) {
			if vd := v.Confirm(s.kernel, inputs, bad, seeded(seed), verify.ConfirmRows); vd.OK || vd.Method != verify.MethodSettle {
				t.Fatalf("%s: wrong rows confirmed: %+v", s.name, vd)
			}
		}
	}
}

// TestDoable: shards whose inputs do not fit their kernel, or hold an
// empty dimension, can never be done.
func TestDoable(t *testing.T) {
	for _, tc := range []struct {
		name   string
		kernel string
		inputs []*tensor.Tensor
		ok     bool
	}{
		{"matmul", shaders.Matmul, []*tensor.Tensor{tensor.New(2, 3), tensor.New(3, 4)}, true},
		{"inner dimension 0", shaders.Matmul, []*tensor.Tensor{tensor.New(2, 0), tensor.New(0, 4)}, false},
		{"mismatched", shaders.Matmul, []*tensor.Tensor{tensor.New(2, 3), tensor.New(4, 4)}, false},
		{"mlp layer of width 0", shaders.MLPInfer, []*tensor.Tensor{tensor.New(2, 3), tensor.New(3, 0), tensor.New(0)}, false},
		{"unknown kernel", "conv", []*tensor.Tensor{tensor.New(2, 3)}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := verify.Doable(tc.kernel, tc.inputs)
			if (err == nil) != tc.ok || (err != nil && !errors.Is(err, verify.ErrUnverifiable)) {
				t.Fatalf("Doable = %v, want ok = %v", err, tc.ok)
			}
		})
	}
}
