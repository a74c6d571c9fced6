package scheduler

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/neurolov/neurolov/tensor"
)

// Scheduler is the state machine. It is not safe for concurrent use: the
// transport serialises events into it.
type Scheduler struct {
	cfg   Config
	rng   *rand.Rand
	check Checker

	jobs    map[JobID]*job
	jobList []*job // jobs in submission order, for deterministic iteration
	workers map[WorkerID]*worker
	reps    map[Address]*reputation
	leases  map[LeaseID]*lease
	// expiry holds leases in deadline order (deadlines are issue time plus
	// a constant, so issue order is deadline order).
	expiry    []*lease
	nextLease LeaseID

	urgent queue // replicas of shards already started: tie-breakers, re-issues, re-verification
	fresh  queue // first replicas of new shards

	idle    []*worker // workers that may have free window slots (lazily pruned)
	trusted int       // connected trusted workers, for tie-breaker routing
	gpus    int       // connected native-gpu workers, for heavy routing

	canaries []canarySource
	nextCan  int

	now   time.Time // time of the event being handled
	out   []Action
	stats Stats
}

type jobState uint8

const (
	jobRunning jobState = iota
	jobDone
	jobFailed
)

type job struct {
	id          JobID
	shards      []*shard
	replication int
	remaining   int
	state       jobState
}

type shardState uint8

const (
	shardPending shardState = iota
	shardAccepted
)

type shard struct {
	job   *job
	index int
	task  Task
	state shardState

	want      int // agreeing results wanted; 0 until the first lease decides
	queued    int // needs of this shard waiting in a queue
	leased    int // outstanding leases
	attempts  int
	lastError string
	results   []result
	leases    []*lease  // outstanding leases
	tried     []Address // addresses holding a lease or a result: never twice

	accepted []*tensor.Tensor
	vouchers []Address
	reverify bool // verifying again after a voucher was caught
	heavy    bool
}

type result struct {
	addr    Address
	outputs []*tensor.Tensor
}

type lease struct {
	id       LeaseID
	worker   *worker
	shard    *shard
	canary   *canarySource
	task     *Task
	expected []*tensor.Tensor
	deadline time.Time
	done     bool
}

type worker struct {
	Worker
	leases map[LeaseID]*lease
	rep    *reputation
	gone   bool
	idle   bool // listed in Scheduler.idle (removed only by fillAll)
}

type reputation struct {
	run     int // consecutive valid results
	valid   int
	caught  bool
	vouched []*shard  // accepted shards this address vouched for
	conns   []*worker // connected workers with this address
}

type canarySource struct {
	task    *Task
	outputs []*tensor.Tensor
	vouched []Address
}

// New returns a scheduler with cfg, drawing randomness from rng and judging
// results with check.
func New(cfg Config, rng *rand.Rand, check Checker) *Scheduler {
	if cfg.ScanLimit <= 0 {
		cfg.ScanLimit = 256
	}
	if cfg.MaxReplicas < 3 {
		cfg.MaxReplicas = 3
	}
	return &Scheduler{
		cfg:     cfg,
		rng:     rng,
		check:   check,
		jobs:    make(map[JobID]*job),
		workers: make(map[WorkerID]*worker),
		reps:    make(map[Address]*reputation),
		leases:  make(map[LeaseID]*lease),
	}
}

// Stats returns the counters.
func (s *Scheduler) Stats() Stats { return s.stats }

// OpenLeases returns how many leases are outstanding.
func (s *Scheduler) OpenLeases() int { return len(s.leases) }

// Trusted reports whether addr is currently trusted and its run of valid
// results.
func (s *Scheduler) Trusted(addr Address) (bool, int) {
	r := s.reps[addr]
	if r == nil {
		return false, 0
	}
	return !r.caught && r.run >= s.cfg.TrustRun, r.run
}

// Caught reports whether addr has been caught cheating.
func (s *Scheduler) Caught(addr Address) bool {
	r := s.reps[addr]
	return r != nil && r.caught
}

func (s *Scheduler) emit(a Action) { s.out = append(s.out, a) }

func (s *Scheduler) begin(now time.Time) {
	clear(s.out)
	s.out = s.out[:0]
	s.now = now
}

