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
	audits queue // audits of results no trusted worker vouched for, served last

	idle    []*worker // workers that may have free window slots (lazily pruned)
	trusted int       // connected trusted workers, for tie-breaker routing
	gpus    int       // connected native-gpu workers, for heavy routing

	canaries []canarySource
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
	queued     int // needs of this shard waiting in a queue
	leased     int // outstanding replica leases (audits not counted)
	attempts   int // errors and expiries
	departures int // workers that left holding a replica
	lastError  string
	results    []result
	leases     []*lease  // outstanding leases, audits included
	tried      []Address // addresses holding a lease or a result: never twice
	failed     []Address // addresses whose replica erred or expired (see eligible)
	// Inline backing for the three slices above: most shards see one or
	// two replicas, and this saves three allocations per shard.
	resultBuf [2]result
	leaseBuf  [2]*lease
	triedBuf  [2]Address

	accepted []*tensor.Tensor
	vouchers []Address
	reverify bool // verifying again after a voucher was caught
	audited  bool // an audit replica agreed with the accepted result
	heavy    bool
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
	caught  bool
	vouched []*shard  // accepted shards this address vouched for
	stale   int       // about how many of them are of closed jobs (see ForgetJob)
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
			s.failReplica(l, why, true)
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
		s.failReplica(l, "worker error: "+msg, false)
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
			s.failReplica(l, "lease expired", false)
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

