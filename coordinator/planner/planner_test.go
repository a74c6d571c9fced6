package planner

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/neurolov/neurolov/shaders"
	"github.com/neurolov/neurolov/tensor"
)

// smallInts fills a tensor with integers in [-2, 2], so that every product
// and sum below is exact in float32 and results compare with ==, whatever
// order a kernel adds in.
func smallInts(r *rand.Rand, shape ...int) *tensor.Tensor {
	t := tensor.New(shape...)
	for i := range t.Data {
		t.Data[i] = float32(r.IntN(5) - 2)
	}
	return t
}

func mlpJob(r *rand.Rand, batch int, widths ...int) []*tensor.Tensor {
	in := []*tensor.Tensor{smallInts(r, batch, widths[0])}
	for l := 1; l < len(widths); l++ {
		in = append(in, smallInts(r, widths[l-1], widths[l]), smallInts(r, widths[l]))
	}
	return in
}

// runShards computes every shard with the CPU reference.
func runShards(t *testing.T, shards []Shard) [][]*tensor.Tensor {
	t.Helper()
	outs := make([][]*tensor.Tensor, len(shards))
	for i, sh := range shards {
		o, err := shaders.Reference(sh.Kernel, sh.Inputs)
		if err != nil {
			t.Fatalf("shard %d: %v", i, err)
		}
		outs[i] = o
	}
	return outs
}

type job struct {
	name   string
	kernel string
	inputs []*tensor.Tensor
}

func testJobs() []job {
	r := rand.New(rand.NewPCG(1, 2))
	var jobs []job
	for _, s := range [][3]int{{1, 1, 1}, {1, 97, 1}, {7, 13, 97}, {97, 5, 13}, {1000, 3, 7}, {131, 2, 257}, {64, 64, 64}, {3, 300, 1}} {
		jobs = append(jobs, job{fmt.Sprintf("matmul-%dx%dx%d", s[0], s[1], s[2]), shaders.Matmul,
			[]*tensor.Tensor{smallInts(r, s[0], s[1]), smallInts(r, s[1], s[2])}})
	}
	for _, w := range [][]int{{1, 1, 1}, {7, 13, 97, 5}, {1000, 20, 10}, {257, 31, 17, 13, 3}, {3, 40, 24, 10}} {
		jobs = append(jobs, job{fmt.Sprintf("mlp-%v", w), shaders.MLPInfer, mlpJob(r, w[0], w[1:]...)})
	}
	return jobs
}

var testOptions = []struct {
	name string
	opt  Options
}{
	{"defaults", Options{}},
	{"tiles 7x5 batch 7", Options{TileRows: 7, TileCols: 5, BatchRows: 7}},
	{"tiles 1x1 batch 1", Options{TileRows: 1, TileCols: 1, BatchRows: 1}},
	{"tiles 64x1000", Options{TileRows: 64, TileCols: 1000}},
	{"FLOPs cap", Options{MaxShardFLOPs: 5000}},
	{"bytes cap", Options{MaxShardBytes: 16 << 10}},
	{"both caps, big tiles", Options{MaxShardFLOPs: 20000, MaxShardBytes: 300 << 10, TileRows: 4096, TileCols: 4096, BatchRows: 4096}},
}

func TestPlanAssembleEqualsReference(t *testing.T) {
	for _, j := range testJobs() {
		want, err := shaders.Reference(j.kernel, j.inputs)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range testOptions {
			t.Run(j.name+"/"+o.name, func(t *testing.T) {
				shards, err := Plan(j.kernel, j.inputs, o.opt)
				if err != nil {
					t.Fatal(err)
				}
				got, err := Assemble(j.kernel, j.inputs, shards, runShards(t, shards))
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != len(want) {
					t.Fatalf("%d outputs, want %d", len(got), len(want))
				}
				for l := range want {
					if !tensor.SameShape(got[l], want[l]) {
						t.Fatalf("output %d shape %v, want %v", l, got[l].Shape, want[l].Shape)
					}
					for i := range want[l].Data {
						if got[l].Data[i] != want[l].Data[i] {
							t.Fatalf("output %d element %d: %g, want %g (%d shards)", l, i, got[l].Data[i], want[l].Data[i], len(shards))
						}
					}
				}
			})
		}
	}
}

