package verify_test

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/neurolov/neurolov/coordinator/verify"
	"github.com/neurolov/neurolov/shaders"
	"github.com/neurolov/neurolov/tensor"
)

// shard names a kernel and the dimensions of its inputs: m×k·k×n for
// matmul, a batch and the layer widths for mlp-infer.
type shard struct {
	name   string
	kernel string
	dims   []int
}

func (s shard) inputs(t testing.TB, seed uint64, d data) []*tensor.Tensor {
	rng := seeded(seed)
	if s.kernel == shaders.Matmul {
		return matmulInputs(t, rng, d, s.dims[0], s.dims[1], s.dims[2])
	}
	return mlpInputs(t, rng, d, s.dims[0], s.dims[1:]...)
}

var honestShards = []shard{
	{"matmul-1x1x1", shaders.Matmul, []int{1, 1, 1}},
	{"matmul-primes", shaders.Matmul, []int{7, 13, 11}},
	{"matmul-k2048", shaders.Matmul, []int{3, 2048, 5}},
	{"matmul-33x64x17", shaders.Matmul, []int{33, 64, 17}},
	{"mlp-1-1-1", shaders.MLPInfer, []int{1, 1, 1}},
	{"mlp-primes", shaders.MLPInfer, []int{7, 13, 11, 5, 3}},
	{"mlp-k2048", shaders.MLPInfer, []int{3, 2048, 64, 10}},
	{"mlp-deep", shaders.MLPInfer, []int{9, 32, 32, 32, 32, 32, 10}},
}

// TestHonestResultsPass checks that no honest float32 result is ever
// rejected: the reference and every other summation order, on random,
// wide-range, cancelling and one-signed data, by Check and by Agree
// against the reference. It logs the largest ratios seen (calibration).
func TestHonestResultsPass(t *testing.T) {
	var v verify.Verifier
	worstCheck, worstAgree := map[string]float64{}, map[string]float64{}
	for _, s := range honestShards {
		for _, d := range datasets {
			t.Run(s.name+"/"+d.name, func(t *testing.T) {
				inputs := s.inputs(t, 1, d)
				ref := reference(t, s.kernel, inputs)
				results := map[string][]*tensor.Tensor{"reference": ref}
				for _, o := range orders {
					results[o.name] = o.run(t, s.kernel, inputs)
				}
				rng := seeded(2)
				for name, outs := range results {
					vd := v.Check(s.kernel, inputs, outs, rng, 32)
					if !vd.OK || vd.Method != verify.MethodCheck || vd.Err != nil {
						t.Fatalf("%s: honest result rejected: %+v", name, vd)
					}
					worstCheck[name] = max(worstCheck[name], vd.Ratio)
					cmp, err := v.Agree(s.kernel, inputs, outs, ref)
					if err != nil || !cmp.Agree || cmp.Output != -1 {
						t.Fatalf("%s: does not agree with the reference: %+v, %v", name, cmp, err)
					}
					worstAgree[name] = max(worstAgree[name], cmp.MaxRatio)
				}
			})
		}
	}
	for name := range worstCheck {
		t.Logf("%-10s largest error/threshold: Check %.2e, Agree with the reference %.2e", name, worstCheck[name], worstAgree[name])
	}
}

// TestHonestLargeShards runs the sizes the planner uses.
func TestHonestLargeShards(t *testing.T) {
	if testing.Short() {
		t.Skip("large shards take seconds; run without -short")
	}
	var v verify.Verifier
	for _, s := range []shard{
		{"matmul-512", shaders.Matmul, []int{512, 512, 512}},
		{"mlp-256", shaders.MLPInfer, []int{256, 784, 512, 256, 10}},
	} {
		t.Run(s.name, func(t *testing.T) {
			inputs := s.inputs(t, 3, datasets[0])
			ref := reference(t, s.kernel, inputs)
			other := orders[1].run(t, s.kernel, inputs) // reverse
			vd := v.Check(s.kernel, inputs, other, seeded(4), 64)
			if !vd.OK {
				t.Fatalf("honest result rejected: %+v", vd)
			}
			cmp, err := v.Agree(s.kernel, inputs, ref, other)
			if err != nil || !cmp.Agree {
				t.Fatalf("honest replicas disagree: %+v, %v", cmp, err)
			}
			t.Logf("Check ratio %.2e, Agree ratio %.2e", vd.Ratio, cmp.MaxRatio)
		})
	}
}

