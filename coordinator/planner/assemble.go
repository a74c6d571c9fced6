package planner

import (
	"fmt"

	"github.com/neurolov/neurolov/shaders"
	"github.com/neurolov/neurolov/tensor"
)

// Assemble puts shard outputs back into the job's outputs: for matmul, C;
// for mlp-infer, every Z_l with the shards' rows stacked. outputs[i] holds
// the outputs of shards[i], which must be the shards Plan made for the same
// kernel and inputs (any options). Assemble checks every output's shape and
// that the shards cover the job's output exactly once, and copies; it
// neither keeps nor changes its arguments.
func Assemble(kernel string, inputs []*tensor.Tensor, shards []Shard, outputs [][]*tensor.Tensor) ([]*tensor.Tensor, error) {
	shapes, err := checkInputs(kernel, inputs)
	if err != nil {
		return nil, err
	}
	if len(outputs) != len(shards) {
		return nil, fmt.Errorf("%w: %d shards but %d output lists", ErrOutputs, len(shards), len(outputs))
	}
	last := shapes[len(shapes)-1]
	rows, width := last[0], last[1]
	if err := checkCover(shards, rows, width, kernel == shaders.MLPInfer); err != nil {
		return nil, err
	}

	outs := make([]*tensor.Tensor, len(shapes))
	for l, s := range shapes {
		outs[l] = tensor.New(s...)
	}
	for i, sh := range shards {
		if len(outputs[i]) != len(shapes) {
			return nil, fmt.Errorf("%w: shard %d has %d outputs, want %d", ErrOutputs, i, len(outputs[i]), len(shapes))
		}
		r0, r1, c0, c1 := sh.Rows[0], sh.Rows[1], sh.Cols[0], sh.Cols[1]
		for l, o := range outputs[i] {
			cols := shapes[l][1] // mlp-infer: every column of Z_l
			if kernel == shaders.Matmul {
				cols = c1 - c0
			}
			if o == nil || !o.Is2D(r1-r0, cols) || len(o.Data) != (r1-r0)*cols {
				var got any = "nil"
				if o != nil {
					got = fmt.Sprintf("shape %v with %d elements", o.Shape, len(o.Data))
				}
				return nil, fmt.Errorf("%w: shard %d output %d is %v, want %d×%d", ErrOutputs, i, l, got, r1-r0, cols)
			}
			n := shapes[l][1]
			off := c0
			if kernel != shaders.Matmul {
				off = 0
			}
			for r := 0; r < r1-r0; r++ {
				copy(outs[l].Data[(r0+r)*n+off:(r0+r)*n+off+cols], o.Data[r*cols:(r+1)*cols])
			}
		}
	}
	return outs, nil
}

// checkCover checks that the shards' regions lie in [0, rows) × [0, width)
// and cover it exactly once: their areas add up to the whole, and every
// corner but the whole's four is shared by an even number of regions (the
// classic exact-cover test for rectangles). With fullWidth, every region
// must span all columns.
func checkCover(shards []Shard, rows, width int, fullWidth bool) error {
	var area int64
	corners := make(map[[2]int]bool, 4*len(shards))
	for i, sh := range shards {
		r0, r1, c0, c1 := sh.Rows[0], sh.Rows[1], sh.Cols[0], sh.Cols[1]
		if r0 < 0 || r0 >= r1 || r1 > rows || c0 < 0 || c0 >= c1 || c1 > width {
			return fmt.Errorf("%w: shard %d covers rows %v and columns %v, outside the %d×%d output or empty", ErrOutputs, i, sh.Rows, sh.Cols, rows, width)
		}
		if fullWidth && (c0 != 0 || c1 != width) {
			return fmt.Errorf("%w: shard %d covers columns %v; mlp-infer shards span all %d", ErrOutputs, i, sh.Cols, width)
		}
		area += int64(r1-r0) * int64(c1-c0)
		for _, p := range [][2]int{{r0, c0}, {r0, c1}, {r1, c0}, {r1, c1}} {
			if corners[p] {
				delete(corners, p)
			} else {
				corners[p] = true
			}
		}
	}
	exact := area == int64(rows)*int64(width) && len(corners) == 4 &&
		corners[[2]int{0, 0}] && corners[[2]int{0, width}] && corners[[2]int{rows, 0}] && corners[[2]int{rows, width}]
	if !exact {
		return fmt.Errorf("%w: %d shards do not cover the %d×%d output exactly once (a shard is missing, repeated or overlapping)", ErrOutputs, len(shards), rows, width)
	}
	return nil
}