func TestShardCostsAndLimits(t *testing.T) {
	for _, j := range testJobs() {
		jobFLOPs := shaders.FLOPs(j.kernel, j.inputs)
		for _, o := range testOptions {
			t.Run(j.name+"/"+o.name, func(t *testing.T) {
				shards, err := Plan(j.kernel, j.inputs, o.opt)
				if err != nil {
					t.Fatal(err)
				}
				lim, _ := o.opt.withDefaults()
				var sum float64
				rowSizes, colSizes := map[int]bool{}, map[int]bool{}
				for i, sh := range shards {
					if sh.Index != i || sh.Kernel != j.kernel {
						t.Errorf("shard %d: Index %d, Kernel %q", i, sh.Index, sh.Kernel)
					}
					if f := shaders.FLOPs(sh.Kernel, sh.Inputs); sh.FLOPs != f {
						t.Errorf("shard %d: FLOPs %g, kernel says %g", i, sh.FLOPs, f)
					}
					sum += sh.FLOPs
					// Bytes: every input and output element, 4 bytes each.
					shapes, err := shaders.OutputShapes(sh.Kernel, sh.Inputs)
					if err != nil {
						t.Fatalf("shard %d: %v", i, err)
					}
					var elems, largest int
					for _, in := range sh.Inputs {
						elems += len(in.Data)
						largest = max(largest, len(in.Data))
					}
					for _, s := range shapes {
						elems += tensor.NumElements(s)
						largest = max(largest, tensor.NumElements(s))
					}
					if sh.MaxTensorBytes != 4*float64(largest) {
						t.Errorf("shard %d: MaxTensorBytes %g, want %d (its largest input or output)", i, sh.MaxTensorBytes, 4*largest)
					}
					if sh.Bytes != 4*float64(elems) {
						t.Errorf("shard %d: Bytes %g, want %d", i, sh.Bytes, 4*elems)
					}
					if sh.FLOPs > lim.MaxShardFLOPs || sh.Bytes > lim.MaxShardBytes {
						t.Errorf("shard %d: %g FLOPs, %g bytes over the limits %g, %g", i, sh.FLOPs, sh.Bytes, lim.MaxShardFLOPs, lim.MaxShardBytes)
					}
					h, w := sh.Rows[1]-sh.Rows[0], sh.Cols[1]-sh.Cols[0]
					if last := shapes[len(shapes)-1]; last[0] != h || last[1] != w {
						t.Errorf("shard %d: region %v×%v, but its output is %v", i, sh.Rows, sh.Cols, last)
					}
					rowSizes[h], colSizes[w] = true, true
					if j.kernel == shaders.Matmul && (h > lim.TileRows || w > lim.TileCols) {
						t.Errorf("shard %d: tile %d×%d over the %d×%d asked for", i, h, w, lim.TileRows, lim.TileCols)
					}
					if j.kernel == shaders.MLPInfer && h > lim.BatchRows {
						t.Errorf("shard %d: batch of %d rows over the %d asked for", i, h, lim.BatchRows)
					}
				}
				if sum != jobFLOPs {
					t.Errorf("shard FLOPs add up to %g, the job's are %g", sum, jobFLOPs)
				}
				// Tiles are evened out: sizes differ by at most one.
				for what, sizes := range map[string]map[int]bool{"row": rowSizes, "column": colSizes} {
					lo, hi := math.MaxInt, 0
					for s := range sizes {
						lo, hi = min(lo, s), max(hi, s)
					}
					if hi-lo > 1 {
						t.Errorf("%s sizes range from %d to %d", what, lo, hi)
					}
				}
			})
		}
	}
}

