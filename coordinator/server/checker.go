package server

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"

	"github.com/neurolov/neurolov/coordinator/scheduler"
	"github.com/neurolov/neurolov/coordinator/verify"
	"github.com/neurolov/neurolov/protocol"
	"github.com/neurolov/neurolov/tensor"
)

// checker adapts coordinator/verify to the scheduler's Checker interface.
// It is where verification is guarded: a panic in verify (a coordinator
// bug) is recovered here, inside the scheduler's call, and becomes the
// answer that blames no worker (see each method), so the scheduler's own
// transition completes as for any other verdict.
type checker struct {
	v      *verify.Verifier
	spots  int
	items  []verify.Item // CheckAll's scratch
	faults *faults       // a test's injected panics (nil: none)
	log    *slog.Logger
}

var _ scheduler.BatchChecker = (*checker)(nil)

// Check runs verify's self-checks. A shard verify cannot check (an error
// wrapping verify.ErrUnverifiable: inputs holding NaN or ±Inf, a product
// that may overflow float32) is Unverifiable, not the worker's fault; so
// is one whose check panics (the reason says an internal error happened),
// which fails its job.
func (c *checker) Check(t *scheduler.Task, out []*tensor.Tensor, rng *rand.Rand) (scheduler.Verdict, string) {
	var r scheduler.Checked
	err := c.guard("verification", "kernel", t.Kernel, func() {
		c.faults.at("check", t.Kernel, t.Inputs)
		r = checked(c.v.Check(t.Kernel, t.Inputs, out, rng, c.spots))
	})
	if err != nil {
		return scheduler.Unverifiable, err.Error()
	}
	return r.Verdict, r.Reason
}

// CheckAll runs verify's self-checks on a batch at once (verify.CheckAll:
// results sharing an input matrix read it once), each judged as Check
// judges it. When the batch's check panics, each result is checked alone,
// so that only those whose own check panics are Unverifiable.
func (c *checker) CheckAll(ts []*scheduler.Task, outputs [][]*tensor.Tensor, rng *rand.Rand) []scheduler.Checked {
	var vs []verify.Verdict
	err := c.guard("verification of a batch (each result is checked alone next)", "results", strconv.Itoa(len(ts)), func() {
		c.items = c.items[:0]
		for i, t := range ts {
			c.faults.at("check", t.Kernel, t.Inputs)
			c.items = append(c.items, verify.Item{Kernel: t.Kernel, Inputs: t.Inputs, Outputs: outputs[i]})
		}
		vs = c.v.CheckAll(c.items, rng, c.spots)
	})
	clear(c.items) // hold no tensors past the batch
	if err != nil {
		res := make([]scheduler.Checked, len(ts))
		for i, t := range ts {
			res[i].Verdict, res[i].Reason = c.Check(t, outputs[i], rng)
		}
		return res
	}
	res := make([]scheduler.Checked, len(vs))
	for i, v := range vs {
		res[i] = checked(v)
	}
	return res
}

// guard runs fn, part of stage, and returns the error wrapping ErrInternal
// that a panic in it becomes (logged at Error by catch, with key=value).
// After one it replaces the verifier, whose scratch and input cache the
// panic may have left half-written.
func (c *checker) guard(stage, key, value string, fn func()) (err error) {
	defer func() {
		if err != nil {
			c.v = &verify.Verifier{}
		}
	}()
	defer catch(c.log, &err, stage, key, value)
	fn()
	return nil
}

// checked turns verify's verdict into the scheduler's.
func checked(v verify.Verdict) scheduler.Checked {
	switch {
	case v.OK && v.Unchecked > 0:
		return scheduler.Checked{Verdict: scheduler.Doubtful, Reason: fmt.Sprintf("%d rows over the probabilistic bound passed on the worst-case bound alone (recompute budget spent)", v.Unchecked)}
	case v.OK:
		return scheduler.Checked{Verdict: scheduler.Valid}
	case errors.Is(v.Err, verify.ErrUnverifiable):
		return scheduler.Checked{Verdict: scheduler.Unverifiable, Reason: v.Reason}
	default:
		return scheduler.Checked{Verdict: scheduler.Invalid, Reason: v.Reason}
	}
}

