package sim

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/neurolov/neurolov/coordinator/planner"
	"github.com/neurolov/neurolov/coordinator/scheduler"
	"github.com/neurolov/neurolov/coordinator/verify"
	"github.com/neurolov/neurolov/internal/rusage"
	"github.com/neurolov/neurolov/shaders"
	"github.com/neurolov/neurolov/tensor"
)

// FleetConfig configures a simulated fleet run: the real scheduler and the
// real verifier, driven by simulated workers without a network.
type FleetConfig struct {
	Workers int
	// Shards is how many shards to run, half matmul (512×512 tiles) and
	// half mlp-infer (784-512-256-10, batch 256).
	Shards int
	// Cheaters is the fraction of cheating workers; Rate the fraction of
	// their shards they cheat on.
	Cheaters, Rate float64
	// Disconnect is the probability per result that some worker drops and
	// reconnects (its leases are re-issued).
	Disconnect float64
	// MatmulK is the inner dimension of the matmul jobs (default 256).
	MatmulK int
	// Rejoins is how many times a caught cheater comes back under a new
	// address (identities are free); a negative value means forever.
	Rejoins int
	// Fleet, when set, is the fleet itself (RingFleet, say); Workers,
	// Cheaters and Rate are then ignored.
	Fleet []*Cheater
	Seed  uint64
	// Compute runs a shard honestly (the fastest CPU backend present).
	Compute func(kernel string, inputs []*tensor.Tensor) ([]*tensor.Tensor, error)
	// Checker judges results (server.NewChecker in production).
	Checker scheduler.Checker
	// Scheduler configures the state machine (default DefaultConfig).
	Scheduler *scheduler.Config
	// Log, when set, is told when a cheater is caught.
	Log func(format string, args ...any)
	// Burst is how many results reach the scheduler together, in one
	// ResultBatches, as a loaded coordinator hands it a burst of result
	// frames (default 1: each result alone). Results are gathered as
	// they are computed and handed over when Burst are waiting, and
	// before any other event (a tick, a disconnection) or a stall.
	Burst int
	// Baseline, when set, is called on the fleet's thread every
	// baselineEvery steps of the run, so that a reference cost can be
	// sampled under the same conditions as the verification it is
	// compared with; its CPU is not counted in the report.
	Baseline func()
}

// baselineEvery is the steps between two calls of FleetConfig.Baseline.
const baselineEvery = 1000

// FleetReport is what a fleet run measured.
type FleetReport struct {
	Shards       int
	Replicas     int // results computed for shards and canaries
	ReplicasLast int // results computed while the last half of the shards were accepted
	ShardsLast   int
	Corrections  int
	WrongLeft    int // final outputs that disagree with the reference
	AboveFloor   int // accepted results with an error above the Freivalds floor
	Caught       int
	CaughtAt     []int // shard count at which each catch happened
	// HonestBanned counts honest workers banned: each is a verification
	// failure, whatever else the run shows.
	HonestBanned int
	// Cheaters counts the fleet's workers that cheated at least once;
	// Uncaught those of them never caught (under any of their addresses).
	Cheaters, Uncaught int
	Rejoins            int
	VerifyCPU          time.Duration // coordinator CPU in Checker calls
	SchedulerCPU       time.Duration // coordinator CPU in the scheduler, checks included
	JobsFailed         int
	FailReasons        []string
	CanaryResults      int
	Audits             int
	// Stats are the scheduler's counters at the end, and at the moment
	// half the shards had been accepted.
	Stats, StatsAtHalf scheduler.Stats
}

// timedChecker measures the thread CPU spent in a Checker.
type timedChecker struct {
	inner scheduler.Checker
	cpu   time.Duration
}

func (t *timedChecker) Check(task *scheduler.Task, out []*tensor.Tensor, rng *rand.Rand) (scheduler.Verdict, string) {
	start := rusage.Thread()
	v, why := t.inner.Check(task, out, rng)
	t.cpu += rusage.Thread() - start
	return v, why
}

// CheckAll times the inner Checker's CheckAll, or its Checks one by one
// when it is no scheduler.BatchChecker.
func (t *timedChecker) CheckAll(ts []*scheduler.Task, outputs [][]*tensor.Tensor, rng *rand.Rand) []scheduler.Checked {
	start := rusage.Thread()
	defer func() { t.cpu += rusage.Thread() - start }()
	if bc, ok := t.inner.(scheduler.BatchChecker); ok {
		return bc.CheckAll(ts, outputs, rng)
	}
	res := make([]scheduler.Checked, len(ts))
	for i := range ts {
		res[i].Verdict, res[i].Reason = t.inner.Check(ts[i], outputs[i], rng)
	}
	return res
}

