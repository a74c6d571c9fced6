package verify

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestGatherMatchesDefinition compares gather, for every combination of
// row and column indices and signs, with its definition t_ij =
// rowSign_i·colSign_j·src[rowIdx_i][colIdx_j], bit for bit (signed zeros
// included).
func TestGatherMatchesDefinition(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	const rows, cols = 5, 7
	src := make([]float32, rows*cols)
	for i := range src {
		src[i] = float32(rng.NormFloat64())
	}
	src[3], src[11] = 0, float32(math.Copysign(0, -1))
	for mask := range 16 {
		var rowIdx, colIdx []int
		var rowSign, colSign []float32
		if mask&1 != 0 {
			rowIdx = rng.Perm(rows)
		}
		if mask&2 != 0 {
			colIdx = rng.Perm(cols)
		}
		if mask&4 != 0 {
			rowSign = randomSigns(rng, rows)
		}
		if mask&8 != 0 {
			colSign = randomSigns(rng, cols)
		}
		got := gather(src, rows, cols, rowIdx, colIdx, rowSign, colSign)
		for i := range rows {
			for j := range cols {
				si, sj, s := i, j, float32(1)
				if rowIdx != nil {
					si = rowIdx[i]
				}
				if colIdx != nil {
					sj = colIdx[j]
				}
				if rowSign != nil {
					s *= rowSign[i]
				}
				if colSign != nil {
					s *= colSign[j]
				}
				want := s * src[si*cols+sj]
				if g := got.Data[i*cols+j]; math.Float32bits(g) != math.Float32bits(want) {
					t.Fatalf("mask %04b: element (%d, %d) = %v, want %v", mask, i, j, g, want)
				}
			}
		}
	}
}
