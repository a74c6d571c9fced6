package scheduler

import (
	"fmt"
	"slices"
)

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
