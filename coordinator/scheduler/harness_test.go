package scheduler

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/neurolov/neurolov/tensor"
)

// valueChecker is a fake Checker beside the real one (verify_test.go runs
// the real coordinator/verify checker): each task's correct answer is the
// single value in its first input; a result "passes self-check" unless it is
// grossly wrong (off by more than grossDelta) and two results agree within
// agreeDelta. That models what Freivalds' check catches (gross errors) and
// what only replicas, settlements and canaries catch (subtle ones). Settle
// and Confirm recompute the answer exactly: a result is right within
// exactDelta of it, half the tolerance, as verify's bound is. A task whose
// value is NaN or ±Inf is Unverifiable, as verify reports inputs it cannot
// check, and one whose input is empty cannot be done.
type valueChecker struct{}

const (
	grossDelta = 100
	agreeDelta = 0.5
	exactDelta = agreeDelta / 2
)

// right reports whether out is within exactDelta of t's answer.
func (valueChecker) right(t *Task, out []*tensor.Tensor) bool {
	return len(out) == 1 && out[0].Len() == 1 && math.Abs(float64(out[0].Data[0]-t.Inputs[0].Data[0])) <= exactDelta
}

func (c valueChecker) Settle(t *Task, outs [][]*tensor.Tensor, _ *rand.Rand) Settlement {
	st := Settlement{Right: make([]bool, len(outs)), Reasons: make([]string, len(outs)), Complete: true, Checked: 1}
	for i, o := range outs {
		if st.Right[i] = c.right(t, o); !st.Right[i] {
			st.Reasons[i] = "off the exact value"
		}
	}
	return st
}

func (c valueChecker) Confirm(t *Task, out []*tensor.Tensor, _ *rand.Rand) bool {
	return c.right(t, out)
}

// undoable is the value of a task that Doable says cannot be done (its
// results still check).
const undoable = -1 << 20

func (valueChecker) Doable(t *Task) error {
	if len(t.Inputs) != 1 || t.Inputs[0].Len() != 1 || t.Inputs[0].Data[0] == undoable {
		return errors.New("the task cannot be done")
	}
	return nil
}

// doubtfulFrom is where the values of tasks begin whose results the fake
// self-check passes only in part (Doubtful), as verify does a result that
// puts more rows over its probabilistic bound than it may recompute.
const doubtfulFrom = 1 << 20

func (valueChecker) Check(t *Task, out []*tensor.Tensor, _ *rand.Rand) (Verdict, string) {
	if in := float64(t.Inputs[0].Data[0]); math.IsNaN(in) || math.IsInf(in, 0) {
		return Unverifiable, "the inputs hold NaN or ±Inf"
	}
	if len(out) != 1 || out[0].Len() != 1 {
		return Invalid, "wrong shape"
	}
	if math.Abs(float64(out[0].Data[0]-t.Inputs[0].Data[0])) > grossDelta {
		return Invalid, "freivalds mismatch"
	}
	if t.Inputs[0].Data[0] >= doubtfulFrom {
		return Doubtful, "rows left to the worst-case bound"
	}
	return Valid, ""
}

func (valueChecker) Agree(_ *Task, a, b []*tensor.Tensor) bool {
	return math.Abs(float64(a[0].Data[0]-b[0].Data[0])) <= agreeDelta
}

func (valueChecker) Canary(t *Task, out []*tensor.Tensor, _ *rand.Rand) (*Task, []*tensor.Tensor) {
	c := *t
	return &c, []*tensor.Tensor{out[0].Clone()}
}

// harness drives a Scheduler with scripted events and records its actions.
// Time is a value the test moves; nothing sleeps.
type harness struct {
	t   *testing.T
	s   *Scheduler
	now time.Time
	// log is every action so far, in order.
	log []Action
	// open maps lease → assigned task for each worker, so scripts can answer.
	open map[WorkerID]map[LeaseID]*Task
}

