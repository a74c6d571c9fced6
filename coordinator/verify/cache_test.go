package verify

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/neurolov/neurolov/shaders"
	"github.com/neurolov/neurolov/tensor"
)

// The input cache: a Verifier that has seen a shard's inputs must judge
// exactly as one that has not, and never confuse one tensor with another.

func cacheTensor(t *testing.T, rng *rand.Rand, shape ...int) *tensor.Tensor {
	t.Helper()
	x := tensor.New(shape...)
	for i := range x.Data {
		x.Data[i] = float32(rng.NormFloat64())
	}
	return x
}

func cacheReference(t *testing.T, kernel string, inputs []*tensor.Tensor) []*tensor.Tensor {
	t.Helper()
	outs, err := shaders.Reference(kernel, inputs)
	if err != nil {
		t.Fatal(err)
	}
	return outs
}

func cloneTensors(ts []*tensor.Tensor) []*tensor.Tensor {
	c := make([]*tensor.Tensor, len(ts))
	for i, x := range ts {
		c[i] = x.Clone()
	}
	return c
}

// cacheShards are a matmul tile and an mlp-infer shard.
func cacheShards(t *testing.T) map[string][]*tensor.Tensor {
	rng := rand.New(rand.NewPCG(1, 1))
	return map[string][]*tensor.Tensor{
		shaders.Matmul: {cacheTensor(t, rng, 37, 53), cacheTensor(t, rng, 53, 29)},
		shaders.MLPInfer: {cacheTensor(t, rng, 16, 40), cacheTensor(t, rng, 40, 24), cacheTensor(t, rng, 24),
			cacheTensor(t, rng, 24, 10), cacheTensor(t, rng, 10)},
	}
}

// sameVerdict fails unless a cached Verifier's verdict equals a fresh
// one's, ratio included (the same random vectors, the same bounds).
func sameVerdict(t *testing.T, cached *Verifier, kernel string, in, outs []*tensor.Tensor, seed uint64) Verdict {
	t.Helper()
	var fresh Verifier
	want := fresh.Check(kernel, in, outs, rand.New(rand.NewPCG(seed, 0)), 8)
	got := cached.Check(kernel, in, outs, rand.New(rand.NewPCG(seed, 0)), 8)
	if got.OK != want.OK || got.Method != want.Method || got.Ratio != want.Ratio || got.Reason != want.Reason {
		t.Fatalf("cached Verifier: %+v; fresh one: %+v", got, want)
	}
	cmpGot, errGot := cached.Agree(kernel, in, outs, outs)
	cmpWant, errWant := fresh.Agree(kernel, in, outs, outs)
	if cmpGot != cmpWant || (errGot == nil) != (errWant == nil) {
		t.Fatalf("cached Agree: %+v, %v; fresh: %+v, %v", cmpGot, errGot, cmpWant, errWant)
	}
	return got
}

func TestCacheSameVerdicts(t *testing.T) {
	for kernel, in := range cacheShards(t) {
		t.Run(kernel, func(t *testing.T) {
			ref := cacheReference(t, kernel, in)
			var v Verifier
			for call := range 3 { // the first fills the cache, the others use it
				if vd := sameVerdict(t, &v, kernel, in, ref, uint64(call)); !vd.OK {
					t.Fatalf("call %d: honest result rejected: %+v", call, vd)
				}
			}
			// A perturbed result on the cached shard: one element of the
			// last output, past Freivalds' floor.
			last := len(ref) - 1
			floor, err := FreivaldsFloor(kernel, in, ref, last, 1)
			if err != nil {
				t.Fatal(err)
			}
			bad := cloneTensors(ref)
			bad[last].Data[bad[last].Cols()+2] += float32(1.01 * floor)
			for call := range 3 {
				vd := sameVerdict(t, &v, kernel, in, bad, uint64(10+call))
				if vd.OK || (vd.Method != MethodFreivalds && vd.Method != MethodRecompute) {
					t.Fatalf("call %d: perturbed result passed on a cached shard: %+v", call, vd)
				}
			}
		})
	}
}

