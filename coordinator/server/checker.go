package server

import (
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/neurolov/neurolov/coordinator/scheduler"
	"github.com/neurolov/neurolov/coordinator/verify"
	"github.com/neurolov/neurolov/protocol"
	"github.com/neurolov/neurolov/tensor"
)

// checker adapts coordinator/verify to the scheduler's Checker interface.
type checker struct {
	v     *verify.Verifier
	spots int
	items []verify.Item // CheckAll's scratch
}

var _ scheduler.BatchChecker = (*checker)(nil)

// Check runs verify's self-checks. A shard verify cannot check (an error
// wrapping verify.ErrUnverifiable: inputs holding NaN or ±Inf, a product
// that may overflow float32) is Unverifiable, not the worker's fault.
func (c *checker) Check(t *scheduler.Task, out []*tensor.Tensor, rng *rand.Rand) (scheduler.Verdict, string) {
	r := checked(c.v.Check(t.Kernel, t.Inputs, out, rng, c.spots))
	return r.Verdict, r.Reason
}

// CheckAll runs verify's self-checks on a batch at once (verify.CheckAll:
// results sharing an input matrix read it once), each judged as Check
// judges it.
func (c *checker) CheckAll(ts []*scheduler.Task, outputs [][]*tensor.Tensor, rng *rand.Rand) []scheduler.Checked {
	c.items = c.items[:0]
	for i, t := range ts {
		c.items = append(c.items, verify.Item{Kernel: t.Kernel, Inputs: t.Inputs, Outputs: outputs[i]})
	}
	vs := c.v.CheckAll(c.items, rng, c.spots)
	clear(c.items) // hold no tensors past the batch
	res := make([]scheduler.Checked, len(vs))
	for i, v := range vs {
		res[i] = checked(v)
	}
	return res
}

// checked turns verify's verdict into the scheduler's.
func checked(v verify.Verdict) scheduler.Checked {
	switch {
	case v.OK:
		return scheduler.Checked{Verdict: scheduler.Valid}
	case errors.Is(v.Err, verify.ErrUnverifiable):
		return scheduler.Checked{Verdict: scheduler.Unverifiable, Reason: v.Reason}
	default:
		return scheduler.Checked{Verdict: scheduler.Invalid, Reason: v.Reason}
	}
}

func (c *checker) Agree(t *scheduler.Task, a, b []*tensor.Tensor) bool {
	cmp, err := c.v.Agree(t.Kernel, t.Inputs, a, b)
	return err == nil && cmp.Agree
}

// Settle settles a dispute between results of t by verify.Settle:
// recomputing exactly up to verify.SettleSamples of the elements where
// they differ. A shard verify cannot check at all settles nothing (every
// result right, incomplete): Check has already failed its job.
func (c *checker) Settle(t *scheduler.Task, outputs [][]*tensor.Tensor, rng *rand.Rand) scheduler.Settlement {
	st, err := c.v.Settle(t.Kernel, t.Inputs, outputs, rng, verify.SettleSamples)
	if err != nil {
		right := make([]bool, len(outputs))
		for i := range right {
			right[i] = true
		}
		return scheduler.Settlement{Right: right, Reasons: make([]string, len(outputs))}
	}
	return scheduler.Settlement{Right: st.Right, Reasons: st.Reasons, Complete: st.Complete, Checked: st.Checked}
}

// Confirm recomputes verify.ConfirmRows random rows of out exactly
// (verify.Confirm).
func (c *checker) Confirm(t *scheduler.Task, out []*tensor.Tensor, rng *rand.Rand) bool {
	return c.v.Confirm(t.Kernel, t.Inputs, out, rng, verify.ConfirmRows).OK
}

// Doable reports why t can never be computed: verify.Doable's shapes, or
// more tensors than an Assign can name.
func (c *checker) Doable(t *scheduler.Task) error {
	if n := len(t.Inputs); n > protocol.MaxTensors {
		return fmt.Errorf("%w: %d input tensors, more than an assign can carry (%d)", verify.ErrUnverifiable, n, protocol.MaxTensors)
	}
	return verify.Doable(t.Kernel, t.Inputs)
}

func (c *checker) Canary(t *scheduler.Task, out []*tensor.Tensor, rng *rand.Rand) (*scheduler.Task, []*tensor.Tensor) {
	in, expected, err := verify.MakeCanary(t.Kernel, t.Inputs, out, rng)
	if err != nil {
		return nil, nil
	}
	return &scheduler.Task{Kernel: t.Kernel, Inputs: in, FLOPs: t.FLOPs, Bytes: t.Bytes}, expected
}

// NewChecker returns the production scheduler.Checker, a
// scheduler.BatchChecker: coordinator/verify's shape, finiteness,
// Freivalds and spot checks (spots elements per result, a batch at a
// time when the scheduler has several), its replica comparison, its
// settlement of disputes by recompute and its canaries. It is not safe for concurrent
// use, like the scheduler that calls it.
func NewChecker(spots int) scheduler.Checker { return &checker{v: &verify.Verifier{}, spots: spots} }