// SubmitJob adds a job and hands its shards to idle workers.
func (s *Scheduler) SubmitJob(now time.Time, j Job) []Action {
	s.begin(now)
	if _, dup := s.jobs[j.ID]; dup || len(j.Tasks) == 0 {
		reason := "duplicate job id"
		if !dup {
			reason = "job has no shards"
		}
		s.emit(Action{Kind: JobFailed, Job: j.ID, Reason: reason})
		return s.out
	}
	jb := &job{id: j.ID, replication: j.Replication, remaining: len(j.Tasks)}
	jb.shards = make([]*shard, len(j.Tasks))
	for i := range j.Tasks {
		sh := &shard{job: jb, index: i, task: j.Tasks[i]}
		sh.heavy = (s.cfg.HeavyFLOPs > 0 && sh.task.FLOPs > s.cfg.HeavyFLOPs) ||
			(s.cfg.HeavyBytes > 0 && sh.task.Bytes > s.cfg.HeavyBytes)
		jb.shards[i] = sh
		s.need(&s.fresh, sh, false)
	}
	s.jobs[j.ID] = jb
	s.jobList = append(s.jobList, jb)
	s.fillAll(now)
	return s.out
}

// WorkerJoined registers a worker and gives it work.
func (s *Scheduler) WorkerJoined(now time.Time, w Worker) []Action {
	s.begin(now)
	rep := s.rep(w.Address)
	if rep.caught {
		s.emit(Action{Kind: Ban, Worker: w.ID, Address: w.Address, Reason: "address was caught returning wrong results"})
		return s.out
	}
	if w.Window < 1 {
		w.Window = 1
	}
	wk := &worker{Worker: w, leases: make(map[LeaseID]*lease), rep: rep}
	s.workers[w.ID] = wk
	rep.conns = append(rep.conns, wk)
	if s.isTrusted(rep) {
		s.trusted++
	}
	if w.Backend == BackendNativeGPU {
		s.gpus++
	}
	s.markIdle(wk)
	s.fill(now, wk)
	return s.out
}

// WorkerLeft removes a worker; its leases are re-issued to others.
func (s *Scheduler) WorkerLeft(now time.Time, id WorkerID) []Action {
	s.begin(now)
	if wk := s.workers[id]; wk != nil {
		s.removeWorker(wk, "worker left")
		s.fillAll(now)
	}
	return s.out
}

func (s *Scheduler) removeWorker(wk *worker, why string) {
	if wk.gone {
		return
	}
	wk.gone = true
	delete(s.workers, wk.ID)
	if i := slices.Index(wk.rep.conns, wk); i >= 0 {
		wk.rep.conns = slices.Delete(wk.rep.conns, i, i+1)
	}
	if s.isTrusted(wk.rep) {
		s.trusted--
	}
	if wk.Backend == BackendNativeGPU {
		s.gpus--
	}
	for _, l := range wk.leases {
		s.dropLease(l)
		if l.shard != nil {
			s.failReplica(l, why)
		}
	}
}

// WorkerError records that a worker could not compute a lease; the replica
// is re-issued (counting as a failed attempt).
func (s *Scheduler) WorkerError(now time.Time, id WorkerID, lid LeaseID, msg string) []Action {
	s.begin(now)
	l := s.leases[lid]
	wk := s.workers[id]
	if l == nil || wk == nil || l.worker != wk {
		return s.out
	}
	s.dropLease(l)
	if l.shard != nil {
		s.failReplica(l, "worker error: "+msg)
	}
	s.fillAll(now)
	return s.out
}

// Tick expires leases whose deadline has passed.
func (s *Scheduler) Tick(now time.Time) []Action {
	s.begin(now)
	n := 0
	for n < len(s.expiry) {
		l := s.expiry[n]
		if !l.done && l.deadline.After(now) {
			break
		}
		n++
		if l.done {
			continue
		}
		s.stats.Expired++
		s.emit(Action{Kind: Cancel, Worker: l.worker.ID, Lease: l.id, Reason: "lease expired"})
		s.dropLease(l)
		if l.shard != nil {
			s.failReplica(l, "lease expired")
		}
	}
	if n > 0 {
		clear(s.expiry[:n])
		s.expiry = s.expiry[n:]
	}
	s.fillAll(now)
	return s.out
}