func (s *Scheduler) canaryResult(wk *worker, l *lease, outputs []*tensor.Tensor) {
	s.stats.Canaries++
	switch v, why := s.verdict(l, outputs); v {
	case Valid:
	case Unverifiable:
		// Not the worker's fault (nor, as its source was verified, one
		// that should happen): refuse the result, blame nobody.
		s.reject(wk, l, "canary cannot be verified: "+why)
		return
	default:
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
	if (sh.state == shardAccepted && !sh.reverify) || sh.job.closed() {
		s.reject(wk, l, "shard no longer needs this replica")
		return
	}
	switch v, why := s.verdict(l, outputs); v {
	case Valid:
	case Unverifiable:
		s.reject(wk, l, "shard cannot be verified: "+why)
		s.unverifiable(sh, why)
		return
	default:
		s.reject(wk, l, why)
		s.caught(wk.Address, "failed a self-check: "+why)
		switch {
		case sh.state == shardPending:
			s.need(&s.urgent, sh, false)
		case sh.reverify:
			s.needStrict(sh) // or the re-verification waits forever
		}
		return
	}
	sh.results = append(sh.results, result{addr: wk.Address, outputs: outputs})
	if len(sh.results) >= sh.want {
		s.resolve(sh)
	}
}

// unverifiable handles a result whose shard cannot be checked at all (see
// Unverifiable): the job fails with the reason, blaming, banning and paying
// nobody for the shard.
func (s *Scheduler) unverifiable(sh *shard, why string) {
	s.failShard(sh, fmt.Sprintf("shard %d cannot be verified: %s", sh.index, why))
}

// auditResult compares an audit replica with the accepted result; a
// disagreement re-verifies the shard (and the majority then decides who
// lied: the auditor or the vouchers).
func (s *Scheduler) auditResult(wk *worker, l *lease, outputs []*tensor.Tensor) {
	sh := l.shard
	s.stats.Audits++
	if sh.state != shardAccepted || sh.reverify || sh.audited || sh.job.closed() {
		s.reject(wk, l, "shard no longer needs this replica")
		return
	}
	switch v, why := s.verdict(l, outputs); v {
	case Valid:
	case Unverifiable:
		// The accepted result passed the same check; whatever changed,
		// the auditor is not to blame and another audit would not help.
		s.reject(wk, l, "shard cannot be verified: "+why)
		return
	default:
		s.reject(wk, l, why)
		s.caught(wk.Address, "failed a self-check: "+why)
		s.needAudit(sh)
		return
	}
	if s.check.Agree(&sh.task, sh.accepted, outputs) {
		sh.audited = true
		s.addVouchers(sh, []Address{wk.Address})
		if s.isTrusted(wk.rep) && s.cfg.CanaryPool > 0 {
			s.addCanarySource(canarySource{task: &sh.task, outputs: sh.accepted, vouched: append(slices.Clone(sh.vouchers), wk.Address)})
		}
		s.valid(wk.rep)
		s.emit(Action{Kind: Pay, Address: wk.Address, Job: sh.job.id, Shard: sh.index, FLOPs: sh.task.FLOPs})
		return
	}
	s.reverify(sh, &result{addr: wk.Address, outputs: outputs}, 1)
}

// addVouchers records addrs as vouching for sh's accepted result.
func (s *Scheduler) addVouchers(sh *shard, addrs []Address) {
	for _, a := range addrs {
		sh.vouchers = append(sh.vouchers, a)
		r := s.rep(a)
		r.vouched = append(r.vouched, sh)
	}
}

// reverify reopens an accepted shard: the accepted result stays in the
// vote through each voucher not (yet) caught, extra (an audit's result,
// say) joins it, and fresh more replicas are asked of workers that did not
// vouch, trusted ones whenever any is connected. resolve then decides, and
// a voucher on the losing side is caught.
func (s *Scheduler) reverify(sh *shard, extra *result, fresh int) {
	sh.reverify = true
	sh.results = sh.results[:0]
	sh.tried = sh.tried[:0]
	for _, a := range sh.vouchers {
		if r := s.reps[a]; r == nil || !r.caught {
			sh.results = append(sh.results, result{addr: a, outputs: sh.accepted})
		}
	}
	if extra != nil {
		sh.results = append(sh.results, *extra)
		sh.tried = append(sh.tried, extra.addr)
	}
	sh.want = len(sh.results) + fresh
	for range fresh {
		s.needStrict(sh)
	}
}

// resolve decides a shard once it has the results it wanted.
func (s *Scheduler) resolve(sh *shard) {
	n := len(sh.results)
	if n == 1 {
		if sh.job.replication == 0 && !s.isTrusted(s.rep(sh.results[0].addr)) {
			// Adaptive replication accepts one result only from a trusted
			// worker (assign raises want when an untrusted one takes a
			// trusted worker's shard; this is the backstop).
			sh.want = 2
			s.need(&s.urgent, sh, true)
			return
		}
		s.accept(sh, []int{0}, "freivalds+spot, single trusted replica")
		return
	}
	// Find the heaviest group agreeing with one representative; a trusted
	// address's vote weighs TrustedWeight, a new identity's 1.
	// Small votes group on the stack: append moves a slice to the heap
	// only past maxInline results.
	var groupBuf, bestBuf, weightBuf [maxInline]int
	var bestGroup []int
	best, total := 0, 0
	weights := weightBuf[:0] // weight of the group agreeing with result i
	for i := 0; i < n; i++ {
		total += s.weight(sh.results[i].addr)
		group := append(groupBuf[:0], i)
		for j := 0; j < n; j++ {
			if j != i && s.check.Agree(&sh.task, sh.results[i].outputs, sh.results[j].outputs) {
				group = append(group, j)
			}
		}
		weights = append(weights, s.groupWeight(sh, group))
		if weights[i] > best {
			bestGroup, best = append(bestBuf[:0], group...), weights[i]
		}
		if len(group) == n {
			break
		}
	}
	second := 0 // the heaviest group outside the best one
	for i, w := range weights {
		if !slices.Contains(bestGroup, i) {
			second = max(second, w)
		}
	}
	if len(bestGroup) == n {
		s.accept(sh, bestGroup, allAgree(n))
		return
	}
	// A dispute is decided by at least two agreeing results that outweigh
	// the rest.
	// At the replica cap a strictly heaviest group of two or more wins
	// (plurality), so that cheaters who disagree among themselves cannot
	// stall a job; audits and later catches still re-verify it.
	decided := 2*best > total || (n >= s.cfg.MaxReplicas && best > second)
	if len(bestGroup) >= 2 && decided {
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
		// A stalemate (equal groups of conflicting answers): start the
		// shard's vote again with fresh workers, trusted ones whenever any
		// is connected, counting it as a failed attempt.
		sh.attempts++
		sh.lastError = fmt.Sprintf("%d replicas never reached a majority", n)
		if sh.attempts >= s.cfg.MaxAttempts {
			s.failShard(sh, fmt.Sprintf("shard %d: %s, %d times", sh.index, sh.lastError, sh.attempts))
			return
		}
		sh.results = sh.results[:0]
		sh.want = 2
		s.needStrict(sh)
		s.needStrict(sh)
		return
	}
	sh.want = n + 1
	s.stats.TieBreakers++
	if n >= 3 {
		s.needStrict(sh) // a second tie-breaker: only a trusted worker, if any
	} else {
		s.need(&s.urgent, sh, true)
	}
}

// maxInline is the number of results resolve groups without allocating.
const maxInline = 8

// agreeMethods are the methods of unanimous votes, made once.
var agreeMethods = func() (m [maxInline + 1]string) {
	for n := range m {
		m[n] = fmt.Sprintf("freivalds+spot, %d/%d replicas agree", n, n)
	}
	return m
}()

// allAgree names the method of a unanimous vote of n results.
func allAgree(n int) string {
	if n < len(agreeMethods) {
		return agreeMethods[n]
	}
	return fmt.Sprintf("freivalds+spot, %d/%d replicas agree", n, n)
}

// TrustedWeight is the weight of a trusted address's vote in a dispute.
const TrustedWeight = 3

func (s *Scheduler) weight(a Address) int {
	if r := s.reps[a]; r != nil && s.isTrusted(r) {
		return TrustedWeight
	}
	return 1
}

func (s *Scheduler) groupWeight(sh *shard, group []int) int {
	w := 0
	for _, g := range group {
		w += s.weight(sh.results[g].addr)
	}
	return w
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
		// The old result took part in the vote through its surviving
		// vouchers (see reverify); vouchers on the losing side are caught
		// by resolve, and only new replicas are paid.
		old, oldVouchers := sh.accepted, sh.vouchers
		sh.reverify = false
		sh.state = shardAccepted
		sh.audited = true
		corrected := !s.check.Agree(&sh.task, old, rep)
		if corrected {
			s.stats.Corrections++
			sh.accepted, sh.vouchers = rep, vouchers
			s.emit(Action{Kind: Correct, Job: jb.id, Shard: sh.index, Outputs: rep, Vouchers: vouchers, Replicas: replicas, Method: "re-verified: " + method})
			for _, a := range vouchers {
				s.rep(a).vouched = append(s.rep(a).vouched, sh)
			}
		}
		var fresh []Address
		for _, a := range vouchers {
			if !slices.Contains(oldVouchers, a) {
				fresh = append(fresh, a)
			}
		}
		if !corrected {
			// Confirmed: the new replicas vouch for the result too, so
			// that catching one of them later re-verifies it again.
			s.addVouchers(sh, fresh)
		}
		s.payAll(sh, fresh)
		s.cancelLeases(sh, "shard already verified", true) // and audited
		sh.dropResults()
		return
	}
	sh.state = shardAccepted
	sh.accepted, sh.vouchers = rep, vouchers
	s.stats.Accepted++
	trusted := s.anyTrusted(vouchers)
	if s.cfg.Audit && !trusted {
		s.needAudit(sh)
	}
	if len(group) == 1 {
		s.stats.SingleAccepted++
	}
	s.emit(Action{Kind: Accept, Job: jb.id, Shard: sh.index, Outputs: rep, Vouchers: vouchers, Replicas: replicas, Method: method})
	s.payAll(sh, vouchers)
	for _, a := range vouchers {
		r := s.rep(a)
		r.vouched = append(r.vouched, sh)
	}
	// Only results a trusted worker vouched for become canaries: two new
	// identities agreeing may be colluders, and a wrong canary would
	// punish the honest.
	if len(group) >= 2 && trusted && s.cfg.CanaryPool > 0 {
		s.addCanarySource(canarySource{task: &sh.task, outputs: rep, vouched: vouchers})
	}
	s.cancelLeases(sh, "shard already verified", false)
	sh.dropResults()
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
		if sh.state != shardAccepted || sh.reverify || sh.job.closed() {
			continue
		}
		s.reverify(sh, nil, 2)
	}
	r.vouched, r.stale = nil, 0
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

