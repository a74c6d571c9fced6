package planner

import (
	"errors"
	"fmt"
	"math"

	"github.com/neurolov/neurolov/coordinator/store"
	"github.com/neurolov/neurolov/shaders"
	"github.com/neurolov/neurolov/tensor"
)

// Defaults used where Options leaves a field at zero (see the package
// documentation for why).
const (
	DefaultTile          = 512
	DefaultBatchRows     = 256
	DefaultMaxShardFLOPs = 4e9
	DefaultMaxShardBytes = 64 << 20
	// DefaultMaxOutputBytes bounds a job's outputs (4 GiB): the
	// coordinator holds every verified shard result until the job's
	// result is read, so inputs of a few kilobytes whose product is
	// enormous (65536×1 · 1×65536) must be refused before any work.
	DefaultMaxOutputBytes = 4 << 30
)

// MaxShards bounds the shards of one job (the coordinator keeps state for
// each): the store's bound, store.MaxShards.
const MaxShards = store.MaxShards

// Errors returned by Plan and Assemble.
var (
	// ErrInputs reports job inputs that do not fit the kernel; it wraps
	// shaders.ErrInputs or shaders.ErrUnknownKernel where those apply.
	ErrInputs = errors.New("planner: bad job inputs")
	// ErrOptions reports negative or non-finite Options.
	ErrOptions = errors.New("planner: bad options")
	// ErrTooBig reports a job whose outputs exceed MaxOutputBytes, or whose
	// smallest possible shard still exceeds MaxShardFLOPs or MaxShardBytes.
	ErrTooBig = errors.New("planner: job cannot be cut into shards within the limits")
	// ErrOutputs reports shard outputs that do not fit the shards or that
	// do not cover the job's outputs exactly once.
	ErrOutputs = errors.New("planner: shard outputs do not fit the plan")
)

// Shard is one unit of work: a kernel run on inputs that cover part of the
// job's output.
type Shard struct {
	// Index is the shard's position in the plan, from 0.
	Index int
	// Kernel is the job's kernel name (shaders.Matmul or shaders.MLPInfer).
	Kernel string
	// Inputs are the shard's kernel inputs, in the kernel's order. They
	// alias the job's inputs and each other: read them, never write them.
	Inputs []*tensor.Tensor
	// FLOPs is shaders.FLOPs of the shard's inputs.
	FLOPs float64
	// Bytes is the size of the shard's inputs and outputs, 4 per element.
	Bytes float64
	// MaxTensorBytes is the size of the shard's largest input or output:
	// it must fit one device buffer.
	MaxTensorBytes float64
	// Rows and Cols are the half-open region [Rows[0], Rows[1]) ×
	// [Cols[0], Cols[1]) of the job's output the shard computes. For
	// mlp-infer, Rows is the batch and Cols spans the logits' width: the
	// shard computes those rows of every Z_l.
	Rows, Cols [2]int
}

// Options tune the plan. The zero value means the defaults.
type Options struct {
	// MaxShardFLOPs caps each shard's FLOPs (0: DefaultMaxShardFLOPs).
	MaxShardFLOPs float64
	// MaxShardBytes caps each shard's input plus output bytes
	// (0: DefaultMaxShardBytes).
	MaxShardBytes float64
	// TileRows and TileCols are the preferred matmul output tile (0:
	// DefaultTile); the planner shrinks a tile to honour the limits and
	// evens tiles out over the job.
	TileRows, TileCols int
	// BatchRows is the preferred mlp-infer batch (0: DefaultBatchRows),
	// shrunk and evened out the same way.
	BatchRows int
	// MaxOutputBytes caps the job's outputs, 4 bytes per element, all of
	// mlp-infer's Z_l counted (0: DefaultMaxOutputBytes).
	MaxOutputBytes float64
}

