package client

import (
	"time"

	"github.com/neurolov/neurolov/tensor"
)

// State is a job's lifecycle state as the coordinator reports it.
type State string

// The states of a job. Done, Failed and Cancelled are terminal.
const (
	StateQueued    State = "queued"
	StateRunning   State = "running"
	StateDone      State = "done"
	StateFailed    State = "failed"
	StateCancelled State = "cancelled"
)

// Terminal reports whether a job in state s will not change any more.
func (s State) Terminal() bool {
	return s == StateDone || s == StateFailed || s == StateCancelled
}

// JobStatus is the coordinator's view of one job (the JSON of
// GET /v1/jobs/{id}).
type JobStatus struct {
	// ID names the job, e.g. "j-3f2a…".
	ID string `json:"id"`
	// Name is the label given at submission (may be empty).
	Name string `json:"name"`
	// Kernel is the kernel the job runs: "matmul" or "mlp-infer".
	Kernel string `json:"kernel"`
	// Status is the lifecycle state.
	Status State `json:"status"`
	// Shards is the number of shards the job was split into.
	Shards int `json:"shards"`
	// Verified is the number of shards whose result has been verified.
	Verified int `json:"verified"`
	// Progress is Verified/Shards, in [0, 1].
	Progress float64 `json:"progress"`
	// Replication is the requested replicas per shard; 0 means adaptive.
	Replication int `json:"replication"`
	// Corrections counts results that verification rejected and replaced.
	Corrections int `json:"corrections"`
	// Replicas counts the results computed, across all workers, for the
	// shards verified so far: Replicas/Verified is the replication
	// overhead. Results of shards still deciding are not counted yet.
	Replicas int `json:"replicas"`
	// FLOPs is the job's floating-point work (2 per multiply-add).
	FLOPs float64 `json:"flops"`
	// Error is the reason a failed job failed; empty otherwise.
	Error string `json:"error,omitempty"`
	// CreatedAt is when the coordinator accepted the job.
	CreatedAt time.Time `json:"created_at"`
	// FinishedAt is when the job reached a terminal state; zero before.
	FinishedAt time.Time `json:"finished_at,omitzero"`
	// ETASeconds is the coordinator's estimate of the time left; 0 when
	// unknown.
	ETASeconds float64 `json:"eta_seconds,omitempty"`
}

// Elapsed returns how long the job ran on the coordinator: from CreatedAt
// to FinishedAt, or to now while it is not finished.
func (s JobStatus) Elapsed(now time.Time) time.Duration {
	if !s.FinishedAt.IsZero() {
		return s.FinishedAt.Sub(s.CreatedAt)
	}
	return now.Sub(s.CreatedAt)
}

// WorkerStatus is one connected worker (an element of GET /v1/workers).
type WorkerStatus struct {
	// Address is the worker's Ethereum address, its identity.
	Address string `json:"address"`
	// Backend is how it computes: "webgpu", "cpu-wasm", "native-gpu" or "cpu".
	Backend string `json:"backend"`
	// Device describes the adapter or CPU.
	Device string `json:"device"`
	// GFLOPS is the worker's measured speed.
	GFLOPS float64 `json:"gflops"`
	// Window is the number of shards it may hold at once.
	Window int `json:"window"`
	// Leases is the number of shards it holds now.
	Leases int `json:"leases"`
	// Trusted reports whether its record has earned reduced replication.
	Trusted bool `json:"trusted"`
	// Run is its current run of consecutive valid results.
	Run int `json:"run"`
	// Verified counts its results that passed verification.
	Verified int `json:"verified"`
	// Rejected counts its results that failed verification.
	Rejected int `json:"rejected"`
	// ConnectedAt is when its current connection began.
	ConnectedAt time.Time `json:"connected_at"`
}

// LedgerEntry is one worker's verified work (an element of GET /v1/ledger).
type LedgerEntry struct {
	// Address is the worker's Ethereum address.
	Address string `json:"address"`
	// FLOPs is the verified work credited to it.
	FLOPs float64 `json:"flops"`
	// Shards is the number of shards credited.
	Shards int `json:"shards"`
	// UnsettledFLOPs is the part of FLOPs not yet settled on chain.
	UnsettledFLOPs float64 `json:"unsettled_flops"`
	// ForfeitedFLOPs is unpaid work it lost by being caught lying.
	ForfeitedFLOPs float64 `json:"forfeited_flops"`
}

// Layer is one dense layer of an MLP: Z = H·W + B, where W is d_in×d_out
// and B has d_out elements. Every layer but the first applies ReLU to its
// input.
type Layer struct {
	W, B *tensor.Tensor
}

// MaxReplication is the most replicas per shard a job may force (the
// coordinator refuses more).
const MaxReplication = 9

// SubmitOptions are the optional parameters of a submission.
type SubmitOptions struct {
	// Replication forces this many replicas per shard, 1 to
	// MaxReplication; 0 lets the coordinator choose adaptively from the
	// workers' reputation.
	Replication int
	// Name is a free-form label shown in job listings.
	Name string
}
