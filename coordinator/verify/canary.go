package verify

import (
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/neurolov/neurolov/shaders"
	"github.com/neurolov/neurolov/tensor"
)

// canaryTries bounds the draws MakeCanary makes before it gives up on a
// shard that every permutation leaves unchanged.
const canaryTries = 32

// MakeCanary derives a canary from a shard whose outputs are already
// verified: new inputs with different content hashes and shapes equal to
// the original's, and the outputs a correct worker returns for them.
// Judge the canary's result with Agree(kernel, canaryInputs, result,
// expected).
//
//   - matmul: A' = P·A·Q with rows permuted and negated at random and
//     columns (the inner dimension) permuted, B' = Qᵀ·B·S with its columns
//     permuted and negated, so that C' = P·C·S: rows and columns of C
//     permuted and negated. Negation is exact in float32 and the inner
//     permutation only reorders each sum, so a correct result stays
//     within tolerance of the expected one.
//   - mlp-infer: the rows of X are permuted; the weights and biases are
//     the same tensors (so workers keep them cached) and every Z_l has its
//     rows permuted the same way.
//
// It fails with ErrCanary when no permutation changes the inputs (a
// batch of one row, a matrix of zeros), and with the errors of
// CheckShapes when the shard does not fit the kernel.
func MakeCanary(kernel string, inputs, outputs []*tensor.Tensor, rng *rand.Rand) (canaryInputs, expected []*tensor.Tensor, err error) {
	ls, err := appendLayers(nil, kernel, inputs, outputs)
	if err != nil {
		return nil, nil, err
	}
	for range canaryTries {
		switch kernel {
		case shaders.Matmul:
			canaryInputs, expected = matmulCanary(&ls[0], inputs, rng)
		default: // shaders.MLPInfer: appendLayers knows no other kernel.
			canaryInputs, expected = mlpCanary(ls, inputs, rng)
		}
		if canaryInputs != nil && !slices.Equal(canaryInputs[0].Data, inputs[0].Data) &&
			(kernel != shaders.Matmul || !slices.Equal(canaryInputs[1].Data, inputs[1].Data)) {
			return canaryInputs, expected, nil
		}
	}
	return nil, nil, fmt.Errorf("%w: %s shard with inputs %v", ErrCanary, kernel, shapesOf(inputs))
}

// matmulCanary draws one disguise of a matmul shard.
func matmulCanary(l *layer, inputs []*tensor.Tensor, rng *rand.Rand) (in, out []*tensor.Tensor) {
	rows, inner, cols := rng.Perm(l.m), rng.Perm(l.k), rng.Perm(l.n)
	rowSign, colSign := randomSigns(rng, l.m), randomSigns(rng, l.n)
	a := gather(l.a, l.m, l.k, rows, inner, rowSign, nil)
	b := gather(l.b, l.k, l.n, inner, cols, nil, colSign)
	c := gather(l.c, l.m, l.n, rows, cols, rowSign, colSign)
	return []*tensor.Tensor{a, b}, []*tensor.Tensor{c}
}

// mlpCanary draws one disguise of an mlp-infer shard, or nothing for a
// batch of one row.
func mlpCanary(ls []layer, inputs []*tensor.Tensor, rng *rand.Rand) (in, out []*tensor.Tensor) {
	m := ls[0].m
	if m < 2 {
		return nil, nil
	}
	rows := rng.Perm(m)
	in = slices.Clone(inputs)
	in[0] = gather(ls[0].a, m, ls[0].k, rows, nil, nil, nil)
	out = make([]*tensor.Tensor, len(ls))
	for i := range ls {
		out[i] = gather(ls[i].c, m, ls[i].n, rows, nil, nil, nil)
	}
	return in, out
}

// gather returns the rows×cols tensor t_ij = rowSign_i·colSign_j·
// src[rowIdx_i][colIdx_j] of the row-major rows×cols src; a nil index is
// the identity and a nil sign is +1.
//
// Each source row is first copied whole into a scratch row, a sequential
// read the hardware prefetches, and permuted from there: reading a row
// that is not in cache in random column order would wait on memory once
// per cache line. The column signs are folded into one scratch vector
// per row sign, and a row that keeps its columns is copied (negated
// when its sign is −1), so that the inner loops hold no branch.
func gather(src []float32, rows, cols int, rowIdx, colIdx []int, rowSign, colSign []float32) *tensor.Tensor {
	t := tensor.New(rows, cols)
	var scratch []float32
	if colIdx != nil {
		scratch = make([]float32, cols)
	}
	// signs[0] are the column signs for a row sign of +1, signs[1] for −1.
	var signs [2][]float32
	if colSign != nil {
		signs[0], signs[1] = colSign, make([]float32, cols)
		for j, x := range colSign {
			signs[1][j] = -x
		}
	}
	for i := range rows {
		si, neg := i, false
		if rowIdx != nil {
			si = rowIdx[i]
		}
		if rowSign != nil {
			neg = rowSign[i] < 0
		}
		srow, drow := src[si*cols:(si+1)*cols], t.Data[i*cols:(i+1)*cols]
		if scratch != nil {
			copy(scratch, srow)
			srow = scratch
		}
		switch sign := signs[b2i(neg)]; {
		case colIdx == nil && sign == nil:
			copy(drow, srow)
			if neg {
				for j := range drow {
					drow[j] = -drow[j]
				}
			}
		case colIdx == nil:
			sign = sign[:len(drow)]
			for j := range drow {
				drow[j] = sign[j] * srow[j]
			}
		case sign == nil:
			idx := colIdx[:len(drow)]
			for j := range drow {
				drow[j] = srow[idx[j]]
			}
			if neg {
				for j := range drow {
					drow[j] = -drow[j]
				}
			}
		default:
			idx, sign := colIdx[:len(drow)], sign[:len(drow)]
			for j := range drow {
				drow[j] = sign[j] * srow[idx[j]]
			}
		}
	}
	return t
}

// b2i is 1 for true and 0 for false.
func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// randomSigns returns n signs, each ±1 with probability 1/2.
func randomSigns(rng *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(1 - 2*rng.IntN(2))
	}
	return s
}

func shapesOf(ts []*tensor.Tensor) [][]int {
	s := make([][]int, len(ts))
	for i, t := range ts {
		s[i] = t.Shape
	}
	return s
}
