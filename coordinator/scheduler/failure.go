package scheduler

import (
	"fmt"
	"slices"
)

// This file handles replicas that produced nothing — errors, expiries and
// departures — and when a shard gives up. An error counts against the
// worker that reports it, not against the shard: identities are free, and
// a crowd of them answering every lease with an error must not fail a
// job. A shard fails only on evidence that it cannot be done: the
// Checker's Doable says so, or Config.ErrorQuorum distinct addresses, one
// of them trusted, report the same error.

// replicaError is one error (or expiry) reported on a shard.
type replicaError struct {
	addr    Address
	msg     string
	trusted bool // the address was trusted when it reported it
}

// maxShardErrors bounds the errors a shard remembers; past it the oldest
// is forgotten.
const maxShardErrors = 32

// failReplica re-issues a replica that produced nothing. A worker that
// left costs nothing (volunteers come and go); an error or an expiry
// counts against its worker (see strike) and is remembered as evidence
// about the shard.
func (s *Scheduler) failReplica(l *lease, why string, departed bool) {
	sh := l.shard
	if !departed {
		s.strike(l.worker.rep)
	}
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
	sh.lastError = why
	if departed {
		sh.departures++
	} else {
		if !slices.Contains(sh.failed, l.worker.Address) {
			sh.failed = append(sh.failed, l.worker.Address)
		}
		if s.evidence(sh, l.worker, why) {
			return
		}
	}
	s.stats.Reissued++
	s.need(&s.urgent, sh, sh.reverify)
}

// evidence records wk's error why on sh and fails the shard when that
// proves it cannot be done, reporting whether it did.
func (s *Scheduler) evidence(sh *shard, wk *worker, why string) bool {
	if err := s.check.Doable(&sh.task); err != nil {
		s.failShard(sh, fmt.Sprintf("shard %d cannot be done: %v (last error: %s)", sh.index, err, why))
		return true
	}
	e := replicaError{addr: wk.Address, msg: why, trusted: s.isTrusted(wk.rep)}
	if i := slices.IndexFunc(sh.errs, func(o replicaError) bool { return o.addr == e.addr && o.msg == e.msg }); i >= 0 {
		sh.errs[i].trusted = sh.errs[i].trusted || e.trusted
	} else {
		if len(sh.errs) >= maxShardErrors {
			sh.errs = slices.Delete(sh.errs, 0, 1)
		}
		sh.errs = append(sh.errs, e)
	}
	same, trusted := 0, false
	for _, o := range sh.errs {
		if o.msg == why {
			same++
			trusted = trusted || o.trusted
		}
	}
	if same >= max(s.cfg.ErrorQuorum, 1) && trusted {
		s.failShard(sh, fmt.Sprintf("shard %d failed on %d workers, one of them trusted, with the same error: %s", sh.index, same, why))
		return true
	}
	return false
}

// strike counts an error or an expiry against r: each halves the window
// of its workers, until after Config.MaxStrikes in a row it gets no work
// at all; a valid result clears them. (Its run of valid results, and so
// its trust, stays: a trusted worker that cannot hold one shard is still
// honest, and its word is what makes errors evidence.)
func (s *Scheduler) strike(r *reputation) {
	s.stats.Errors++
	r.strikes++
}

// window is how many leases wk may hold now: its Window, halved for each
// strike of its address (at least 1), and none after Config.MaxStrikes.
func (s *Scheduler) window(wk *worker) int {
	st := wk.rep.strikes
	if st == 0 {
		return wk.Window
	}
	if s.cfg.MaxStrikes > 0 && st >= s.cfg.MaxStrikes {
		return 0
	}
	return max(1, wk.Window>>min(st, 30))
}

// dropped re-asks replicas of sh after a caught worker's results were
// dropped from it: what it wanted at first, or one more than it has
// when that was already reached (its results disagree).
func (s *Scheduler) dropped(sh *shard) {
	switch {
	case sh.reverify:
		sh.want = len(sh.results) + 1
	case len(sh.results) < sh.base:
		sh.want = sh.base
	default:
		sh.want = len(sh.results) + 1
	}
	s.refill(sh)
}
