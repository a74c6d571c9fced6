package verify_test

import (
	"fmt"
	"math/rand/v2"

	"github.com/neurolov/neurolov/coordinator/verify"
	"github.com/neurolov/neurolov/shaders"
	"github.com/neurolov/neurolov/tensor"
)

// A result is checked on its own (Check), compared with a replica
// (Agree), and reused as a canary (MakeCanary).
func Example() {
	a, _ := tensor.FromData([]float32{1, 2, 3, 4, 5, 6}, 2, 3)
	b, _ := tensor.FromData([]float32{1, 0, 0, 1, 1, 1}, 3, 2)
	inputs := []*tensor.Tensor{a, b}
	result, _ := shaders.Reference(shaders.Matmul, inputs) // a worker's answer

	var v verify.Verifier
	rng := rand.New(rand.NewPCG(1, 2)) // production: verify.NewSecretRand()
	vd := v.Check(shaders.Matmul, inputs, result, rng, 4)
	fmt.Println("honest:", vd.OK, vd.Method)

	cheat := []*tensor.Tensor{result[0].Clone()}
	cheat[0].Data[3] += 1
	vd = v.Check(shaders.Matmul, inputs, cheat, rng, 4)
	fmt.Println("cheat:", vd.OK, vd.Method)

	cmp, _ := v.Agree(shaders.Matmul, inputs, result, cheat)
	fmt.Println("replicas agree:", cmp.Agree, "first difference at", cmp.Output, cmp.Row, cmp.Col)

	canaryIn, expected, _ := verify.MakeCanary(shaders.Matmul, inputs, result, rng)
	answer, _ := shaders.Reference(shaders.Matmul, canaryIn)
	cmp, _ = v.Agree(shaders.Matmul, canaryIn, answer, expected)
	fmt.Println("canary passed:", cmp.Agree, "disguised:", canaryIn[0].Hash() != a.Hash())
	// Output:
	// honest: true freivalds+spot
	// cheat: false freivalds
	// replicas agree: false first difference at 0 1 1
	// canary passed: true disguised: true
}
