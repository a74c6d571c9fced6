package server

import (
	"context"
	"log/slog"
	"runtime"
	"weak"

	"github.com/neurolov/neurolov/coordinator/planner"
	"github.com/neurolov/neurolov/coordinator/scheduler"
	"github.com/neurolov/neurolov/tensor"
)

// SubmitUnstored plans and submits a job straight to the loop, without the
// store record the HTTP API creates first (its checks are quadratic in the
// number of tensors, too slow for a test that needs 65 536 of them). Its
// status updates fail and are logged.
func SubmitUnstored(s *Server, kernel string, inputs []*tensor.Tensor, replication int) (string, error) {
	shards, plan, err := s.planFor(context.Background(), kernel, inputs)
	if err != nil {
		return "", err
	}
	id := newJobID()
	sub := &submission{id: id, shards: shards, replication: replication, plan: plan}
	return string(id), s.request(event{kind: evSubmit, job: sub})
}

// Held returns the jobs (live, or finished and kept for their plan) and
// the hash-addressed tensors the loop keeps.
func Held(s *Server) (jobs, blobs int, err error) {
	err = s.call(context.Background(), func() { jobs, blobs = len(s.jobs)+len(s.plans), len(s.blobs) })
	return jobs, blobs, err
}

// HashForNoJob sends t's hash the way a canary's tensors are, and returns
// how many tensors sent for no job the loop still keeps for Fetch.
func HashForNoJob(s *Server, t *tensor.Tensor) (kept int, err error) {
	err = s.call(context.Background(), func() {
		s.hashOf(nil, t)
		kept = len(s.orphans) // each holds its blob (blob.orphans > 0)
	})
	return kept, err
}

// HashForJob sends t's hash as job's Assigns do.
func HashForJob(s *Server, job string, t *tensor.Tensor) error {
	return s.call(context.Background(), func() { s.hashOf(s.jobs[scheduler.JobID(job)], t) })
}

// AddJob puts a job planned with plan in the loop's table, as a
// submission does (without scheduling anything).
func AddJob(s *Server, job string, plan planner.Options) error {
	return s.call(context.Background(), func() { s.jobs[scheduler.JobID(job)] = &jobInfo{plan: plan} })
}

// FinishJob releases job's tensors as its end does.
func FinishJob(s *Server, job string) error {
	return s.call(context.Background(), func() { s.finished(scheduler.JobID(job)) })
}

// HasBlob reports whether the Fetch table holds a tensor of hash h.
func HasBlob(s *Server, h [32]byte) (held bool, err error) {
	err = s.call(context.Background(), func() { held = s.blobs[h] != nil })
	return held, err
}

// InjectPanic makes s panic at stage ("check", "plan" or "assemble")
// whenever match holds for the kernel and inputs at hand (a shard's in
// "check", the job's otherwise). It may be called while s runs.
func InjectPanic(s *Server, stage string, match func(kernel string, inputs []*tensor.Tensor) bool) {
	s.faults.hook.Store(panicHook(stage, match))
}

// NewPanickingChecker returns NewChecker(spots) made to panic in its
// checks whenever match holds for a task's kernel and inputs.
func NewPanickingChecker(spots int, match func(kernel string, inputs []*tensor.Tensor) bool) scheduler.Checker {
	f := &faults{}
	f.hook.Store(panicHook("check", match))
	return newChecker(spots, f, slog.Default())
}

func panicHook(stage string, match func(kernel string, inputs []*tensor.Tensor) bool) *faultHook {
	h := faultHook(func(at, kernel string, inputs []*tensor.Tensor) {
		if at == stage && match(kernel, inputs) {
			panic("injected fault in " + stage)
		}
	})
	return &h
}

// BudgetUsed returns the bytes charged to each budget.
func BudgetUsed(s *Server) (frames, outputs, bodies int64) {
	return s.budgets.frames.Used(), s.budgets.outputs.Used(), s.budgets.bodies.Used()
}

// ConnsCollected returns, for each worker connection s holds now, a
// function that collects and reports whether the connection has been
// freed (it holds only a weak pointer to it).
func ConnsCollected(s *Server) ([]func() bool, error) {
	var ptrs []weak.Pointer[conn]
	err := s.call(context.Background(), func() {
		for _, c := range s.conns {
			ptrs = append(ptrs, weak.Make(c))
		}
	})
	fns := make([]func() bool, len(ptrs))
	for i, p := range ptrs {
		fns[i] = func() bool { runtime.GC(); return p.Value() == nil }
	}
	return fns, err
}
