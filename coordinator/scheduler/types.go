package scheduler

import (
	"encoding/hex"
	"math/rand/v2"
	"time"

	"github.com/neurolov/neurolov/tensor"
)

// WorkerID identifies one worker connection. The transport assigns it; a
// worker that reconnects gets a new WorkerID but keeps its Address.
type WorkerID uint64

// LeaseID identifies one replica handed to one worker.
type LeaseID uint64

// JobID identifies a job.
type JobID string

// Address is a worker's Ethereum address: its identity, its reputation key
// and the account that is paid.
type Address [20]byte

// String returns the 0x-prefixed hex form of a.
func (a Address) String() string { return "0x" + hex.EncodeToString(a[:]) }

// Backends a worker can report.
const (
	BackendCPU       = "cpu"
	BackendNativeGPU = "native-gpu"
	BackendWebGPU    = "webgpu"
	BackendCPUWasm   = "cpu-wasm"
)

// Task is the work of one shard: a kernel and its inputs. The scheduler
// never looks inside the tensors; it hands them to the Checker.
type Task struct {
	Kernel string
	Inputs []*tensor.Tensor
	// FLOPs is the estimated cost of one replica (used for pay and routing).
	FLOPs float64
	// Bytes is the estimated memory a worker needs: inputs plus outputs.
	Bytes float64
	// MaxTensorBytes is the size of the task's largest input or output: it
	// must fit one device buffer.
	MaxTensorBytes float64
}

// Job is what SubmitJob takes.
type Job struct {
	ID    JobID
	Tasks []Task
	// Replication forces every shard to be computed by this many distinct
	// workers that agree (0 = adaptive replication).
	Replication int
}

// Worker describes a connected worker.
type Worker struct {
	ID      WorkerID
	Address Address
	Backend string
	// Window is how many leases the worker may hold at once (prefetch).
	Window int
	// MaxShardBytes is the largest shard the worker can hold (0 = no limit).
	MaxShardBytes float64
	// MaxBufferBytes is the largest single buffer its device allocates
	// (0 = no limit).
	MaxBufferBytes float64
	// GFLOPS is the worker's measured speed.
	GFLOPS float64
}

// Verdict is a Checker's judgement of one result.
type Verdict uint8

// The verdicts. The zero Verdict is not one of them; the scheduler treats
// it, like any unknown value, as Invalid.
const (
	// Valid: the result passed every self-check.
	Valid Verdict = iota + 1
	// Invalid: the result is wrong — proof that its worker cheated or is
	// broken. The worker is caught.
	Invalid
	// Unverifiable: the shard itself cannot be checked (its inputs do not
	// fit the kernel or hold NaN or ±Inf, or a correct float32 result may
	// overflow). No worker is to blame: the job fails with the reason,
	// nobody is caught and nobody is paid for the shard.
	Unverifiable
	// Doubtful: the result passed every self-check it was given, but part
	// of it was checked on the worst-case bound alone (verify's recompute
	// budget ran out): it is judged as Valid, except that it is never
	// accepted on its worker's word alone, trusted or not, its shard is
	// always audited by an identity that did not vouch for it and never
	// becomes a canary's known answer, and it earns its worker no trust
	// (its run of valid results neither rises nor ends).
	Doubtful
)

var verdictNames = [...]string{"", "valid", "invalid", "unverifiable", "doubtful"}

// String returns the verdict's name.
func (v Verdict) String() string {
	if int(v) < len(verdictNames) && v != 0 {
		return verdictNames[v]
	}
	return "unknown"
}

