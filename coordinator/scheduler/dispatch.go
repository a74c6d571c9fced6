package scheduler

import (
	"slices"
	"time"
)

// queue is a FIFO of shard replicas waiting for a worker. Items taken from
// the middle are set to nil and skipped; the slice is compacted as the head
// advances.
type queue struct {
	items []need
	head  int
}

type need struct {
	sh *shard
	// trusted asks for a trusted worker (tie-breakers and
	// re-verification) until the time untrustedAfter; after it, or when no
	// trusted worker is connected, anyone eligible may take it.
	trusted        bool
	untrustedAfter time.Time
	// audit marks a replica that checks an accepted result no trusted
	// worker vouched for.
	audit bool
	// strict waits for a trusted worker even while none is connected
	// (until untrustedAfter): audits and re-verifications do not hold up
	// any job, and new identities must not judge each other.
	strict bool
}

// needStrict queues a re-verification replica: it waits for a trusted
// worker, whenever one is connected, up to Config.AuditWait.
func (s *Scheduler) needStrict(sh *shard) {
	sh.queued++
	s.urgent.push(need{sh: sh, trusted: true, strict: true, untrustedAfter: s.now.Add(s.cfg.AuditWait)})
}

func (q *queue) push(n need) { q.items = append(q.items, n) }

func (q *queue) len() int { return len(q.items) - q.head }

func (q *queue) compact() {
	for q.head < len(q.items) && q.items[q.head].sh == nil {
		q.items[q.head] = need{}
		q.head++
	}
	if q.head > 0 && q.head >= len(q.items)/2 {
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items = q.items[:n]
		q.head = 0
	}
}

// need queues one more replica of sh.
func (s *Scheduler) need(q *queue, sh *shard, trusted bool) {
	sh.queued++
	q.push(need{sh: sh, trusted: trusted, untrustedAfter: s.now.Add(s.cfg.TrustedWait)})
}

// needAudit queues an audit replica of an accepted shard.
func (s *Scheduler) needAudit(sh *shard) {
	sh.queued++
	s.audits.push(need{sh: sh, trusted: true, strict: true, untrustedAfter: s.now.Add(s.cfg.AuditWait), audit: true})
}

// fillAll gives work to every worker with free window slots.
func (s *Scheduler) fillAll(now time.Time) {
	if s.urgent.len() == 0 && s.fresh.len() == 0 && s.audits.len() == 0 {
		return // canaries only ride along with real work
	}
	k := 0
	for i := 0; i < len(s.idle); i++ {
		wk := s.idle[i]
		if !wk.gone && s.urgent.len()+s.fresh.len()+s.audits.len() > 0 {
			s.fill(now, wk)
		}
		if wk.gone || len(wk.leases) >= s.window(wk) {
			wk.idle = false
		} else {
			s.idle[k] = wk
			k++
		}
	}
	clear(s.idle[k:])
	s.idle = s.idle[:k]
}

// markIdle lists wk among the workers with free window slots.
func (s *Scheduler) markIdle(wk *worker) {
	if !wk.idle && !wk.gone {
		wk.idle = true
		s.idle = append(s.idle, wk)
	}
}

// fill hands wk leases until its window is full or nothing fits it.
//
// A queue that had nothing for wk is not scanned again in the same fill:
// all a fill adds to the queues are the other replicas of shards wk has
// just taken, which wk may not take, so the answer cannot change — and a
// new identity facing a long queue of replicas kept for trusted workers
// would otherwise scan ScanLimit of them for every slot of its window.
func (s *Scheduler) fill(now time.Time, wk *worker) {
	urgentDry, auditsDry := false, false
	for len(wk.leases) < s.window(wk) {
		if s.cfg.CanaryRate > 0 && len(s.canaries) > 0 && (s.urgent.len() > 0 || s.fresh.len() > 0) &&
			s.rng.Float64() < s.cfg.CanaryRate {
			if s.assignCanary(now, wk) {
				continue
			}
		}
		var sh *shard
		var audit bool
		if !urgentDry {
			sh, audit = s.take(now, &s.urgent, wk)
			urgentDry = sh == nil
		}
		if sh == nil && !auditsDry && s.auditsOpen(now, wk) {
			sh, audit = s.take(now, &s.audits, wk)
			auditsDry = sh == nil
		}
		if sh == nil {
			sh, audit = s.take(now, &s.fresh, wk)
		}
		if sh == nil {
			break
		}
		s.assign(now, wk, sh, audit)
	}
}

