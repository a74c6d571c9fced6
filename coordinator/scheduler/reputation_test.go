package scheduler

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// trustUp runs n two-replica shards through workers 1 and 2 (addresses 1
// and 2) so both build a run of valid results.
func trustUp(h *harness, n int) {
	for i := 0; i < n; i++ {
		h.submit(JobID("warm"+string(rune('a'+i))), 2, float32(i))
		h.respond(1, 0)
		h.respond(2, 0)
	}
}

func TestAdaptiveReplicationLowersOverheadForTrustedWorkers(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MinReplication = 0.05 })
	h.join(1, 1, 1)
	h.join(2, 2, 1)
	trustUp(h, 10)
	if ok, run := h.s.Trusted(addr(1)); !ok || run != 10 {
		t.Fatalf("address 1 trusted=%v run=%d after 10 valid results", ok, run)
	}
	before := h.s.Stats()
	const shards = 400
	values := make([]float32, shards)
	h.submit("big", 0, values...)
	for range 2 * shards {
		if len(h.open[1]) == 0 && len(h.open[2]) == 0 {
			break
		}
		h.respond(1, 0)
		h.respond(2, 0)
	}
	st := h.s.Stats()
	results := st.Results - before.Results
	accepted := st.Accepted - before.Accepted
	if accepted != shards {
		t.Fatalf("accepted %d of %d", accepted, shards)
	}
	ratio := float64(results) / float64(accepted)
	t.Logf("replicas per shard for trusted workers: %.3f", ratio)
	if ratio > 1.15 || ratio < 1.01 {
		t.Fatalf("replicas per shard %.3f, want about 1 + max(floor, 1/run)", ratio)
	}
}

func TestCaughtLaterIsReverifiedAndCorrected(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MinReplication = 0 })
	h.join(1, 1, 1)
	h.join(2, 2, 1)
	trustUp(h, 12)
	// Worker 2 leaves; trusted worker 1 now takes shards alone and cheats
	// subtly on one (passes the self-check, so it is accepted on its word).
	h.leave(2)
	acts := h.submit("victim", 0, 100)
	if count(acts, Assign) != 1 {
		t.Fatalf("assign: %v", acts)
	}
	acts = h.respond(1, 3) // subtle lie
	acc := find(acts, Accept)
	if acc == nil || len(acc.Vouchers) != 1 || find(acts, JobDone) == nil {
		t.Fatalf("want single-replica accept and job done: %v", acts)
	}
	// Later worker 1 is caught on another shard (a gross lie).
	h.submit("trap", 1, 5)
	acts = h.respond(1, 5000)
	if find(acts, Ban) == nil {
		t.Fatalf("gross lie not caught: %v", acts)
	}
	h.join(3, 3, 1)
	h.join(4, 4, 1)
	// The victim shard is re-verified by two other workers.
	for i := 0; i < 100 && (h.s.OpenLeases() > 0 || h.s.urgent.len() > 0); i++ {
		h.respond(3, 0)
		h.respond(4, 0)
		h.advance(time.Second)
	}
	c := find(h.log, Correct)
	if c == nil || c.Job != "victim" || c.Outputs[0].Data[0] != 100 {
		t.Fatalf("victim not corrected: %v", h.log[len(h.log)-10:])
	}
	if h.s.Stats().Corrections != 1 {
		t.Fatalf("corrections = %d", h.s.Stats().Corrections)
	}
}

func TestCanaryCatchesTrustedSubtleCheater(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.CanaryRate = 0.5; c.MinReplication = 0 })
	h.join(1, 1, 1)
	h.join(2, 2, 1)
	trustUp(h, 12)
	h.join(3, 3, 1)
	h.leave(2)
	values := make([]float32, 50)
	h.submit("work", 1, values...) // one replica each: only canaries check
	caught := false
	for i := 0; i < 200 && !caught; i++ {
		h.respond(1, 0)
		for _, a := range h.respond(3, 2) { // worker 3 always lies subtly
			if a.Kind == Ban && a.Address == addr(3) {
				caught = true
			}
		}
	}
	if !caught {
		t.Fatal("subtle cheater never caught by canaries")
	}
	if h.s.Stats().Canaries == 0 {
		t.Fatal("no canaries issued")
	}
}