func TestPlanDefaultsAndShrinking(t *testing.T) {
	big := func(m, k, n int) []*tensor.Tensor {
		return []*tensor.Tensor{{Shape: []int{m, k}, Data: make([]float32, m*k)}, {Shape: []int{k, n}, Data: make([]float32, k*n)}}
	}
	cases := []struct {
		name         string
		inputs       []*tensor.Tensor
		opt          Options
		shards       int
		tileR, tileC int // of the first shard
	}{
		{"one tile", big(300, 10, 200), Options{}, 1, 300, 200},
		{"default 512 tiles, evened", big(1000, 10, 1025), Options{}, 2 * 3, 500, 341},
		{"exact multiple", big(1024, 64, 1024), Options{}, 4, 512, 512},
		// k = 8192: a 512×512 tile is 4.3 GFLOP > 4e9, so it shrinks.
		{"FLOPs shrink", big(512, 8192, 512), Options{}, 2, 256, 512},
		// 4·(2·512·k + 512²) bytes with k = 20000 is 83 MB > 64 MiB: both
		// sides shrink to 392, which evens out to 256.
		{"bytes shrink", big(512, 20000, 512), Options{MaxShardFLOPs: 1e12}, 4, 256, 256},
		// 100000 columns in tiles of ≤512: 196 tiles, the first 100000/196.
		{"row vector", big(1, 8, 100000), Options{}, 196, 1, 510},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			shards, err := Plan(shaders.Matmul, tc.inputs, tc.opt)
			if err != nil {
				t.Fatal(err)
			}
			if len(shards) != tc.shards {
				t.Errorf("%d shards, want %d", len(shards), tc.shards)
			}
			sh := shards[0]
			if r, c := sh.Rows[1]-sh.Rows[0], sh.Cols[1]-sh.Cols[0]; r != tc.tileR || c != tc.tileC {
				t.Errorf("first tile %d×%d, want %d×%d", r, c, tc.tileR, tc.tileC)
			}
		})
	}

	r := rand.New(rand.NewPCG(3, 4))
	mlp := mlpJob(r, 1000, 784, 512, 256, 10)
	shards, err := Plan(shaders.MLPInfer, mlp, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(shards) != 4 || shards[0].Rows != [2]int{0, 250} || shards[0].Cols != [2]int{0, 10} {
		t.Errorf("mlp 1000 rows: %d shards, first %v×%v; want 4 of 250 rows, columns [0 10]", len(shards), shards[0].Rows, shards[0].Cols)
	}
}

