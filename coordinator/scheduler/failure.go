package scheduler

import (
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// This file handles replicas that produced nothing — errors, expiries and
// departures — and when a shard gives up. An error or an expiry counts
// against the worker, not against the shard: identities are free, and a
// crowd of them answering every lease with an error, or holding leases in
// silence, must not fail a job. A shard fails only on evidence that it
// cannot be done: the Checker's Doable says so, or Config.ErrorQuorum
// distinct addresses, at least errorTrusted of them trusted when they
// reported it, report the same error. An expiry is never evidence (it
// says nothing about the shard, and costs nothing to produce), and an
// error ends its reporter's run of valid results, so that each trusted
// voice in a quorum is a trusted identity spent.

// errorTrusted is how many of the addresses that report the same error on
// a shard must have been trusted when they did, before the shard fails: an
// attacker must spend two identities that each earned trust, and each
// loses it by the error it reports.
const errorTrusted = 2

// maxErrorLen bounds a worker's error message as the scheduler keeps it
// and repeats it (in a shard's evidence and a job's failure reason).
const maxErrorLen = 160

// end says how a replica ended without a result.
type end uint8

const (
	departed end = iota // its worker left: that costs nothing
	expired             // its lease ran out: a strike
	errored             // its worker reported an error: a strike, its run reset, evidence
)

// replicaError is one error reported on a shard.
type replicaError struct {
	addr    Address
	msg     string
	trusted bool // the address was trusted when it reported it
}

// maxShardErrors bounds the errors a shard remembers; past it the oldest
// is forgotten.
const maxShardErrors = 32

// maxShardFailed bounds the addresses a shard remembers as having failed
// it (see eligible): every worker that asks for work may be checked
// against them, and identities are free. Past it, further ones are not
// kept from it (each still takes a strike).
const maxShardFailed = 64

// failReplica re-issues a replica that produced nothing, ended as how
// says. A worker that left costs nothing (volunteers come and go); an
// expiry or an error counts against its worker (see strike), and only an
// error is remembered as evidence about the shard.
func (s *Scheduler) failReplica(l *lease, why string, how end) {
	sh := l.shard
	trusted := s.isTrusted(l.worker.rep) // before the error ends its run
	if how != departed {
		s.strike(l.worker.rep, how == errored)
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
	switch how {
	case departed:
		sh.departures++
	case errored:
		sh.markFailed(l.worker.Address)
		if s.evidence(sh, l.worker.Address, why, trusted) {
			return
		}
	default:
		sh.markFailed(l.worker.Address)
	}
	s.stats.Reissued++
	s.need(&s.urgent, sh, sh.reverify)
}

// markFailed remembers that a's replica of sh erred or expired (see
// eligible), up to maxShardFailed addresses.
func (sh *shard) markFailed(a Address) {
	if sh.failed == nil {
		sh.failed = make(map[Address]struct{})
	}
	if len(sh.failed) < maxShardFailed {
		sh.failed[a] = struct{}{}
	}
}

// hasFailed reports whether a's replica of sh erred or expired.
func (sh *shard) hasFailed(a Address) bool {
	_, ok := sh.failed[a]
	return ok
}

// evidence records the error why that a reported on sh (trusted says
// whether a was trusted then) and fails the shard when that proves it
// cannot be done, reporting whether it did.
func (s *Scheduler) evidence(sh *shard, a Address, why string, trusted bool) bool {
	if err := s.check.Doable(&sh.task); err != nil {
		s.failShard(sh, fmt.Sprintf("shard %d cannot be done: %v (last error: %s)", sh.index, err, why))
		return true
	}
	e := replicaError{addr: a, msg: why, trusted: trusted}
	if i := slices.IndexFunc(sh.errs, func(o replicaError) bool { return o.addr == e.addr && o.msg == e.msg }); i >= 0 {
		sh.errs[i].trusted = sh.errs[i].trusted || e.trusted
	} else {
		if len(sh.errs) >= maxShardErrors {
			sh.errs = slices.Delete(sh.errs, 0, 1)
		}
		sh.errs = append(sh.errs, e)
	}
	same, vouched := 0, 0
	for _, o := range sh.errs {
		if o.msg == why {
			same++
			if o.trusted {
				vouched++
			}
		}
	}
	if same >= max(s.cfg.ErrorQuorum, errorTrusted+1) && vouched >= errorTrusted {
		s.failShard(sh, fmt.Sprintf("shard %d failed on %d workers, %d of them trusted, with the same error: %s", sh.index, same, vouched, why))
		return true
	}
	return false
}

// strike counts an error or an expiry against r: each halves the window
// of its workers, until after Config.MaxStrikes in a row it gets no work
// at all; a valid result clears them. An error (reset) also ends r's run
// of valid results, and with it its trust: a trusted identity's error is
// what makes errors evidence, so each one it reports costs it its trust.
// An expiry leaves the run alone (it is no evidence of anything).
func (s *Scheduler) strike(r *reputation, reset bool) {
	s.stats.Errors++
	r.strikes++
	if reset && r.run > 0 {
		if s.isTrusted(r) {
			s.trusted -= len(r.conns)
		}
		r.run = 0
	}
}

// workerMessage is a worker's error message as the scheduler keeps and
// repeats it: printable characters only (any other, and every run of
// white space, becomes one space; invalid UTF-8 becomes U+FFFD), trimmed,
// and at most about maxErrorLen bytes, cut at a character and marked "…".
func workerMessage(msg string) string {
	var b strings.Builder
	space := false
	for _, r := range msg {
		if unicode.IsSpace(r) || !unicode.IsPrint(r) {
			space = b.Len() > 0
			continue
		}
		n := utf8.RuneLen(r)
		if space {
			n++
		}
		if b.Len()+n > maxErrorLen {
			b.WriteString("…")
			break
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(r)
	}
	if b.Len() == 0 {
		return "(no message)"
	}
	return b.String()
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
