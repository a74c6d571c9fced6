package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/neurolov/neurolov/tensor"
)

// Sentinel errors. Every error a Store returns wraps one of these (or the
// context's error, or the error of an UpdateJob callback) with context.
var (
	// ErrNotFound reports an unknown job or ledger address.
	ErrNotFound = errors.New("store: not found")
	// ErrExists reports a job ID or API key that is already stored.
	ErrExists = errors.New("store: already exists")
	// ErrInvalid reports an argument the store refuses: a malformed record
	// or tensor, a shard out of range, a negative or non-finite amount, or
	// an UpdateJob that changes a field it may not change.
	ErrInvalid = errors.New("store: invalid argument")
	// ErrFinished reports an UpdateJob that would move a job out of a
	// terminal status (done, failed, cancelled).
	ErrFinished = errors.New("store: job already finished")
	// ErrInsufficient reports a Settle of more than the unsettled pay.
	ErrInsufficient = errors.New("store: settlement exceeds unsettled pay")
	// ErrClosed reports a call on a closed store.
	ErrClosed = errors.New("store: closed")
)

// JobStatus is the life-cycle state of a job.
type JobStatus string

// The job statuses. Done, failed and cancelled are terminal.
const (
	StatusQueued    JobStatus = "queued"
	StatusRunning   JobStatus = "running"
	StatusDone      JobStatus = "done"
	StatusFailed    JobStatus = "failed"
	StatusCancelled JobStatus = "cancelled"
)

// Valid reports whether s is one of the five statuses.
func (s JobStatus) Valid() bool {
	switch s {
	case StatusQueued, StatusRunning, StatusDone, StatusFailed, StatusCancelled:
		return true
	}
	return false
}

// Terminal reports whether s is done, failed or cancelled: a job in a
// terminal status never changes status again.
func (s JobStatus) Terminal() bool {
	return s == StatusDone || s == StatusFailed || s == StatusCancelled
}

// JobRecord is what the store keeps about a job besides its tensors.
//
// ID, Owner, Kernel, Replication, Shards, Created and InputNames are fixed
// by CreateJob; Verified and Corrections are counted by PutShardResult. The
// other fields (Name, Status, Error, Replicas, FLOPs, Finished) may be
// changed by UpdateJob.
type JobRecord struct {
	ID string
	// Owner is the ID of the API key that submitted the job (KeyID of its
	// hash, never the key): only that key, or an admin key, may read, list
	// or cancel the job.
	Owner  string
	Name   string
	Kernel string
	Status JobStatus
	// Error says why a job failed (empty otherwise).
	Error string
	// Replication is the forced replication factor (0 = adaptive).
	Replication int
	// Shards is how many shards the planner cut the job into.
	Shards int
	// Verified is how many distinct shards have a stored result.
	Verified int
	// Corrections is how many stored results were replaced after a
	// re-verification overturned them.
	Corrections int
	// Replicas is how many results were computed for the job's accepted
	// shards (PutShardResult adds each shard's count).
	Replicas int
	// FLOPs is the job's estimated cost.
	FLOPs float64
	// Created is when the job was submitted; it orders Jobs.
	Created time.Time
	// Finished is when the job reached a terminal status (zero before).
	Finished time.Time
	// InputNames names the job's inputs in the order they were submitted
	// and stored ("A", "B" or "X", "W1", "b1", ...).
	InputNames []string
}

// Clone returns a copy of r that shares no memory with it.
func (r JobRecord) Clone() JobRecord {
	r.InputNames = slices.Clone(r.InputNames)
	return r
}

// LedgerEntry is the verified work of one worker address.
//
// FLOPs and Shards only grow (Credit). Every credited FLOP is, at any time,
// exactly one of unsettled (not yet paid out), settled (paid out) or
// forfeited (dropped because the address was caught cheating), so
// FLOPs = UnsettledFLOPs + SettledFLOPs + ForfeitedFLOPs up to rounding.
type LedgerEntry struct {
	Address        [20]byte
	FLOPs          float64
	Shards         int64
	UnsettledFLOPs float64
	SettledFLOPs   float64
	ForfeitedFLOPs float64
}

