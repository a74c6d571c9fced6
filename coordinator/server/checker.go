package server

import (
	"errors"
	"math/rand/v2"

	"github.com/neurolov/neurolov/coordinator/scheduler"
	"github.com/neurolov/neurolov/coordinator/verify"
	"github.com/neurolov/neurolov/tensor"
)

// checker adapts coordinator/verify to the scheduler's Checker interface.
type checker struct {
	v     *verify.Verifier
	spots int
}

var _ scheduler.Checker = (*checker)(nil)

// Check runs verify's self-checks. A shard verify cannot check (an error
// wrapping verify.ErrUnverifiable: inputs holding NaN or ±Inf, a product
// that may overflow float32) is Unverifiable, not the worker's fault.
func (c *checker) Check(t *scheduler.Task, out []*tensor.Tensor, rng *rand.Rand) (scheduler.Verdict, string) {
	v := c.v.Check(t.Kernel, t.Inputs, out, rng, c.spots)
	switch {
	case v.OK:
		return scheduler.Valid, ""
	case errors.Is(v.Err, verify.ErrUnverifiable):
		return scheduler.Unverifiable, v.Reason
	default:
		return scheduler.Invalid, v.Reason
	}
}

func (c *checker) Agree(t *scheduler.Task, a, b []*tensor.Tensor) bool {
	cmp, err := c.v.Agree(t.Kernel, t.Inputs, a, b)
	return err == nil && cmp.Agree
}

func (c *checker) Canary(t *scheduler.Task, out []*tensor.Tensor, rng *rand.Rand) (*scheduler.Task, []*tensor.Tensor) {
	in, expected, err := verify.MakeCanary(t.Kernel, t.Inputs, out, rng)
	if err != nil {
		return nil, nil
	}
	return &scheduler.Task{Kernel: t.Kernel, Inputs: in, FLOPs: t.FLOPs, Bytes: t.Bytes}, expected
}

// NewChecker returns the production scheduler.Checker: coordinator/verify's
// shape, finiteness, Freivalds and spot checks (spots elements per result),
// its replica comparison and its canaries. It is not safe for concurrent
// use, like the scheduler that calls it.
func NewChecker(spots int) scheduler.Checker { return &checker{v: &verify.Verifier{}, spots: spots} }
