package scheduler

import (
	"fmt"
	"strings"
	"testing"
)

// TestErrorsAloneDoNotFailAJob: twelve identities answer every lease with
// an error beside two honest workers. An error counts against the worker
// that reports it, not against the shard: the job finishes, and the
// erring identities soon get no work at all.
func TestErrorsAloneDoNotFailAJob(t *testing.T) {
	h := newHarness(t, nil)
	h.join(1, 1, 2)
	h.join(2, 2, 2)
	for a := byte(10); a < 22; a++ {
		h.join(WorkerID(a), a, 4)
	}
	const shards = 24
	h.submit("j", 0, values(shards, 10)...)
	for range 500 {
		if find(h.log, JobDone) != nil || find(h.log, JobFailed) != nil {
			break
		}
		for w := WorkerID(10); w < 22; w++ {
			for _, l := range sortedLeases(h, w) {
				delete(h.open[w], l)
				h.record(h.s.WorkerError(h.now, w, l, fmt.Sprintf("noise %d", w)))
			}
		}
		f := &fleet{h: h, ids: []WorkerID{1, 2}, lies: map[WorkerID]float32{}}
		f.round()
	}
	if a := find(h.log, JobFailed); a != nil {
		t.Fatalf("job failed on errors alone: %s", a.Reason)
	}
	if find(h.log, JobDone) == nil {
		t.Fatalf("job not done")
	}
	noisy := 0
	for _, a := range h.log {
		if a.Kind == Assign && a.Worker >= 10 {
			noisy++
		}
	}
	if limit := 12 * DefaultConfig().MaxStrikes; noisy > limit {
		t.Fatalf("the erring identities got %d leases, want at most %d", noisy, limit)
	}
	t.Logf("%d leases went to erring identities", noisy)
}

// TestShardThatCannotBeDoneFailsAtOnce: an error on a shard the Checker
// says can never be done (Doable) is evidence enough: its job fails at
// the first error, with the Checker's reason and the worker's error.
func TestShardThatCannotBeDoneFailsAtOnce(t *testing.T) {
	h := newHarness(t, nil)
	h.join(1, 1, 1)
	h.submit("j", 1, undoable)
	l := h.leases(1)[0]
	delete(h.open[1], l)
	acts := h.record(h.s.WorkerError(h.now, 1, l, "assign does not fit a frame"))
	a := find(acts, JobFailed)
	if a == nil || !strings.Contains(a.Reason, "cannot be done: the task cannot be done") || !strings.Contains(a.Reason, "assign does not fit a frame") {
		t.Fatalf("want the job failed at once: %v", acts)
	}
	if h.s.Caught(addr(1)) {
		t.Fatal("the worker was blamed")
	}
}