func TestPlanSharesSlices(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	a, b := smallInts(r, 20, 6), smallInts(r, 6, 30)
	shards, err := Plan(shaders.Matmul, []*tensor.Tensor{a, b}, Options{TileRows: 7, TileCols: 8})
	if err != nil {
		t.Fatal(err)
	}
	// 20 rows in tiles of ≤7: 3 row tiles; 30 columns in ≤8: 4 column tiles.
	if len(shards) != 12 {
		t.Fatalf("%d shards, want 12", len(shards))
	}
	aPtrs, bPtrs := map[*tensor.Tensor]int{}, map[*tensor.Tensor]int{}
	for _, sh := range shards {
		aPtrs[sh.Inputs[0]]++
		bPtrs[sh.Inputs[1]]++
		for _, other := range shards {
			if (other.Rows == sh.Rows) != (other.Inputs[0] == sh.Inputs[0]) {
				t.Errorf("shards %d and %d: same rows %v, same A tensor %v", sh.Index, other.Index, other.Rows == sh.Rows, other.Inputs[0] == sh.Inputs[0])
			}
			if (other.Cols == sh.Cols) != (other.Inputs[1] == sh.Inputs[1]) {
				t.Errorf("shards %d and %d: same columns %v, same B tensor %v", sh.Index, other.Index, other.Cols == sh.Cols, other.Inputs[1] == sh.Inputs[1])
			}
		}
		// A's rows are a view of A; B's columns are a copy.
		if &sh.Inputs[0].Data[0] != &a.Data[sh.Rows[0]*6] {
			t.Errorf("shard %d: A rows are not a view of A", sh.Index)
		}
		if cap(sh.Inputs[0].Data) != len(sh.Inputs[0].Data) {
			t.Errorf("shard %d: A view has spare capacity into the next rows", sh.Index)
		}
		if &sh.Inputs[1].Data[0] == &b.Data[sh.Cols[0]] {
			t.Errorf("shard %d: B columns alias B", sh.Index)
		}
	}
	if len(aPtrs) != 3 || len(bPtrs) != 4 {
		t.Errorf("%d distinct A slices and %d B slices, want 3 and 4", len(aPtrs), len(bPtrs))
	}
	// Shared slices hash alike only once: same pointer, same hash, no copies.
	for p, uses := range bPtrs {
		if uses != 3 {
			t.Errorf("B slice %v used by %d shards, want 3", p.Shape, uses)
		}
	}

	// One tile: the job's own tensors.
	shards, err = Plan(shaders.Matmul, []*tensor.Tensor{a, b}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(shards) != 1 || shards[0].Inputs[0] != a || shards[0].Inputs[1] != b {
		t.Errorf("single-tile job does not reuse its inputs")
	}

	// mlp-infer: every shard holds the job's weights.
	mlp := mlpJob(r, 50, 8, 4, 3)
	shards, err = Plan(shaders.MLPInfer, mlp, Options{BatchRows: 16})
	if err != nil {
		t.Fatal(err)
	}
	if len(shards) != 4 {
		t.Fatalf("%d shards, want 4", len(shards))
	}
	for _, sh := range shards {
		for i := 1; i < len(mlp); i++ {
			if sh.Inputs[i] != mlp[i] {
				t.Errorf("shard %d input %d is not the job's tensor", sh.Index, i)
			}
		}
		if &sh.Inputs[0].Data[0] != &mlp[0].Data[sh.Rows[0]*8] {
			t.Errorf("shard %d: X rows are not a view of X", sh.Index)
		}
	}
}

func TestPlanIsDeterministic(t *testing.T) {
	for _, j := range testJobs() {
		p1, err1 := Plan(j.kernel, j.inputs, Options{TileRows: 5, TileCols: 3, BatchRows: 9})
		p2, err2 := Plan(j.kernel, j.inputs, Options{TileRows: 5, TileCols: 3, BatchRows: 9})
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		if len(p1) != len(p2) {
			t.Fatalf("%s: %d then %d shards", j.name, len(p1), len(p2))
		}
		for i := range p1 {
			a, b := p1[i], p2[i]
			if a.Rows != b.Rows || a.Cols != b.Cols || a.FLOPs != b.FLOPs || a.Bytes != b.Bytes {
				t.Fatalf("%s shard %d differs between plans", j.name, i)
			}
			for k := range a.Inputs {
				if a.Inputs[k].Hash() != b.Inputs[k].Hash() {
					t.Fatalf("%s shard %d input %d differs between plans", j.name, i, k)
				}
			}
		}
	}
}

func TestPlanErrors(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	a, b := smallInts(r, 4, 3), smallInts(r, 3, 5)
	mlp := mlpJob(r, 4, 3, 2)
	cases := []struct {
		name   string
		kernel string
		inputs []*tensor.Tensor
		opt    Options
		want   []error
	}{
		{"unknown kernel", "conv", []*tensor.Tensor{a, b}, Options{}, []error{ErrInputs, shaders.ErrUnknownKernel}},
		{"one input", shaders.Matmul, []*tensor.Tensor{a}, Options{}, []error{ErrInputs, shaders.ErrInputs}},
		{"inner dimensions differ", shaders.Matmul, []*tensor.Tensor{a, a}, Options{}, []error{ErrInputs, shaders.ErrInputs}},
		{"nil input", shaders.Matmul, []*tensor.Tensor{a, nil}, Options{}, []error{ErrInputs}},
		{"data shorter than shape", shaders.Matmul, []*tensor.Tensor{a, {Shape: []int{3, 5}, Data: make([]float32, 14)}}, Options{}, []error{ErrInputs}},
		{"no rows", shaders.Matmul, []*tensor.Tensor{tensor.New(0, 3), b}, Options{}, []error{ErrInputs}},
		{"no columns", shaders.Matmul, []*tensor.Tensor{a, tensor.New(3, 0)}, Options{}, []error{ErrInputs}},
		{"mlp missing bias", shaders.MLPInfer, mlp[:2], Options{}, []error{ErrInputs, shaders.ErrInputs}},
		{"mlp empty batch", shaders.MLPInfer, append([]*tensor.Tensor{tensor.New(0, 3)}, mlp[1:]...), Options{}, []error{ErrInputs}},
		{"negative tile", shaders.Matmul, []*tensor.Tensor{a, b}, Options{TileRows: -1}, []error{ErrOptions}},
		{"negative batch", shaders.MLPInfer, mlp, Options{BatchRows: -4}, []error{ErrOptions}},
		{"NaN limit", shaders.Matmul, []*tensor.Tensor{a, b}, Options{MaxShardFLOPs: math.NaN()}, []error{ErrOptions}},
		{"infinite limit", shaders.Matmul, []*tensor.Tensor{a, b}, Options{MaxShardBytes: math.Inf(1)}, []error{ErrOptions}},
		{"negative limit", shaders.Matmul, []*tensor.Tensor{a, b}, Options{MaxShardBytes: -1}, []error{ErrOptions}},
		// One element needs 2·3 FLOPs and 4·(3+3+1) bytes.
		{"element over FLOPs", shaders.Matmul, []*tensor.Tensor{a, b}, Options{MaxShardFLOPs: 5}, []error{ErrTooBig}},
		{"element over bytes", shaders.Matmul, []*tensor.Tensor{a, b}, Options{MaxShardBytes: 27}, []error{ErrTooBig}},
		// The weights alone are 4·(3·2+2) = 32 bytes.
		{"weights over bytes", shaders.MLPInfer, mlp, Options{MaxShardBytes: 40}, []error{ErrTooBig}},
		{"mlp row over FLOPs", shaders.MLPInfer, mlp, Options{MaxShardFLOPs: 10}, []error{ErrTooBig}},
		// C is 4×5: 80 bytes.
		{"output over bytes", shaders.Matmul, []*tensor.Tensor{a, b}, Options{MaxOutputBytes: 79}, []error{ErrTooBig}},
		{"negative output limit", shaders.Matmul, []*tensor.Tensor{a, b}, Options{MaxOutputBytes: -1}, []error{ErrOptions}},
		// Inputs of 256 KiB each whose product would be 16 GiB, cheap
		// by FLOPs: refused before any work.
		{"huge outer product", shaders.Matmul, []*tensor.Tensor{tensor.New(1<<16, 1), tensor.New(1, 1<<16)}, Options{}, []error{ErrTooBig}},
		// One element per shard (2 FLOPs each): 8193² tiles, over MaxShards.
		{"too many shards", shaders.Matmul, []*tensor.Tensor{tensor.New(8193, 1), tensor.New(1, 8193)}, Options{MaxShardFLOPs: 2}, []error{ErrTooBig}},
		// Z_1 alone would be 2²⁰×4096 (16 GiB).
		{"huge mlp output", shaders.MLPInfer, []*tensor.Tensor{tensor.New(1<<20, 1), tensor.New(1, 4096), tensor.New(4096)}, Options{}, []error{ErrTooBig}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			shards, err := Plan(tc.kernel, tc.inputs, tc.opt)
			for _, w := range tc.want {
				if !errors.Is(err, w) {
					t.Errorf("err = %v, want %v", err, w)
				}
			}
			if shards != nil {
				t.Errorf("returned %d shards with an error", len(shards))
			}
		})
	}
	// Exactly at the limits is allowed.
	if _, err := Plan(shaders.Matmul, []*tensor.Tensor{a, b}, Options{MaxShardFLOPs: 6, MaxShardBytes: 28}); err != nil {
		t.Errorf("one element per shard, limits met exactly: %v", err)
	}
	if _, err := Plan(shaders.Matmul, []*tensor.Tensor{a, b}, Options{MaxOutputBytes: 80}); err != nil {
		t.Errorf("output of exactly MaxOutputBytes: %v", err)
	}
}

