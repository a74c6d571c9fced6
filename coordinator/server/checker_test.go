package server_test

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/neurolov/neurolov/coordinator/scheduler"
	"github.com/neurolov/neurolov/coordinator/server"
	"github.com/neurolov/neurolov/shaders"
	"github.com/neurolov/neurolov/tensor"
)

func matrix(t *testing.T, rows, cols int, d ...float32) *tensor.Tensor {
	t.Helper()
	x, err := tensor.FromData(d, rows, cols)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// TestCheckerVerdicts: the production checker passes a correct result,
// blames a wrong one on its worker, and reports a product that overflows
// float32 (whose honest result is +Inf) as unverifiable, not as cheating.
func TestCheckerVerdicts(t *testing.T) {
	c := server.NewChecker(2)
	rng := rand.New(rand.NewPCG(1, 2))
	small := &scheduler.Task{Kernel: shaders.Matmul, Inputs: []*tensor.Tensor{matrix(t, 1, 2, 1, 2), matrix(t, 2, 1, 3, 4)}}
	if v, why := c.Check(small, []*tensor.Tensor{matrix(t, 1, 1, 11)}, rng); v != scheduler.Valid {
		t.Fatalf("correct result: %v (%s)", v, why)
	}
	if v, why := c.Check(small, []*tensor.Tensor{matrix(t, 1, 1, 1100)}, rng); v != scheduler.Invalid {
		t.Fatalf("wrong result: %v (%s), want invalid", v, why)
	}
	huge := &scheduler.Task{Kernel: shaders.Matmul, Inputs: []*tensor.Tensor{matrix(t, 1, 2, 3e19, 3e19), matrix(t, 2, 1, 3e19, 3e19)}}
	inf := float32(math.Inf(1))
	if v, why := c.Check(huge, []*tensor.Tensor{matrix(t, 1, 1, inf)}, rng); v != scheduler.Unverifiable || !strings.Contains(why, "overflow") {
		t.Fatalf("overflowing product: %v (%s), want unverifiable", v, why)
	}
}

// TestOverflowingShardFailsItsJobAndBansNobody runs the scheduler with the
// production checker: two honest workers return +Inf for a product that
// overflows float32; the job fails saying so, and neither is banned.
func TestOverflowingShardFailsItsJobAndBansNobody(t *testing.T) {
	s := scheduler.New(scheduler.DefaultConfig(), rand.New(rand.NewPCG(1, 2)), server.NewChecker(2))
	now := time.Unix(1_700_000_000, 0)
	var log []scheduler.Action
	for i := 1; i <= 3; i++ {
		log = append(log, s.WorkerJoined(now, scheduler.Worker{ID: scheduler.WorkerID(i), Address: scheduler.Address{byte(i)}, Backend: scheduler.BackendCPU, Window: 1})...)
	}
	task := scheduler.Task{Kernel: shaders.Matmul, Inputs: []*tensor.Tensor{matrix(t, 1, 2, 3e19, 3e19), matrix(t, 2, 1, 3e19, 3e19)}, FLOPs: 4}
	acts := append([]scheduler.Action(nil), s.SubmitJob(now, scheduler.Job{ID: "overflow", Tasks: []scheduler.Task{task}})...)
	log = append(log, acts...)
	inf := float32(math.Inf(1))
	for _, a := range acts {
		if a.Kind == scheduler.Assign {
			log = append(log, s.Result(now, a.Worker, a.Lease, []*tensor.Tensor{matrix(t, 1, 1, inf)})...)
		}
	}
	failed := false
	for _, a := range log {
		switch a.Kind {
		case scheduler.JobFailed:
			failed = true
			if !strings.Contains(a.Reason, "may overflow float32") {
				t.Fatalf("job failed for %q, want the overflow named", a.Reason)
			}
		case scheduler.Ban, scheduler.Forfeit, scheduler.Pay, scheduler.Accept:
			t.Fatalf("%v for an unverifiable shard: %+v", a.Kind, a)
		}
	}
	if !failed {
		t.Fatalf("job not failed: %v", log)
	}
	for i := 1; i <= 3; i++ {
		if s.Caught(scheduler.Address{byte(i)}) {
			t.Fatalf("address %d caught", i)
		}
	}
}

// TestCheckerDoubtsWhatItCouldNotRecompute: an honest product of
// all-equal matrices puts every row over verify's probabilistic bound
// (its roundings repeat instead of averaging out), more rows than the
// recompute budget covers; the rest pass on the worst-case bound alone,
// which the checker reports as Doubtful — replicated, never blamed.
func TestCheckerDoubtsWhatItCouldNotRecompute(t *testing.T) {
	const n = 256
	a, b := tensor.New(n, n), tensor.New(n, n)
	for i := range a.Data {
		a.Data[i], b.Data[i] = 0.1, 0.3
	}
	in := []*tensor.Tensor{a, b}
	out, err := shaders.Reference(shaders.Matmul, in)
	if err != nil {
		t.Fatal(err)
	}
	v, why := server.NewChecker(2).Check(&scheduler.Task{Kernel: shaders.Matmul, Inputs: in}, out, rand.New(rand.NewPCG(3, 4)))
	if v != scheduler.Doubtful || !strings.Contains(why, "worst-case bound alone") {
		t.Fatalf("honest all-equal product: %v (%s), want doubtful", v, why)
	}
}
