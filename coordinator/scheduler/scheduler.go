package scheduler

import (
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
	audits queue // audits of results no trusted worker vouched for, served last

	idle    []*worker // workers that may have free window slots (lazily pruned)
	trusted int       // connected trusted workers, for tie-breaker routing
	gpus    int       // connected native-gpu workers, for heavy routing

	canaries []*canarySource
	nextCan  int

	now   time.Time // time of the event being handled
	out   []Action
	stats Stats

	// prechecked holds the verdicts a BatchChecker gave the results of
	// the batch being judged, by lease, until each is used; the batch
	// leaves it empty.
	prechecked map[LeaseID]Checked
	// Scratch for precheck.
	preTasks  []*Task
	preOuts   [][]*tensor.Tensor
	preLeases []LeaseID
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
	forgotten   bool // dropped by ForgetJob: wants no more replicas
}

// closed reports whether jb wants no more replicas: it failed, or it was
// forgotten (see ForgetJob).
func (jb *job) closed() bool { return jb.state == jobFailed || jb.forgotten }

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

	want       int // agreeing results wanted; 0 until the first lease decides
	base       int // what want was when the first lease decided it
	queued     int // needs of this shard waiting in a queue
	leased     int // outstanding replica leases (audits not counted)
	attempts   int // stalemates (see Config.MaxAttempts)
	departures int // workers that left holding a replica
	lastError  string
	errs       []replicaError // errors reported (see failReplica)
	results    []result
	leases     []*lease             // outstanding leases, audits included
	tried      []Address            // addresses holding a lease or a result: never twice
	failed     map[Address]struct{} // addresses whose replica erred or expired, at most maxShardFailed (see eligible)
	// Inline backing for results, leases and tried: most shards see one or
	// two replicas, and this saves three allocations per shard.
	resultBuf [2]result
	leaseBuf  [2]*lease
	triedBuf  [2]Address

	accepted []*tensor.Tensor
	author   Address // whose outputs accepted are: convicted if they are found wrong
	vouchers []Address
	reverify bool // verifying again after a voucher was caught
	audited  bool // an audit replica agreed with the accepted result
	doubtful bool // a result was Doubtful: never accepted on one worker's word, always audited, never a canary
	// contested: a settlement caught one of its results; those left are
	// audited once decided (see accept)
	contested bool
	heavy     bool
}

// dropResults forgets sh's gathered results, clearing the inline buffer
// too so that no rejected output stays reachable through it.
func (sh *shard) dropResults() {
	clear(sh.results)
	clear(sh.resultBuf[:])
	sh.results = sh.resultBuf[:0]
}

type result struct {
	addr    Address
	outputs []*tensor.Tensor
	// accepted marks the accepted result of a shard being re-verified
	// (addr is then its author).
	accepted bool
	// doubtful marks a result its self-check passed only in part
	// (Doubtful): it earns its author no trust.
	doubtful bool
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
	audit    bool // checks an accepted result
}

type worker struct {
	Worker
	leases []*lease // outstanding, at most Window: a scan beats a map
	rep    *reputation
	gone   bool
	idle   bool // listed in Scheduler.idle (removed only by fillAll)
}

type reputation struct {
	run     int // consecutive valid results
	valid   int
	strikes int // errors and expiries since the last valid result
	caught  bool
	vouched []*shard  // accepted shards this address vouched for
	stale   int       // about how many of them are of closed jobs (see ForgetJob)
	conns   []*worker // connected workers with this address
}

