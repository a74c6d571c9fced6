package scheduler

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/neurolov/neurolov/tensor"
)

// fleet answers every open lease of its workers, each worker honestly or
// with its lie (the correct value plus lie), until nothing is pending or
// rounds run out; every round moves time on by step (0: time stands still).
type fleet struct {
	h    *harness
	lies map[WorkerID]float32
	ids  []WorkerID
}

func newFleet(h *harness) *fleet { return &fleet{h: h, lies: map[WorkerID]float32{}} }

// add joins worker id under address a with window w, lying by lie.
func (f *fleet) add(id WorkerID, a byte, w int, lie float32) {
	f.h.join(id, a, w)
	f.ids = append(f.ids, id)
	f.lies[id] = lie
}

func (f *fleet) run(rounds int, step time.Duration) {
	for range rounds {
		if f.h.s.Pending() == 0 {
			return
		}
		f.round()
		if step > 0 {
			f.h.advance(step)
		}
	}
}

// round answers the leases each worker holds as its turn comes, one
// worker after another (not those it is given meanwhile).
func (f *fleet) round() {
	for _, id := range f.ids {
		for _, l := range sortedLeases(f.h, id) {
			if task := f.h.open[id][l]; task != nil {
				f.h.answer(id, l, task.Inputs[0].Data[0]+f.lies[id])
			}
		}
	}
}

// finalValues returns, per shard of job, the value of its last Accept or
// Correct.
func finalValues(log []Action, job JobID) map[int]float32 {
	vals := map[int]float32{}
	for _, a := range log {
		if (a.Kind == Accept || a.Kind == Correct) && a.Job == job {
			vals[a.Shard] = a.Outputs[0].Data[0]
		}
	}
	return vals
}

// checkOutcome fails the test unless every shard of job ended with its
// correct value (shard i's value is base+i), no honest address was ever
// banned, and every liar was.
func checkOutcome(t *testing.T, h *harness, job JobID, shards int, base float32, honest, liars []byte) {
	t.Helper()
	vals := finalValues(h.log, job)
	var wrong []int
	for i := range shards {
		if v, ok := vals[i]; !ok || v != base+float32(i) {
			wrong = append(wrong, i)
		}
	}
	if len(wrong) > 0 {
		t.Errorf("shards %v of %d end wrong or missing: %v", wrong, shards, vals)
	}
	for _, a := range h.log {
		if a.Kind == Ban && slices.Contains(honest, a.Address[0]) {
			t.Errorf("honest address %v banned: %s", a.Address[0], a.Reason)
		}
	}
	for _, a := range liars {
		if !h.s.Caught(addr(a)) {
			t.Errorf("liar %d never caught", a)
		}
	}
}

func values(shards int, base float32) []float32 {
	v := make([]float32, shards)
	for i := range v {
		v[i] = base + float32(i)
	}
	return v
}

// TestSybilRingCannotOutvoteAnHonestWorker: three fresh identities that
// agree on the same subtly wrong answer beside one honest worker, all
// untrusted. A dispute is settled by recomputing the disputed elements,
// not by vote: the honest worker is never banned, every ring member is
// caught and no wrong result is left. (An untrusted worker alone cannot
// finish a job: once the ring is caught, a second honest volunteer
// joins.)
func TestSybilRingCannotOutvoteAnHonestWorker(t *testing.T) {
	h := newHarness(t, nil)
	f := newFleet(h)
	f.add(1, 1, 1, 0)
	for a := byte(2); a <= 4; a++ {
		f.add(WorkerID(a), a, 1, 3)
	}
	const shards = 12
	h.submit("j", 0, values(shards, 10)...)
	f.run(400, DefaultConfig().AuditWait)
	f.add(5, 5, 1, 0)
	f.run(400, DefaultConfig().AuditWait)
	if find(h.log, JobDone) == nil {
		t.Fatalf("job not done: %v", h.log)
	}
	checkOutcome(t, h, "j", shards, 10, []byte{1}, []byte{2, 3, 4})
}