// withDefaults checks o and fills in its zero fields.
func (o Options) withDefaults() (Options, error) {
	for _, f := range []struct {
		name string
		v    float64
	}{{"MaxShardFLOPs", o.MaxShardFLOPs}, {"MaxShardBytes", o.MaxShardBytes}, {"MaxOutputBytes", o.MaxOutputBytes}} {
		if f.v < 0 || math.IsNaN(f.v) || math.IsInf(f.v, 0) {
			return o, fmt.Errorf("%w: %s is %g, want 0 (the default) or a positive number", ErrOptions, f.name, f.v)
		}
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"TileRows", o.TileRows}, {"TileCols", o.TileCols}, {"BatchRows", o.BatchRows}} {
		if f.v < 0 {
			return o, fmt.Errorf("%w: %s is %d, want 0 (the default) or a positive number", ErrOptions, f.name, f.v)
		}
	}
	if o.MaxShardFLOPs == 0 {
		o.MaxShardFLOPs = DefaultMaxShardFLOPs
	}
	if o.MaxShardBytes == 0 {
		o.MaxShardBytes = DefaultMaxShardBytes
	}
	if o.MaxOutputBytes == 0 {
		o.MaxOutputBytes = DefaultMaxOutputBytes
	}
	if o.TileRows == 0 {
		o.TileRows = DefaultTile
	}
	if o.TileCols == 0 {
		o.TileCols = DefaultTile
	}
	if o.BatchRows == 0 {
		o.BatchRows = DefaultBatchRows
	}
	return o, nil
}

// Plan cuts a job into shards; see the package documentation.
func Plan(kernel string, inputs []*tensor.Tensor, opt Options) ([]Shard, error) {
	opt, err := opt.withDefaults()
	if err != nil {
		return nil, err
	}
	shapes, err := checkInputs(kernel, inputs)
	if err != nil {
		return nil, err
	}
	if b := outputBytes(shapes); b > opt.MaxOutputBytes {
		return nil, fmt.Errorf("%w: the %s job's outputs %v would take %.3g bytes, over MaxOutputBytes %.3g", ErrTooBig, kernel, shapes, b, opt.MaxOutputBytes)
	}
	switch kernel {
	case shaders.Matmul:
		return planMatmul(inputs[0], inputs[1], opt)
	default: // shaders.MLPInfer: checkInputs knows no other kernel
		return planMLP(inputs, opt)
	}
}

// checkInputs validates a job's inputs and returns its output shapes.
func checkInputs(kernel string, inputs []*tensor.Tensor) ([][]int, error) {
	for i, t := range inputs {
		if t == nil {
			return nil, fmt.Errorf("%w: %s input %d is nil", ErrInputs, kernel, i)
		}
		if n := tensor.NumElements(t.Shape); n < 0 || n != len(t.Data) {
			return nil, fmt.Errorf("%w: %s input %d has shape %v but %d elements", ErrInputs, kernel, i, t.Shape, len(t.Data))
		}
	}
	shapes, err := shaders.OutputShapes(kernel, inputs)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInputs, err)
	}
	return shapes, nil
}

// outputBytes is the size of outputs of these shapes, 4 bytes per element,
// in float64 so that no product of dimensions overflows.
func outputBytes(shapes [][]int) float64 {
	var total float64
	for _, sh := range shapes {
		n := 4.0
		for _, d := range sh {
			n *= float64(d)
		}
		total += n
	}
	return total
}