// elems lists some elements of every output of a result.
func elems(outs []*tensor.Tensor) [][3]int {
	var e [][3]int
	for o, t := range outs {
		m, n := t.Rows(), t.Cols()
		for _, ij := range [][2]int{{0, 0}, {m - 1, n - 1}, {m / 2, n / 3}} {
			e = append(e, [3]int{o, ij[0], ij[1]})
		}
	}
	return e
}

// TestAgreeTolerance perturbs one element of one replica by a multiple of
// its tolerance: above 1 the replicas disagree at that element, below 1
// they agree.
func TestAgreeTolerance(t *testing.T) {
	var v verify.Verifier
	for _, s := range honestShards {
		inputs := s.inputs(t, 5, datasets[0])
		ref := reference(t, s.kernel, inputs)
		for _, e := range elems(ref) {
			out, i, j := e[0], e[1], e[2]
			tol, err := verify.ElementTolerance(s.kernel, inputs, ref, out, i, j)
			if err != nil {
				t.Fatal(err)
			}
			for _, tc := range []struct {
				multiple float64
				agree    bool
			}{{1.5, false}, {-1.5, false}, {0.9, true}, {-0.9, true}} {
				t.Run(fmt.Sprintf("%s/out%d(%d,%d)/%gx", s.name, out, i, j, tc.multiple), func(t *testing.T) {
					b := cloneAll(ref)
					b[out].Data[i*b[out].Cols()+j] += float32(tc.multiple * tol)
					cmp, err := v.Agree(s.kernel, inputs, ref, b)
					if err != nil {
						t.Fatal(err)
					}
					if cmp.Agree != tc.agree {
						t.Fatalf("Agree = %v, want %v: %+v", cmp.Agree, tc.agree, cmp)
					}
					if !tc.agree && (cmp.Output != out || cmp.Row != i || cmp.Col != j || cmp.MaxRatio < 1.4) {
						t.Fatalf("disagreement at output %d (%d, %d) ratio %g, want output %d (%d, %d) ratio 1.5",
							cmp.Output, cmp.Row, cmp.Col, cmp.MaxRatio, out, i, j)
					}
				})
			}
		}
	}
}

// perturb returns a copy of outs with f applied to every element of
// output out.
func perturb(outs []*tensor.Tensor, out int, f func(x float32) float32) []*tensor.Tensor {
	c := cloneAll(outs)
	for i, x := range c[out].Data {
		c[out].Data[i] = f(x)
	}
	return c
}

func meanAbs(d []float32) float32 {
	var s float64
	for _, x := range d {
		s += math.Abs(float64(x))
	}
	return float32(s / float64(len(d)))
}