// TestPatientRingIsCaught: four identities work honestly until trusted
// and then all lie alike, beside two honest trusted workers. Trust only
// lowers replication: every ring member is caught (by a dispute settled
// by recompute, or by a canary), the honest ones never are, and every
// result the ring left is corrected.
func TestPatientRingIsCaught(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.CanaryRate = 0.05 })
	f := newFleet(h)
	for a := byte(1); a <= 6; a++ {
		f.add(WorkerID(a), a, 1, 0)
	}
	h.submit("warm", 2, values(60, 1000)...)
	f.run(400, 0)
	for a := byte(1); a <= 6; a++ {
		if ok, _ := h.s.Trusted(addr(a)); !ok {
			t.Fatalf("address %d not trusted after the warm-up", a)
		}
	}
	for id := WorkerID(3); id <= 6; id++ {
		f.lies[id] = 3 // the ring turns
	}
	const shards = 200
	h.submit("j", 0, values(shards, 10)...)
	f.run(2000, DefaultConfig().AuditWait)
	checkOutcome(t, h, "j", shards, 10, []byte{1, 2}, []byte{3, 4, 5, 6})
}

// TestTwoHonestWorkersFinishAfterACheaterIsCaught: two honest identities
// and a subtle cheater, time standing still. Settling disputes by
// recompute needs no third identity, and dropping the cheater's results
// leaves no shard wanting one: the job finishes at once.
func TestTwoHonestWorkersFinishAfterACheaterIsCaught(t *testing.T) {
	h := newHarness(t, nil)
	f := newFleet(h)
	f.add(1, 1, 2, 0)
	f.add(3, 3, 2, 2) // the cheater takes shards before the second honest worker
	f.add(2, 2, 2, 0)
	const shards = 24
	h.submit("j", 0, values(shards, 10)...)
	for range 200 {
		if find(h.log, JobDone) != nil {
			break
		}
		f.round()
	}
	if find(h.log, JobDone) == nil {
		done := len(finalValues(h.log, "j"))
		t.Fatalf("job stuck at %d of %d shards with time standing still; open leases %d, pending %d", done, shards, h.s.OpenLeases(), h.s.Pending())
	}
	checkOutcome(t, h, "j", shards, 10, []byte{1, 2}, []byte{3})
}

// TestCanariesComeOnlyFromConfirmedResults: two trusted workers that turn
// and agree on a wrong answer get it accepted; trust alone must not make
// it a canary's known answer, or an honest worker given that canary would
// be caught for answering correctly.
func TestCanariesComeOnlyFromConfirmedResults(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.CanaryPool = 1; c.Audit = false })
	f := newFleet(h)
	f.add(5, 5, 1, 0)
	f.add(6, 6, 1, 0)
	h.submit("warm", 2, values(12, 1000)...)
	f.run(100, 0)
	f.lies[5], f.lies[6] = 2, 2 // they turn and collude
	h.submit("c", 2, 42)
	f.run(10, 0)
	if v := finalValues(h.log, "c"); v[0] != 44 {
		t.Fatalf("colluders' result not accepted: %v", v)
	}
	h.s.cfg.CanaryRate = 1
	f.add(7, 7, 1, 0) // honest
	h.submit("next", 1, values(20, 100)...)
	f.run(100, 0)
	for _, a := range h.log {
		if a.Kind == Ban && a.Address == addr(7) {
			t.Fatalf("honest worker banned: %s", a.Reason)
		}
	}
	if h.s.Stats().Canaries == 0 {
		t.Fatal("no canary was issued")
	}
}

// countingChecker is valueChecker counting its Check calls.
type countingChecker struct {
	valueChecker
	checks int
}

func (c *countingChecker) Check(t *Task, out []*tensor.Tensor, rng *rand.Rand) (Verdict, string) {
	c.checks++
	return c.valueChecker.Check(t, out, rng)
}

// TestTrustLowersReplicationOnly: a trusted worker's shards are taken
// alone, but every one of its results is still checked, and a gross lie
// is caught at once; a result accepted without a trusted voucher is still
// audited.
func TestTrustLowersReplicationOnly(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MinReplication = 0 })
	cc := &countingChecker{}
	h.s.check = cc
	h.join(1, 1, 1)
	h.join(2, 2, 1)
	trustUp(h, 12)
	h.leave(2)
	before, single := cc.checks, h.s.Stats().SingleAccepted
	h.submit("t", 0, values(5, 10)...)
	h.respond(1, 0)
	if got := h.s.Stats().SingleAccepted - single; got != 5 {
		t.Fatalf("%d of 5 shards accepted on the trusted worker's word alone", got)
	}
	if got := cc.checks - before; got != 5 {
		t.Fatalf("%d checks for 5 results of a trusted worker", got)
	}
	h.submit("lie", 0, 7)
	if acts := h.respond(1, 5000); find(acts, Ban) == nil {
		t.Fatalf("a trusted worker's gross lie not caught: %v", acts)
	}
	h.join(3, 3, 1)
	h.join(4, 4, 1)
	h.submit("u", 0, 3)
	h.respond(3, 0)
	h.respond(4, 0)
	if find(h.log, JobDone) == nil || !slices.ContainsFunc(h.s.audits.items, func(n need) bool { return n.sh != nil && n.sh.job.id == "u" }) {
		t.Fatal("a result two untrusted workers agreed on is not audited")
	}
}