// Agree reports whether two results of t agree. A comparison that panics
// (logged at Error) answers false: the scheduler then settles the dispute
// by recompute (Settle), which blames only a result found wrong there.
func (c *checker) Agree(t *scheduler.Task, a, b []*tensor.Tensor) bool {
	agree := false
	err := c.guard("replica comparison", "kernel", t.Kernel, func() {
		cmp, err := c.v.Agree(t.Kernel, t.Inputs, a, b)
		agree = err == nil && cmp.Agree
	})
	return agree && err == nil
}

// Settle settles a dispute between results of t by verify.Settle:
// recomputing exactly up to verify.SettleSamples of the elements where
// they differ. A shard verify cannot check at all settles nothing (every
// result right, incomplete): Check has already failed its job.
//
// A settlement that panics (logged at Error) settles nothing either.
func (c *checker) Settle(t *scheduler.Task, outputs [][]*tensor.Tensor, rng *rand.Rand) scheduler.Settlement {
	var st verify.Settlement
	var serr error
	err := c.guard("dispute settlement", "kernel", t.Kernel, func() {
		st, serr = c.v.Settle(t.Kernel, t.Inputs, outputs, rng, verify.SettleSamples)
	})
	if err != nil || serr != nil {
		right := make([]bool, len(outputs))
		for i := range right {
			right[i] = true
		}
		return scheduler.Settlement{Right: right, Reasons: make([]string, len(outputs))}
	}
	return scheduler.Settlement{Right: st.Right, Reasons: st.Reasons, Complete: st.Complete, Checked: st.Checked}
}

// Confirm recomputes verify.ConfirmRows rows of out exactly, chosen by
// their Freivalds residual and at random (verify.Confirm); one that
// panics (logged at Error) confirms nothing.
func (c *checker) Confirm(t *scheduler.Task, out []*tensor.Tensor, rng *rand.Rand) bool {
	ok := false
	err := c.guard("confirmation", "kernel", t.Kernel, func() {
		ok = c.v.Confirm(t.Kernel, t.Inputs, out, rng, verify.ConfirmRows).OK
	})
	return ok && err == nil
}

// Doable reports why t can never be computed: verify.Doable's shapes, or
// more tensors than an Assign can name.
func (c *checker) Doable(t *scheduler.Task) error {
	if n := len(t.Inputs); n > protocol.MaxTensors {
		return fmt.Errorf("%w: %d input tensors, more than an assign can carry (%d)", verify.ErrUnverifiable, n, protocol.MaxTensors)
	}
	var derr error
	if err := c.guard("doability check", "kernel", t.Kernel, func() { derr = verify.Doable(t.Kernel, t.Inputs) }); err != nil {
		return err
	}
	return derr
}

// Canary derives a canary from a verified task (verify.MakeCanary); none
// when it cannot, or when making it panics (logged at Error).
func (c *checker) Canary(t *scheduler.Task, out []*tensor.Tensor, rng *rand.Rand) (*scheduler.Task, []*tensor.Tensor) {
	var in, expected []*tensor.Tensor
	var merr error
	err := c.guard("canary making", "kernel", t.Kernel, func() { in, expected, merr = verify.MakeCanary(t.Kernel, t.Inputs, out, rng) })
	if err != nil || merr != nil {
		return nil, nil
	}
	return &scheduler.Task{Kernel: t.Kernel, Inputs: in, FLOPs: t.FLOPs, Bytes: t.Bytes}, expected
}

// NewChecker returns the production scheduler.Checker, a
// scheduler.BatchChecker: coordinator/verify's shape, finiteness,
// Freivalds and spot checks (spots elements per result, a batch at a
// time when the scheduler has several), its replica comparison, its
// settlement of disputes by recompute and its canaries, each guarded (a panic in verify blames no worker and is
// logged to slog.Default()). It is not safe for concurrent use, like the
// scheduler that calls it.
func NewChecker(spots int) scheduler.Checker { return newChecker(spots, nil, slog.Default()) }

// newChecker returns the production checker with a test's faults (nil:
// none), logging to log.
func newChecker(spots int, f *faults, log *slog.Logger) *checker {
	return &checker{v: &verify.Verifier{}, spots: spots, faults: f, log: log}
}
