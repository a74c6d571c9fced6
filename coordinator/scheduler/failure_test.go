package scheduler

import (
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode"
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

// earnTrust has worker w (address a, window 4) and an honest helper
// (worker and address 1) answer a warm-up job until a is trusted.
func earnTrust(t *testing.T, h *harness, w WorkerID, a byte) {
	t.Helper()
	h.join(w, a, 4)
	h.join(1, 1, 1)
	h.submit("warm", 0, values(12, 10)...)
	for range 50 {
		h.respond(w, 0)
		h.respond(1, 0)
	}
	if ok, run := h.s.Trusted(addr(a)); !ok {
		t.Fatalf("address %d not trusted after the warm-up (run %d)", a, run)
	}
}

// errAll has each of ws answer every lease it holds with the error msg.
func errAll(h *harness, msg string, ws ...WorkerID) {
	for _, w := range ws {
		for _, l := range sortedLeases(h, w) {
			delete(h.open[w], l)
			h.record(h.s.WorkerError(h.now, w, l, msg))
		}
	}
}

// TestTrustedIdentityAndTwoFreshOnesCannotFailAJob: one identity that
// earned trust and two fresh ones report the same error on every lease of
// a job that an honest worker computes without trouble. Three identities,
// one of them trusted, are no evidence that a shard cannot be done: the
// job finishes, and the trusted identity that erred is trusted no more.
func TestTrustedIdentityAndTwoFreshOnesCannotFailAJob(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Audit = false })
	earnTrust(t, h, 5, 5)
	h.join(6, 6, 4)
	h.join(7, 7, 4)
	h.submit("victim", 0, values(8, 100)...)
	for range 200 {
		if find(h.log, JobFailed) != nil || h.s.Pending() == 0 {
			break
		}
		errAll(h, "out of memory", 5, 6, 7)
		h.respond(1, 0)
	}
	if a := find(h.log, JobFailed); a != nil {
		ok, _ := h.s.Trusted(addr(5))
		t.Fatalf("a doable job failed on one trusted and two fresh identities' word: %s (the trusted one still trusted: %v)", a.Reason, ok)
	}
	if find(h.log, JobDone) == nil {
		t.Fatal("the victim job did not finish")
	}
	if ok, run := h.s.Trusted(addr(5)); ok {
		t.Fatalf("the trusted identity that answered with errors is still trusted (run %d)", run)
	}
}

// TestSilentLeasesDoNotFailAJob: the same three identities take leases and
// let them expire without a word. An expiry counts against its worker and
// is no evidence about the shard: the job finishes.
func TestSilentLeasesDoNotFailAJob(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Audit = false })
	earnTrust(t, h, 5, 5)
	h.join(6, 6, 4)
	h.join(7, 7, 4)
	h.submit("victim", 0, values(8, 100)...)
	for range 100 {
		if find(h.log, JobFailed) != nil || h.s.Pending() == 0 {
			break
		}
		for _, w := range []WorkerID{5, 6, 7} {
			clear(h.open[w]) // never answered
		}
		h.respond(1, 0)
		h.advance(DefaultConfig().LeaseTimeout + time.Second)
	}
	if a := find(h.log, JobFailed); a != nil {
		t.Fatalf("a doable job failed on silent leases: %s", a.Reason)
	}
	if find(h.log, JobDone) == nil {
		t.Fatal("the victim job did not finish")
	}
}

// TestTwoTrustedAndOneMoreFailAShardWithATrimmedReason: two trusted
// identities and a third report the same error on a shard: that is the
// evidence a shard cannot be done, and the job fails. The worker's message
// reaches the job's failure reason trimmed and printable, however long or
// full of control characters it was.
func TestTwoTrustedAndOneMoreFailAShardWithATrimmedReason(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Audit = false })
	h.join(1, 1, 1)
	h.join(2, 2, 1)
	trustUp(h, 12)
	h.join(3, 3, 1)
	msg := "out of memory\x1b[2J\r\n\x00" + strings.Repeat("A", 10_000) + "\u202e"
	h.submit("j", 0, 7)
	for range 20 {
		if find(h.log, JobFailed) != nil {
			break
		}
		errAll(h, msg, 1, 2, 3)
	}
	a := find(h.log, JobFailed)
	if a == nil {
		t.Fatal("three identities, two of them trusted, reported the same error and the job did not fail")
	}
	if !strings.Contains(a.Reason, "out of memory") || len(a.Reason) > 400 {
		t.Fatalf("reason (%d bytes) should name the error and stay short: %.300q…", len(a.Reason), a.Reason)
	}
	for _, r := range a.Reason {
		if !unicode.IsPrint(r) {
			t.Fatalf("reason holds the unprintable %U: %.300q…", r, a.Reason)
		}
	}
	for _, w := range []byte{1, 2, 3} {
		if h.s.Caught(addr(w)) {
			t.Fatalf("address %d was caught for reporting an error", w)
		}
	}
}

// TestShardRemembersBoundedFailures: a thousand fresh identities each
// answer a replica of the same shard with an error. The addresses a shard
// keeps from its replicas (see eligible) are a bounded set: every worker
// that asks for work is checked against it, so its size must not grow
// with the identities an attacker makes for free.
func TestShardRemembersBoundedFailures(t *testing.T) {
	h := newHarness(t, nil)
	const identities = 1000
	for i := range identities {
		w := WorkerID(100 + i)
		h.record(h.s.WorkerJoined(h.now, Worker{ID: w, Address: Address{1, byte(i), byte(i >> 8)}, Backend: BackendCPU, Window: 1}))
	}
	h.submit("j", 2, 7)
	errs := 0
	for range identities {
		for i := range identities {
			errAll(h, fmt.Sprintf("noise %d", i), WorkerID(100+i))
		}
		if errs = h.s.Stats().Errors; errs >= identities {
			break
		}
	}
	if errs < identities/2 {
		t.Fatalf("only %d errors reported", errs)
	}
	if n := len(h.s.jobs["j"].shards[0].failed); n > 64 {
		t.Fatalf("the shard remembers %d failed addresses after %d errors, want a bound (at most 64)", n, errs)
	}
}