// TestFreivaldsCatchesBias adds a 1% bias of one sign to every element of
// one output, for typical data at the planner's sizes; Freivalds alone
// must catch it, while passing the honest result.
func TestFreivaldsCatchesBias(t *testing.T) {
	if testing.Short() {
		t.Skip("large shards take seconds; run without -short")
	}
	var v verify.Verifier
	for _, s := range []shard{
		{"matmul-256x784x512", shaders.Matmul, []int{256, 784, 512}},
		{"matmul-512", shaders.Matmul, []int{512, 512, 512}},
		{"mlp-256", shaders.MLPInfer, []int{256, 784, 512, 256, 10}},
	} {
		inputs := s.inputs(t, 7, datasets[0])
		ref := reference(t, s.kernel, inputs)
		if vd := v.Freivalds(s.kernel, inputs, ref, seeded(8)); !vd.OK {
			t.Fatalf("%s: honest result rejected: %+v", s.name, vd)
		}
		for out := range ref {
			mean := meanAbs(ref[out].Data)
			for _, b := range []struct {
				name string
				f    func(x float32) float32
			}{
				{"+1%|c|", func(x float32) float32 { return x + 0.01*float32(math.Abs(float64(x))) }},
				{"-1%|c|", func(x float32) float32 { return x - 0.01*float32(math.Abs(float64(x))) }},
				{"+1%mean", func(x float32) float32 { return x + 0.01*mean }},
			} {
				t.Run(fmt.Sprintf("%s/out%d/%s", s.name, out, b.name), func(t *testing.T) {
					vd := v.Freivalds(s.kernel, inputs, perturb(ref, out, b.f), seeded(9))
					if vd.OK || vd.Method != verify.MethodFreivalds || !strings.Contains(vd.Reason, fmt.Sprintf("output %d", out)) {
						t.Fatalf("bias not caught at output %d: %+v", out, vd)
					}
					t.Logf("caught at %.3g× the threshold", vd.Ratio)
				})
			}
			// Scaling by 1.01 moves elements of both signs: a pattern
			// whose signs vary, under Freivalds' floor at these sizes,
			// but above every element's bound, so any spot catches it.
			t.Run(fmt.Sprintf("%s/out%d/x1.01", s.name, out), func(t *testing.T) {
				scaled := perturb(ref, out, func(x float32) float32 { return x * 1.01 })
				fv := v.Freivalds(s.kernel, inputs, scaled, seeded(10))
				vd := v.Check(s.kernel, inputs, scaled, seeded(10), 8)
				if vd.OK {
					t.Fatalf("scaling by 1.01 passed Check: %+v", vd)
				}
				t.Logf("Freivalds alone: ok=%v ratio %.3g; Check: %s", fv.OK, fv.Ratio, vd.Method)
			})
		}
	}
}

// TestGrossCheatsFail feeds Check and Freivalds results no honest worker
// returns.
func TestGrossCheatsFail(t *testing.T) {
	mm := shard{"matmul", shaders.Matmul, []int{64, 96, 48}}
	mlp := shard{"mlp", shaders.MLPInfer, []int{32, 40, 24, 24, 24, 10}}
	type cheat struct {
		name  string
		shard shard
		cheat func(inputs, ref []*tensor.Tensor) []*tensor.Tensor
	}
	random := func(inputs, ref []*tensor.Tensor) []*tensor.Tensor {
		rng := seeded(11)
		out := cloneAll(ref)
		for _, o := range out {
			s := meanAbs(o.Data)
			for i := range o.Data {
				o.Data[i] = s * float32(rng.NormFloat64())
			}
		}
		return out
	}
	zeros := func(inputs, ref []*tensor.Tensor) []*tensor.Tensor {
		return perturb(ref, len(ref)-1, func(float32) float32 { return 0 })
	}
	otherShard := func(s shard) func(inputs, ref []*tensor.Tensor) []*tensor.Tensor {
		return func(inputs, ref []*tensor.Tensor) []*tensor.Tensor {
			other := s.inputs(t, 99, datasets[0]) // a replayed result of another shard
			return reference(t, s.kernel, other)
		}
	}
	// A worker that skips hidden layer 2 (24→24), returns Z_1 in its
	// place and carries on honestly from there: every later layer is
	// consistent with the Z_2 it returned.
	skipLayer := func(inputs, ref []*tensor.Tensor) []*tensor.Tensor {
		in := append([]*tensor.Tensor{inputs[0]}, inputs[1:3]...)
		in = append(in, inputs[5:]...)
		short := reference(t, shaders.MLPInfer, in)
		return append([]*tensor.Tensor{short[0], short[0]}, short[1:]...)
	}
	// Stale weights: layer 3 computed with another W.
	staleWeights := func(inputs, ref []*tensor.Tensor) []*tensor.Tensor {
		in := cloneAll(inputs)
		in[5] = mustFromData(t, scaled(normal(seeded(12), 24, 24), 0.2), 24, 24)
		return reference(t, shaders.MLPInfer, in)
	}
	for _, c := range []cheat{
		{"random", mm, random}, {"random", mlp, random},
		{"zeros", mm, zeros}, {"zeros", mlp, zeros},
		{"other-shard", mm, otherShard(mm)}, {"other-shard", mlp, otherShard(mlp)},
		{"skipped-layer", mlp, skipLayer},
		{"stale-weights", mlp, staleWeights},
	} {
		t.Run(c.shard.name+"/"+c.name, func(t *testing.T) {
			var v verify.Verifier
			inputs := c.shard.inputs(t, 13, datasets[0])
			ref := reference(t, c.shard.kernel, inputs)
			bad := c.cheat(inputs, ref)
			if vd := v.Freivalds(c.shard.kernel, inputs, bad, seeded(14)); vd.OK || vd.Method != verify.MethodFreivalds {
				t.Fatalf("Freivalds passed a cheat: %+v", vd)
			}
			if vd := v.Check(c.shard.kernel, inputs, bad, seeded(14), 4); vd.OK || vd.Err != nil {
				t.Fatalf("Check passed a cheat: %+v", vd)
			}
		})
	}
}