// Result handles a worker's outputs for a lease.
func (s *Scheduler) Result(now time.Time, id WorkerID, lid LeaseID, outputs []*tensor.Tensor) []Action {
	s.begin(now)
	wk := s.workers[id]
	l := s.leases[lid]
	if wk == nil || l == nil || l.worker != wk {
		s.stats.Unleased++
		s.stats.Rejected++
		why := "no such lease: unknown, expired, already answered or not yours"
		s.emit(Action{Kind: Reject, Worker: id, Lease: lid, Reason: why})
		return s.out
	}
	s.dropLease(l)
	s.stats.Results++
	if l.canary != nil {
		s.canaryResult(wk, l, outputs)
	} else {
		s.shardResult(wk, l, outputs)
	}
	if !wk.gone {
		s.fill(now, wk)
	}
	s.fillAll(now)
	return s.out
}

func (s *Scheduler) canaryResult(wk *worker, l *lease, outputs []*tensor.Tensor) {
	s.stats.Canaries++
	if ok, why := s.check.Check(l.task, outputs, s.rng); !ok {
		s.reject(wk, l, "canary: "+why)
		s.caught(wk.Address, "failed a self-check: "+why)
		return
	}
	if !s.check.Agree(l.task, l.expected, outputs) {
		s.reject(wk, l, "canary answer differs from the known result")
		s.caught(wk.Address, "returned a wrong answer to a shard whose result was known")
		return
	}
	s.valid(wk.rep)
	s.emit(Action{Kind: Pay, Address: wk.Address, FLOPs: l.task.FLOPs})
}

func (s *Scheduler) shardResult(wk *worker, l *lease, outputs []*tensor.Tensor) {
	sh := l.shard
	if (sh.state == shardAccepted && !sh.reverify) || sh.job.state == jobFailed {
		s.reject(wk, l, "shard no longer needs this replica")
		return
	}
	if ok, why := s.check.Check(&sh.task, outputs, s.rng); !ok {
		s.reject(wk, l, why)
		s.caught(wk.Address, "failed a self-check: "+why)
		if sh.state == shardPending {
			s.need(&s.urgent, sh, false)
		}
		return
	}
	sh.results = append(sh.results, result{addr: wk.Address, outputs: outputs})
	if len(sh.results) >= sh.want {
		s.resolve(sh)
	}
}

// resolve decides a shard once it has the results it wanted.
func (s *Scheduler) resolve(sh *shard) {
	n := len(sh.results)
	if n == 1 {
		s.accept(sh, []int{0}, "freivalds+spot, single trusted replica")
		return
	}
	// Find the largest group agreeing with one representative.
	var bestGroup []int
	for i := 0; i < n; i++ {
		group := []int{i}
		for j := 0; j < n; j++ {
			if j != i && s.check.Agree(&sh.task, sh.results[i].outputs, sh.results[j].outputs) {
				group = append(group, j)
			}
		}
		if len(group) > len(bestGroup) {
			bestGroup = group
		}
		if len(group) == n {
			break
		}
	}
	if len(bestGroup) == n {
		s.accept(sh, bestGroup, fmt.Sprintf("freivalds+spot, %d/%d replicas agree", n, n))
		return
	}
	if len(bestGroup) >= 2 && 2*len(bestGroup) > n {
		slices.Sort(bestGroup)
		var minority []Address
		for j := range sh.results {
			if _, in := slices.BinarySearch(bestGroup, j); !in {
				minority = append(minority, sh.results[j].addr)
			}
		}
		s.accept(sh, bestGroup, fmt.Sprintf("freivalds+spot, majority %d/%d", len(bestGroup), n))
		for _, a := range minority {
			s.caught(a, "outvoted by agreeing replicas")
		}
		return
	}
	if n >= s.cfg.MaxReplicas {
		s.failJob(sh.job, fmt.Sprintf("shard %d: %d replicas never reached a majority", sh.index, n))
		return
	}
	sh.want = n + 1
	s.need(&s.urgent, sh, true)
}

