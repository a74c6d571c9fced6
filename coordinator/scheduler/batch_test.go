package scheduler

import (
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/neurolov/neurolov/tensor"
)

// batchValueChecker is valueChecker as a BatchChecker: CheckAll gives
// each result valueChecker's verdict and records the batches it saw;
// Check counts the results checked one by one.
type batchValueChecker struct {
	valueChecker
	batches [][]*Task
	singles int
}

func (c *batchValueChecker) Check(t *Task, out []*tensor.Tensor, rng *rand.Rand) (Verdict, string) {
	c.singles++
	return c.valueChecker.Check(t, out, rng)
}

func (c *batchValueChecker) CheckAll(ts []*Task, outputs [][]*tensor.Tensor, rng *rand.Rand) []Checked {
	c.batches = append(c.batches, append([]*Task(nil), ts...))
	res := make([]Checked, len(ts))
	for i := range ts {
		res[i].Verdict, res[i].Reason = c.valueChecker.Check(ts[i], outputs[i], rng)
	}
	return res
}

// frameScript joins three workers, runs a forced-single-replica job and
// hands the scheduler, in one ResultBatches, a frame from each of
// workers 1 and 2 holding every lease they have: worker 1's first result
// grossly wrong, worker 2's last replayed, and one result for a lease
// nobody holds. It returns the actions of the batch.
func frameScript(h *harness) []Action {
	h.join(1, 1, 3)
	h.join(2, 2, 3)
	h.join(3, 3, 3)
	h.submit("j", 1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)
	var batches []WorkerResults
	for _, w := range []WorkerID{1, 2} {
		b := WorkerResults{Worker: w}
		for i, l := range sortedLeases(h, w) {
			v := h.open[w][l].Inputs[0].Data[0]
			if w == 1 && i == 0 {
				v += 10 * grossDelta
			}
			b.Results = append(b.Results, LeaseResult{Lease: l, Outputs: []*tensor.Tensor{{Shape: []int{1}, Data: []float32{v}}}})
			delete(h.open[w], l)
		}
		batches = append(batches, b)
	}
	last := batches[1].Results[len(batches[1].Results)-1]
	batches[1].Results = append(batches[1].Results, last, LeaseResult{Lease: 999, Outputs: last.Outputs})
	return h.record(h.s.ResultBatches(h.now, batches))
}

// TestResultBatchesCheckOnce checks that a BatchChecker sees every result
// of a batch that answers a held lease in one CheckAll, that the
// scheduler then calls Check for none of them, and that the batch is
// judged exactly as with a plain Checker.
func TestResultBatchesCheckOnce(t *testing.T) {
	plain := newHarness(t, nil)
	want := frameScript(plain)
	if find(want, Ban) == nil || count(want, Accept) != 3 || count(want, Reject) != 5 {
		t.Fatalf("want worker 1 banned, worker 2's 3 results accepted, and worker 1's 3, the replay and the unleased refused: %v", want)
	}

	batched := newHarness(t, nil)
	bc := &batchValueChecker{}
	batched.s.check = bc
	got := frameScript(batched)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("a BatchChecker changed the judgement:\n got %v\nwant %v", got, want)
	}
	if len(bc.batches) != 1 || len(bc.batches[0]) != 6 {
		t.Fatalf("CheckAll saw %d batches (%v), want one of the 6 held leases' results", len(bc.batches), bc.batches)
	}
	if bc.singles != 0 {
		t.Fatalf("Check was called %d times for results CheckAll had checked", bc.singles)
	}
	if len(batched.s.prechecked) != 0 {
		t.Fatalf("verdicts left over after the batch: %v", batched.s.prechecked)
	}
}

// TestResultBatchesOfOneUseCheck checks that a lone result is checked by
// Check, not a CheckAll of one.
func TestResultBatchesOfOneUseCheck(t *testing.T) {
	h := newHarness(t, nil)
	bc := &batchValueChecker{}
	h.s.check = bc
	h.join(1, 1, 1)
	h.submit("j", 1, 5)
	if acts := h.respond(1, 0); count(acts, Accept) != 1 {
		t.Fatalf("want the result accepted: %v", acts)
	}
	if len(bc.batches) != 0 || bc.singles != 1 {
		t.Fatalf("CheckAll batches %d, Check calls %d: want 0 and 1", len(bc.batches), bc.singles)
	}
}