func newHarness(t *testing.T, mutate func(*Config)) *harness {
	t.Helper()
	cfg := DefaultConfig()
	cfg.CanaryRate = 0
	if mutate != nil {
		mutate(&cfg)
	}
	return &harness{
		t:    t,
		s:    New(cfg, rand.New(rand.NewPCG(1, 2)), valueChecker{}),
		now:  time.Unix(1_700_000_000, 0),
		open: make(map[WorkerID]map[LeaseID]*Task),
	}
}

func (h *harness) record(acts []Action) []Action {
	out := append([]Action(nil), acts...)
	for _, a := range out {
		switch a.Kind {
		case Assign:
			if h.open[a.Worker] == nil {
				h.open[a.Worker] = make(map[LeaseID]*Task)
			}
			h.open[a.Worker][a.Lease] = a.Task
		case Cancel:
			delete(h.open[a.Worker], a.Lease)
		}
	}
	h.log = append(h.log, out...)
	return out
}

func addr(b byte) Address { return Address{b} }

func valueTask(v float32) Task {
	return Task{Kernel: "value", Inputs: []*tensor.Tensor{{Shape: []int{1}, Data: []float32{v}}}, FLOPs: 10, Bytes: 8}
}

func (h *harness) submit(id JobID, replication int, values ...float32) []Action {
	j := Job{ID: id, Replication: replication}
	for _, v := range values {
		j.Tasks = append(j.Tasks, valueTask(v))
	}
	return h.record(h.s.SubmitJob(h.now, j))
}

func (h *harness) join(id WorkerID, a byte, window int) []Action {
	return h.record(h.s.WorkerJoined(h.now, Worker{ID: id, Address: addr(a), Backend: BackendCPU, Window: window}))
}

func (h *harness) leave(id WorkerID) []Action {
	delete(h.open, id)
	return h.record(h.s.WorkerLeft(h.now, id))
}

func (h *harness) advance(d time.Duration) []Action {
	h.now = h.now.Add(d)
	return h.record(h.s.Tick(h.now))
}

// answer sends value v for lease l of worker w.
func (h *harness) answer(w WorkerID, l LeaseID, v float32) []Action {
	delete(h.open[w], l)
	return h.record(h.s.Result(h.now, w, l, []*tensor.Tensor{{Shape: []int{1}, Data: []float32{v}}}))
}

// honest answers every open lease of w correctly (offset by delta) and
// returns the actions.
func (h *harness) respond(w WorkerID, delta float32) []Action {
	var all []Action
	for {
		var l LeaseID
		var task *Task
		for id, t := range h.open[w] {
			if l == 0 || id < l {
				l, task = id, t
			}
		}
		if l == 0 {
			return all
		}
		all = append(all, h.answer(w, l, task.Inputs[0].Data[0]+delta)...)
	}
}

func (h *harness) leases(w WorkerID) []LeaseID {
	var ls []LeaseID
	for l := range h.open[w] {
		ls = append(ls, l)
	}
	return ls
}

func count(acts []Action, k ActionKind) int {
	n := 0
	for _, a := range acts {
		if a.Kind == k {
			n++
		}
	}
	return n
}

func find(acts []Action, k ActionKind) *Action {
	for i := range acts {
		if acts[i].Kind == k {
			return &acts[i]
		}
	}
	return nil
}

// checkLeaseCounts fails the test unless every shard's count of
// outstanding replica leases matches its list (audits listed, not counted)
// and every listed lease is live.
func (h *harness) checkLeaseCounts() {
	h.t.Helper()
	for _, jb := range h.s.jobList {
		for _, sh := range jb.shards {
			n := 0
			for _, l := range sh.leases {
				if l.done || h.s.leases[l.id] != l {
					h.t.Fatalf("job %s shard %d lists dead lease %d", jb.id, sh.index, l.id)
				}
				if !l.audit {
					n++
				}
			}
			if sh.leased != n {
				h.t.Fatalf("job %s shard %d: leased = %d, %d replica leases listed", jb.id, sh.index, sh.leased, n)
			}
		}
	}
}