// planMatmul tiles C = A·B.
func planMatmul(a, b *tensor.Tensor, opt Options) ([]Shard, error) {
	m, k, n := a.Rows(), a.Cols(), b.Cols()
	flops := func(tr, tc int) float64 { return 2 * float64(tr) * float64(k) * float64(tc) }
	bytes := func(tr, tc int) float64 {
		return 4 * (float64(tr)*float64(k) + float64(k)*float64(tc) + float64(tr)*float64(tc))
	}
	tr, tc := min(m, opt.TileRows), min(n, opt.TileCols)
	for flops(tr, tc) > opt.MaxShardFLOPs || bytes(tr, tc) > opt.MaxShardBytes {
		if tr == 1 && tc == 1 {
			return nil, fmt.Errorf("%w: one output element of a %d×%d·%d×%d matmul costs %.3g FLOPs and %.3g bytes, over MaxShardFLOPs %.3g or MaxShardBytes %.3g; raise the limits (the inner dimension is not split)",
				ErrTooBig, m, k, k, n, flops(1, 1), bytes(1, 1), opt.MaxShardFLOPs, opt.MaxShardBytes)
		}
		if tr >= tc {
			tr = shrink(tr)
		} else {
			tc = shrink(tc)
		}
	}
	rowCuts, colCuts := even(m, tr), even(n, tc)
	if tiles := (len(rowCuts) - 1) * (len(colCuts) - 1); tiles > MaxShards {
		return nil, fmt.Errorf("%w: a %d×%d·%d×%d matmul needs %d tiles of %d×%d within the limits, over the %d shards a job may have; raise MaxShardFLOPs or MaxShardBytes",
			ErrTooBig, m, k, k, n, tiles, tr, tc, MaxShards)
	}

	// One tensor per row slice of A and per column slice of B, shared by
	// every shard that uses it.
	aSlices := rowViews(a, rowCuts)
	bSlices := make([]*tensor.Tensor, len(colCuts)-1)
	for j := range bSlices {
		bSlices[j] = colCopy(b, colCuts[j], colCuts[j+1])
	}

	shards := make([]Shard, 0, len(aSlices)*len(bSlices))
	inputs := make([]*tensor.Tensor, 2*cap(shards)) // every shard's pair, one allocation
	for i, as := range aSlices {
		for j, bs := range bSlices {
			in := inputs[2*len(shards) : 2*len(shards)+2 : 2*len(shards)+2]
			in[0], in[1] = as, bs
			sh := Shard{
				Index:  len(shards),
				Kernel: shaders.Matmul,
				Inputs: in,
				Rows:   [2]int{rowCuts[i], rowCuts[i+1]},
				Cols:   [2]int{colCuts[j], colCuts[j+1]},
			}
			tr, tc := sh.Rows[1]-sh.Rows[0], sh.Cols[1]-sh.Cols[0]
			sh.FLOPs = flops(tr, tc)
			sh.Bytes = bytes(tr, tc)
			sh.MaxTensorBytes = 4 * float64(max(tr*k, k*tc, tr*tc))
			shards = append(shards, sh)
		}
	}
	return shards, nil
}