// TestDoubtfulResultIsReplicated: a result the self-check passed only in
// part (Doubtful: verify's recompute budget left rows to the worst-case
// bound) is never accepted on one worker's word, trusted or not: a second
// identity's replica is asked, and a lie there (beyond the replica
// tolerance) is settled by recompute: its author is caught and the
// shard ends right.
func TestDoubtfulResultIsReplicated(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MinReplication = 0 })
	h.join(1, 1, 1)
	h.join(2, 2, 1)
	trustUp(h, 12)
	single := h.s.Stats().SingleAccepted
	h.submit("d", 0, doubtfulFrom+5)
	h.respond(1, 3*agreeDelta) // under the self-check's bar, over the tolerance
	if got := h.s.Stats().SingleAccepted - single; got != 0 {
		t.Fatalf("a doubtful result was accepted on one trusted worker's word")
	}
	h.respond(2, 0)
	if !h.s.Caught(addr(1)) || h.s.Caught(addr(2)) {
		t.Fatalf("caught: liar %v, honest %v; want the liar only", h.s.Caught(addr(1)), h.s.Caught(addr(2)))
	}
	if v, ok := finalValues(h.log, "d")[0]; !ok || v != doubtfulFrom+5 {
		t.Fatalf("the doubtful shard ends %v (accepted: %v), want %v", v, ok, float32(doubtfulFrom+5))
	}
}

// trustAll runs n shards, each replicated on every one of ws (workers
// and addresses alike), so that all of them build a run of n valid
// results.
func trustAll(h *harness, n int, ws ...WorkerID) {
	for i := range n {
		h.submit(JobID(fmt.Sprintf("warm%d", i)), len(ws), float32(i))
		for _, w := range ws {
			h.respond(w, 0)
		}
	}
}

// doubtfulValue is the value of a shard whose results the fake
// self-check passes only in part (Doubtful).
const doubtfulValue = doubtfulFrom + 5

// TestDoubtfulResultTwoAgreeOnIsAudited: two trusted identities of a
// ring agree on a wrong answer to a shard whose results the self-check
// could pass only in part (Doubtful). Agreement is no confirmation: the
// shard is audited by an identity that did not vouch for it, trusted
// vouchers or not, and the dispute that follows is settled by recompute.
func TestDoubtfulResultTwoAgreeOnIsAudited(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MinReplication = 0 })
	h.join(1, 1, 1)
	h.join(2, 2, 1)
	trustUp(h, 12)
	h.submit("d", 0, doubtfulValue)
	h.respond(1, 3)
	h.respond(2, 3)
	if v, ok := finalValues(h.log, "d")[0]; !ok || v != doubtfulValue+3 {
		t.Fatalf("the ring's agreed answer was not accepted: %v", finalValues(h.log, "d"))
	}
	h.join(3, 3, 1) // honest, untrusted: takes the audit once it has waited
	h.advance(DefaultConfig().AuditWait + time.Second)
	h.respond(3, 0)
	if v := finalValues(h.log, "d")[0]; v != doubtfulValue {
		t.Fatalf("the doubtful shard two trusted identities agreed on was never audited: it ends %v, want %v", v, float32(doubtfulValue))
	}
	if !h.s.Caught(addr(1)) || h.s.Caught(addr(3)) {
		t.Fatalf("caught: author %v, auditor %v; want the author only", h.s.Caught(addr(1)), h.s.Caught(addr(3)))
	}
}

