package verify

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/neurolov/neurolov/shaders"
	"github.com/neurolov/neurolov/tensor"
)

// TestGroupProductsMatchGemv: the blocked products of a shared B have
// the bits one gemv over all of B gives each vector, on shapes around the
// blocks and around gemv's groups of four rows and columns.
func TestGroupProductsMatchGemv(t *testing.T) {
	rng := rand.New(rand.NewPCG(80, 80))
	for _, kn := range [][2]int{{1, 1}, {5, 3}, {341, 48}, {700, 48}, {1031, 17}, {64, 4096}, {9, 5000}, {3, 0}} {
		for _, count := range []int{2, 3, 4, 5, 9} {
			t.Run(fmt.Sprintf("%dx%d/%d", kn[0], kn[1], count), func(t *testing.T) {
				k, n := kn[0], kn[1]
				b := cacheTensor(t, rng, k, n)
				var v Verifier
				group := make([]int32, count)
				for i := range count {
					v.batch = append(v.batch, layer{b: b.Data, k: k, n: n, bIn: b})
					v.vecs = append(v.vecs, batchVec{r: i * n, br: i * k})
					group[i] = int32(i)
				}
				rs, brs := make([]float64, count*n), make([]float64, count*k)
				for i := range rs {
					rs[i] = rMin + (rMax-rMin)*rng.Float64()
				}
				v.groupProducts(group, rs, brs)
				want := make([]float64, k)
				for i := range count {
					gemv(b.Data, n, rs[i*n:(i+1)*n], want)
					for kk, w := range want {
						if got := brs[i*k+kk]; math.Float64bits(got) != math.Float64bits(w) {
							t.Fatalf("vector %d row %d: %v, one gemv gives %v", i, kk, got, w)
						}
					}
				}
			})
		}
	}
}

// TestCheckAllKeepsNoTensors: after CheckAll, no scratch of the Verifier
// points at an item's data, including the layers an item whose shapes
// failed had appended before the failure.
func TestCheckAllKeepsNoTensors(t *testing.T) {
	rng := rand.New(rand.NewPCG(81, 81))
	in := []*tensor.Tensor{cacheTensor(t, rng, 6, 8), cacheTensor(t, rng, 8, 5), cacheTensor(t, rng, 5),
		cacheTensor(t, rng, 5, 4), cacheTensor(t, rng, 4)}
	ref := cacheReference(t, shaders.MLPInfer, in)
	badShape := []*tensor.Tensor{ref[0], tensor.New(4, 6)} // layer 1 appended, then layer 2 fails
	var v Verifier
	got := v.CheckAll([]Item{
		{shaders.MLPInfer, in, ref},
		{shaders.MLPInfer, in, ref},
		{shaders.MLPInfer, in, badShape},
	}, rand.New(rand.NewPCG(82, 82)), 4)
	if !got[0].OK || !got[1].OK || got[2].OK || got[2].Method != MethodShapes {
		t.Fatalf("verdicts %+v", got)
	}
	for i, l := range v.batch[:cap(v.batch)] {
		if l.a != nil || l.b != nil || l.bCols != nil || l.bias != nil || l.c != nil || l.aIn != nil || l.bIn != nil {
			t.Fatalf("batch layer %d still holds an item's data", i)
		}
	}
}