// TestCacheDistinctTensors: tensors that share a shape, sampled elements
// (the fingerprint) or even their data are still told apart.
func TestCacheDistinctTensors(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	a := cacheTensor(t, rng, 9, 31)
	b1 := cacheTensor(t, rng, 31, 17)
	// b2 differs from b1 in one element that no fingerprint samples.
	b2 := b1.Clone()
	const changed = 5
	for s := range fingerprintSamples {
		if s*(len(b1.Data)-1)/(fingerprintSamples-1) == changed {
			t.Fatal("element 5 is sampled: pick another")
		}
	}
	b2.Data[changed] += 1000
	if fingerprint(b1.Data) != fingerprint(b2.Data) {
		t.Fatal("the fingerprints differ: the test does not exercise identity")
	}
	in1, in2 := []*tensor.Tensor{a, b1}, []*tensor.Tensor{a, b2}
	ref1, ref2 := cacheReference(t, shaders.Matmul, in1), cacheReference(t, shaders.Matmul, in2)
	var v Verifier
	for round := range 2 {
		for _, tc := range []struct {
			in, outs []*tensor.Tensor
			ok       bool
		}{{in1, ref1, true}, {in2, ref2, true}, {in1, ref2, false}, {in2, ref1, false}} {
			if vd := sameVerdict(t, &v, shaders.Matmul, tc.in, tc.outs, uint64(round)); vd.OK != tc.ok {
				t.Fatalf("round %d: got %+v, want OK = %v", round, vd, tc.ok)
			}
		}
	}
	// One data slice behind two tensors of different shapes.
	flat := cacheTensor(t, rng, 12, 20)
	tall := &tensor.Tensor{Shape: []int{20, 12}, Data: flat.Data}
	s1, _, _ := v.inputs.rowAbs(flat, 12, 20)
	s2, _, _ := v.inputs.rowAbs(tall, 20, 12)
	if len(s1) != 12 || len(s2) != 20 {
		t.Fatalf("row sums of lengths %d and %d, want 12 and 20", len(s1), len(s2))
	}
	for i, s := range s2 {
		if want := sumAbs(flat.Data[i*12 : (i+1)*12]); s != want {
			t.Fatalf("row %d of the 20×12 view: %v, want %v", i, s, want)
		}
	}
}

// TestCacheNoticesChanges: data moved, resized, reshaped or changed at a
// sampled element is recomputed; ForgetInputs covers any other change.
func TestCacheNoticesChanges(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	check := func(t *testing.T, v *Verifier, x *tensor.Tensor, rows, cols int) {
		t.Helper()
		s, sum, _ := v.inputs.rowAbs(x, rows, cols)
		var total float64
		for i := range rows {
			want := sumAbs(x.Data[i*cols : (i+1)*cols])
			if s[i] != want {
				t.Fatalf("row %d: cached %v, want %v", i, s[i], want)
			}
			total += want
		}
		if sum != total {
			t.Fatalf("sum %v, want %v", sum, total)
		}
	}
	for _, tc := range []struct {
		name   string
		change func(v *Verifier, x *tensor.Tensor) (rows, cols int)
	}{
		{"sampled-element", func(_ *Verifier, x *tensor.Tensor) (int, int) { x.Data[0] += 7; return 8, 16 }},
		{"last-element", func(_ *Verifier, x *tensor.Tensor) (int, int) { x.Data[len(x.Data)-1] *= -3; return 8, 16 }},
		{"new-data", func(_ *Verifier, x *tensor.Tensor) (int, int) {
			x.Data = append([]float32(nil), x.Data...)
			x.Data[3] = 100
			return 8, 16
		}},
		{"shorter-data", func(_ *Verifier, x *tensor.Tensor) (int, int) {
			x.Data, x.Shape = x.Data[:7*16], []int{7, 16}
			return 7, 16
		}},
		{"reshaped", func(_ *Verifier, x *tensor.Tensor) (int, int) { x.Shape = []int{16, 8}; return 16, 8 }},
		{"forgotten", func(v *Verifier, x *tensor.Tensor) (int, int) {
			x.Data[3] += 50 // not sampled: only ForgetInputs tells the cache
			v.ForgetInputs()
			return 8, 16
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var v Verifier
			x := cacheTensor(t, rng, 8, 16)
			check(t, &v, x, 8, 16)
			rows, cols := tc.change(&v, x)
			check(t, &v, x, rows, cols)
		})
	}
}

// TestCacheBounded cycles through more B tensors than the cache holds,
// twice, so that every lookup after the first round finds its entry
// evicted: verdicts stay those of a fresh Verifier and the cache stays
// within cacheSize.
func TestCacheBounded(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	a := cacheTensor(t, rng, 6, 12)
	shards := make([][]*tensor.Tensor, cacheSize+3)
	refs := make([][]*tensor.Tensor, len(shards))
	for i := range shards {
		shards[i] = []*tensor.Tensor{a, cacheTensor(t, rng, 12, 5)}
		refs[i] = cacheReference(t, shaders.Matmul, shards[i])
	}
	var v Verifier
	for round := range 2 {
		for i := range shards {
			if vd := sameVerdict(t, &v, shaders.Matmul, shards[i], refs[i], uint64(i)); !vd.OK {
				t.Fatalf("round %d shard %d: honest result rejected: %+v", round, i, vd)
			}
			// The wrong shard's result: caught, whatever was evicted.
			if vd := sameVerdict(t, &v, shaders.Matmul, shards[i], refs[(i+1)%len(refs)], uint64(i)); vd.OK {
				t.Fatalf("round %d shard %d: another shard's result passed", round, i)
			}
		}
		if n := len(v.inputs.entries); n > cacheSize {
			t.Fatalf("%d cache entries, more than %d", n, cacheSize)
		}
	}
}

