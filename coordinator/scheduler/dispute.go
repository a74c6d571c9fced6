package scheduler

import (
	"fmt"
	"slices"

	"github.com/neurolov/neurolov/tensor"
)

// This file judges results: a shard's replicas, audits, re-verifications
// and canaries. Results that agree are accepted; results that do not are
// never decided by vote but settled by the Checker, which recomputes the
// disputed elements exactly (Checker.Settle): each result wrong there is
// caught, and only a result the coordinator recomputed convicts its
// author.

// screened names a kind of result in the reasons screen gives.
type screened struct{ unverifiable, invalid string }

var (
	canaryScreen  = screened{unverifiable: "canary cannot be verified: ", invalid: "canary: "}
	replicaScreen = screened{unverifiable: "shard cannot be verified: "}
)

// screen self-checks the outputs wk returned for l and turns away a
// result that does not pass: an Unverifiable one is refused, blaming
// nobody (the shard's inputs are at fault, not the worker); any other
// (Invalid, or a verdict it does not know) is refused and its worker
// caught. It returns the verdict, its reason, and whether the result
// passed (Valid or Doubtful); what else a failure means is the caller's.
func (s *Scheduler) screen(wk *worker, l *lease, outputs []*tensor.Tensor, kind screened) (Verdict, string, bool) {
	v, why := s.verdict(l, outputs)
	switch v {
	case Valid, Doubtful:
		return v, why, true
	case Unverifiable:
		s.reject(wk, l, kind.unverifiable+why)
	default:
		s.reject(wk, l, kind.invalid+why)
		s.caught(wk.Address, "failed a self-check: "+why)
	}
	return v, why, false
}

// canaryResult judges a canary's answer against the known one.
func (s *Scheduler) canaryResult(wk *worker, l *lease, outputs []*tensor.Tensor) {
	s.stats.Canaries++
	// An unverifiable canary is not the worker's fault (nor, as its
	// source was verified, one that should happen): nothing more to do.
	v, _, ok := s.screen(wk, l, outputs, canaryScreen)
	if !ok {
		return
	}
	if !s.check.Agree(l.task, l.expected, outputs) {
		// The known answer is the coordinator's, but it too is settled by
		// recompute: a wrong one must not punish an honest worker.
		st := s.settlement(l.task, [][]*tensor.Tensor{l.expected, outputs})
		switch {
		case !st.Right[1]:
			s.reject(wk, l, "canary answer differs from the known result, and is wrong where the coordinator recomputed it")
			s.caught(wk.Address, "returned a wrong answer to a shard whose result was known: "+st.Reasons[1])
			return
		case !st.Right[0]:
			s.refuteCanary(l.canary, "a canary made from its result was wrong where the coordinator recomputed it: "+st.Reasons[0])
		case !st.Complete:
			s.reject(wk, l, "canary answer differs from the known result where the coordinator could not tell which is right")
			return
		}
	}
	s.credit(wk.rep, v == Doubtful)
	s.emit(Action{Kind: Pay, Address: wk.Address, FLOPs: l.task.FLOPs})
}

// refuteCanary drops canary source c, whose known answer the coordinator
// found wrong, and catches its author: the shard it came from is then
// re-verified with everything else the author vouched for.
func (s *Scheduler) refuteCanary(c *canarySource, why string) {
	if i := slices.Index(s.canaries, c); i >= 0 {
		s.canaries = slices.Delete(s.canaries, i, i+1)
		s.nextCan = 0
	}
	s.caught(c.author, why)
}