// TestDoubtfulResultsEarnNoTrust: results the self-check passed only in
// part neither raise their worker's run of valid results nor end it: an
// identity cannot earn trust on results the coordinator could not check
// in full.
func TestDoubtfulResultsEarnNoTrust(t *testing.T) {
	h := newHarness(t, nil)
	h.join(1, 1, 1)
	h.join(2, 2, 1)
	trustUp(h, 5)
	for i := range 15 {
		h.submit(JobID(fmt.Sprintf("d%d", i)), 2, doubtfulValue+float32(i))
		h.respond(1, 0)
		h.respond(2, 0)
	}
	if n := len(finalValues(h.log, "d14")); n != 1 {
		t.Fatal("the doubtful shards were not accepted")
	}
	for _, a := range []byte{1, 2} {
		if ok, run := h.s.Trusted(addr(a)); ok || run != 5 {
			t.Fatalf("address %d: trusted %v with a run of %d after 5 valid and 15 doubtful results; want untrusted, run 5", a, ok, run)
		}
	}
}

// TestDoubtfulResultIsNeverACanary: a doubtful shard that two trusted
// workers agree on, and a trusted auditor confirms, still never becomes a
// canary's known answer: the coordinator did not check it in full.
func TestDoubtfulResultIsNeverACanary(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MinReplication = 0 })
	for w := WorkerID(1); w <= 3; w++ {
		h.join(w, byte(w), 1)
	}
	trustAll(h, 12, 1, 2, 3)
	h.submit("d", 0, doubtfulValue)
	for range 3 {
		for w := WorkerID(1); w <= 3; w++ {
			h.respond(w, 0)
		}
	}
	if _, ok := finalValues(h.log, "d")[0]; !ok {
		t.Fatal("the doubtful shard was not accepted")
	}
	for _, c := range h.s.canaries {
		if c.task.Inputs[0].Data[0] >= doubtfulFrom {
			t.Fatalf("a doubtful result became a canary source (value %v)", c.outputs[0].Data[0])
		}
	}
}

// pairFrom is where the values of tasks begin whose correct result is two
// elements, both the value (see pairChecker).
const pairFrom = 1 << 18

// pairChecker is valueChecker, except that a task of value pairFrom or
// more wants two elements, and that Settle then recomputes, as verify
// does, only the elements where the results differ: a result right there
// may still be wrong where they all agree. Confirm recomputes both.
type pairChecker struct{ valueChecker }

func isPair(t *Task) bool { return t.Inputs[0].Data[0] >= pairFrom }

// off reports whether element j of out is off t's value by more than d.
func off(t *Task, out []*tensor.Tensor, j int, d float64) bool {
	return math.Abs(float64(out[0].Data[j]-t.Inputs[0].Data[0])) > d
}

func (c pairChecker) Check(t *Task, out []*tensor.Tensor, rng *rand.Rand) (Verdict, string) {
	if !isPair(t) {
		return c.valueChecker.Check(t, out, rng)
	}
	if len(out) != 1 || out[0].Len() != 2 {
		return Invalid, "wrong shape"
	}
	if off(t, out, 0, grossDelta) || off(t, out, 1, grossDelta) {
		return Invalid, "freivalds mismatch"
	}
	return Valid, ""
}

func (c pairChecker) Agree(t *Task, a, b []*tensor.Tensor) bool {
	if a[0].Len() != b[0].Len() {
		return false
	}
	for j := range a[0].Data {
		if math.Abs(float64(a[0].Data[j]-b[0].Data[j])) > agreeDelta {
			return false
		}
	}
	return true
}

func (c pairChecker) Settle(t *Task, outs [][]*tensor.Tensor, rng *rand.Rand) Settlement {
	if !isPair(t) {
		return c.valueChecker.Settle(t, outs, rng)
	}
	st := Settlement{Right: make([]bool, len(outs)), Reasons: make([]string, len(outs)), Complete: true}
	var disputed []int
	for j := range 2 {
		for _, o := range outs[1:] {
			if math.Abs(float64(o[0].Data[j]-outs[0][0].Data[j])) > agreeDelta {
				disputed = append(disputed, j)
				break
			}
		}
	}
	st.Checked = len(disputed)
	for i, o := range outs {
		st.Right[i] = true
		for _, j := range disputed {
			if off(t, o, j, exactDelta) {
				st.Right[i], st.Reasons[i] = false, fmt.Sprintf("element %d off the exact value", j)
			}
		}
	}
	return st
}

func (c pairChecker) Confirm(t *Task, out []*tensor.Tensor, rng *rand.Rand) bool {
	if !isPair(t) {
		return c.valueChecker.Confirm(t, out, rng)
	}
	return !off(t, out, 0, exactDelta) && !off(t, out, 1, exactDelta)
}

