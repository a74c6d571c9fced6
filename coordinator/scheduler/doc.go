// Package scheduler is the coordinator's pure state machine: it decides which
// worker computes which shard replica, when a lease has expired, when a
// result is accepted, who is paid and who is caught cheating.
//
// It imports no network, no store and never reads the clock or a global
// random source: every event method takes the current time, and the
// Scheduler is built with a *rand.Rand (seeded in tests, a secret ChaCha8
// source in production) and a Checker that judges results (the pure
// coordinator/verify package in production). Each event returns the actions
// the plumbing must carry out — assign a lease, cancel one, reject a result,
// accept a shard, pay or forfeit, ban an address, finish or fail a job — in
// a slice that stays valid until the next call.
//
// # Leases and replicas
//
// A job is a list of shard tasks. Each shard needs replicas: a lease gives
// one replica to one worker until a deadline. A shard is never given twice
// to the same worker address. Expired leases, workers that leave and worker
// errors re-issue the replica. An error or an expiry counts against the
// worker that reports it, not against the shard: each halves its window,
// and after Config.MaxStrikes in a row (without a valid result) it gets no
// more work; an error also ends the worker's run of valid results, and
// with it its trust. A shard fails its job only on evidence that it cannot
// be done: the Checker says so (Checker.Doable: inputs that do not fit the
// kernel, an empty dimension, a task no message can carry), or
// Config.ErrorQuorum distinct addresses, at least two of them trusted when
// they reported it, report the same error; the reason names the shard and
// the error (trimmed to a short printable line). An attacker must so spend
// two identities that each earned trust, and each loses it, to fail one
// job. An expiry is never such evidence (holding a lease in silence costs
// nothing), and workers that leave never fail a shard (volunteers come
// and go).
//
// Every result is first self-checked (shape, finiteness, Freivalds' check,
// spot checks), whoever sent it: a result that fails is proof of cheating.
// A result that passes only in part (Doubtful: rows left to the worst-case
// bound) is never accepted on one worker's word; its shard is audited by an
// identity that did not vouch for it whoever did, never becomes a canary,
// and earns its workers no trust.
// Results that pass are compared with the shard's other replicas element by
// element. A vote never decides what is true: when they disagree the
// Checker settles the dispute (Checker.Settle) by recomputing exactly a
// bounded random sample of the elements where they differ, and each result
// wrong there is caught — only a result the coordinator recomputed convicts
// its author, so an honest minority is never banned. The results left
// decide the shard when the settlement recomputed every disputed element
// (one result then suffices) or when they are as many as it wanted;
// otherwise one more replica is asked. A result whose shard cannot be
// checked at all (Unverifiable: inputs holding NaN or ±Inf, a product that
// may overflow float32) fails the job with that reason, blaming, banning
// and paying nobody.
//
// # Adaptive replication
//
// BOINC-style, per address: a new identity is untrusted and every shard it
// takes is replicated. After Config.TrustRun consecutive valid results the
// address is trusted and a shard it takes is replicated only with
// probability max(Config.MinReplication, 1/run); on top of that every
// worker receives canaries at Config.CanaryRate — already-verified shards
// with rows permuted, indistinguishable from new work — whose answers are
// known. Trust lowers replication and nothing else: a trusted worker's
// results are self-checked and settled like anyone's, results accepted
// without a trusted voucher are audited by one more replica (and so,
// trusted or not, is a result left by a settlement that caught its
// co-replica: a settlement looks only where results differ), and a result
// becomes a canary's known answer only once the coordinator confirmed it
// itself (Checker.Confirm's exact recompute of sampled rows), never on
// trust nor on a settlement alone. A canary answer that differs from the
// known one is settled by recompute too: a wrong known answer catches its
// author, not the honest worker. A job may force a replication factor
// instead.
//
// A caught address gets no more work (Ban), forfeits its unsettled pay
// (Forfeit), and every shard it vouched for is verified again by one other
// worker; if it disagrees with what was accepted, the dispute is settled by
// recompute, a wrong accepted result is replaced (Correct) and its author
// caught. Identities are free, so a caught cheater may come back under a
// new address and starts again untrusted.
package scheduler