type canarySource struct {
	task    *Task
	outputs []*tensor.Tensor
	vouched []Address
	author  Address // whose outputs these are
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
	shards := make([]shard, len(j.Tasks)) // one allocation for the job
	for i := range j.Tasks {
		sh := &shards[i]
		sh.job, sh.index, sh.task = jb, i, j.Tasks[i]
		sh.results, sh.leases, sh.tried = sh.resultBuf[:0], sh.leaseBuf[:0], sh.triedBuf[:0]
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
	wk := &worker{Worker: w, rep: rep}
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
	for _, l := range slices.Clone(wk.leases) { // dropLease edits wk.leases
		s.dropLease(l)
		if l.shard != nil {
			s.failReplica(l, why, departed)
		}
	}
}

// WorkerError records that a worker could not compute a lease; the replica
// is re-issued. The error counts against the worker (see failure.go); the
// shard fails only when that proves it cannot be done.
func (s *Scheduler) WorkerError(now time.Time, id WorkerID, lid LeaseID, msg string) []Action {
	s.begin(now)
	l := s.leases[lid]
	wk := s.workers[id]
	if l == nil || wk == nil || l.worker != wk {
		return s.out
	}
	s.dropLease(l)
	if l.shard != nil {
		s.failReplica(l, "worker error: "+workerMessage(msg), errored)
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
			s.failReplica(l, "lease expired", expired)
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
	one := [1]LeaseResult{{Lease: lid, Outputs: outputs}}
	return s.Results(now, id, one[:])
}

// LeaseResult is one result a worker returned: the lease it answers and
// the outputs.
type LeaseResult struct {
	Lease   LeaseID
	Outputs []*tensor.Tensor
}

// Results handles several results of one worker, in order, as Result
// would one by one, but refills the worker's window once at the end:
// results arrive in frames of many, and one fill scans the queues once for
// all the leases they free rather than once per lease.
func (s *Scheduler) Results(now time.Time, id WorkerID, rs []LeaseResult) []Action {
	one := [1]WorkerResults{{Worker: id, Results: rs}}
	return s.ResultBatches(now, one[:])
}

// WorkerResults are results one worker returned.
type WorkerResults struct {
	Worker  WorkerID
	Results []LeaseResult
}

// ResultBatches handles the results of several workers, in order, as
// Results would one worker after another, refilling the windows at the
// end. With a BatchChecker, every result of the batch is checked in one
// CheckAll first: a coordinator under load hands the scheduler a burst of
// frames at once, and their checks share their common inputs' reads.
func (s *Scheduler) ResultBatches(now time.Time, batches []WorkerResults) []Action {
	s.begin(now)
	s.precheck(batches)
	for _, b := range batches {
		for _, r := range b.Results {
			s.result(b.Worker, r.Lease, r.Outputs)
		}
	}
	clear(s.prechecked) // verdicts of results turned away unchecked
	for _, b := range batches {
		if wk := s.workers[b.Worker]; wk != nil && !wk.gone {
			s.fill(now, wk)
		}
	}
	s.fillAll(now)
	return s.out
}

// precheck has a BatchChecker check every result of batches that answers
// a lease its worker holds, when there are at least two, and keeps the
// verdicts for result to use. A result judged without a check (its shard
// no longer needs it, an earlier result got its worker banned) just
// leaves its verdict unused.
func (s *Scheduler) precheck(batches []WorkerResults) {
	bc, ok := s.check.(BatchChecker)
	if !ok {
		return
	}
	if s.prechecked == nil {
		s.prechecked = make(map[LeaseID]Checked)
	}
	s.preTasks, s.preOuts, s.preLeases = s.preTasks[:0], s.preOuts[:0], s.preLeases[:0]
	for _, b := range batches {
		wk := s.workers[b.Worker]
		for _, r := range b.Results {
			l := s.leases[r.Lease]
			if _, dup := s.prechecked[r.Lease]; wk == nil || l == nil || l.worker != wk || dup {
				continue // turned away unchecked (a replay: the first copy takes the lease)
			}
			s.prechecked[r.Lease] = Checked{} // seen; filled in below
			s.preTasks = append(s.preTasks, l.task)
			s.preOuts = append(s.preOuts, r.Outputs)
			s.preLeases = append(s.preLeases, r.Lease)
		}
	}
	var res []Checked
	if len(s.preTasks) >= 2 {
		res = bc.CheckAll(s.preTasks, s.preOuts, s.rng)
	}
	if len(res) == len(s.preTasks) {
		for i, c := range res {
			s.prechecked[s.preLeases[i]] = c
		}
	} else { // a lone result: Check it is
		clear(s.prechecked)
	}
	clear(s.preTasks) // hold no tasks or outputs past the batch
	clear(s.preOuts)
}

// verdict is the check of outputs for lease l: precheck's verdict when
// there is one, else the Checker's Check.
func (s *Scheduler) verdict(l *lease, outputs []*tensor.Tensor) (Verdict, string) {
	if c, ok := s.prechecked[l.id]; ok {
		delete(s.prechecked, l.id)
		return c.Verdict, c.Reason
	}
	return s.check.Check(l.task, outputs, s.rng)
}

// result judges one result of worker id (which may have been banned by an
// earlier result of the same batch).
func (s *Scheduler) result(id WorkerID, lid LeaseID, outputs []*tensor.Tensor) {
	wk := s.workers[id]
	l := s.leases[lid]
	if wk == nil || l == nil || l.worker != wk {
		s.stats.Unleased++
		s.stats.Rejected++
		why := "no such lease: unknown, expired, already answered or not yours"
		s.emit(Action{Kind: Reject, Worker: id, Lease: lid, Reason: why})
		return
	}
	s.dropLease(l)
	s.stats.Results++
	switch {
	case l.canary != nil:
		s.canaryResult(wk, l, outputs)
	case l.audit:
		s.auditResult(wk, l, outputs)
	default:
		s.shardResult(wk, l, outputs)
	}
}

// payAll pays the authors of rs, results of sh, and credits their
// reputations (see credit); the accepted result of a re-verification was
// paid when it was accepted, and a caught author is paid nothing.
func (s *Scheduler) payAll(sh *shard, rs []result) {
	for _, res := range rs {
		r := s.rep(res.addr)
		if res.accepted || r.caught {
			continue
		}
		s.credit(r, res.doubtful)
		s.emit(Action{Kind: Pay, Address: res.addr, Job: sh.job.id, Shard: sh.index, FLOPs: sh.task.FLOPs})
	}
}

// credit counts a result of r that was judged right: a valid one raises
// its run of valid results and clears its strikes (see valid); a doubtful
// one, which the self-check passed only in part, is paid but changes
// neither: trust is never earned on what the coordinator could not check.
func (s *Scheduler) credit(r *reputation, doubtful bool) {
	if !doubtful {
		s.valid(r)
	}
}

func (s *Scheduler) valid(r *reputation) {
	was := s.isTrusted(r)
	r.run++
	r.valid++
	r.strikes = 0
	if !was && s.isTrusted(r) {
		s.trusted += len(r.conns)
	}
}

func (s *Scheduler) isTrusted(r *reputation) bool { return !r.caught && r.run >= s.cfg.TrustRun }

// anyTrusted reports whether one of addrs is trusted.
func (s *Scheduler) anyTrusted(addrs []Address) bool {
	for _, a := range addrs {
		if r := s.reps[a]; r != nil && s.isTrusted(r) {
			return true
		}
	}
	return false
}

// cancelLeases cancels the outstanding replicas of sh, and its audits
// when audits is set, telling their workers why.
func (s *Scheduler) cancelLeases(sh *shard, why string, audits bool) {
	if len(sh.leases) == 0 {
		return
	}
	for _, l := range slices.Clone(sh.leases) {
		if l.audit && !audits {
			continue
		}
		s.emit(Action{Kind: Cancel, Worker: l.worker.ID, Lease: l.id, Reason: why})
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
		if jb.closed() {
			continue
		}
		for _, sh := range jb.shards {
			if (sh.state == shardPending || sh.reverify) && len(sh.results) > 0 {
				k := 0
				for _, res := range sh.results {
					// An accepted result under re-verification stays:
					// only a recompute refutes it.
					if res.addr != addr || res.accepted {
						sh.results[k] = res
						k++
					}
				}
				if k < len(sh.results) {
					clear(sh.results[k:])
					sh.results = sh.results[:k]
					s.dropped(sh)
				}
			}
		}
	}
	for _, sh := range r.vouched {
		if sh.state != shardAccepted || sh.reverify || sh.job.closed() {
			continue
		}
		s.reverify(sh, nil)
	}
	r.vouched, r.stale = nil, 0
	// Canary sources it vouched for are no longer trusted answers.
	k := 0
	for _, c := range s.canaries {
		if !slices.Contains(c.vouched, addr) && c.author != addr {
			s.canaries[k] = c
			k++
		}
	}
	clear(s.canaries[k:])
	s.canaries = s.canaries[:k]
	s.nextCan = 0
}

// failShard gives up on sh, for why. A running job fails; a finished one
// keeps its results, and only sh stops being re-verified.
func (s *Scheduler) failShard(sh *shard, why string) {
	if sh.job.state == jobRunning {
		s.failJob(sh.job, why)
		return
	}
	s.endReverify(sh, "re-verification abandoned: "+why)
}

// endReverify stops re-verifying sh, which keeps its accepted result, and
// cancels its outstanding replicas.
func (s *Scheduler) endReverify(sh *shard, why string) {
	if !sh.reverify {
		return
	}
	sh.reverify = false
	s.cancelLeases(sh, why, false)
	sh.dropResults()
}

// failJob fails a running job, cancelling its outstanding replicas; a
// finished job (cancelled by its client) keeps its results but stops
// re-verifying them.
func (s *Scheduler) failJob(jb *job, why string) {
	if jb.state != jobRunning {
		for _, sh := range jb.shards {
			s.endReverify(sh, why)
		}
		return
	}
	jb.state = jobFailed
	s.stats.JobsFailed++
	for _, sh := range jb.shards {
		s.cancelLeases(sh, "job failed: "+why, true)
		sh.dropResults()
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

// ForgetJob drops a finished or failed job's state: its shards are no
// longer re-verified or audited, and results of its outstanding leases are
// refused (they are not cancelled: ForgetJob returns no actions; they
// expire).
func (s *Scheduler) ForgetJob(id JobID) {
	jb := s.jobs[id]
	if jb == nil || jb.state == jobRunning {
		return
	}
	delete(s.jobs, id)
	if i := slices.Index(s.jobList, jb); i >= 0 {
		s.jobList = slices.Delete(s.jobList, i, i+1)
	}
	jb.forgotten = true
	for _, sh := range jb.shards {
		sh.reverify = false
		sh.dropResults()
		sh.accepted = nil
		for _, a := range sh.vouchers {
			if r := s.reps[a]; r != nil {
				r.stale++
			}
		}
	}
	// Each address's list of vouched shards is compacted once about half
	// of it is of closed jobs: amortised O(1) per entry, and forgotten
	// shards (with their outputs) are not held for ever.
	for _, sh := range jb.shards {
		for _, a := range sh.vouchers {
			if r := s.reps[a]; r != nil && r.stale > len(r.vouched)/2 {
				r.vouched = slices.DeleteFunc(r.vouched, func(sh *shard) bool { return sh.job.closed() })
				r.stale = 0
			}
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
	wl := l.worker.leases
	if i := slices.Index(wl, l); i >= 0 {
		last := len(wl) - 1
		wl[i], wl[last] = wl[last], nil
		l.worker.leases = wl[:last]
	}
	if sh := l.shard; sh != nil {
		if !l.audit {
			sh.leased--
		}
		if i := slices.Index(sh.leases, l); i >= 0 {
			sh.leases = slices.Delete(sh.leases, i, i+1)
		}
	}
	if !l.worker.gone && len(l.worker.leases) < s.window(l.worker) {
		s.markIdle(l.worker)
	}
}

func (s *Scheduler) addCanarySource(c *canarySource) {
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

// Pending returns the replicas still to compute: open leases plus queued
// replicas (some of which may turn out to be no longer needed). Zero means
// the scheduler is idle, re-verifications included.
func (s *Scheduler) Pending() int {
	return len(s.leases) + s.urgent.len() + s.fresh.len() + s.audits.len()
}