func (t *timedChecker) Agree(task *scheduler.Task, a, b []*tensor.Tensor) bool {
	start := rusage.Thread()
	ok := t.inner.Agree(task, a, b)
	t.cpu += rusage.Thread() - start
	return ok
}

func (t *timedChecker) Settle(task *scheduler.Task, outs [][]*tensor.Tensor, rng *rand.Rand) scheduler.Settlement {
	start := rusage.Thread()
	st := t.inner.Settle(task, outs, rng)
	t.cpu += rusage.Thread() - start
	return st
}

func (t *timedChecker) Confirm(task *scheduler.Task, out []*tensor.Tensor, rng *rand.Rand) bool {
	start := rusage.Thread()
	ok := t.inner.Confirm(task, out, rng)
	t.cpu += rusage.Thread() - start
	return ok
}

func (t *timedChecker) Doable(task *scheduler.Task) error { return t.inner.Doable(task) }

func (t *timedChecker) Canary(task *scheduler.Task, out []*tensor.Tensor, rng *rand.Rand) (*scheduler.Task, []*tensor.Tensor) {
	start := rusage.Thread()
	c, e := t.inner.Canary(task, out, rng)
	t.cpu += rusage.Thread() - start
	return c, e
}

type simWorker struct {
	rejoins int
	cheated bool // it cheated at least once
	caught  bool // under any of its addresses
	id      scheduler.WorkerID
	addr    scheduler.Address
	cheat   *Cheater
	leases  []scheduler.Action // open assigns, oldest first
	offline bool
}

type dataset struct {
	kernel string
	shards []planner.Shard
	ref    [][]*tensor.Tensor
}

type jobInfo struct{ ds *dataset }

type shardRef struct {
	job   scheduler.JobID
	index int
}