// TestShapesAndFiniteness rejects malformed results, and reports
// unverifiable shards as such.
func TestShapesAndFiniteness(t *testing.T) {
	mm := shard{"matmul", shaders.Matmul, []int{5, 7, 3}}
	mlp := shard{"mlp", shaders.MLPInfer, []int{4, 6, 5, 3}}
	set := func(out, idx int, x float32) func(in, ref []*tensor.Tensor) ([]*tensor.Tensor, []*tensor.Tensor) {
		return func(in, ref []*tensor.Tensor) ([]*tensor.Tensor, []*tensor.Tensor) {
			r := cloneAll(ref)
			r[out].Data[idx] = x
			return in, r
		}
	}
	setInput := func(i int, x float32) func(in, ref []*tensor.Tensor) ([]*tensor.Tensor, []*tensor.Tensor) {
		return func(in, ref []*tensor.Tensor) ([]*tensor.Tensor, []*tensor.Tensor) {
			in = cloneAll(in)
			in[i].Data[0] = x
			return in, ref
		}
	}
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	for _, tc := range []struct {
		name   string
		shard  shard
		mutate func(in, ref []*tensor.Tensor) ([]*tensor.Tensor, []*tensor.Tensor)
		method string
		err    error // wanted in Verdict.Err
	}{
		{"no-outputs", mm, func(in, ref []*tensor.Tensor) ([]*tensor.Tensor, []*tensor.Tensor) { return in, nil }, verify.MethodShapes, nil},
		{"extra-output", mlp, func(in, ref []*tensor.Tensor) ([]*tensor.Tensor, []*tensor.Tensor) {
			return in, append(cloneAll(ref), ref[0])
		}, verify.MethodShapes, nil},
		{"nil-output", mlp, func(in, ref []*tensor.Tensor) ([]*tensor.Tensor, []*tensor.Tensor) {
			return in, []*tensor.Tensor{ref[0], nil}
		}, verify.MethodShapes, nil},
		{"transposed", mm, func(in, ref []*tensor.Tensor) ([]*tensor.Tensor, []*tensor.Tensor) {
			return in, []*tensor.Tensor{mustFromData(t, ref[0].Data, 3, 5)}
		}, verify.MethodShapes, nil},
		{"flat", mlp, func(in, ref []*tensor.Tensor) ([]*tensor.Tensor, []*tensor.Tensor) {
			return in, []*tensor.Tensor{ref[0], mustFromData(t, ref[1].Data, 12)}
		}, verify.MethodShapes, nil},
		{"short-data", mm, func(in, ref []*tensor.Tensor) ([]*tensor.Tensor, []*tensor.Tensor) {
			return in, []*tensor.Tensor{{Shape: []int{5, 3}, Data: ref[0].Data[:14]}}
		}, verify.MethodShapes, nil},
		{"nan", mm, set(0, 7, nan), verify.MethodFinite, nil},
		{"+inf", mm, set(0, 0, inf), verify.MethodFinite, nil},
		{"-inf", mm, set(0, 14, -inf), verify.MethodFinite, nil},
		{"nan-hidden", mlp, set(0, 3, nan), verify.MethodFinite, nil},
		{"-inf-hidden", mlp, set(0, 3, -inf), verify.MethodFinite, nil},
		{"inf-logits", mlp, set(1, 11, inf), verify.MethodFinite, nil},
		{"unknown-kernel", shard{"x", "conv", nil}, nil, verify.MethodInputs, shaders.ErrUnknownKernel},
		{"nan-input", mm, setInput(1, nan), verify.MethodInputs, verify.ErrUnverifiable},
		{"inf-weight", mlp, setInput(3, inf), verify.MethodInputs, verify.ErrUnverifiable},
		{"bad-inputs", mm, func(in, ref []*tensor.Tensor) ([]*tensor.Tensor, []*tensor.Tensor) {
			return in[:1], ref
		}, verify.MethodInputs, shaders.ErrInputs},
	} {
		t.Run(tc.shard.name+"/"+tc.name, func(t *testing.T) {
			var v verify.Verifier
			var in, ref []*tensor.Tensor
			if tc.shard.dims != nil {
				in = tc.shard.inputs(t, 15, datasets[0])
				ref = reference(t, tc.shard.kernel, in)
			}
			if tc.mutate != nil {
				in, ref = tc.mutate(in, ref)
			}
			for _, vd := range []verify.Verdict{
				v.Check(tc.shard.kernel, in, ref, seeded(16), 4),
				v.Freivalds(tc.shard.kernel, in, ref, seeded(16)),
			} {
				if vd.OK || vd.Method != tc.method || vd.Reason == "" {
					t.Fatalf("got %+v, want a failure by %s", vd, tc.method)
				}
				if (tc.err == nil) != (vd.Err == nil) || (tc.err != nil && !errors.Is(vd.Err, tc.err)) {
					t.Fatalf("Err = %v, want %v", vd.Err, tc.err)
				}
			}
			err := verify.CheckShapes(tc.shard.kernel, in, ref)
			if shapeErr := tc.method == verify.MethodShapes; shapeErr != errors.Is(err, verify.ErrResult) {
				t.Fatalf("CheckShapes = %v", err)
			}
		})
	}
}