func (s *Scheduler) accept(sh *shard, group []int, method string) {
	jb := sh.job
	replicas := len(sh.results)
	rep := sh.results[group[0]].outputs
	vouchers := make([]Address, len(group))
	for i, g := range group {
		vouchers[i] = sh.results[g].addr
	}
	if sh.reverify {
		old, oldVouchers := sh.accepted, sh.vouchers
		sh.reverify = false
		sh.state = shardAccepted
		if !s.check.Agree(&sh.task, old, rep) {
			s.stats.Corrections++
			sh.accepted, sh.vouchers = rep, vouchers
			s.emit(Action{Kind: Correct, Job: jb.id, Shard: sh.index, Outputs: rep, Vouchers: vouchers, Replicas: replicas, Method: "re-verified: " + method})
			for _, a := range oldVouchers {
				s.caught(a, "vouched for a result that re-verification overturned")
			}
		}
		s.payAll(sh, vouchers)
		s.cancelLeases(sh)
		sh.results = nil
		return
	}
	sh.state = shardAccepted
	sh.accepted, sh.vouchers = rep, vouchers
	s.stats.Accepted++
	if len(group) == 1 {
		s.stats.SingleAccepted++
	}
	s.emit(Action{Kind: Accept, Job: jb.id, Shard: sh.index, Outputs: rep, Vouchers: vouchers, Replicas: replicas, Method: method})
	s.payAll(sh, vouchers)
	for _, a := range vouchers {
		r := s.rep(a)
		r.vouched = append(r.vouched, sh)
	}
	if len(group) >= 2 && s.cfg.CanaryPool > 0 {
		s.addCanarySource(canarySource{task: &sh.task, outputs: rep, vouched: vouchers})
	}
	s.cancelLeases(sh)
	sh.results = nil
	jb.remaining--
	if jb.remaining == 0 && jb.state == jobRunning {
		jb.state = jobDone
		s.stats.JobsDone++
		s.emit(Action{Kind: JobDone, Job: jb.id})
	}
}

func (s *Scheduler) payAll(sh *shard, vouchers []Address) {
	for _, a := range vouchers {
		r := s.rep(a)
		if r.caught {
			continue
		}
		s.valid(r)
		s.emit(Action{Kind: Pay, Address: a, Job: sh.job.id, Shard: sh.index, FLOPs: sh.task.FLOPs})
	}
}

func (s *Scheduler) valid(r *reputation) {
	was := s.isTrusted(r)
	r.run++
	r.valid++
	if !was && s.isTrusted(r) {
		s.trusted += len(r.conns)
	}
}

func (s *Scheduler) isTrusted(r *reputation) bool { return !r.caught && r.run >= s.cfg.TrustRun }

// cancelLeases cancels outstanding replicas of an accepted shard.
func (s *Scheduler) cancelLeases(sh *shard) {
	if sh.leased == 0 {
		return
	}
	for _, l := range slices.Clone(sh.leases) {
		s.emit(Action{Kind: Cancel, Worker: l.worker.ID, Lease: l.id, Reason: "shard already verified"})
		s.dropLease(l)
		if !l.worker.gone {
			s.markIdle(l.worker)
		}
	}
}

func (s *Scheduler) reject(wk *worker, l *lease, why string) {
	s.stats.Rejected++
	s.emit(Action{Kind: Reject, Worker: wk.ID, Address: wk.Address, Lease: l.id, Reason: why})
}

