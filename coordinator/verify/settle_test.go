package verify_test

import (
	"errors"
	"math"
	"slices"
	"strings"
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

// TestConfirmCatchesFewWrongElements: a canary's known answer must not be
// a result with a few wrong elements. Four elements of a bench-verify
// shard (a 512×512 tile with K = 256; the first layer of the mlp-infer
// batch of 256), in random rows, of random signs, each wrong by 4 times
// its replica tolerance (8 times its bound): Confirm with ConfirmRows
// must refuse such a result in at least 95% of trials (one random row
// refused it in about 4/512 of them), and still confirm the honest one.
func TestConfirmCatchesFewWrongElements(t *testing.T) {
	const (
		trials = 100
		wrong  = 4
		factor = 4
		want   = 0.95
	)
	for _, s := range []shard{benchMatmul512K256, benchMLP256} {
		t.Run(s.name, func(t *testing.T) {
			inputs := s.inputs(t, 81, datasets[0])
			ref := reference(t, s.kernel, inputs)
			m, n := ref[0].Rows(), ref[0].Cols()
			var v verify.Verifier
			rng, pick := seeded(82), seeded(83)
			caught := 0
			for range trials {
				var at [][3]int
				for range wrong {
					at = append(at, [3]int{0, pick.IntN(m), pick.IntN(n)})
				}
				f := float64(factor)
				if pick.IntN(2) == 0 {
					f = -f
				}
				bad := perturbAt(t, s.kernel, inputs, ref, f, at...)
				if vd := v.Confirm(s.kernel, inputs, bad, rng, verify.ConfirmRows); !vd.OK {
					if vd.Method != verify.MethodSettle || !strings.Contains(vd.Reason, "confirmation: output 0 element") {
						t.Fatalf("refused for another reason: %+v", vd)
					}
					caught++
				}
			}
			rate := float64(caught) / trials
			t.Logf("%d elements wrong by %d× their tolerance: refused in %d of %d trials with %d rows", wrong, factor, caught, trials, verify.ConfirmRows)
			if rate < want {
				t.Errorf("Confirm refused %d elements wrong by %d× their tolerance in %.2f of the trials, want at least %.2f", wrong, factor, rate, want)
			}
			for seed := range uint64(10) {
				if vd := v.Confirm(s.kernel, inputs, ref, seeded(90+seed), verify.ConfirmRows); !vd.OK {
					t.Fatalf("honest result refused: %+v", vd)
				}
			}
		})
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