// shardResult judges a replica of a shard still deciding (or being
// re-verified) and resolves the shard once it has what it wanted.
func (s *Scheduler) shardResult(wk *worker, l *lease, outputs []*tensor.Tensor) {
	sh := l.shard
	if (sh.state == shardAccepted && !sh.reverify) || sh.job.closed() {
		s.reject(wk, l, "shard no longer needs this replica")
		return
	}
	v, why, ok := s.screen(wk, l, outputs, replicaScreen)
	switch {
	case ok:
	case v == Unverifiable:
		s.unverifiable(sh, why)
		return
	default:
		s.refill(sh)
		return
	}
	sh.doubtful = sh.doubtful || v == Doubtful
	sh.results = append(sh.results, result{addr: wk.Address, outputs: outputs, doubtful: v == Doubtful})
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
// disagreement is settled by recompute at once (see reverify).
func (s *Scheduler) auditResult(wk *worker, l *lease, outputs []*tensor.Tensor) {
	sh := l.shard
	s.stats.Audits++
	if sh.state != shardAccepted || sh.reverify || sh.audited || sh.job.closed() {
		s.reject(wk, l, "shard no longer needs this replica")
		return
	}
	v, _, ok := s.screen(wk, l, outputs, replicaScreen)
	if !ok {
		// An unverifiable audit: the accepted result passed the same
		// check; whatever changed, the auditor is not to blame and
		// another audit would not help. A caught auditor's is asked again.
		if v != Unverifiable {
			s.needAudit(sh)
		}
		return
	}
	sh.doubtful = sh.doubtful || v == Doubtful
	if s.check.Agree(&sh.task, sh.accepted, outputs) {
		sh.audited = true
		s.addVouchers(sh, []Address{wk.Address})
		s.credit(wk.rep, v == Doubtful)
		s.emit(Action{Kind: Pay, Address: wk.Address, Job: sh.job.id, Shard: sh.index, FLOPs: sh.task.FLOPs})
		if s.isTrusted(wk.rep) {
			s.offerCanary(sh)
		}
		return
	}
	s.reverify(sh, &result{addr: wk.Address, outputs: outputs})
}

// addVouchers records addrs as vouching for sh's accepted result.
func (s *Scheduler) addVouchers(sh *shard, addrs []Address) {
	for _, a := range addrs {
		sh.vouchers = append(sh.vouchers, a)
		r := s.rep(a)
		r.vouched = append(r.vouched, sh)
	}
}

// reverify reopens an accepted shard: its accepted result stands as the
// first of the shard's results (see result.accepted), and extra (an
// audit's result) joins it, or one fresh replica is asked of a worker that
// did not vouch for it, a trusted one whenever any is connected. One
// other worker is enough: if it disagrees, the dispute is settled by
// recompute.
func (s *Scheduler) reverify(sh *shard, extra *result) {
	sh.reverify = true
	sh.dropResults()
	sh.tried = sh.tried[:0]
	sh.results = append(sh.results, result{addr: sh.author, outputs: sh.accepted, accepted: true})
	sh.want = 2
	if extra != nil {
		sh.results = append(sh.results, *extra)
		sh.tried = append(sh.tried, extra.addr)
		s.resolve(sh)
		return
	}
	s.needStrict(sh)
}

// resolve decides a shard once it has the results it wanted.
func (s *Scheduler) resolve(sh *shard) {
	n := len(sh.results)
	if n == 1 && !sh.reverify && sh.job.replication == 0 && (sh.doubtful || !s.isTrusted(s.rep(sh.results[0].addr))) {
		// Adaptive replication accepts one result only from a trusted
		// worker (assign raises want when an untrusted one takes a
		// trusted worker's shard; this is the backstop), and never one
		// its self-check passed only in part (Doubtful).
		sh.want = max(sh.base, 2)
		s.refill(sh)
		return
	}
	if sh.reverify && n < 2 {
		sh.want = 2 // the accepted result alone decides nothing
		s.refill(sh)
		return
	}
	if s.unanimous(sh) {
		s.decide(sh, allAgree(n), false)
		return
	}
	s.settle(sh)
}

// unanimous reports whether every result of sh agrees with the first.
func (s *Scheduler) unanimous(sh *shard) bool {
	for _, r := range sh.results[1:] {
		if !s.check.Agree(&sh.task, sh.results[0].outputs, r.outputs) {
			return false
		}
	}
	return true
}

// settlement has the Checker settle a dispute between outputs of t; an
// answer of the wrong length finds every result right and decides
// nothing.
func (s *Scheduler) settlement(t *Task, outputs [][]*tensor.Tensor) Settlement {
	s.stats.Settlements++
	st := s.check.Settle(t, outputs, s.rng)
	if len(st.Right) != len(outputs) || len(st.Reasons) != len(outputs) {
		st = Settlement{Right: make([]bool, len(outputs)), Reasons: make([]string, len(outputs))}
		for i := range st.Right {
			st.Right[i] = true
		}
	}
	return st
}

// settle settles a dispute between the results of sh by recompute: each
// result wrong there is dropped and its author caught (for the accepted
// result of a re-verification, the voucher whose outputs they are). The
// results left decide the shard when they agree and the settlement was
// complete, or when they are as many as the shard wanted; otherwise one
// more replica is asked.
func (s *Scheduler) settle(sh *shard) {
	outs := make([][]*tensor.Tensor, len(sh.results))
	for i, r := range sh.results {
		outs[i] = r.outputs
	}
	st := s.settlement(&sh.task, outs)
	var wrong []string
	var authors []Address
	k := 0
	for i, r := range sh.results {
		if st.Right[i] {
			sh.results[k] = r
			k++
			continue
		}
		authors = append(authors, r.addr)
		wrong = append(wrong, st.Reasons[i])
	}
	clear(sh.results[k:])
	sh.results = sh.results[:k]
	sh.contested = sh.contested || len(authors) > 0
	for i, a := range authors {
		s.caught(a, "wrong where the coordinator recomputed a disputed element: "+wrong[i])
	}
	if sh.job.closed() || (sh.state == shardAccepted && !sh.reverify) {
		return
	}
	fresh := 0 // results left other than the accepted one
	for _, r := range sh.results {
		if !r.accepted {
			fresh++
		}
	}
	// A complete settlement decides with one result left, except that a
	// job's forced replication still wants its count.
	enough := fresh >= max(sh.base, 2) || (st.Complete && (sh.reverify || sh.job.replication == 0))
	if fresh > 0 && enough && s.unanimous(sh) {
		s.decide(sh, fmt.Sprintf("settled by recomputing %d disputed elements", st.Checked), st.Complete)
		return
	}
	if len(sh.results) >= s.cfg.MaxReplicas {
		s.stalemate(sh)
		return
	}
	if len(wrong) == 0 {
		s.stats.TieBreakers++
	}
	sh.want = max(sh.base, len(sh.results)+1)
	s.refill(sh)
}

// stalemate starts a shard's replicas again when MaxReplicas results were
// all found right on the sample yet do not agree (the difference is below
// what recomputing a sample can tell), counting an attempt; nobody is
// caught.
func (s *Scheduler) stalemate(sh *shard) {
	sh.attempts++
	sh.lastError = fmt.Sprintf("%d replicas found right where recomputed never agreed", len(sh.results))
	if sh.attempts >= s.cfg.MaxAttempts {
		s.failShard(sh, fmt.Sprintf("shard %d: %s, %d times", sh.index, sh.lastError, sh.attempts))
		return
	}
	if sh.reverify {
		s.endReverify(sh, "re-verification abandoned: "+sh.lastError)
		return
	}
	sh.dropResults()
	sh.want = max(sh.base, 2)
	s.refill(sh)
}

// refill queues replicas of sh until the results it has, its leases and
// its queued replicas make up what it wants.
func (s *Scheduler) refill(sh *shard) {
	if sh.job.closed() || (sh.state == shardAccepted && !sh.reverify) {
		return
	}
	for missing := sh.want - len(sh.results) - sh.leased - sh.queued; missing > 0; missing-- {
		if sh.reverify {
			s.needStrict(sh)
		} else {
			s.need(&s.urgent, sh, true)
		}
	}
}

// decide ends sh with its results, which all agree: a pending shard is
// accepted, a re-verified one confirmed or corrected. settled says that
// the coordinator recomputed every element they were disputed on — which
// says nothing of the elements where they all agreed, so it makes the
// result a candidate for a canary (see offerCanary), never a confirmed one.
func (s *Scheduler) decide(sh *shard, method string, settled bool) {
	if sh.reverify {
		s.reverified(sh, method, settled)
		return
	}
	s.accept(sh, method, settled)
}

// accept accepts the results of a pending shard, which all agree.
func (s *Scheduler) accept(sh *shard, method string, settled bool) {
	jb := sh.job
	replicas := len(sh.results)
	rep := sh.results[0].outputs
	vouchers := make([]Address, len(sh.results))
	for i, r := range sh.results {
		vouchers[i] = r.addr
	}
	sh.state = shardAccepted
	sh.accepted, sh.author, sh.vouchers = rep, vouchers[0], vouchers
	s.stats.Accepted++
	trusted := s.anyTrusted(vouchers)
	if sh.doubtful || sh.contested || (s.cfg.Audit && !trusted) {
		// A doubtful shard is audited whoever vouched for it: identities
		// that agree on what the self-check could not check in full
		// have confirmed nothing. Nor has a result whose co-replica a
		// settlement just caught: they may have agreed where it did not
		// look.
		s.needAudit(sh)
	}
	sh.contested = false
	if len(vouchers) == 1 {
		s.stats.SingleAccepted++
	}
	s.emit(Action{Kind: Accept, Job: jb.id, Shard: sh.index, Outputs: rep, Vouchers: vouchers, Replicas: replicas, Method: method})
	s.payAll(sh, sh.results)
	for _, a := range vouchers {
		r := s.rep(a)
		r.vouched = append(r.vouched, sh)
	}
	if settled || (len(vouchers) >= 2 && trusted) {
		s.offerCanary(sh)
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

// reverified ends the re-verification of sh with its results, which all
// agree: when the accepted result is among them it is confirmed, and the
// new replicas vouch for it too (so that catching one of them later
// re-verifies it again); otherwise it was found wrong and the new result
// replaces it (Correct). Only new replicas are paid.
func (s *Scheduler) reverified(sh *shard, method string, settled bool) {
	jb := sh.job
	replicas := len(sh.results)
	var fresh []Address
	var stood bool
	for _, r := range sh.results {
		if r.accepted {
			stood = true
		} else {
			fresh = append(fresh, r.addr)
		}
	}
	sh.reverify = false
	sh.state = shardAccepted
	sh.audited = true
	if stood {
		s.addVouchers(sh, fresh)
	} else {
		s.stats.Corrections++
		sh.accepted, sh.author, sh.vouchers = sh.results[0].outputs, fresh[0], nil
		s.addVouchers(sh, fresh)
		s.emit(Action{Kind: Correct, Job: jb.id, Shard: sh.index, Outputs: sh.accepted, Vouchers: fresh, Replicas: replicas, Method: "re-verified: " + method})
		// The accepted result was found wrong, so its replacement is the
		// survivor of a caught co-replica: it is audited (see accept).
		sh.audited = false
		s.needAudit(sh)
	}
	sh.contested = false
	s.payAll(sh, sh.results) // the new replicas only
	if settled {
		s.offerCanary(sh)
	}
	s.cancelLeases(sh, "shard already verified", true) // and audited
	sh.dropResults()
}

// offerCanary makes sh's accepted result a canary source if the
// coordinator confirms it now (Checker.Confirm's exact recompute of
// sampled rows). Neither trust nor a settlement qualifies a result: a
// wrong known answer would have honest workers' answers refused, and a
// settlement recomputed only where results differed. Once the pool is
// full, only a fraction Config.CanaryRefresh of shards is offered.
func (s *Scheduler) offerCanary(sh *shard) {
	if s.cfg.CanaryPool <= 0 || sh.doubtful {
		return // a doubtful shard was not checked in full: no known answer
	}
	if len(s.canaries) >= s.cfg.CanaryPool && s.rng.Float64() >= s.cfg.CanaryRefresh {
		return // the pool is full; only some shards refresh it
	}
	if !s.check.Confirm(&sh.task, sh.accepted, s.rng) {
		return
	}
	s.addCanarySource(&canarySource{task: &sh.task, outputs: sh.accepted, vouched: slices.Clone(sh.vouchers), author: sh.author})
}

// maxInline is the number of results whose unanimous methods are named
// once.
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
	if n == 1 {
		return "freivalds+spot, single trusted replica"
	}
	if n < len(agreeMethods) {
		return agreeMethods[n]
	}
	return fmt.Sprintf("freivalds+spot, %d/%d replicas agree", n, n)
}