// TestOverflowIsUnverifiable: when a correct float32 result overflows,
// the Inf it holds is the job's fault, not the worker's.
func TestOverflowIsUnverifiable(t *testing.T) {
	a := mustFromData(t, []float32{1e20, 1e20, 1, 1}, 2, 2)
	b := mustFromData(t, []float32{1e20, 1, 1e20, 1}, 2, 2)
	in := []*tensor.Tensor{a, b}
	ref := reference(t, shaders.Matmul, in)
	if !math.IsInf(float64(ref[0].Data[0]), 1) {
		t.Fatalf("reference %v did not overflow", ref[0].Data)
	}
	var v verify.Verifier
	vd := v.Check(shaders.Matmul, in, ref, seeded(17), 4)
	if vd.OK || !errors.Is(vd.Err, verify.ErrUnverifiable) || !strings.Contains(vd.Reason, "overflow") {
		t.Fatalf("got %+v, want an unverifiable overflow", vd)
	}
}

// TestCheckShapesMatchesShaders keeps CheckShapes and
// shaders.OutputShapes in step.
func TestCheckShapesMatchesShaders(t *testing.T) {
	m := func(shape ...int) *tensor.Tensor { return tensor.New(shape...) }
	for _, tc := range []struct {
		kernel string
		inputs []*tensor.Tensor
	}{
		{shaders.Matmul, []*tensor.Tensor{m(2, 3), m(3, 4)}},
		{shaders.Matmul, []*tensor.Tensor{m(2, 3), m(4, 3)}},
		{shaders.Matmul, []*tensor.Tensor{m(3), m(3, 4)}},
		{shaders.Matmul, []*tensor.Tensor{m(2, 3)}},
		{shaders.Matmul, []*tensor.Tensor{m(0, 3), m(3, 0)}},
		{shaders.MLPInfer, []*tensor.Tensor{m(2, 3), m(3, 4), m(4)}},
		{shaders.MLPInfer, []*tensor.Tensor{m(2, 3), m(3, 4), m(4), m(4, 2), m(2)}},
		{shaders.MLPInfer, []*tensor.Tensor{m(2, 3), m(3, 4), m(5)}},
		{shaders.MLPInfer, []*tensor.Tensor{m(2, 3), m(3, 4), m(1, 4)}},
		{shaders.MLPInfer, []*tensor.Tensor{m(2, 3), m(3, 4)}},
		{shaders.MLPInfer, []*tensor.Tensor{m(2, 3), m(3, 4), m(4), m(3, 2), m(2)}},
		{shaders.MLPInfer, []*tensor.Tensor{m(6), m(6, 4), m(4)}},
		{"conv", []*tensor.Tensor{m(2, 3), m(3, 4)}},
	} {
		shapes, want := shaders.OutputShapes(tc.kernel, tc.inputs)
		var outs []*tensor.Tensor
		for _, s := range shapes {
			outs = append(outs, tensor.New(s...))
		}
		got := verify.CheckShapes(tc.kernel, tc.inputs, outs)
		if (want == nil) != (got == nil) || (want != nil && !errors.Is(got, verify.ErrUnverifiable)) {
			t.Errorf("%s %v: CheckShapes = %v, shaders.OutputShapes = %v", tc.kernel, tc.inputs, got, want)
		}
	}
}