// Checker judges results. coordinator/verify provides the real one; it must
// be deterministic given rng and must never reject an honest result.
type Checker interface {
	// Check self-checks outputs of t (shapes, finiteness, Freivalds, spot
	// checks) and says why it did not pass: Invalid blames the worker,
	// Unverifiable the shard's inputs.
	Check(t *Task, outputs []*tensor.Tensor, rng *rand.Rand) (v Verdict, reason string)
	// Agree reports whether two results of t agree element by element
	// within tolerance.
	Agree(t *Task, a, b []*tensor.Tensor) bool
	// Settle decides a dispute between results of t that do not all
	// agree, by recomputing exactly a bounded random sample of the
	// elements where they differ, never by vote: it says which results
	// are right there. It must never find a correct result wrong.
	Settle(t *Task, outputs [][]*tensor.Tensor, rng *rand.Rand) Settlement
	// Confirm recomputes exactly a random sample of outputs (whole rows)
	// and reports whether they are right: the coordinator's own
	// confirmation, which a result needs before it may become a
	// canary's known answer.
	Confirm(t *Task, outputs []*tensor.Tensor, rng *rand.Rand) bool
	// Doable reports why t can never be computed (its inputs do not fit
	// its kernel, an empty dimension, a task no message can carry), or
	// nil. The scheduler asks when a worker reports an error.
	Doable(t *Task) error
	// Canary derives a new task from a verified one (rows permuted, say)
	// and the outputs a correct worker returns for it; a nil task means
	// none can be made from t.
	Canary(t *Task, outputs []*tensor.Tensor, rng *rand.Rand) (*Task, []*tensor.Tensor)
}

// Settlement is a Checker's decision of a dispute.
type Settlement struct {
	// Right says, for each result, whether it was right on every element
	// recomputed; Reasons says why each wrong one is wrong.
	Right   []bool
	Reasons []string
	// Complete is true when every disputed element was recomputed: a
	// result right on them all differs from the others only where they
	// are wrong. Otherwise a result wrong on few of them may have
	// escaped the sample.
	Complete bool
	// Checked is how many disputed elements were recomputed.
	Checked int
}

// A BatchChecker is a Checker that can check the results of a batch
// together, sharing the work that results with common inputs have in
// common (coordinator/verify reads a weight matrix once for every result
// of the batch that uses it). The scheduler calls CheckAll with every
// result of a batch it is about to judge, all of them already arrived,
// and then uses each verdict where it would have called Check.
type BatchChecker interface {
	Checker
	// CheckAll returns, in order, what Check would for each (ts[i],
	// outputs[i]): its own fresh random draws from rng, made after all
	// of them have arrived and used for that result only.
	CheckAll(ts []*Task, outputs [][]*tensor.Tensor, rng *rand.Rand) []Checked
}

// Checked is one verdict of BatchChecker.CheckAll and, unless Valid, why.
type Checked struct {
	Verdict Verdict
	Reason  string
}

// Config holds the scheduler's knobs. The zero value is not useful: start
// from DefaultConfig.
type Config struct {
	// LeaseTimeout is how long a worker may hold a lease.
	LeaseTimeout time.Duration
	// MaxAttempts is how many times a shard's replicas may end without a
	// decision (MaxReplicas results that a settlement found all right yet
	// not agreeing) before its job fails.
	MaxAttempts int
	// MaxReplicas caps the results gathered for one shard before the
	// shard starts again (see MaxAttempts).
	MaxReplicas int
	// ErrorQuorum is how many distinct addresses, at least two of them
	// trusted when they reported it, must report the same error on a
	// shard before it fails its job (at least 3): errors count against
	// the workers that report them, and a shard fails only on evidence
	// that it cannot be done. Expiries are never evidence.
	ErrorQuorum int
	// MaxStrikes is how many errors and expiries in a row (without a
	// valid result between them) an address may have before it gets no
	// more work; each halves its window.
	MaxStrikes int
	// TrustRun is the run of consecutive valid results after which an
	// address is trusted.
	TrustRun int
	// MinReplication is the floor of the replication probability of a
	// trusted address.
	MinReplication float64
	// CanaryRate is the probability that a lease is a canary.
	CanaryRate float64
	// CanaryPool is how many verified shards are kept as canary sources.
	CanaryPool int
	// CanaryRefresh is the probability that an accepted shard is offered
	// to a full canary pool (confirmed, then replacing its oldest
	// source): confirming costs a few percent of recomputing the shard,
	// and a pool needs only to turn over, not to hold the newest shards.
	// Shards are always offered while the pool has room.
	CanaryRefresh float64
	// HeavyFLOPs routes shards above this cost to native-gpu workers only
	// (0 = no limit).
	HeavyFLOPs float64
	// HeavyBytes routes shards above this size to native-gpu workers only
	// (0 = no limit).
	HeavyBytes float64
	// TrustedWait is how long a replica asked after a dispute waits for
	// a trusted worker before any eligible worker may take it.
	TrustedWait time.Duration
	// AuditWait is how long audit and re-verification replicas wait for a
	// trusted worker (when one is connected) before anyone may take them.
	AuditWait time.Duration
	// Audit re-checks, with one more replica (preferably from a trusted
	// worker), every result accepted without a trusted voucher: two new
	// identities that agree may be colluding. (A doubtful shard is
	// audited whatever Audit says.)
	Audit bool
	// ScanLimit bounds how far down the queue a worker looks for a shard it
	// may take.
	ScanLimit int
}

