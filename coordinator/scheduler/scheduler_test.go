package scheduler

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/neurolov/neurolov/tensor"
)

// TestScripts runs table-driven event scripts covering every fault the
// scheduler sees.
func TestScripts(t *testing.T) {
	tests := []struct {
		name   string
		config func(*Config)
		script func(h *harness)
	}{
		{
			name: "two replicas agree, job done, both paid",
			script: func(h *harness) {
				h.join(1, 1, 1)
				h.join(2, 2, 1)
				acts := h.submit("j", 0, 7)
				if got := count(acts, Assign); got != 2 {
					h.t.Fatalf("assigns = %d, want 2 (untrusted → replicated)", got)
				}
				h.respond(1, 0)
				acts = h.respond(2, 0.1)
				if a := find(acts, Accept); a == nil || len(a.Vouchers) != 2 {
					h.t.Fatalf("no accept with 2 vouchers in %v", acts)
				}
				if count(acts, Pay) != 2 || count(acts, JobDone) != 1 {
					h.t.Fatalf("want 2 pays and job done, got %v", acts)
				}
			},
		},
		{
			name: "never two replicas to one address, even over two connections",
			script: func(h *harness) {
				h.join(1, 1, 4)
				h.join(2, 1, 4) // same address, second tab
				acts := h.submit("j", 0, 1, 2)
				if got := count(acts, Assign); got != 2 {
					h.t.Fatalf("assigns = %d, want 2 (one per shard, replicas wait for another address)", got)
				}
				seen := map[int]bool{}
				for _, a := range acts {
					if a.Kind == Assign {
						if seen[a.Shard] {
							h.t.Fatalf("shard %d given twice to address 1", a.Shard)
						}
						seen[a.Shard] = true
					}
				}
				acts = h.join(3, 3, 4)
				if got := count(acts, Assign); got != 2 {
					h.t.Fatalf("new address got %d assigns, want the 2 waiting replicas", got)
				}
			},
		},
		{
			name:   "lease expiry re-issues to another worker; late result rejected",
			config: func(c *Config) { c.LeaseTimeout = 10 * time.Second },
			script: func(h *harness) {
				h.join(1, 1, 1)
				h.join(2, 2, 1)
				h.submit("j", 0, 5)
				late := h.leases(1)[0]
				h.join(3, 3, 1)
				acts := h.advance(11 * time.Second)
				if count(acts, Cancel) != 2 {
					h.t.Fatalf("want both leases cancelled on expiry, got %v", acts)
				}
				if h.s.Stats().Expired != 2 || h.s.Stats().Reissued != 2 {
					h.t.Fatalf("stats %+v", h.s.Stats())
				}
				acts = h.answer(1, late, 5)
				if a := find(acts, Reject); a == nil || !strings.Contains(a.Reason, "no such lease") {
					h.t.Fatalf("late result not rejected: %v", acts)
				}
				if count(acts, Pay) != 0 {
					h.t.Fatal("late result paid")
				}
			},
		},
		{
			name: "duplicate and replayed results are rejected and paid once",
			script: func(h *harness) {
				h.join(1, 1, 1)
				h.join(2, 2, 1)
				h.submit("j", 0, 3, 4)
				l1 := h.leases(1)[0]
				h.answer(1, l1, h.open[1][l1].Inputs[0].Data[0])
				acts := h.answer(1, l1, 3) // duplicate
				if count(acts, Reject) != 1 || count(acts, Pay) != 0 {
					h.t.Fatalf("duplicate: %v", acts)
				}
				if h.s.Stats().Unleased != 1 {
					h.t.Fatalf("unleased = %d", h.s.Stats().Unleased)
				}
				h.respond(2, 0)
				h.respond(1, 0)
				h.respond(2, 0)
				pays := count(h.log, Pay)
				if pays != 4 {
					h.t.Fatalf("pays = %d, want 4 (2 shards × 2 replicas)", pays)
				}
				acts = h.answer(2, l1, 3) // replay of another worker's lease
				if count(acts, Reject) != 1 || count(acts, Pay) != 0 {
					h.t.Fatalf("replay: %v", acts)
				}
			},
		},
		{
			name: "result for a lease held by another worker is rejected, the lease survives",
			script: func(h *harness) {
				h.join(1, 1, 1)
				h.join(2, 2, 1)
				h.submit("j", 0, 3)
				l1 := h.leases(1)[0]
				acts := h.record(h.s.Result(h.now, 2, l1, nil))
				if count(acts, Reject) != 1 {
					h.t.Fatalf("foreign lease: %v", acts)
				}
				if h.s.OpenLeases() != 2 {
					h.t.Fatalf("open leases = %d, want 2", h.s.OpenLeases())
				}
			},
		},
		{
			name: "worker vanishing mid-shard gets its replica re-issued",
			script: func(h *harness) {
				h.join(1, 1, 1)
				h.join(2, 2, 1)
				h.submit("j", 0, 9)
				h.leave(1)
				acts := h.join(3, 3, 1)
				if count(acts, Assign) != 1 {
					h.t.Fatalf("re-issue: %v", acts)
				}
				h.respond(2, 0)
				acts = h.respond(3, 0)
				if count(acts, JobDone) != 1 {
					h.t.Fatalf("job not done: %v", acts)
				}
			},
		},
		{
			name: "errors count against their workers; three addresses, two of them trusted, with the same error fail the shard",
			script: func(h *harness) {
				h.join(1, 1, 1)
				h.join(2, 2, 1)
				trustUp(h, 10) // addresses 1 and 2 are trusted
				h.leave(1)
				h.leave(2)
				h.join(3, 3, 1)
				h.join(4, 4, 1)
				h.join(5, 5, 1)
				h.submit("j", 1, 2)
				errAll := func(ws ...WorkerID) {
					for _, w := range ws {
						for _, l := range h.leases(w) {
							delete(h.open[w], l)
							h.record(h.s.WorkerError(h.now, w, l, "out of memory"))
						}
					}
				}
				for range 4 {
					errAll(3, 4, 5) // three untrusted addresses: no evidence
				}
				if a := find(h.log, JobFailed); a != nil {
					h.t.Fatalf("untrusted errors failed the job: %v", a)
				}
				if h.s.Stats().Errors < 3 || h.s.reps[addr(3)].strikes == 0 {
					h.t.Fatalf("errors not counted against their workers: %+v", h.s.Stats())
				}
				h.join(6, 1, 1) // a trusted address comes back
				for range 4 {
					errAll(6, 3, 4, 5)
				}
				if a := find(h.log, JobFailed); a != nil {
					h.t.Fatalf("one trusted address and untrusted ones failed the job: %v", a)
				}
				if ok, _ := h.s.Trusted(addr(1)); ok {
					h.t.Fatal("the trusted address that reported an error is still trusted")
				}
				h.join(7, 2, 1) // and the other
				for range 4 {
					errAll(7, 6, 3, 4, 5)
				}
				a := find(h.log, JobFailed)
				if a == nil || !strings.Contains(a.Reason, "2 of them trusted, with the same error: worker error: out of memory") {
					h.t.Fatalf("job failure: %v", h.log)
				}
			},
		},
		{
			name: "gross cheat is caught by the self-check, banned, forfeited, rejoins under a new address",
			script: func(h *harness) {
				h.join(1, 1, 1)
				h.join(2, 2, 1)
				h.submit("j", 0, 10)
				acts := h.respond(1, 1000)
				if find(acts, Ban) == nil || find(acts, Forfeit) == nil || find(acts, Reject) == nil {
					h.t.Fatalf("cheat not caught: %v", acts)
				}
				if !h.s.Caught(addr(1)) {
					h.t.Fatal("address 1 not marked caught")
				}
				acts = h.join(3, 1, 1)
				if find(acts, Ban) == nil || count(acts, Assign) != 0 {
					h.t.Fatalf("caught address rejoined and got work: %v", acts)
				}
				acts = h.join(4, 4, 1) // same cheater, new identity
				if count(acts, Assign) != 1 {
					h.t.Fatalf("new identity got no work: %v", acts)
				}
				h.respond(2, 0)
				acts = h.respond(4, 0)
				if count(acts, JobDone) != 1 {
					h.t.Fatalf("job not done after replacement: %v", acts)
				}
			},
		},
		{
			name: "a subtle disagreement is settled by recompute: the wrong result is caught, the right one accepted",
			script: func(h *harness) {
				h.join(1, 1, 1)
				h.join(2, 2, 1)
				h.submit("j", 0, 10)
				h.respond(1, 0.25)
				acts := h.respond(2, 5) // subtle: passes self-check, disagrees
				if b := find(acts, Ban); b == nil || b.Address != addr(2) || !strings.Contains(b.Reason, "recomputed") {
					h.t.Fatalf("wrong result's author not caught: %v", acts)
				}
				a := find(acts, Accept)
				if a == nil || len(a.Vouchers) != 1 || a.Vouchers[0] != addr(1) || a.Outputs[0].Data[0] != 10.25 || !strings.Contains(a.Method, "settled") {
					h.t.Fatalf("right result not accepted at once: %v", acts)
				}
				if n := h.s.Stats().TieBreakers; n != 0 {
					h.t.Fatalf("%d tie-breakers asked", n)
				}
			},
		},
		{
			name: "forced replication 3 waits for three distinct addresses",
			script: func(h *harness) {
				h.join(1, 1, 2)
				h.join(2, 2, 2)
				acts := h.submit("j", 3, 1)
				if count(acts, Assign) != 2 {
					h.t.Fatalf("assigns: %v", acts)
				}
				h.respond(1, 0)
				if acts := h.respond(2, 0); count(acts, Accept) != 0 {
					h.t.Fatal("accepted with 2 of 3")
				}
				h.join(3, 3, 1)
				if acts := h.respond(3, 0); find(acts, Accept) == nil {
					h.t.Fatal("not accepted with 3 of 3")
				}
			},
		},
		{
			name: "replicas all wrong where recomputed are all caught, and the shard asks again",
			script: func(h *harness) {
				h.join(1, 1, 1)
				h.join(2, 2, 1)
				h.submit("j", 0, 50)
				h.respond(1, 5)
				acts := h.respond(2, 10)
				if !h.s.Caught(addr(1)) || !h.s.Caught(addr(2)) || find(acts, Accept) != nil {
					h.t.Fatalf("want both caught, nothing accepted: %v", acts)
				}
				h.join(3, 3, 1)
				h.join(4, 4, 1)
				h.respond(3, 0)
				if acts := h.respond(4, 0); find(acts, JobDone) == nil {
					h.t.Fatalf("job not done by two new replicas: %v", acts)
				}
			},
		},
		{
			name:   "expiries count against their workers, not the shard",
			config: func(c *Config) { c.LeaseTimeout = time.Second; c.MaxStrikes = 3 },
			script: func(h *harness) {
				h.join(1, 1, 4)
				h.join(2, 2, 4)
				h.submit("j", 0, 1)
				for range 5 {
					h.advance(2 * time.Second)
				}
				if a := find(h.log, JobFailed); a != nil {
					h.t.Fatalf("expiries of untrusted workers failed the job: %v", a)
				}
				if h.s.OpenLeases() != 0 || count(h.log, Assign) != 6 {
					h.t.Fatalf("want 3 leases each before their strikes stop them, got %d assigns, %d open", count(h.log, Assign), h.s.OpenLeases())
				}
				h.join(3, 3, 1)
				h.join(4, 4, 1)
				h.respond(3, 0)
				if acts := h.respond(4, 0); find(acts, JobDone) == nil {
					h.t.Fatalf("job not done by two new workers: %v", acts)
				}
			},
		},
		{
			name: "prefetch window: a worker holds up to its window",
			script: func(h *harness) {
				h.join(1, 1, 3)
				acts := h.submit("j", 0, 1, 2, 3, 4, 5)
				if count(acts, Assign) != 3 {
					h.t.Fatalf("assigns = %d, want window 3", count(acts, Assign))
				}
				acts = h.answer(1, h.leases(1)[0], 0)
				_ = acts
				if len(h.open[1]) != 3 {
					h.t.Fatalf("window not refilled: %d open", len(h.open[1]))
				}
			},
		},
		{
			name:   "heavy shards go only to native GPU workers; they wait until one joins",
			config: func(c *Config) { c.HeavyFLOPs = 5 },
			script: func(h *harness) {
				h.join(1, 1, 2)
				h.join(2, 2, 2)
				acts := h.submit("j", 0, 1)
				if count(acts, Assign) != 0 {
					h.t.Fatalf("heavy shard sent to a CPU worker: %v", acts)
				}
				acts = h.record(h.s.WorkerJoined(h.now, Worker{ID: 3, Address: addr(3), Backend: BackendNativeGPU, Window: 2}))
				if count(acts, Assign) != 1 {
					h.t.Fatalf("GPU worker got %v", acts)
				}
			},
		},
		{
			name: "a shard larger than a worker's limit is never sent to it",
			script: func(h *harness) {
				h.record(h.s.WorkerJoined(h.now, Worker{ID: 1, Address: addr(1), Backend: BackendWebGPU, Window: 2, MaxShardBytes: 4}))
				h.record(h.s.WorkerJoined(h.now, Worker{ID: 2, Address: addr(2), Backend: BackendCPU, Window: 2}))
				acts := h.submit("j", 1, 1)
				if a := find(acts, Assign); a == nil || a.Worker != 2 {
					h.t.Fatalf("want the shard on worker 2: %v", acts)
				}
			},
		},
		{
			name: "cancelled job drops its leases",
			script: func(h *harness) {
				h.join(1, 1, 2)
				h.join(2, 2, 2)
				h.submit("j", 0, 1, 2)
				acts := h.record(h.s.CancelJob(h.now, "j"))
				if count(acts, Cancel) != 4 || find(acts, JobFailed) == nil {
					h.t.Fatalf("cancel: %v", acts)
				}
			},
		},
		{
			name: "a frame of results: each judged in order, the window refilled once",
			script: func(h *harness) {
				h.join(1, 1, 3)
				h.join(2, 2, 3)
				h.submit("j", 1, 1, 2, 3, 4, 5, 6, 7, 8, 9)
				var batch []LeaseResult
				for _, l := range sortedLeases(h, 1) {
					batch = append(batch, LeaseResult{Lease: l, Outputs: []*tensor.Tensor{{Shape: []int{1}, Data: []float32{h.open[1][l].Inputs[0].Data[0]}}}})
					delete(h.open[1], l)
				}
				batch = append(batch, LeaseResult{Lease: batch[0].Lease, Outputs: batch[0].Outputs}) // replayed
				acts := h.record(h.s.Results(h.now, 1, batch))
				if count(acts, Accept) != 3 || count(acts, Pay) != 3 {
					h.t.Fatalf("want the 3 results accepted and paid: %v", acts)
				}
				if a := find(acts, Reject); a == nil || a.Lease != batch[0].Lease || count(acts, Reject) != 1 {
					h.t.Fatalf("want the replayed result rejected: %v", acts)
				}
				if got := len(h.open[1]); got != 3 {
					h.t.Fatalf("worker 1 holds %d leases after the frame, want its window of 3 refilled", got)
				}
			},
		},
		{
			name: "a frame of results whose first is caught: the rest are refused, nothing refills the banned worker",
			script: func(h *harness) {
				h.join(1, 1, 3)
				h.join(2, 2, 3)
				h.submit("j", 1, 1, 2, 3, 4, 5, 6, 7, 8, 9)
				var batch []LeaseResult
				for i, l := range sortedLeases(h, 1) {
					v := h.open[1][l].Inputs[0].Data[0]
					if i == 0 {
						v += 10 * grossDelta // fails the self-check
					}
					batch = append(batch, LeaseResult{Lease: l, Outputs: []*tensor.Tensor{{Shape: []int{1}, Data: []float32{v}}}})
				}
				acts := h.record(h.s.Results(h.now, 1, batch))
				if find(acts, Ban) == nil || count(acts, Accept) != 0 || count(acts, Reject) != 3 {
					h.t.Fatalf("want a ban, no accept and all 3 results refused: %v", acts)
				}
				for _, a := range acts {
					if a.Kind == Assign && a.Worker == 1 {
						h.t.Fatalf("the banned worker was given lease %d", a.Lease)
					}
				}
			},
		},
		{
			name: "an unverifiable shard fails its job with the reason; nobody is caught or paid",
			script: func(h *harness) {
				h.join(1, 1, 1)
				h.join(2, 2, 1)
				inf := float32(math.Inf(1))
				h.submit("j", 0, inf) // honest results overflow: +Inf
				acts := h.respond(1, 0)
				if a := find(acts, JobFailed); a == nil || !strings.Contains(a.Reason, "shard 0 cannot be verified") || !strings.Contains(a.Reason, "NaN or ±Inf") {
					h.t.Fatalf("want the job failed as unverifiable: %v", acts)
				}
				if r := find(acts, Reject); r == nil || r.Worker != 1 || !strings.Contains(r.Reason, "cannot be verified") {
					h.t.Fatalf("want worker 1's result refused as unverifiable: %v", acts)
				}
				if c := find(acts, Cancel); c == nil || c.Worker != 2 {
					h.t.Fatalf("want worker 2's replica cancelled: %v", acts)
				}
				for _, k := range []ActionKind{Ban, Forfeit, Pay, Accept} {
					if n := count(h.log, k); n != 0 {
						h.t.Fatalf("%d %v actions for an unverifiable shard: %v", n, k, h.log)
					}
				}
				if h.s.Caught(addr(1)) || h.s.Caught(addr(2)) || h.s.OpenLeases() != 0 {
					h.t.Fatalf("caught 1=%v 2=%v, %d leases open", h.s.Caught(addr(1)), h.s.Caught(addr(2)), h.s.OpenLeases())
				}
				h.submit("next", 0, 3) // both workers still get work
				h.respond(1, 0)
				if acts := h.respond(2, 0); find(acts, JobDone) == nil {
					h.t.Fatalf("next job not done: %v", acts)
				}
			},
		},
		{
			name: "audit leases are counted exactly and cancelled with their job",
			script: func(h *harness) {
				h.join(1, 1, 1)
				h.join(2, 2, 1)
				h.submit("a", 0, 5)
				h.respond(1, 0)
				h.respond(2, 0) // accepted without a trusted voucher: audited
				h.join(3, 3, 1)
				acts := h.advance(DefaultConfig().AuditWait) // no trusted worker: anyone audits
				if count(acts, Assign) != 1 || len(h.open[3]) != 1 {
					h.t.Fatalf("want the audit on worker 3: %v", acts)
				}
				h.respond(3, 0)
				h.checkLeaseCounts()
				h.leave(3)

				h.submit("j", 0, 10, 20) // both workers take shard 0
				h.answer(1, h.leases(1)[0], 10)
				h.answer(2, h.leases(2)[0], 10) // shard 0 accepted; shard 1 taken by both
				if len(h.open[1]) != 1 || len(h.open[2]) != 1 {
					h.t.Fatalf("want shard 1 on workers 1 and 2: %v", h.open)
				}
				h.advance(DefaultConfig().AuditWait)
				acts = h.join(4, 3, 1)
				if count(acts, Assign) != 1 || len(h.open[4]) != 1 {
					h.t.Fatalf("want shard 0's audit on worker 4: %v", acts)
				}
				h.checkLeaseCounts()
				acts = h.record(h.s.CancelJob(h.now, "j"))
				if count(acts, Cancel) != 3 || find(acts, JobFailed) == nil {
					h.t.Fatalf("want 3 cancels (2 replicas, 1 audit) and the job failed: %v", acts)
				}
				if n := h.s.OpenLeases(); n != 0 {
					h.t.Fatalf("%d leases open after the cancel", n)
				}
				h.checkLeaseCounts()
			},
		},
		{
			name: "a replica that errs is not handed straight back to the same worker while another could take it",
			script: func(h *harness) {
				h.join(1, 1, 1)
				h.submit("j", 1, 5)
				h.join(2, 2, 1)
				h.submit("b", 1, 6) // worker 2 is busy with it
				l := h.leases(1)[0]
				delete(h.open[1], l)
				acts := h.record(h.s.WorkerError(h.now, 1, l, "out of memory"))
				if a := find(acts, Assign); a != nil {
					h.t.Fatalf("the failed replica went straight back out: %v", acts)
				}
				acts = h.answer(2, h.leases(2)[0], 6) // worker 2 finishes "b" and takes "j"
				if a := find(acts, JobDone); a == nil || a.Job != "b" {
					h.t.Fatalf("b not done: %v", acts)
				}
				if a := find(acts, Assign); a == nil || a.Worker != 2 || a.Job != "j" || len(h.open[1]) != 0 {
					h.t.Fatalf("want j on worker 2 only: %v", acts)
				}
				h.respond(2, 0)
				if n := count(h.log, JobDone); n != 2 {
					h.t.Fatalf("j not done: %v", h.log)
				}
			},
		},
		{
			name:   "a worker alone may retry the replica it failed until its strikes stop it; its errors never fail the shard",
			config: func(c *Config) { c.MaxStrikes = 3 },
			script: func(h *harness) {
				h.join(1, 1, 1)
				h.submit("j", 1, 5)
				for range 3 {
					ls := h.leases(1)
					if len(ls) != 1 {
						h.t.Fatalf("worker 1 holds %d leases, want the retry: %v", len(ls), h.log)
					}
					delete(h.open[1], ls[0])
					h.record(h.s.WorkerError(h.now, 1, ls[0], "out of memory"))
				}
				if len(h.leases(1)) != 0 || find(h.log, JobFailed) != nil {
					h.t.Fatalf("want no more work for worker 1 and the job still running: %v", h.log)
				}
				if acts := h.join(2, 2, 1); find(acts, Assign) == nil {
					h.t.Fatalf("a new worker did not get the shard: %v", acts)
				}
				if acts := h.respond(2, 0); find(acts, JobDone) == nil {
					h.t.Fatalf("job not done: %v", acts)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.script(newHarness(t, tc.config))
		})
	}
}

func TestRoutingMixedFleet(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.HeavyFLOPs = 50 })
	h.record(h.s.WorkerJoined(h.now, Worker{ID: 1, Address: addr(1), Backend: BackendNativeGPU, Window: 8}))
	h.record(h.s.WorkerJoined(h.now, Worker{ID: 2, Address: addr(2), Backend: BackendNativeGPU, Window: 8}))
	h.record(h.s.WorkerJoined(h.now, Worker{ID: 3, Address: addr(3), Backend: BackendWebGPU, Window: 8, MaxBufferBytes: 16}))
	h.record(h.s.WorkerJoined(h.now, Worker{ID: 4, Address: addr(4), Backend: BackendCPU, Window: 8}))
	heavy := valueTask(1)
	heavy.FLOPs = 100
	big := valueTask(2)
	big.MaxTensorBytes = 64 // over worker 3's buffer limit
	light := valueTask(3)
	acts := h.record(h.s.SubmitJob(h.now, Job{ID: "mix", Tasks: []Task{heavy, big, light, heavy, light}}))
	for _, a := range acts {
		if a.Kind != Assign {
			continue
		}
		switch {
		case a.Task.FLOPs > 50 && a.Worker != 1 && a.Worker != 2:
			t.Fatalf("heavy shard %d sent to worker %d (not a data-center GPU)", a.Shard, a.Worker)
		case a.Task.MaxTensorBytes > 16 && a.Worker == 3:
			t.Fatalf("shard %d with a 64-byte tensor sent to a worker whose buffers hold 16", a.Shard)
		}
	}
	for range 20 {
		for w := WorkerID(1); w <= 4; w++ {
			h.respond(w, 0)
		}
	}
	if find(h.log, JobDone) == nil {
		t.Fatal("mixed job did not finish")
	}
	if h.s.NativeGPUs() != 2 {
		t.Fatalf("native GPUs = %d", h.s.NativeGPUs())
	}
}

// sortedLeases returns worker w's open leases in the order they were granted.
func sortedLeases(h *harness, w WorkerID) []LeaseID {
	ls := h.leases(w)
	slices.Sort(ls)
	return ls
}