// auditsOpen reports whether wk may look at the audit queue: audits go to
// trusted workers first (promptly, ahead of new work), and to anyone once
// the oldest has waited AuditWait. The check is O(1), so that a fleet of
// new identities does not scan a long queue of audits it may not take.
func (s *Scheduler) auditsOpen(now time.Time, wk *worker) bool {
	q := &s.audits
	q.compact()
	if q.len() == 0 {
		return false
	}
	return s.isTrusted(wk.rep) || !now.Before(q.items[q.head].untrustedAfter)
}

// take removes and returns the first shard in q that wk may compute.
func (s *Scheduler) take(now time.Time, q *queue, wk *worker) (*shard, bool) {
	q.compact()
	scanned := 0
	for i := q.head; i < len(q.items) && scanned < s.cfg.ScanLimit; i++ {
		n := q.items[i]
		if n.sh == nil {
			continue
		}
		scanned++
		sh := n.sh
		if !s.stillNeeded(sh, n.audit) {
			q.items[i] = need{}
			sh.queued--
			continue
		}
		if !s.eligible(wk, sh, n.trusted && now.Before(n.untrustedAfter), n.strict) {
			continue
		}
		q.items[i] = need{}
		sh.queued--
		return sh, n.audit
	}
	return nil, false
}

// stillNeeded reports whether a queued replica of sh is still wanted.
func (s *Scheduler) stillNeeded(sh *shard, audit bool) bool {
	if sh.job.closed() {
		return false
	}
	if audit {
		return sh.state == shardAccepted && !sh.reverify && !sh.audited
	}
	if sh.state == shardAccepted && !sh.reverify {
		return false
	}
	if sh.want == 0 {
		return true
	}
	return len(sh.results)+sh.leased < sh.want
}

// eligible reports whether wk may take a replica of sh now; wantTrusted
// keeps it for a trusted worker (if any is connected, or even if none is
// when strict). An address whose replica of sh erred or expired may take
// it again only when no other connected worker could: a broken worker does
// not get back the replica it just failed, and is not locked out of a shard
// nobody else can compute (MaxAttempts still bounds its retries).
func (s *Scheduler) eligible(wk *worker, sh *shard, wantTrusted, strict bool) bool {
	if !s.canTake(wk, sh) {
		return false
	}
	trustedOnly := wantTrusted && (s.trusted > 0 || strict)
	if trustedOnly && !s.isTrusted(wk.rep) {
		return false
	}
	if sh.hasFailed(wk.Address) && s.otherCanTake(wk.Address, sh, trustedOnly) {
		return false
	}
	return true
}

// canTake reports whether wk may ever compute a replica of sh: it holds
// none and did not vouch for it, and the shard fits it.
func (s *Scheduler) canTake(wk *worker, sh *shard) bool {
	if slices.Contains(sh.tried, wk.Address) || ((sh.reverify || sh.state == shardAccepted) && slices.Contains(sh.vouchers, wk.Address)) {
		return false
	}
	if !fits(wk, &sh.task) {
		return false
	}
	return !sh.heavy || wk.Backend == BackendNativeGPU
}

// otherCanTake reports whether a connected worker whose address is not
// failed, nor one that failed sh, could take a replica of sh (busy or not:
// it frees a slot sooner or later) — a trusted one when trustedOnly, as
// the replica waits for. It scans the workers until it finds one, which
// is quick unless there is none (a lookup in the bounded set sh.failed per
// worker); it runs only for a worker that failed sh.
func (s *Scheduler) otherCanTake(failed Address, sh *shard, trustedOnly bool) bool {
	for _, o := range s.workers {
		if o.gone || o.Address == failed || sh.hasFailed(o.Address) {
			continue
		}
		if trustedOnly && !s.isTrusted(o.rep) {
			continue
		}
		if s.canTake(o, sh) {
			return true
		}
	}
	return false
}