// caught bans addr, forfeits its pay and re-verifies what it vouched for.
func (s *Scheduler) caught(addr Address, why string) {
	r := s.rep(addr)
	if r.caught {
		return
	}
	if s.isTrusted(r) {
		s.trusted -= len(r.conns)
	}
	r.caught = true
	r.run = 0
	s.stats.Caught++
	s.emit(Action{Kind: Ban, Address: addr, Reason: why})
	s.emit(Action{Kind: Forfeit, Address: addr, Reason: why})
	for _, wk := range slices.Clone(r.conns) {
		s.removeWorker(wk, "worker banned")
	}
	// Drop its pending results from shards still deciding.
	for _, jb := range s.jobList {
		if jb.state == jobFailed {
			continue
		}
		for _, sh := range jb.shards {
			if (sh.state == shardPending || sh.reverify) && len(sh.results) > 0 {
				k := 0
				for _, res := range sh.results {
					if res.addr != addr {
						sh.results[k] = res
						k++
					}
				}
				if k < len(sh.results) {
					clear(sh.results[k:])
					sh.results = sh.results[:k]
					s.need(&s.urgent, sh, true)
				}
			}
		}
	}
	for _, sh := range r.vouched {
		if sh.state != shardAccepted || sh.reverify || sh.job.state == jobFailed {
			continue
		}
		sh.reverify = true
		sh.want = 2
		sh.results = nil
		sh.tried = nil
		s.need(&s.urgent, sh, true)
		s.need(&s.urgent, sh, true)
	}
	r.vouched = nil
	// Canary sources it vouched for are no longer trusted answers.
	k := 0
	for _, c := range s.canaries {
		if !slices.Contains(c.vouched, addr) {
			s.canaries[k] = c
			k++
		}
	}
	clear(s.canaries[k:])
	s.canaries = s.canaries[:k]
	s.nextCan = 0
}

// failReplica re-issues a replica that produced nothing.
func (s *Scheduler) failReplica(l *lease, why string) {
	sh := l.shard
	if i := slices.Index(sh.tried, l.worker.Address); i >= 0 {
		sh.tried = slices.Delete(sh.tried, i, i+1)
	}
	if sh.job.state == jobFailed || (sh.state == shardAccepted && !sh.reverify) {
		return
	}
	sh.attempts++
	sh.lastError = why
	if sh.attempts >= s.cfg.MaxAttempts {
		s.failJob(sh.job, fmt.Sprintf("shard %d failed %d times; last error: %s", sh.index, sh.attempts, why))
		return
	}
	s.stats.Reissued++
	s.need(&s.urgent, sh, false)
}

func (s *Scheduler) failJob(jb *job, why string) {
	if jb.state != jobRunning {
		// A finished job whose re-verification cannot complete keeps its
		// result; nothing more to do.
		for _, sh := range jb.shards {
			sh.reverify = false
		}
		return
	}
	jb.state = jobFailed
	s.stats.JobsFailed++
	for _, sh := range jb.shards {
		if sh.leased > 0 {
			s.cancelLeases(sh)
		}
		sh.results = nil
	}
	s.emit(Action{Kind: JobFailed, Job: jb.id, Reason: why})
}

// CancelJob fails a job at the client's request.
func (s *Scheduler) CancelJob(now time.Time, id JobID) []Action {
	s.begin(now)
	if jb := s.jobs[id]; jb != nil {
		s.failJob(jb, "cancelled")
	}
	s.fillAll(now)
	return s.out
}

// ForgetJob drops a finished or failed job's state (its shards can no longer
// be re-verified).
func (s *Scheduler) ForgetJob(id JobID) {
	if jb := s.jobs[id]; jb != nil && jb.state != jobRunning {
		delete(s.jobs, id)
		if i := slices.Index(s.jobList, jb); i >= 0 {
			s.jobList = slices.Delete(s.jobList, i, i+1)
		}
	}
}

func (s *Scheduler) rep(a Address) *reputation {
	r := s.reps[a]
	if r == nil {
		r = &reputation{}
		s.reps[a] = r
	}
	return r
}

func (s *Scheduler) dropLease(l *lease) {
	if l.done {
		return
	}
	l.done = true
	delete(s.leases, l.id)
	delete(l.worker.leases, l.id)
	if sh := l.shard; sh != nil {
		sh.leased--
		if i := slices.Index(sh.leases, l); i >= 0 {
			sh.leases = slices.Delete(sh.leases, i, i+1)
		}
	}
	if !l.worker.gone && len(l.worker.leases) < l.worker.Window {
		s.markIdle(l.worker)
	}
}

func (s *Scheduler) addCanarySource(c canarySource) {
	if len(s.canaries) < s.cfg.CanaryPool {
		s.canaries = append(s.canaries, c)
		return
	}
	s.canaries[s.nextCan] = c
	s.nextCan = (s.nextCan + 1) % len(s.canaries)
}

// LeasesOf returns how many leases worker id holds.
func (s *Scheduler) LeasesOf(id WorkerID) int {
	if wk := s.workers[id]; wk != nil {
		return len(wk.leases)
	}
	return 0
}