// TestColludersAreCorrectedOnReverify: two colluders (addresses 5, 6)
// take the same shard and agree on a subtle wrong answer; it is accepted.
// When one is caught elsewhere, re-verification recomputes the dispute
// with a fresh replica, corrects the result and catches its author. The
// other colluder only agreed with it: that is no proof, and nobody is
// caught without a recompute of their own result.
func TestColludersAreCorrectedOnReverify(t *testing.T) {
	h := newHarness(t, nil)
	h.join(5, 5, 1)
	h.join(6, 6, 1)
	h.submit("c", 0, 42)
	h.respond(6, 2) // 6 answers first: its result is the one stored
	acts := h.respond(5, 2)
	if find(acts, Accept) == nil {
		t.Fatalf("agreeing colluders not accepted: %v", acts)
	}
	h.join(7, 7, 1)
	h.join(8, 8, 1)
	h.submit("x", 0, 1)
	h.respond(5, 999) // gross: caught
	// No trusted worker is connected: the re-verification waits AuditWait
	// for one, then anyone but the old vouchers may take it.
	for i := 0; i < 6; i++ {
		h.advance(DefaultConfig().AuditWait)
		h.respond(7, 0)
		h.respond(8, 0)
		h.respond(6, 0)
	}
	if c := find(h.log, Correct); c == nil || c.Job != "c" || c.Outputs[0].Data[0] != 42 {
		t.Fatal("colluded result not corrected")
	}
	if !h.s.Caught(addr(6)) {
		t.Fatalf("colluder 6, whose wrong result was stored, not caught: %v", h.log)
	}
	for _, a := range []byte{7, 8} {
		if h.s.Caught(addr(a)) {
			t.Fatalf("honest %d caught", a)
		}
	}
}

// TestTrustedShardReissuedToUntrustedNeedsAnotherReplica: a shard a
// trusted worker took alone (one replica wanted) is re-issued to a new
// identity when that worker leaves; its result alone must not be accepted.
func TestTrustedShardReissuedToUntrustedNeedsAnotherReplica(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MinReplication = 0 })
	h.join(1, 1, 1)
	h.join(2, 2, 1)
	trustUp(h, 12)
	h.leave(2)
	if acts := h.submit("j", 0, 7); count(acts, Assign) != 1 {
		t.Fatalf("want one replica for the trusted worker: %v", acts)
	}
	h.join(3, 3, 1) // untrusted
	if acts := h.leave(1); find(acts, Assign) == nil || find(acts, Assign).Worker != 3 {
		t.Fatalf("want the replica re-issued to worker 3: %v", acts)
	}
	single := h.s.Stats().SingleAccepted
	if acts := h.respond(3, 0); find(acts, Accept) != nil {
		t.Fatalf("an untrusted worker's result accepted alone: %v", acts)
	}
	acts := h.join(4, 2, 1) // the trusted address comes back
	if a := find(acts, Assign); a == nil || a.Job != "j" {
		t.Fatalf("want a second replica for the trusted address: %v", acts)
	}
	acts = h.respond(4, 0)
	if a := find(acts, Accept); a == nil || len(a.Vouchers) != 2 || find(acts, JobDone) == nil {
		t.Fatalf("want an accept with two vouchers: %v", acts)
	}
	if h.s.Stats().SingleAccepted != single {
		t.Fatal("counted as a single-replica accept")
	}
}

// TestReverifyReplacesAReplicaThatFailsItsSelfCheck: a re-verification
// replica whose result fails the self-check is asked of another worker, so
// that the re-verification still completes.
func TestReverifyReplacesAReplicaThatFailsItsSelfCheck(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Audit = false })
	wait := DefaultConfig().AuditWait
	h.join(5, 5, 1)
	h.join(6, 6, 1)
	h.submit("c", 0, 42)
	h.respond(5, 2) // colluders agree on a subtle lie
	if acts := h.respond(6, 2); find(acts, Accept) == nil {
		t.Fatalf("colluders not accepted: %v", acts)
	}
	h.submit("x", 1, 1)
	h.respond(5, 999) // one colluder is caught: "c" is re-verified
	h.respond(6, 999)
	h.advance(wait) // no trusted worker: the replicas go to anyone
	h.join(7, 7, 1)
	h.join(8, 8, 1)
	h.join(9, 9, 1)
	if len(h.open[7]) != 1 {
		t.Fatalf("worker 7 holds %d leases, want 1", len(h.open[7]))
	}
	for _, task := range h.open[7] {
		if task.Inputs[0].Data[0] != 42 {
			t.Fatalf("worker 7 holds a replica of %v, want one of \"c\"", task.Inputs[0].Data[0])
		}
	}
	h.respond(7, 999) // a re-verification replica fails its self-check
	if !h.s.Caught(addr(7)) {
		t.Fatal("worker 7 not caught")
	}
	h.join(10, 10, 1)
	for range 5 {
		h.advance(wait)
		for w := WorkerID(8); w <= 10; w++ {
			h.respond(w, 0)
		}
	}
	if c := find(h.log, Correct); c == nil || c.Job != "c" || c.Outputs[0].Data[0] != 42 {
		t.Fatalf("re-verification never completed: %v", h.log)
	}
	if p := h.s.Pending(); p != 0 {
		t.Fatalf("%d replicas still pending", p)
	}
	h.checkLeaseCounts()
}

