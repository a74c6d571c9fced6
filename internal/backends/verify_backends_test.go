package backends_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/neurolov/neurolov/coordinator/verify"
	"github.com/neurolov/neurolov/internal/backends"
	"github.com/neurolov/neurolov/shaders"
	"github.com/neurolov/neurolov/tensor"
	"github.com/neurolov/neurolov/worker"
)

// TestHonestBackendsPassCheck runs every backend of this build — pure Go,
// OpenBLAS and WebGPU on lavapipe — on awkward shapes (1, primes,
// non-multiples of the GPU's tiles) and on the shards of bench verify,
// with data of both signs and of one sign, and passes every result
// through verify.Check, whose Freivalds check now holds rows to a
// probabilistic bound: no honest result may be rejected, none may go over
// that bound (Recomputed and Unchecked stay 0), and the results of every
// pair of backends agree. It logs the largest ratios.
func TestHonestBackendsPassCheck(t *testing.T) {
	g := openLavapipe(t)
	bes := []struct {
		name string
		b    worker.Backend
	}{{"pure-go", worker.CPU{}}, {"openblas", backends.BLAS{}}, {"lavapipe", g}}
	type job struct {
		kernel string
		dims   []int
	}
	jobs := []job{
		{shaders.Matmul, []int{1, 1, 1}}, {shaders.Matmul, []int{7, 13, 11}},
		{shaders.Matmul, []int{33, 70, 45}}, {shaders.Matmul, []int{65, 129, 63}},
		{shaders.Matmul, []int{3, 2048, 5}}, {shaders.Matmul, []int{512, 256, 512}},
		{shaders.MLPInfer, []int{1, 1, 1}}, {shaders.MLPInfer, []int{7, 13, 11, 5, 3}},
		{shaders.MLPInfer, []int{7, 784, 512, 256, 10}}, {shaders.MLPInfer, []int{256, 784, 512, 256, 10}},
	}
	rng := rand.New(rand.NewPCG(3, 4))
	secret := verify.NewSecretRand()
	var v verify.Verifier
	worst := map[string]float64{}
	for _, j := range jobs {
		for _, signed := range []bool{true, false} {
			inputs := backendInputs(rng, j.kernel, j.dims, signed)
			name := fmt.Sprintf("%s%v/signed=%v", j.kernel, j.dims, signed)
			results := make([][]*tensor.Tensor, len(bes))
			for bi, be := range bes {
				outs, err := be.b.Run(context.Background(), j.kernel, inputs)
				if err != nil {
					t.Fatalf("%s on %s: %v", name, be.name, err)
				}
				results[bi] = outs
				for range 4 { // several secret vectors
					vd := v.Check(j.kernel, inputs, outs, secret, 16)
					if !vd.OK || vd.Recomputed != 0 || vd.Unchecked != 0 {
						t.Fatalf("%s on %s: honest result rejected or over the probabilistic bound: %+v", name, be.name, vd)
					}
					worst[be.name] = max(worst[be.name], vd.Ratio)
				}
			}
			for a := range bes {
				for b := a + 1; b < len(bes); b++ {
					cmp, err := v.Agree(j.kernel, inputs, results[a], results[b])
					if err != nil || !cmp.Agree {
						t.Fatalf("%s: %s and %s disagree: %v %s", name, bes[a].name, bes[b].name, err, cmp.Reason)
					}
				}
			}
		}
	}
	for _, be := range bes {
		t.Logf("%-8s largest error/bound under Check: %.3g", be.name, worst[be.name])
	}
}

// backendInputs draws the inputs of a shard: normal entries, or uniform
// in [0, 1) (one sign: partial sums grow with every term); mlp-infer
// weights scaled by 1/√fan-in and small biases.
func backendInputs(rng *rand.Rand, kernel string, dims []int, signed bool) []*tensor.Tensor {
	draw := func(scale float64, shape ...int) *tensor.Tensor {
		x := tensor.New(shape...)
		for i := range x.Data {
			v := rng.Float64()
			if signed {
				v = rng.NormFloat64()
			}
			x.Data[i] = float32(scale * v)
		}
		return x
	}
	if kernel == shaders.Matmul {
		return []*tensor.Tensor{draw(1, dims[0], dims[1]), draw(1, dims[1], dims[2])}
	}
	in := []*tensor.Tensor{draw(1, dims[0], dims[1])}
	for l := 2; l < len(dims); l++ {
		in = append(in, draw(1/math.Sqrt(float64(dims[l-1])), dims[l-1], dims[l]), draw(0.1, dims[l]))
	}
	return in
}