// answerPair sends the two elements a, b for lease l of worker w.
func (h *harness) answerPair(w WorkerID, l LeaseID, a, b float32) []Action {
	delete(h.open[w], l)
	return h.record(h.s.Result(h.now, w, l, []*tensor.Tensor{{Shape: []int{2}, Data: []float32{a, b}}}))
}

// TestSurvivorOfACaughtReplicaIsConfirmedAndAudited: two trusted
// identities of a ring answer a shard, the first wrong on one element,
// the second the same plus a second wrong element. The dispute is on the
// second element only, and recomputing it completely catches the second
// identity; the first result is right there, but that confirms nothing
// about the element they agreed on: it must pass Confirm before it is a
// canary's known answer, and it is audited though its author is trusted.
func TestSurvivorOfACaughtReplicaIsConfirmedAndAudited(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MinReplication = 1 })
	h.s.check = pairChecker{}
	h.join(1, 1, 1)
	h.join(2, 2, 1)
	trustUp(h, 12)
	const v = pairFrom + 7
	h.submit("p", 0, v)
	lies := map[WorkerID][2]float32{1: {v + 3, v}, 2: {v + 3, v + 3}}
	for _, w := range []WorkerID{1, 2} {
		for _, l := range sortedLeases(h, w) {
			h.answerPair(w, l, lies[w][0], lies[w][1])
		}
	}
	if !h.s.Caught(addr(2)) || h.s.Caught(addr(1)) {
		t.Fatalf("caught: first %v, second %v; want the second only", h.s.Caught(addr(1)), h.s.Caught(addr(2)))
	}
	if _, ok := finalValues(h.log, "p")[0]; !ok {
		t.Fatal("the first result was not accepted after the settlement")
	}
	for _, c := range h.s.canaries {
		if isPair(c.task) {
			t.Fatalf("the survivor's result, wrong on element 0, became a canary source: %v", c.outputs[0].Data)
		}
	}
	h.join(3, 3, 1) // honest, untrusted: takes the audits once they have waited
	h.advance(DefaultConfig().AuditWait + time.Second)
	for range 20 { // the warm-up's audits come first
		for _, l := range sortedLeases(h, 3) {
			if task := h.open[3][l]; isPair(task) {
				h.answerPair(3, l, v, v)
			} else {
				h.answer(3, l, task.Inputs[0].Data[0])
			}
		}
	}
	var got []float32
	for _, a := range h.log {
		if (a.Kind == Accept || a.Kind == Correct) && a.Job == "p" {
			got = a.Outputs[0].Data
		}
	}
	if len(got) != 2 || got[0] != v || got[1] != v {
		t.Fatalf("the shard ends %v, want [%v %v]: the survivor of a caught replica was never audited", got, float32(v), float32(v))
	}
	if !h.s.Caught(addr(1)) {
		t.Fatal("the first ring member was never caught")
	}
}

// confirmCounter counts Confirm calls.
type confirmCounter struct {
	valueChecker
	confirms int
}

func (c *confirmCounter) Confirm(t *Task, out []*tensor.Tensor, rng *rand.Rand) bool {
	c.confirms++
	return c.valueChecker.Confirm(t, out, rng)
}

// TestFullCanaryPoolIsRefreshedBySomeShards: every accepted shard is
// confirmed for the canary pool while it has room; once it is full, only
// about a fraction CanaryRefresh of them, so that confirming stays a small
// share of the coordinator's CPU.
func TestFullCanaryPoolIsRefreshedBySomeShards(t *testing.T) {
	for _, refresh := range []float64{0, 0.25, 1} {
		h := newHarness(t, func(c *Config) { c.CanaryPool, c.CanaryRefresh, c.CanaryRate = 4, refresh, 0 })
		cc := &confirmCounter{}
		h.s.check = cc
		h.join(1, 1, 1)
		h.join(2, 2, 1)
		trustUp(h, 14) // fills the pool once the two are trusted
		if len(h.s.canaries) != 4 || cc.confirms < 4 {
			t.Fatalf("refresh %v: %d sources after %d confirms, want a full pool of 4", refresh, len(h.s.canaries), cc.confirms)
		}
		base := cc.confirms
		const more = 400
		h.submit("more", 2, values(more, 10)...)
		for range more {
			h.respond(1, 0)
			h.respond(2, 0)
		}
		got := float64(cc.confirms-base) / more
		if math.Abs(got-refresh) > 0.08 {
			t.Errorf("refresh %v: %.2f of the shards accepted into a full pool were confirmed", refresh, got)
		}
	}
}
