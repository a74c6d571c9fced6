// Package store persists what the coordinator must not lose and what its
// HTTP API reads: jobs (a JobRecord, the input tensors as submitted and the
// verified output of each shard), the ledger of verified work per worker
// address, and the hashes of the API keys allowed to submit jobs, each with
// its role.
//
// Store is the interface; Memory is the implementation that exists today.
// A coordinator on the memory store starts empty after every restart: its
// jobs, results, ledger and API keys are gone. Durable implementations are
// planned behind the same interface (bbolt, one file that survives
// restarts, as the default of `serve`; Redis, shared by several
// coordinators), and every implementation must pass the contract suite in
// coordinator/store/storetest.
//
// # Values in, values out
//
// A Store shares no memory with its callers, as if every value crossed a
// network: what a method takes is copied before it returns, and what it
// returns is the caller's to modify. This holds for records (InputNames)
// and for tensors. Memory pays for it with deep copies of tensors in
// CreateJob, JobInputs, PutShardResult and ShardResults: about 20 ms for
// a 64 MiB job's inputs on the development machine (3 GB/s, storetest's
// JobInputs/64MiB benchmark), 5 µs for a 64×64 result tile. That is small
// beside computing such a job, and a durable store spends as much on
// encoding, so the memory store keeps the contract rather than share
// "immutable" tensors that one stray write would corrupt. Times lose
// their monotonic clock reading but keep nanoseconds and the instant;
// compare them with time.Time.Equal.
//
// # Atomicity
//
// Each method is atomic: concurrent calls behave as if they ran one after
// the other, and a call that fails changes nothing. In particular:
//
//   - CreateJob stores the record, inputs and an empty result per shard at
//     once, or nothing (ErrExists when the ID is taken).
//   - UpdateJob is a read-modify-write: no update of another caller is
//     lost between its read and its write. Its callback may run more than
//     once in an optimistic implementation, so it must only modify the
//     record; it must not call the store (Memory holds its lock while the
//     callback runs). To learn the record as stored, copy it inside the
//     callback (rec.Clone()) before returning nil.
//   - PutShardResult stores a shard's result and counts it in the same
//     step: Verified+1 for a shard without a result, Corrections+1 for a
//     replacement (a re-verification overturned the first result, see the
//     scheduler's Correct action); Replicas grows by the results the shard
//     gathered. Verified therefore always equals the number of shards with
//     a result.
//   - Credit, Forfeit and Settle each move FLOPs between an entry's
//     unsettled, settled and forfeited parts in one step, so a settlement
//     racing a forfeit either settles first or fails with ErrInsufficient;
//     it never pays forfeited work.
//
// Across methods there is no transaction: the coordinator's
// scheduler.Accept and Correct map to PutShardResult, Pay to Credit,
// Forfeit to Forfeit, JobDone and JobFailed to UpdateJob, each on its own.
//
// # Rules every implementation keeps
//
// The checks are shared (ValidateJob, ValidateUpdate, ValidateShardResult,
// ValidateTensors, ValidateFLOPs) so that every store refuses the same
// calls. A record's ID, Owner, Kernel, Replication, Shards, Created and
// InputNames are fixed at creation; Verified and Corrections belong to
// PutShardResult; UpdateJob may change the rest. A job in a terminal
// status (done, failed, cancelled) keeps it: UpdateJob fails with
// ErrFinished rather than move it, so a late JobFailed cannot overwrite a
// cancellation. Results may still be stored, and corrected, after a job is
// done. Jobs lists newest first (Created descending, then reverse creation
// order), JobsOwnedBy one owner's jobs in the same order, Ledger by address. A Forfeit for an address never credited
// records nothing. A cancelled context fails a call before it starts, with
// an error wrapping the context's; after Close every call fails with
// ErrClosed.
//
// # API keys
//
// NewAPIKey makes a key ("nlv_" and 128 random bits); the store keeps only
// its SHA-256 (HashAPIKey) in an APIKey record, with its holder's name and
// whether it is an admin key, so a copy of the store does not let anyone
// submit jobs. Every job belongs to the key that submitted it: its
// JobRecord.Owner is that key's ID (KeyID: the first half of the hash, in
// hex), never the key. The HTTP API lets only the owner, or an admin key,
// read, list or cancel a job.
package store
