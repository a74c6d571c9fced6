package verify_test

import (
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/neurolov/neurolov/coordinator/verify"
	"github.com/neurolov/neurolov/shaders"
	"github.com/neurolov/neurolov/tensor"
)

// sameVerdicts reports whether two verdicts are identical, Ratio to the
// bit and Err by its message.
func sameVerdicts(a, b verify.Verdict) bool {
	errText := func(err error) string {
		if err == nil {
			return ""
		}
		return err.Error()
	}
	return a.OK == b.OK && a.Reason == b.Reason && a.Method == b.Method &&
		math.Float64bits(a.Ratio) == math.Float64bits(b.Ratio) && errText(a.Err) == errText(b.Err)
}

// sharedMatmul returns count matmul tiles A_i (m×k, each its own) times
// one B (k×n), and their reference results.
func sharedMatmul(t testing.TB, seed uint64, count, m, k, n int) []verify.Item {
	t.Helper()
	b := matmulInputs(t, seeded(seed), datasets[0], 1, k, n)[1]
	items := make([]verify.Item, count)
	for i := range items {
		a := matmulInputs(t, seeded(seed+1+uint64(i)), datasets[0], m, k, 1)[0]
		in := []*tensor.Tensor{a, b}
		items[i] = verify.Item{Kernel: shaders.Matmul, Inputs: in, Outputs: reference(t, shaders.Matmul, in)}
	}
	return items
}

// sharedMLP returns count mlp-infer shards of batch rows through widths,
// each with its own X and all with the same weight and bias tensors, and
// their reference results.
func sharedMLP(t testing.TB, seed uint64, count, batch int, widths ...int) []verify.Item {
	t.Helper()
	weights := mlpInputs(t, seeded(seed), datasets[0], 1, widths...)[1:]
	items := make([]verify.Item, count)
	for i := range items {
		x := mlpInputs(t, seeded(seed+1+uint64(i)), datasets[0], batch, widths[0], 1)[0]
		in := append([]*tensor.Tensor{x}, weights...)
		items[i] = verify.Item{Kernel: shaders.MLPInfer, Inputs: in, Outputs: reference(t, shaders.MLPInfer, in)}
	}
	return items
}

// withOutputs returns it with outputs outs.
func withOutputs(it verify.Item, outs []*tensor.Tensor) verify.Item {
	it.Outputs = outs
	return it
}

// setElem returns a copy of outs with element idx of output out set to x.
func setElem(outs []*tensor.Tensor, out, idx int, x float32) []*tensor.Tensor {
	c := cloneAll(outs)
	c[out].Data[idx] = x
	return c
}

// withInput returns it with input i replaced by a copy whose element 0
// is x (the outputs are recomputed from it).
func withInput(t *testing.T, it verify.Item, i int, x float32) verify.Item {
	t.Helper()
	in := append([]*tensor.Tensor(nil), it.Inputs...)
	in[i] = in[i].Clone()
	in[i].Data[0] = x
	return verify.Item{Kernel: it.Kernel, Inputs: in, Outputs: reference(t, it.Kernel, in)}
}

// TestCheckAllOne: a batch of one is Check with the same rng — the same
// Verdict, and the rng left in the same state — for results that pass
// and that fail in every way; and an item batched with one whose shapes
// fail (which draws nothing) gets, by the batch's own path, exactly the
// Verdict Check gives it.
func TestCheckAllOne(t *testing.T) {
	mm := sharedMatmul(t, 60, 2, 24, 40, 8)
	mlp := sharedMLP(t, 61, 2, 16, 30, 20, 20, 6)
	bad := verify.Item{Kernel: shaders.Matmul, Inputs: mm[0].Inputs, Outputs: nil}
	nan := float32(math.NaN())
	cases := map[string]verify.Item{
		"matmul":        mm[0],
		"mlp":           mlp[0],
		"mlp-bias":      withOutputs(mlp[1], perturb(mlp[1].Outputs, 1, func(x float32) float32 { return x + 0.01*float32(math.Abs(float64(x))) })),
		"mlp-nan":       withOutputs(mlp[1], perturb(mlp[1].Outputs, 0, func(x float32) float32 { return nan })),
		"mlp-nan-input": withInput(t, mlp[0], 0, nan),
		"mlp-inf-w":     withInput(t, mlp[0], 1, float32(math.Inf(1))),
		"shapes":        bad,
		"kernel":        {Kernel: "conv", Inputs: mm[0].Inputs, Outputs: mm[0].Outputs},
	}
	for name, it := range cases {
		t.Run(name, func(t *testing.T) {
			var v, w verify.Verifier
			rw, rv := seeded(62), seeded(62)
			want := w.Check(it.Kernel, it.Inputs, it.Outputs, rw, 8)
			got := v.CheckAll([]verify.Item{it}, rv, 8)
			if len(got) != 1 || !sameVerdicts(got[0], want) {
				t.Fatalf("CheckAll = %+v, Check = %+v", got, want)
			}
			if a, b := rv.Uint64(), rw.Uint64(); a != b {
				t.Fatalf("rng left in another state: next draw %#x, after Check %#x", a, b)
			}
			for i, batch := range [][]verify.Item{{it, bad}, {bad, it}} {
				got := v.CheckAll(batch, seeded(62), 8)
				if len(got) != 2 || !sameVerdicts(got[i], want) || got[1-i].OK || got[1-i].Method != verify.MethodShapes {
					t.Fatalf("in a batch of two: %+v, want item %d = %+v", got, i, want)
				}
			}
		})
	}
}