// failReplica re-issues a replica that produced nothing. A worker that
// left costs the shard a quarter of an attempt (volunteers come and go; a
// shard is not to blame for that), an error or an expiry a whole one.
func (s *Scheduler) failReplica(l *lease, why string, departed bool) {
	sh := l.shard
	if l.audit {
		if sh.state == shardAccepted && !sh.reverify && !sh.audited {
			s.needAudit(sh)
		}
		return
	}
	if i := slices.Index(sh.tried, l.worker.Address); i >= 0 {
		sh.tried = slices.Delete(sh.tried, i, i+1)
	}
	if sh.job.closed() || (sh.state == shardAccepted && !sh.reverify) {
		return
	}
	if departed {
		sh.departures++
	} else {
		sh.attempts++
		if !slices.Contains(sh.failed, l.worker.Address) {
			sh.failed = append(sh.failed, l.worker.Address)
		}
	}
	sh.lastError = why
	if failures := sh.attempts + sh.departures/4; failures >= s.cfg.MaxAttempts {
		s.failShard(sh, fmt.Sprintf("shard %d failed %d times (and lost %d workers); last error: %s", sh.index, sh.attempts, sh.departures, why))
		return
	}
	s.stats.Reissued++
	s.need(&s.urgent, sh, sh.reverify)
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

// Pending returns the replicas still to compute: open leases plus queued
// replicas (some of which may turn out to be no longer needed). Zero means
// the scheduler is idle, re-verifications included.
func (s *Scheduler) Pending() int {
	return len(s.leases) + s.urgent.len() + s.fresh.len() + s.audits.len()
}