func TestAssembleErrors(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	a, b := smallInts(r, 10, 3), smallInts(r, 3, 9)
	in := []*tensor.Tensor{a, b}
	shards, err := Plan(shaders.Matmul, in, Options{TileRows: 5, TileCols: 3})
	if err != nil {
		t.Fatal(err)
	}
	outs := runShards(t, shards)
	mlp := mlpJob(r, 10, 3, 4, 2)
	mlpShards, err := Plan(shaders.MLPInfer, mlp, Options{BatchRows: 4})
	if err != nil {
		t.Fatal(err)
	}
	mlpOuts := runShards(t, mlpShards)

	clone := func(s []Shard) []Shard { return append([]Shard(nil), s...) }
	cases := []struct {
		name    string
		kernel  string
		inputs  []*tensor.Tensor
		shards  []Shard
		outputs [][]*tensor.Tensor
		want    error
	}{
		{"bad inputs", shaders.Matmul, []*tensor.Tensor{a}, shards, outs, ErrInputs},
		{"fewer outputs than shards", shaders.Matmul, in, shards, outs[1:], ErrOutputs},
		{"missing shard", shaders.Matmul, in, shards[1:], outs[1:], ErrOutputs},
		{"repeated shard", shaders.Matmul, in, append(clone(shards), shards[0]), append(outs[:len(outs):len(outs)], outs[0]), ErrOutputs},
		{"no shards", shaders.Matmul, in, nil, nil, ErrOutputs},
		{"shard out of bounds", shaders.Matmul, in, func() []Shard {
			s := clone(shards)
			s[len(s)-1].Cols = [2]int{7, 10}
			return s
		}(), outs, ErrOutputs},
		{"overlap hidden by matching area", shaders.Matmul, in, func() []Shard {
			s := clone(shards)
			s[0].Rows, s[1].Rows = [2]int{0, 5}, [2]int{0, 5}
			s[0].Cols, s[1].Cols = [2]int{0, 3}, [2]int{0, 3}
			return s
		}(), outs, ErrOutputs},
		{"empty region", shaders.Matmul, in, func() []Shard {
			s := clone(shards)
			s[0].Rows = [2]int{3, 3}
			return s
		}(), outs, ErrOutputs},
		{"output of wrong shape", shaders.Matmul, in, shards, func() [][]*tensor.Tensor {
			o := append([][]*tensor.Tensor(nil), outs...)
			o[2] = []*tensor.Tensor{tensor.New(3, 5)}
			return o
		}(), ErrOutputs},
		{"nil output", shaders.Matmul, in, shards, func() [][]*tensor.Tensor {
			o := append([][]*tensor.Tensor(nil), outs...)
			o[0] = []*tensor.Tensor{nil}
			return o
		}(), ErrOutputs},
		{"output data short", shaders.Matmul, in, shards, func() [][]*tensor.Tensor {
			o := append([][]*tensor.Tensor(nil), outs...)
			o[0] = []*tensor.Tensor{{Shape: []int{5, 3}, Data: make([]float32, 14)}}
			return o
		}(), ErrOutputs},
		{"mlp shard missing a layer", shaders.MLPInfer, mlp, mlpShards, func() [][]*tensor.Tensor {
			o := append([][]*tensor.Tensor(nil), mlpOuts...)
			o[1] = o[1][:1]
			return o
		}(), ErrOutputs},
		{"mlp shard not full width", shaders.MLPInfer, mlp, func() []Shard {
			s := clone(mlpShards)
			s[0].Cols = [2]int{0, 1}
			return s
		}(), mlpOuts, ErrOutputs},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Assemble(tc.kernel, tc.inputs, tc.shards, tc.outputs)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if got != nil {
				t.Errorf("returned outputs with an error")
			}
		})
	}
}

func ExamplePlan() {
	a := tensor.New(1000, 64) // 1000×64
	b := tensor.New(64, 1500) // 64×1500
	shards, err := Plan(shaders.Matmul, []*tensor.Tensor{a, b}, Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(len(shards), "shards; the first covers rows", shards[0].Rows, "and columns", shards[0].Cols)
	fmt.Printf("each about %.3g FLOPs\n", shards[0].FLOPs)
	// Output:
	// 6 shards; the first covers rows [0 500] and columns [0 500]
	// each about 3.2e+07 FLOPs
}