// TestCacheKeepsNothingAlive: once the caller drops a shard's tensors
// (and the Verifier has moved on to another shard), the garbage collector
// reclaims them although the cache still has entries for them.
func TestCacheKeepsNothingAlive(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	var v Verifier
	collected := make(chan int, 2)
	func() {
		in := []*tensor.Tensor{cacheTensor(t, rng, 7, 9), cacheTensor(t, rng, 9, 4)}
		for i, x := range in {
			runtime.AddCleanup(x, func(i int) { collected <- i }, i)
		}
		ref := cacheReference(t, shaders.Matmul, in)
		if vd := v.Check(shaders.Matmul, in, ref, rand.New(rand.NewPCG(6, 6)), 4); !vd.OK {
			t.Fatalf("honest result rejected: %+v", vd)
		}
		if _, err := v.Agree(shaders.Matmul, in, ref, ref); err != nil {
			t.Fatal(err)
		}
	}()
	// Another shard, so that no scratch of the Verifier points at the first.
	other := []*tensor.Tensor{cacheTensor(t, rng, 3, 3), cacheTensor(t, rng, 3, 3)}
	v.Check(shaders.Matmul, other, cacheReference(t, shaders.Matmul, other), rand.New(rand.NewPCG(7, 7)), 4)
	_, _ = v.Agree(shaders.Matmul, other, cacheReference(t, shaders.Matmul, other), cacheReference(t, shaders.Matmul, other))
	if len(v.inputs.entries) < 3 {
		t.Fatalf("%d cache entries, want the first shard's too", len(v.inputs.entries))
	}
	var got []int
	for deadline := time.Now().Add(10 * time.Second); len(got) < 2; {
		runtime.GC()
		select {
		case i := <-collected:
			got = append(got, i)
		default:
			if time.Now().After(deadline) {
				t.Fatalf("inputs %v collected of 2: the cache keeps tensors alive", got)
			}
			runtime.Gosched()
		}
	}
	slices.Sort(got)
	if fmt.Sprint(got) != "[0 1]" {
		t.Fatalf("collected %v", got)
	}
	runtime.KeepAlive(&v)
	// And a new tensor that takes a collected one's place is not confused
	// with it: its statistics are its own.
	x := cacheTensor(t, rng, 7, 9)
	s, _, _ := v.inputs.rowAbs(x, 7, 9)
	for i := range 7 {
		if s[i] != sumAbs(x.Data[i*9:(i+1)*9]) {
			t.Fatalf("row %d of a new tensor: stale statistics", i)
		}
	}
}

// TestTransposedColumns checks that spot checks read the same values from
// the transposed copy the cache keeps of a much-checked B as from B
// itself: every element recomputed both ways has the same bits, on shapes
// around the transpose's tiles.
func TestTransposedColumns(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, shape := range [][3]int{{1, 1, 1}, {3, 31, 33}, {5, 64, 7}, {9, 33, 65}} {
		m, k, n := shape[0], shape[1], shape[2]
		a, b := tensor.New(m, k), tensor.New(k, n)
		for i := range a.Data {
			a.Data[i] = float32(rng.NormFloat64())
		}
		for i := range b.Data {
			b.Data[i] = float32(rng.NormFloat64())
		}
		var c statsCache
		var cols []float32
		for range transposeAfter + 1 {
			cols = c.columns(b, k, n)
		}
		if cols == nil {
			t.Fatalf("%v: no transposed copy after %d spot checks", shape, transposeAfter+1)
		}
		strided := layer{a: a.Data, b: b.Data, m: m, k: k, n: n}
		transposed := strided
		transposed.bCols = cols
		for i := range m {
			for j := range n {
				if got, want := transposed.exact(i, j), strided.exact(i, j); got != want {
					t.Fatalf("%v: element (%d, %d): %+v from the transposed copy, %+v from B", shape, i, j, got, want)
				}
			}
		}
		// A change to B that the cache notices drops the copy.
		b.Data[len(b.Data)-1] += 1
		if c.columns(b, k, n) != nil {
			t.Fatalf("%v: the transposed copy survived a change to B", shape)
		}
	}
}