// TestAgreeRejectsMalformed: results of the wrong form, or holding NaN,
// never agree; an unverifiable shard is an error.
func TestAgreeRejectsMalformed(t *testing.T) {
	s := shard{"mlp", shaders.MLPInfer, []int{4, 6, 5, 3}}
	inputs := s.inputs(t, 51, datasets[0])
	ref := reference(t, s.kernel, inputs)
	nanRef := cloneAll(ref)
	nanRef[0].Data[2] = float32(math.NaN())
	badInputs := cloneAll(inputs)
	badInputs[1].Data[0] = float32(math.Inf(1))
	var v verify.Verifier
	for _, tc := range []struct {
		name   string
		inputs []*tensor.Tensor
		a, b   []*tensor.Tensor
		reason string
		err    error
	}{
		{"short-a", inputs, ref[:1], ref, "result a", nil},
		{"wrong-shape-b", inputs, ref, []*tensor.Tensor{ref[0], mustFromData(t, ref[1].Data, 3, 4)}, "result b", nil},
		{"nan-both", inputs, nanRef, nanRef, "output 0 element (0, 2)", nil},
		{"inf-input", badInputs, ref, ref, "", verify.ErrUnverifiable},
		{"bad-kernel", inputs, ref, ref, "", shaders.ErrUnknownKernel},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kernel := s.kernel
			if tc.name == "bad-kernel" {
				kernel = "conv"
			}
			cmp, err := v.Agree(kernel, tc.inputs, tc.a, tc.b)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil || cmp.Agree || !math.IsInf(cmp.MaxRatio, 1) || !strings.Contains(cmp.Reason, tc.reason) {
				t.Fatalf("got %+v, %v; want a disagreement about %q", cmp, err, tc.reason)
			}
		})
	}
}