// TestFailedReverifyOfOneShardLeavesTheOthers: in a finished job, a
// shard whose re-verification fails (it errs, and cannot be done) gives
// up alone; the job's other
// shards are still re-verified (and corrected).
func TestFailedReverifyOfOneShardLeavesTheOthers(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Audit = false })
	wait := DefaultConfig().AuditWait
	h.join(5, 5, 2)
	h.join(6, 6, 2)
	h.submit("c", 0, undoable, 20)
	h.respond(5, 2) // colluders agree on subtle lies for both shards
	h.respond(6, 2)
	if find(h.log, JobDone) == nil {
		t.Fatalf("colluded job not done: %v", h.log)
	}
	h.submit("x", 1, 1)
	h.respond(5, 999) // one colluder is caught: both shards are re-verified
	h.respond(6, 999)
	h.advance(wait)
	h.join(7, 7, 1)
	h.join(8, 8, 1)
	h.join(9, 9, 1)
	for range 10 {
		for w := WorkerID(7); w <= 9; w++ {
			for _, l := range sortedLeases(h, w) {
				if h.open[w][l].Inputs[0].Data[0] == undoable { // shard 0 always errs
					delete(h.open[w], l)
					h.record(h.s.WorkerError(h.now, w, l, "out of memory"))
				}
			}
			h.respond(w, 0)
		}
		h.advance(wait)
	}
	var corrected []int
	for _, a := range h.log {
		if a.Kind == Correct && a.Job == "c" {
			corrected = append(corrected, a.Shard)
		}
	}
	if !slices.Equal(corrected, []int{1}) {
		t.Fatalf("corrected shards %v, want [1] (shard 0's re-verification fails, shard 1's goes on)", corrected)
	}
	if p := h.s.Pending(); p != 0 {
		t.Fatalf("%d replicas still pending", p)
	}
	h.checkLeaseCounts()
}

// TestForgottenJobIsNotReverified: once a job is forgotten its vouchers no
// longer hold its shards, and catching one of them re-verifies nothing of
// it (no Assign for a job the plumbing has dropped).
func TestForgottenJobIsNotReverified(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Audit = false })
	h.join(5, 5, 1)
	h.join(6, 6, 1)
	for i := range 50 {
		h.submit(JobID(fmt.Sprint("c", i)), 0, float32(i))
		h.respond(5, 2) // colluders agree on a subtle lie
		h.respond(6, 2)
		h.s.ForgetJob(JobID(fmt.Sprint("c", i)))
	}
	if n := count(h.log, JobDone); n != 50 {
		t.Fatalf("%d jobs done, want 50", n)
	}
	if n := len(h.s.reps[addr(5)].vouched); n > 2 {
		t.Fatalf("address 5 still holds %d vouched shards of forgotten jobs", n)
	}
	h.submit("x", 1, 1)
	h.respond(5, 999) // caught
	h.respond(6, 999)
	from := len(h.log)
	h.join(7, 7, 1)
	h.join(8, 8, 1)
	for range 3 {
		h.advance(DefaultConfig().AuditWait)
		h.respond(7, 0)
		h.respond(8, 0)
	}
	for _, a := range h.log[from:] {
		if a.Kind == Assign && a.Job != "x" {
			t.Fatalf("replica of forgotten job %s assigned: %v", a.Job, a)
		}
	}
	if p := h.s.Pending(); p != 0 {
		t.Fatalf("%d replicas still pending", p)
	}
}

// TestFailedTrustedWorkerRetakesAReplicaOnlyItMayTake: a re-verification
// replica waits for a trusted worker; when the only trusted one lets it
// expire (an error would cost it its trust, an expiry does not) and the
// others are untrusted, it gets the replica straight back (it was kept
// from it because an untrusted worker "could take it", who was kept from
// it in turn: nobody took it until the trusted wait ran out).
func TestFailedTrustedWorkerRetakesAReplicaOnlyItMayTake(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Audit = false })
	h.join(5, 5, 1)
	h.join(6, 6, 1)
	h.submit("c", 2, 42)
	h.respond(5, 0.1)
	if acts := h.respond(6, 0.1); find(acts, Accept) == nil {
		t.Fatalf("not accepted: %v", acts)
	}
	h.leave(5)
	h.leave(6)
	h.join(1, 1, 1)
	h.join(2, 2, 1)
	trustUp(h, 10)
	h.leave(2)
	h.join(3, 3, 1) // untrusted
	h.s.begin(h.now)
	h.s.caught(addr(5), "test: caught elsewhere") // "c" is re-verified
	h.s.fillAll(h.now)
	h.record(h.s.out)
	var lease LeaseID
	for l, task := range h.open[1] {
		if task.Inputs[0].Data[0] == 42 {
			lease = l
		}
	}
	if lease == 0 {
		t.Fatalf("the trusted worker holds no re-verification replica: %v", h.open)
	}
	delete(h.open[1], lease)
	acts := h.advance(DefaultConfig().LeaseTimeout + time.Second)
	for _, a := range acts {
		if a.Kind == Assign && a.Worker == 1 && a.Task.Inputs[0].Data[0] == 42 {
			return
		}
	}
	t.Fatalf("the only trusted worker did not get the replica back at once: %v", acts)
}