// DefaultConfig returns the production defaults.
func DefaultConfig() Config {
	return Config{
		LeaseTimeout:   30 * time.Second,
		MaxAttempts:    8,
		MaxReplicas:    7,
		ErrorQuorum:    3,
		MaxStrikes:     8,
		TrustRun:       10,
		MinReplication: 0.02,
		CanaryRate:     0.01,
		CanaryPool:     64,
		CanaryRefresh:  1.0 / 8,
		TrustedWait:    2 * time.Second,
		Audit:          true,
		AuditWait:      20 * time.Second,
		ScanLimit:      256,
	}
}

// ActionKind says what an Action asks the plumbing to do.
type ActionKind uint8

// The actions.
const (
	// Assign sends Task to Worker under Lease.
	Assign ActionKind = iota + 1
	// Cancel tells Worker to drop Lease (its result is no longer wanted).
	Cancel
	// Reject reports a result that was refused (Reason says why); nothing
	// is paid for it.
	Reject
	// Accept stores Outputs as the verified result of Job's Shard.
	Accept
	// Correct replaces the stored result of Job's Shard with Outputs after a
	// re-verification overturned it.
	Correct
	// Pay credits Address with FLOPs of verified work (one shard).
	Pay
	// Forfeit drops Address's unsettled pay: it was caught cheating.
	Forfeit
	// Ban closes every connection of Address and refuses it work.
	Ban
	// JobDone says every shard of Job is verified.
	JobDone
	// JobFailed says Job cannot complete; Reason says why.
	JobFailed
)

var actionNames = [...]string{"", "assign", "cancel", "reject", "accept", "correct", "pay", "forfeit", "ban", "job-done", "job-failed"}

// String returns the action's name.
func (k ActionKind) String() string {
	if int(k) < len(actionNames) {
		return actionNames[k]
	}
	return "unknown"
}

// Action is one effect for the plumbing to carry out. Only the fields that
// the Kind names are set.
type Action struct {
	Kind    ActionKind
	Worker  WorkerID
	Address Address
	Lease   LeaseID
	Job     JobID
	Shard   int
	// Task is the work to send (Assign). For canaries it is a derived task
	// the worker cannot tell from real work.
	Task    *Task
	Outputs []*tensor.Tensor
	// Vouchers are the addresses whose agreeing results were accepted.
	Vouchers []Address
	FLOPs    float64
	// Replicas is how many results the shard gathered (Accept, Correct).
	Replicas int
	// Method says how the result was verified (Accept, Correct).
	Method string
	Reason string
}

// Stats counts what the scheduler has seen since it started.
type Stats struct {
	Results        int // results received for live leases (replicas computed)
	Accepted       int // shards accepted
	Corrections    int // accepted results later replaced
	Canaries       int // canary results received
	Rejected       int // results refused (any reason)
	Unleased       int // results for unknown, expired, foreign or replayed leases
	Caught         int // addresses caught cheating
	Expired        int // leases that expired
	Reissued       int // replicas re-issued after expiry, error or departure
	JobsDone       int
	JobsFailed     int
	SingleAccepted int // shards accepted on one result (trusted worker)
	Audits         int // audit results received
	Replicated     int // shards whose first assignment asked for two or more replicas
	TieBreakers    int // extra replicas asked because a settlement could not decide
	Settlements    int // disputes settled by recomputing disputed elements
	Errors         int // errors and expiries, counted against their workers
}