// RunFleet runs the simulation. It must be called from one goroutine; it
// locks itself to its OS thread so that thread CPU time is the
// coordinator's.
func RunFleet(cfg FleetConfig) (FleetReport, error) {
	if cfg.MatmulK == 0 {
		cfg.MatmulK = 256
	}
	scfg := scheduler.DefaultConfig()
	if cfg.Scheduler != nil {
		scfg = *cfg.Scheduler
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 99))
	tc := &timedChecker{inner: cfg.Checker}
	sched := scheduler.New(scfg, rand.New(rand.NewPCG(cfg.Seed, 3)), tc)
	now := time.Unix(1_700_000_000, 0)

	// Data sets: a few distinct jobs of each kind, cycled; reference
	// outputs computed once per distinct shard.
	var sets []*dataset
	const distinct = 4
	for d := 0; d < distinct; d++ {
		k := cfg.MatmulK
		a, b := randTensor(rng, 1, 1024, k), randTensor(rng, 1, k, 1024)
		mm, err := planner.Plan(shaders.Matmul, []*tensor.Tensor{a, b}, planner.Options{TileRows: 512, TileCols: 512})
		if err != nil {
			return FleetReport{}, err
		}
		sets = append(sets, &dataset{kernel: shaders.Matmul, shards: mm})
		x := randTensor(rng, 1, 1024, 784)
		in := []*tensor.Tensor{x,
			randTensor(rng, 0.05, 784, 512), randTensor(rng, 0.1, 512),
			randTensor(rng, 0.05, 512, 256), randTensor(rng, 0.1, 256),
			randTensor(rng, 0.05, 256, 10), randTensor(rng, 0.1, 10)}
		mlp, err := planner.Plan(shaders.MLPInfer, in, planner.Options{BatchRows: 256})
		if err != nil {
			return FleetReport{}, err
		}
		sets = append(sets, &dataset{kernel: shaders.MLPInfer, shards: mlp})
	}
	for _, ds := range sets {
		ds.ref = make([][]*tensor.Tensor, len(ds.shards))
		for i, sh := range ds.shards {
			out, err := cfg.Compute(sh.Kernel, sh.Inputs)
			if err != nil {
				return FleetReport{}, err
			}
			ds.ref[i] = out
		}
	}

	// Jobs, alternating kinds, until Shards shards.
	jobs := map[scheduler.JobID]*jobInfo{}
	var order []scheduler.JobID
	total := 0
	for n := 0; total < cfg.Shards; n++ {
		ds := sets[n%len(sets)]
		id := scheduler.JobID(fmt.Sprintf("job-%d", n))
		jobs[id] = &jobInfo{ds: ds}
		order = append(order, id)
		total += len(ds.shards)
	}

	// Workers.
	fleet := cfg.Fleet
	if fleet == nil {
		fleet = Mix(cfg.Workers, cfg.Cheaters, cfg.Rate, cfg.Seed)
	}
	workers := make([]*simWorker, len(fleet))
	byID := map[scheduler.WorkerID]*simWorker{}
	byAddr := map[scheduler.Address]*simWorker{}
	var nextID scheduler.WorkerID
	newAddr := func() scheduler.Address {
		var a scheduler.Address
		for i := range a {
			a[i] = byte(rng.UintN(256))
		}
		return a
	}
	final := map[shardRef][]*tensor.Tensor{}
	rep := FleetReport{Shards: total}
	accepted := 0
	half := total / 2
	resultsAtHalf := -1
	judge := &verify.Verifier{} // reused so that its input cache helps
	var apply func(acts []scheduler.Action)
	join := func(w *simWorker) {
		nextID++
		w.id = nextID
		w.offline = false
		w.leases = w.leases[:0]
		byID[w.id] = w
		byAddr[w.addr] = w
		apply(sched.WorkerJoined(now, scheduler.Worker{ID: w.id, Address: w.addr, Backend: scheduler.BackendCPU, Window: 4}))
	}
	apply = func(acts []scheduler.Action) {
		// Copy first: join below re-enters the scheduler.
		batch := append([]scheduler.Action(nil), acts...)
		var rejoin []*simWorker
		defer func() {
			for _, w := range rejoin {
				join(w)
			}
		}()
		for _, a := range batch {
			switch a.Kind {
			case scheduler.Assign:
				if w := byID[a.Worker]; w != nil && !w.offline {
					w.leases = append(w.leases, a)
				}
			case scheduler.Cancel:
				if w := byID[a.Worker]; w != nil {
					for i, l := range w.leases {
						if l.Lease == a.Lease {
							w.leases = append(w.leases[:i], w.leases[i+1:]...)
							break
						}
					}
				}
			case scheduler.Accept, scheduler.Correct:
				ref := shardRef{a.Job, a.Shard}
				final[ref] = a.Outputs
				ji := jobs[a.Job]
				j := Judge(judge, ji.ds.kernel, ji.ds.shards[a.Shard].Inputs, a.Outputs, ji.ds.ref[a.Shard])
				if j.AboveFloor {
					rep.AboveFloor++
				}
				if a.Kind == scheduler.Accept {
					accepted++
					if accepted == half {
						rep.StatsAtHalf = sched.Stats()
						resultsAtHalf = rep.StatsAtHalf.Results
					}
				}
			case scheduler.Ban:
				w := byAddr[a.Address]
				if w == nil {
					continue
				}
				rep.CaughtAt = append(rep.CaughtAt, accepted)
				w.caught = true
				if w.cheat.Kind == Honest {
					rep.HonestBanned++
				}
				if cfg.Log != nil {
					cfg.Log("caught %s (%s) after %d shards accepted: %s", a.Address.String()[:10], w.cheat.Kind, accepted, a.Reason)
				}
				// Identities are free: it comes back under a new address.
				delete(byAddr, w.addr)
				delete(byID, w.id)
				if cfg.Rejoins >= 0 && w.rejoins >= cfg.Rejoins {
					w.offline = true
					w.leases = nil
					continue
				}
				w.rejoins++
				w.addr = newAddr()
				rep.Rejoins++
				rejoin = append(rejoin, w)
			case scheduler.JobFailed:
				rep.FailReasons = append(rep.FailReasons, string(a.Job)+": "+a.Reason)
			}
		}
	}
	for i, c := range fleet {
		w := &simWorker{addr: newAddr(), cheat: c}
		workers[i] = w
		join(w)
	}
	startCPU := rusage.Thread()
	for _, id := range order {
		ds := jobs[id].ds
		tasks := make([]scheduler.Task, len(ds.shards))
		for i, sh := range ds.shards {
			tasks[i] = scheduler.Task{Kernel: sh.Kernel, Inputs: sh.Inputs, FLOPs: sh.FLOPs, Bytes: sh.Bytes}
		}
		apply(sched.SubmitJob(now, scheduler.Job{ID: id, Tasks: tasks}))
	}

	var baselineCPU time.Duration
	// Drive: answer one lease of a random busy worker per step, handing
	// the results to the scheduler Burst at a time.
	var pending []scheduler.WorkerResults
	handOver := func() {
		if len(pending) > 0 {
			apply(sched.ResultBatches(now, pending))
			clear(pending) // hold no outputs
			pending = pending[:0]
		}
	}
	stall := 0
	for step := 0; ; step++ {
		if len(pending) >= max(cfg.Burst, 1) {
			handOver()
		}
		st := sched.Stats()
		if st.JobsDone+st.JobsFailed == len(order) && sched.OpenLeases() == 0 {
			break
		}
		now = now.Add(time.Millisecond)
		if cfg.Baseline != nil && step%baselineEvery == 0 {
			b0 := rusage.Thread()
			cfg.Baseline()
			baselineCPU += rusage.Thread() - b0
		}
		if step%64 == 0 {
			handOver()
			apply(sched.Tick(now))
		}
		var busy []*simWorker
		for _, w := range workers {
			if !w.offline && len(w.leases) > 0 {
				busy = append(busy, w)
			}
		}
		if len(busy) == 0 && len(pending) > 0 {
			handOver() // the last results free the leases that keep the run going
			continue
		}
		if len(busy) == 0 {
			stall++
			now = now.Add(time.Second)
			apply(sched.Tick(now))
			if stall > 10_000 {
				return rep, fmt.Errorf("sim: stalled with %d open leases", sched.OpenLeases())
			}
			continue
		}
		stall = 0
		w := busy[rng.IntN(len(busy))]
		if cfg.Disconnect > 0 && rng.Float64() < cfg.Disconnect {
			// Drop and reconnect under the same address.
			handOver()
			if w.offline || byID[w.id] != w {
				continue // the results just judged got it banned
			}
			delete(byID, w.id)
			w.offline = true
			apply(sched.WorkerLeft(now, w.id))
			join(w)
			continue
		}
		a := w.leases[0]
		w.leases = w.leases[1:]
		outs, err := w.answer(a, jobs, cfg.Compute)
		if err != nil {
			return rep, err
		}
		pending = append(pending, scheduler.WorkerResults{Worker: w.id, Results: []scheduler.LeaseResult{{Lease: a.Lease, Outputs: outs}}})
	}
	rep.SchedulerCPU = rusage.Thread() - startCPU - baselineCPU
	st := sched.Stats()
	rep.Stats = st
	rep.Replicas = st.Results
	rep.CanaryResults = st.Canaries
	rep.Audits = st.Audits
	if resultsAtHalf >= 0 {
		rep.ReplicasLast = st.Results - resultsAtHalf
		rep.ShardsLast = total - half
	}
	rep.Corrections = st.Corrections
	rep.Caught = st.Caught
	rep.JobsFailed = st.JobsFailed
	rep.VerifyCPU = tc.cpu
	for _, w := range workers {
		if w.cheated {
			rep.Cheaters++
			if !w.caught {
				rep.Uncaught++
			}
		}
	}
	v := &verify.Verifier{}
	for ref, out := range final {
		ds := jobs[ref.job].ds
		if j := Judge(v, ds.kernel, ds.shards[ref.index].Inputs, out, ds.ref[ref.index]); j.Wrong {
			rep.WrongLeft++
		}
	}
	return rep, nil
}