// planMLP cuts X into row batches.
func planMLP(inputs []*tensor.Tensor, opt Options) ([]Shard, error) {
	x := inputs[0]
	b := x.Rows()
	// Per batch row: FLOPs, and bytes of X and of every Z_l; the weights
	// and biases are a fixed cost of every shard.
	rowFLOPs := shaders.FLOPs(shaders.MLPInfer, inputs) / float64(b) // the cost is linear in the rows
	rowBytes := 4 * float64(x.Cols())
	var fixedBytes float64
	for l := 1; l < len(inputs); l += 2 {
		w, bias := inputs[l], inputs[l+1]
		fixedBytes += 4 * float64(len(w.Data)+len(bias.Data))
		rowBytes += 4 * float64(w.Cols())
	}
	byRows := func(r int) (float64, float64) { return float64(r) * rowFLOPs, fixedBytes + float64(r)*rowBytes }
	rows := min(b, opt.BatchRows)
	for {
		f, by := byRows(rows)
		if f <= opt.MaxShardFLOPs && by <= opt.MaxShardBytes {
			break
		}
		if rows == 1 {
			return nil, fmt.Errorf("%w: one row of this mlp-infer job costs %.3g FLOPs and, with its %.3g bytes of weights, %.3g bytes, over MaxShardFLOPs %.3g or MaxShardBytes %.3g; raise the limits (weights are not split)",
				ErrTooBig, f, fixedBytes, by, opt.MaxShardFLOPs, opt.MaxShardBytes)
		}
		rows = shrink(rows)
	}
	cuts := even(b, rows)
	width := inputs[len(inputs)-2].Cols()
	// The largest weight or bias, and the widest row of X or of a Z_l.
	var maxFixed, maxWidth int
	maxWidth = x.Cols()
	for l := 1; l < len(inputs); l += 2 {
		maxFixed = max(maxFixed, len(inputs[l].Data), len(inputs[l+1].Data))
		maxWidth = max(maxWidth, inputs[l].Cols())
	}
	views := rowViews(x, cuts)
	shards := make([]Shard, len(cuts)-1)
	all := make([]*tensor.Tensor, len(inputs)*len(shards)) // every shard's inputs, one allocation
	for i := range shards {
		r0, r1 := cuts[i], cuts[i+1]
		in := all[i*len(inputs) : (i+1)*len(inputs) : (i+1)*len(inputs)]
		copy(in, inputs)
		in[0] = views[i]
		_, by := byRows(r1 - r0)
		shards[i] = Shard{
			Index:          i,
			Kernel:         shaders.MLPInfer,
			Inputs:         in,
			FLOPs:          shaders.FLOPs(shaders.MLPInfer, in),
			Bytes:          by,
			MaxTensorBytes: 4 * float64(max(maxFixed, (r1-r0)*maxWidth)),
			Rows:           [2]int{r0, r1},
			Cols:           [2]int{0, width},
		}
	}
	return shards, nil
}

// shrink returns a tile side an eighth smaller (at least one smaller, and
// at least 1).
func shrink(s int) int { return max(1, min(s-1, s-s/8)) }

// even cuts [0, total) into the fewest pieces of at most size, evened out,
// and returns the cut points: 0, ..., total.
func even(total, size int) []int {
	pieces := (total + size - 1) / size
	cuts := make([]int, pieces+1)
	for i := range cuts {
		cuts[i] = i * total / pieces
	}
	return cuts
}

// rowViews returns rows [cuts[i], cuts[i+1]) of a 2-D tensor for each
// piece, sharing its data (capped, so an append cannot spill into the next
// piece). A single piece covering every row is the tensor itself.
//
// Each view is allocated on its own, never in one slab per job: the
// verifier's input cache takes a weak pointer to every tensor it checks,
// the runtime keeps the weak handles of one memory span in a sorted list,
// and so a slab of a job's 100k views made each weak.Make walk a list as
// long as the job — quadratic, 55% of the coordinator's CPU in bench
// dispatch. Views allocated alone share a span with at most a few hundred
// other small objects.
func rowViews(t *tensor.Tensor, cuts []int) []*tensor.Tensor {
	n := len(cuts) - 1
	if n == 1 && cuts[0] == 0 && cuts[1] == t.Rows() {
		return []*tensor.Tensor{t}
	}
	c := t.Cols()
	views := make([]*tensor.Tensor, n)
	for i := range views {
		r0, r1 := cuts[i], cuts[i+1]
		views[i] = &tensor.Tensor{Shape: []int{r1 - r0, c}, Data: t.Data[r0*c : r1*c : r1*c]}
	}
	return views
}

// colCopy returns a copy of columns [c0, c1) of a 2-D tensor. The whole
// tensor is returned as is.
func colCopy(t *tensor.Tensor, c0, c1 int) *tensor.Tensor {
	rows, cols := t.Rows(), t.Cols()
	if c0 == 0 && c1 == cols {
		return t
	}
	out := tensor.New(rows, c1-c0)
	for i := 0; i < rows; i++ {
		copy(out.Data[i*(c1-c0):(i+1)*(c1-c0)], t.Data[i*cols+c0:i*cols+c1])
	}
	return out
}