// Store persists what the coordinator must not lose: jobs, their inputs and
// verified shard results, the ledger of verified work, and API key hashes.
// The package comment describes the contract every implementation keeps;
// storetest checks it. Every method is safe for concurrent use.
type Store interface {
	// CreateJob stores a new job record and its inputs, one tensor per
	// rec.InputNames entry, in that order. It fails with ErrExists when the
	// ID is taken and ErrInvalid when the record or a tensor is malformed
	// (see ValidateJob).
	CreateJob(ctx context.Context, rec JobRecord, inputs []*tensor.Tensor) error
	// Job returns the record of job id, or ErrNotFound.
	Job(ctx context.Context, id string) (JobRecord, error)
	// Jobs returns up to limit records (all when limit <= 0), newest first:
	// by Created descending, jobs created at the same instant in reverse
	// order of their CreateJob calls.
	Jobs(ctx context.Context, limit int) ([]JobRecord, error)
	// JobsOwnedBy returns, in the order of Jobs, up to limit records (all
	// when limit <= 0) of the jobs whose Owner is owner; none for an owner
	// without jobs.
	JobsOwnedBy(ctx context.Context, owner string, limit int) ([]JobRecord, error)
	// JobInputs returns the inputs of job id in InputNames order, or
	// ErrNotFound.
	JobInputs(ctx context.Context, id string) ([]*tensor.Tensor, error)
	// UpdateJob atomically reads job id, lets fn modify a copy of it and
	// stores the result, unless fn returns an error: then nothing changes
	// and that error is returned as is. fn may be called more than once
	// (an optimistic implementation retries on conflict), must not call the
	// store and must not keep rec after it returns. The update fails with
	// ErrInvalid when fn changes a field it may not (see ValidateUpdate) and
	// with ErrFinished when it moves a terminal status to another one.
	UpdateJob(ctx context.Context, id string, fn func(rec *JobRecord) error) error
	// DeleteJob removes job id with its inputs and results, or returns
	// ErrNotFound. The ID may then be used again.
	DeleteJob(ctx context.Context, id string) error
	// PutShardResult stores outputs as the verified result of shard of job
	// id and, atomically with it, counts it: Verified+1 when the shard had
	// no result, Corrections+1 when it replaces one; Replicas grows by
	// replicas (the results the shard gathered, at least 1). It returns the
	// updated record. Results may be stored whatever the job's status.
	PutShardResult(ctx context.Context, id string, shard int, outputs []*tensor.Tensor, replicas int) (JobRecord, error)
	// ShardResults returns the stored results of job id, one entry per
	// shard (rec.Shards entries), nil for a shard without a result.
	ShardResults(ctx context.Context, id string) ([][]*tensor.Tensor, error)
	// Credit adds one verified shard of flops to addr (creating its entry):
	// FLOPs, Shards and UnsettledFLOPs grow.
	Credit(ctx context.Context, addr [20]byte, flops float64) error
	// Forfeit moves all of addr's unsettled FLOPs to ForfeitedFLOPs and
	// returns the updated entry. For an address that was never credited it
	// returns a zero entry and records nothing.
	Forfeit(ctx context.Context, addr [20]byte) (LedgerEntry, error)
	// Settle moves flops of addr's unsettled FLOPs to SettledFLOPs. It
	// fails with ErrInsufficient when flops exceeds UnsettledFLOPs (nothing
	// changes) and ErrNotFound for an address never credited.
	Settle(ctx context.Context, addr [20]byte, flops float64) error
	// Ledger returns every entry, ordered by address.
	Ledger(ctx context.Context) ([]LedgerEntry, error)
	// AddAPIKey records an API key: its hash (see HashAPIKey), its
	// holder's name and its role. It fails with ErrExists when the hash is
	// known and ErrInvalid without a name.
	AddAPIKey(ctx context.Context, key APIKey) error
	// CheckAPIKey reports whether keyHash is a known key's hash, and returns
	// that key's record.
	CheckAPIKey(ctx context.Context, keyHash [32]byte) (key APIKey, ok bool, err error)
	// Close releases the store. Later calls return ErrClosed; closing
	// again returns nil.
	Close() error
}

// MaxShards bounds a job's shards, so that a store can hold a slot per
// shard: far more than a planner cuts (a 1 GiB job in its smallest tiles
// is a few million).
const MaxShards = 1 << 26

// ValidateJob checks a record and its inputs for CreateJob: a non-empty ID,
// owner and kernel, a valid status, a non-zero Created, at most MaxShards shards,
// non-negative counts with
// Verified and Corrections zero, finite non-negative FLOPs, one valid tensor
// per distinct, non-empty input name. It returns an error wrapping
// ErrInvalid. Implementations call it so that all of them refuse the same
// records.
func ValidateJob(rec JobRecord, inputs []*tensor.Tensor) error {
	if rec.ID == "" {
		return fmt.Errorf("%w: job has no ID", ErrInvalid)
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: job %q: %s", ErrInvalid, rec.ID, fmt.Sprintf(format, args...))
	}
	switch {
	case rec.Owner == "":
		return bad("no owner (the ID of the API key that submitted it)")
	case rec.Kernel == "":
		return bad("no kernel")
	case !rec.Status.Valid():
		return bad("unknown status %q", rec.Status)
	case rec.Created.IsZero():
		return bad("Created is not set")
	case rec.Replication < 0 || rec.Shards < 0 || rec.Replicas < 0:
		return bad("negative count (replication %d, shards %d, replicas %d)", rec.Replication, rec.Shards, rec.Replicas)
	case rec.Shards > MaxShards:
		return bad("%d shards, over the %d a job may have", rec.Shards, MaxShards)
	case rec.Verified != 0 || rec.Corrections != 0:
		return bad("Verified and Corrections are counted by PutShardResult and must start at 0")
	case !finiteNonNegative(rec.FLOPs):
		return bad("FLOPs %v is not a finite non-negative number", rec.FLOPs)
	case len(inputs) != len(rec.InputNames):
		return bad("%d inputs for %d input names", len(inputs), len(rec.InputNames))
	}
	seen := make(map[string]bool, len(rec.InputNames)) // a deep MLP has thousands of inputs
	for i, n := range rec.InputNames {
		if n == "" {
			return bad("input %d has no name", i)
		}
		if seen[n] {
			return bad("input name %q repeated", n)
		}
		seen[n] = true
	}
	if err := ValidateTensors(inputs); err != nil {
		return fmt.Errorf("job %q inputs: %w", rec.ID, err)
	}
	return nil
}