// answer computes w's result for assign a: the reference (honest
// computation, done once per distinct shard) or, for a canary, a fresh
// computation; tampered with when w cheats.
func (w *simWorker) answer(a scheduler.Action, jobs map[scheduler.JobID]*jobInfo,
	compute func(string, []*tensor.Tensor) ([]*tensor.Tensor, error)) ([]*tensor.Tensor, error) {
	var outs []*tensor.Tensor
	if ji := jobs[a.Job]; ji != nil && a.Job != "" {
		outs = cloneAll(ji.ds.ref[a.Shard])
	} else {
		var err error
		if outs, err = compute(a.Task.Kernel, a.Task.Inputs); err != nil {
			return nil, err
		}
	}
	if w.cheat.Tamper(a.Task.Kernel, a.Task.Inputs, outs) {
		w.cheated = true
	}
	return outs, nil
}

func randTensor(rng *rand.Rand, scale float64, shape ...int) *tensor.Tensor {
	t := tensor.New(shape...)
	for i := range t.Data {
		t.Data[i] = float32(rng.NormFloat64() * scale)
	}
	return t
}

func cloneAll(ts []*tensor.Tensor) []*tensor.Tensor {
	out := make([]*tensor.Tensor, len(ts))
	for i, t := range ts {
		out[i] = t.Clone()
	}
	return out
}