// TestCheckAllSameVectors: vectors drawn for the whole batch in item and
// layer order are those sequential Freivalds checks draw from one rng
// when every item reaches its last product, so with no spot checks the
// batch must give sequential Checks' verdicts bit for bit, Ratio
// included — while its products B·r of a shared B (with several blocks
// of rows, and a number of rows no block size divides) ran in one pass,
// and those of another B of the same shape in another.
func TestCheckAllSameVectors(t *testing.T) {
	mm := sharedMatmul(t, 63, 4, 9, 701, 48) // blocks of 340 rows of B
	mlp := sharedMLP(t, 64, 3, 7, 5, 603, 37, 10)
	other := sharedMatmul(t, 78, 2, 9, 701, 48) // another B of the same shape
	items := append(append(mm, mlp...), other...)
	// Failures at the last product, which still drew every vector.
	items[1] = withOutputs(items[1], perturb(items[1].Outputs, 0, func(x float32) float32 { return x * 1.5 }))
	last := len(mlp[2].Outputs) - 1
	items[len(mm)+2] = withOutputs(mlp[2], perturb(mlp[2].Outputs, last, func(x float32) float32 { return x + 1 }))
	items = append(items, items[0]) // the same result again
	var v, w verify.Verifier
	rng := seeded(65)
	want := make([]verify.Verdict, len(items))
	for i, it := range items {
		want[i] = w.Check(it.Kernel, it.Inputs, it.Outputs, rng, 0)
	}
	got := v.CheckAll(items, seeded(65), 0)
	fails := 0
	for i := range items {
		if !sameVerdicts(got[i], want[i]) {
			t.Errorf("item %d: CheckAll %+v, sequential Checks %+v", i, got[i], want[i])
		}
		if !got[i].OK {
			fails++
		}
	}
	if fails != 2 {
		t.Fatalf("%d items failed, want 2: %+v", fails, got)
	}
}

// verdictClass is what a Verdict says about a result, without its ratio.
type verdictClass struct {
	ok           bool
	method       string
	unverifiable bool
}

func classOf(vd verify.Verdict) verdictClass {
	return verdictClass{vd.OK, vd.Method, errors.Is(vd.Err, verify.ErrUnverifiable)}
}