func (s *Scheduler) assign(now time.Time, wk *worker, sh *shard, audit bool) {
	if sh.want == 0 {
		sh.want = s.replicationFor(sh.job, wk.rep)
		sh.base = sh.want
		if sh.want > 1 {
			s.stats.Replicated++
		}
		// The other replicas of an untrusted worker's shard go preferably
		// to trusted workers, so that new identities rarely vouch for each
		// other.
		for i := 1; i < sh.want; i++ {
			s.need(&s.urgent, sh, !s.isTrusted(wk.rep))
		}
	} else if sh.want == 1 && !audit && sh.job.replication == 0 && !s.isTrusted(wk.rep) {
		// A trusted worker's shard, re-issued (its holder left, failed or
		// was caught) to an untrusted one: one result is no longer enough,
		// and the other replica goes preferably to a trusted worker.
		sh.want, sh.base = 2, 2
		s.stats.Replicated++
		s.need(&s.urgent, sh, true)
	}
	l := s.newLease(now, wk)
	l.shard, l.task, l.audit = sh, &sh.task, audit
	if !audit {
		sh.tried = append(sh.tried, wk.Address)
		sh.leased++
	}
	sh.leases = append(sh.leases, l)
	s.emit(Action{Kind: Assign, Worker: wk.ID, Address: wk.Address, Lease: l.id, Job: sh.job.id, Shard: sh.index, Task: l.task, FLOPs: sh.task.FLOPs})
}

func (s *Scheduler) newLease(now time.Time, wk *worker) *lease {
	s.nextLease++
	l := &lease{id: s.nextLease, worker: wk, deadline: now.Add(s.cfg.LeaseTimeout)}
	s.leases[l.id] = l
	wk.leases = append(wk.leases, l)
	s.expiry = append(s.expiry, l)
	return l
}

// replicationFor decides how many agreeing results a shard needs, from the
// job's forced factor or the first worker's reputation.
func (s *Scheduler) replicationFor(jb *job, r *reputation) int {
	if jb.replication > 0 {
		return jb.replication
	}
	if !s.isTrusted(r) {
		return 2
	}
	p := 1 / float64(r.run)
	if p < s.cfg.MinReplication {
		p = s.cfg.MinReplication
	}
	if s.rng.Float64() < p {
		return 2
	}
	return 1
}

// assignCanary gives wk a canary derived from a verified shard it did not
// vouch for. It reports false when no source fits.
func (s *Scheduler) assignCanary(now time.Time, wk *worker) bool {
	for range 4 {
		c := s.canaries[s.rng.IntN(len(s.canaries))]
		if slices.Contains(c.vouched, wk.Address) || c.author == wk.Address {
			continue
		}
		if !fits(wk, c.task) {
			continue
		}
		task, expected := s.check.Canary(c.task, c.outputs, s.rng)
		if task == nil {
			return false
		}
		l := s.newLease(now, wk)
		l.canary, l.task, l.expected = c, task, expected
		s.emit(Action{Kind: Assign, Worker: wk.ID, Address: wk.Address, Lease: l.id, Task: task, FLOPs: task.FLOPs})
		return true
	}
	return false
}

// fits reports whether wk can hold t: its shard and buffer limits.
func fits(wk *worker, t *Task) bool {
	if wk.MaxShardBytes > 0 && t.Bytes > wk.MaxShardBytes {
		return false
	}
	return wk.MaxBufferBytes <= 0 || t.MaxTensorBytes <= wk.MaxBufferBytes
}

// NativeGPUs returns how many native-gpu workers are connected.
func (s *Scheduler) NativeGPUs() int { return s.gpus }