// ValidateTensors checks that no tensor is nil and that each one's data
// matches its shape; it returns an error wrapping ErrInvalid.
func ValidateTensors(ts []*tensor.Tensor) error {
	for i, t := range ts {
		if t == nil {
			return fmt.Errorf("%w: tensor %d is nil", ErrInvalid, i)
		}
		if n := tensor.NumElements(t.Shape); n < 0 || n != len(t.Data) {
			return fmt.Errorf("%w: tensor %d: shape %v does not hold %d elements", ErrInvalid, i, t.Shape, len(t.Data))
		}
	}
	return nil
}

// ValidateUpdate checks what an UpdateJob callback made of old: the fields
// fixed at creation (ID, Owner, Kernel, Replication, Shards, Created,
// InputNames)
// and those PutShardResult counts (Verified, Corrections) are unchanged,
// the status is valid, Replicas and FLOPs are non-negative (ErrInvalid),
// and a terminal status stays as it is (ErrFinished).
func ValidateUpdate(old, updated JobRecord) error {
	bad := func(field string) error {
		return fmt.Errorf("%w: job %q: UpdateJob may not change %s", ErrInvalid, old.ID, field)
	}
	switch {
	case updated.ID != old.ID:
		return bad("ID")
	case updated.Owner != old.Owner:
		return bad("Owner")
	case updated.Kernel != old.Kernel:
		return bad("Kernel")
	case updated.Replication != old.Replication:
		return bad("Replication")
	case updated.Shards != old.Shards:
		return bad("Shards")
	case !updated.Created.Equal(old.Created):
		return bad("Created")
	case !slices.Equal(updated.InputNames, old.InputNames):
		return bad("InputNames")
	case updated.Verified != old.Verified:
		return bad("Verified (PutShardResult counts it)")
	case updated.Corrections != old.Corrections:
		return bad("Corrections (PutShardResult counts it)")
	case !updated.Status.Valid():
		return fmt.Errorf("%w: job %q: unknown status %q", ErrInvalid, old.ID, updated.Status)
	case updated.Replicas < 0 || !finiteNonNegative(updated.FLOPs):
		return fmt.Errorf("%w: job %q: negative or non-finite Replicas %d or FLOPs %v", ErrInvalid, old.ID, updated.Replicas, updated.FLOPs)
	case old.Status.Terminal() && updated.Status != old.Status:
		return fmt.Errorf("%w: job %q is %s and cannot become %s", ErrFinished, old.ID, old.Status, updated.Status)
	}
	return nil
}

// ValidateShardResult checks the arguments of PutShardResult against the
// job's record: shard in [0, rec.Shards), at least one valid output tensor,
// replicas at least 1. It returns an error wrapping ErrInvalid.
func ValidateShardResult(rec JobRecord, shard int, outputs []*tensor.Tensor, replicas int) error {
	switch {
	case shard < 0 || shard >= rec.Shards:
		return fmt.Errorf("%w: job %q: shard %d out of range [0, %d)", ErrInvalid, rec.ID, shard, rec.Shards)
	case len(outputs) == 0:
		return fmt.Errorf("%w: job %q shard %d: no outputs", ErrInvalid, rec.ID, shard)
	case replicas < 1:
		return fmt.Errorf("%w: job %q shard %d: %d replicas (a result has at least 1)", ErrInvalid, rec.ID, shard, replicas)
	}
	if err := ValidateTensors(outputs); err != nil {
		return fmt.Errorf("job %q shard %d outputs: %w", rec.ID, shard, err)
	}
	return nil
}

// ValidateFLOPs checks an amount passed to Credit or Settle: finite and
// non-negative, or an error wrapping ErrInvalid.
func ValidateFLOPs(flops float64) error {
	if !finiteNonNegative(flops) {
		return fmt.Errorf("%w: FLOPs %v is not a finite non-negative number", ErrInvalid, flops)
	}
	return nil
}

func finiteNonNegative(f float64) bool { return f >= 0 && !math.IsInf(f, 1) }