// TestCheckAllMixed checks a batch of matmul tiles that share B and
// mlp-infer shards that share weights, honest and cheating, with
// malformed and unverifiable ones among them: every verdict, in item
// order, is what Check gives that item (with other vectors: the classes
// agree, the ratios need not), and what the item deserves.
func TestCheckAllMixed(t *testing.T) {
	mm := sharedMatmul(t, 66, 5, 32, 96, 6)
	mlp := sharedMLP(t, 67, 5, 16, 40, 24, 24, 10)
	nan := float32(math.NaN())
	// One element of tile 1 off by 10× its tolerance, which for rows of
	// 6 columns is above Freivalds' floor: caught whatever the vector.
	tol, err := verify.ElementTolerance(shaders.Matmul, mm[1].Inputs, mm[1].Outputs, 0, 5, 3)
	if err != nil {
		t.Fatal(err)
	}
	floor, err := verify.FreivaldsFloor(shaders.Matmul, mm[1].Inputs, mm[1].Outputs, 0, 5)
	if err != nil {
		t.Fatal(err)
	}
	if 10*tol <= floor {
		t.Fatalf("10× the tolerance %g is below the floor %g: the test needs narrower tiles", 10*tol, floor)
	}
	off := cloneAll(mm[1].Outputs)
	off[0].Data[5*6+3] += float32(10 * tol)
	freivalds := verdictClass{false, verify.MethodFreivalds, false}
	type tc struct {
		name string
		item verify.Item
		want verdictClass
	}
	pass := verdictClass{true, verify.MethodCheck, false}
	cases := []tc{
		{"matmul-honest", mm[0], pass},
		{"matmul-element", withOutputs(mm[1], off), freivalds},
		{"mlp-honest", mlp[0], pass},
		{"matmul-nan", withOutputs(mm[2], setElem(mm[2].Outputs, 0, 7, nan)), verdictClass{false, verify.MethodFinite, false}},
		{"mlp-bias", withOutputs(mlp[1], perturb(mlp[1].Outputs, 1, func(x float32) float32 { return x + 0.01*float32(math.Abs(float64(x))) })), freivalds},
		{"mlp-shape", withOutputs(mlp[2], []*tensor.Tensor{mlp[2].Outputs[0], mustFromData(t, mlp[2].Outputs[1].Data, 24, 16), mlp[2].Outputs[2]}), verdictClass{false, verify.MethodShapes, false}},
		{"matmul-honest-2", mm[3], pass},
		{"mlp-nan-input", withInput(t, mlp[3], 0, nan), verdictClass{false, verify.MethodInputs, true}},
		{"mlp-nan-hidden", withOutputs(mlp[4], perturb(mlp[4].Outputs, 1, func(x float32) float32 { return nan })), verdictClass{false, verify.MethodFinite, false}},
		{"matmul-nan-input", withInput(t, mm[4], 0, nan), verdictClass{false, verify.MethodInputs, true}},
		{"mlp-honest-again", mlp[0], pass},
		{"matmul-wrong-shape", withOutputs(mm[4], []*tensor.Tensor{mustFromData(t, mm[4].Outputs[0].Data, 6, 32)}), verdictClass{false, verify.MethodShapes, false}},
		{"mlp-honest-4", mlp[4], pass},
	}
	items := make([]verify.Item, len(cases))
	for i, c := range cases {
		items[i] = c.item
	}
	var v, w verify.Verifier
	got := v.CheckAll(items, seeded(68), 16)
	if len(got) != len(items) {
		t.Fatalf("%d verdicts for %d items", len(got), len(items))
	}
	for i, c := range cases {
		want := w.Check(c.item.Kernel, c.item.Inputs, c.item.Outputs, seeded(69+uint64(i)), 16)
		if classOf(want) != c.want {
			t.Fatalf("%s: Check says %+v, want %+v", c.name, want, c.want)
		}
		if classOf(got[i]) != c.want {
			t.Errorf("item %d %s: CheckAll says %+v, want %+v (Check: %+v)", i, c.name, got[i], c.want, want)
		}
	}
	// Verdicts follow the items: reversed items, reversed verdicts.
	rev := make([]verify.Item, len(items))
	for i := range items {
		rev[len(items)-1-i] = items[i]
	}
	back := v.CheckAll(rev, seeded(70), 16)
	for i := range items {
		if classOf(back[len(items)-1-i]) != cases[i].want {
			t.Errorf("reversed batch: verdict %d is %+v, want item %s's %+v", len(items)-1-i, back[len(items)-1-i], cases[i].name, cases[i].want)
		}
	}
}

// TestCheckAllFreshVectors: the same result twice in a batch (the same
// output tensors) is checked with two independent sets of vectors, the
// second set being the draws that follow the first: its ratio differs
// and equals what a second sequential Check with one rng gives.
func TestCheckAllFreshVectors(t *testing.T) {
	for _, it := range []verify.Item{sharedMatmul(t, 71, 1, 12, 30, 9)[0], sharedMLP(t, 72, 1, 8, 20, 16, 5)[0]} {
		t.Run(it.Kernel, func(t *testing.T) {
			var v, w verify.Verifier
			got := v.CheckAll([]verify.Item{it, it}, seeded(73), 0)
			rng := seeded(73)
			first, second := w.Check(it.Kernel, it.Inputs, it.Outputs, rng, 0), w.Check(it.Kernel, it.Inputs, it.Outputs, rng, 0)
			if !got[0].OK || !got[1].OK {
				t.Fatalf("honest result rejected: %+v", got)
			}
			if got[0].Ratio == got[1].Ratio {
				t.Fatalf("the same ratio %g twice: a vector reused", got[0].Ratio)
			}
			if !sameVerdicts(got[0], first) || !sameVerdicts(got[1], second) {
				t.Fatalf("CheckAll %+v, sequential Checks %+v, %+v", got, first, second)
			}
		})
	}
}

// TestCheckAllEmpty: no items, no verdicts and no draws.
func TestCheckAllEmpty(t *testing.T) {
	var v verify.Verifier
	rng := seeded(74)
	for _, items := range [][]verify.Item{nil, {}} {
		if got := v.CheckAll(items, rng, 8); got != nil {
			t.Fatalf("CheckAll(%v) = %v, want nil", items, got)
		}
	}
	if a, b := rng.Uint64(), seeded(74).Uint64(); a != b {
		t.Fatalf("CheckAll of nothing drew from rng")
	}
}

// TestCheckAllAllocations: in steady state a batch allocates only the
// verdicts it returns.
func TestCheckAllAllocations(t *testing.T) {
	items := append(sharedMLP(t, 75, 3, 16, 32, 24, 10), sharedMatmul(t, 76, 3, 8, 16, 12)...)
	var v verify.Verifier
	rng := seeded(77)
	f := func() {
		for i, vd := range v.CheckAll(items, rng, 8) {
			if !vd.OK {
				panic(fmt.Sprintf("item %d: %+v", i, vd))
			}
		}
	}
	f()
	if n := testing.AllocsPerRun(20, f); n != 1 {
		t.Errorf("CheckAll allocates %v times per batch, want 1", n)
	}
}
