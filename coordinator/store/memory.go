package store

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/neurolov/neurolov/tensor"
)

// Memory is a Store that keeps everything in the process's memory: fast,
// and empty again after a restart. It is safe for concurrent use.
//
// It deep-copies every tensor on the way in and on the way out, so callers
// never share memory with it (see the package comment for the cost).
type Memory struct {
	closed atomic.Bool

	mu    sync.RWMutex // guards jobs, order, owned, seq
	jobs  map[string]*memJob
	order []*memJob // ascending by (Created, seq): Jobs walks it backwards
	// owned holds each owner's jobs in the order of order, so that
	// JobsOwnedBy reads only the caller's.
	owned map[string][]*memJob
	seq   uint64

	ledgerMu sync.Mutex
	ledger   map[[20]byte]*LedgerEntry

	keysMu sync.RWMutex
	keys   map[[32]byte]APIKey
}

var _ Store = (*Memory)(nil)

// memJob is one stored job. The tensors it points to are never written
// after they are stored: a replaced result is a new slice, so readers may
// copy them outside the lock.
type memJob struct {
	rec     JobRecord
	seq     uint64
	inputs  []*tensor.Tensor
	results [][]*tensor.Tensor
}

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory {
	return &Memory{
		jobs:   make(map[string]*memJob),
		owned:  make(map[string][]*memJob),
		ledger: make(map[[20]byte]*LedgerEntry),
		keys:   make(map[[32]byte]APIKey),
	}
}

// begin reports ctx's error or ErrClosed, wrapped with the operation.
// Callers check m.closed again under their lock (Close may race).
func (m *Memory) begin(ctx context.Context, op string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: %s: %w", op, err)
	}
	if m.closed.Load() {
		return fmt.Errorf("%w: %s", ErrClosed, op)
	}
	return nil
}

// job returns the job or an error; m.mu must be held.
func (m *Memory) job(op, id string) (*memJob, error) {
	if m.closed.Load() {
		return nil, fmt.Errorf("%w: %s", ErrClosed, op)
	}
	j := m.jobs[id]
	if j == nil {
		return nil, fmt.Errorf("%w: %s: job %q", ErrNotFound, op, id)
	}
	return j, nil
}

func compareJobs(a, b *memJob) int {
	if c := a.rec.Created.Compare(b.rec.Created); c != 0 {
		return c
	}
	return cmp.Compare(a.seq, b.seq)
}

// CreateJob implements Store.
func (m *Memory) CreateJob(ctx context.Context, rec JobRecord, inputs []*tensor.Tensor) error {
	const op = "create job"
	if err := m.begin(ctx, op); err != nil {
		return err
	}
	if err := ValidateJob(rec, inputs); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	j := &memJob{rec: rec.Clone(), inputs: cloneTensors(inputs), results: make([][]*tensor.Tensor, rec.Shards)}
	// Drop monotonic clock readings: a durable store cannot keep them, and
	// comparisons must behave the same on every implementation.
	j.rec.Created = j.rec.Created.Round(0)
	j.rec.Finished = j.rec.Finished.Round(0)

	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed.Load() {
		return fmt.Errorf("%w: %s", ErrClosed, op)
	}
	if m.jobs[rec.ID] != nil {
		return fmt.Errorf("%w: %s: job %q", ErrExists, op, rec.ID)
	}
	m.seq++
	j.seq = m.seq
	m.jobs[rec.ID] = j
	m.order = insertJob(m.order, j)
	m.owned[j.rec.Owner] = insertJob(m.owned[j.rec.Owner], j)
	return nil
}

// insertJob inserts j into jobs, kept in compareJobs order.
func insertJob(jobs []*memJob, j *memJob) []*memJob {
	i, _ := slices.BinarySearchFunc(jobs, j, compareJobs)
	return slices.Insert(jobs, i, j)
}

// removeJob removes j from jobs, kept in compareJobs order.
func removeJob(jobs []*memJob, j *memJob) []*memJob {
	if i, ok := slices.BinarySearchFunc(jobs, j, compareJobs); ok {
		return slices.Delete(jobs, i, i+1)
	}
	return jobs
}

// Job implements Store.
func (m *Memory) Job(ctx context.Context, id string) (JobRecord, error) {
	const op = "job"
	if err := m.begin(ctx, op); err != nil {
		return JobRecord{}, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	j, err := m.job(op, id)
	if err != nil {
		return JobRecord{}, err
	}
	return j.rec.Clone(), nil
}

// Jobs implements Store.
func (m *Memory) Jobs(ctx context.Context, limit int) ([]JobRecord, error) {
	return m.listJobs(ctx, "jobs", limit, func() []*memJob { return m.order })
}

// JobsOwnedBy implements Store.
func (m *Memory) JobsOwnedBy(ctx context.Context, owner string, limit int) ([]JobRecord, error) {
	return m.listJobs(ctx, "jobs owned by", limit, func() []*memJob { return m.owned[owner] })
}

// listJobs returns the newest limit jobs of those jobs lists, read under
// the store's read lock.
func (m *Memory) listJobs(ctx context.Context, op string, limit int, jobs func() []*memJob) ([]JobRecord, error) {
	if err := m.begin(ctx, op); err != nil {
		return nil, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed.Load() {
		return nil, fmt.Errorf("%w: %s", ErrClosed, op)
	}
	return newestFirst(jobs(), limit), nil
}

// newestFirst copies up to limit records (all when limit <= 0) of jobs,
// which are in ascending compareJobs order, from the last.
func newestFirst(jobs []*memJob, limit int) []JobRecord {
	n := len(jobs)
	if limit > 0 && limit < n {
		n = limit
	}
	out := make([]JobRecord, n)
	for i := range out {
		out[i] = jobs[len(jobs)-1-i].rec.Clone()
	}
	return out
}

// JobInputs implements Store.
func (m *Memory) JobInputs(ctx context.Context, id string) ([]*tensor.Tensor, error) {
	const op = "job inputs"
	if err := m.begin(ctx, op); err != nil {
		return nil, err
	}
	m.mu.RLock()
	j, err := m.job(op, id)
	var inputs []*tensor.Tensor
	if err == nil {
		inputs = j.inputs // immutable: copied below, outside the lock
	}
	m.mu.RUnlock()
	if err != nil {
		return nil, err
	}
	return cloneTensors(inputs), nil
}

// UpdateJob implements Store. fn runs once, under the store's write lock.
func (m *Memory) UpdateJob(ctx context.Context, id string, fn func(rec *JobRecord) error) error {
	const op = "update job"
	if err := m.begin(ctx, op); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	j, err := m.job(op, id)
	if err != nil {
		return err
	}
	rec := j.rec.Clone()
	if err := fn(&rec); err != nil {
		return err
	}
	if err := ValidateUpdate(j.rec, rec); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	// Store a copy of rec that keeps the store's own slice of the fixed
	// InputNames: fn may have kept rec, whose slice stays its own.
	updated := rec
	updated.InputNames, updated.Created = j.rec.InputNames, j.rec.Created
	updated.Finished = updated.Finished.Round(0)
	j.rec = updated
	return nil
}

// DeleteJob implements Store.
func (m *Memory) DeleteJob(ctx context.Context, id string) error {
	const op = "delete job"
	if err := m.begin(ctx, op); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	j, err := m.job(op, id)
	if err != nil {
		return err
	}
	delete(m.jobs, id)
	m.order = removeJob(m.order, j)
	if m.owned[j.rec.Owner] = removeJob(m.owned[j.rec.Owner], j); len(m.owned[j.rec.Owner]) == 0 {
		delete(m.owned, j.rec.Owner)
	}
	return nil
}

// PutShardResult implements Store.
func (m *Memory) PutShardResult(ctx context.Context, id string, shard int, outputs []*tensor.Tensor, replicas int) (JobRecord, error) {
	const op = "put shard result"
	if err := m.begin(ctx, op); err != nil {
		return JobRecord{}, err
	}
	if err := ValidateTensors(outputs); err != nil {
		return JobRecord{}, fmt.Errorf("%s: job %q shard %d: %w", op, id, shard, err)
	}
	owned := cloneTensors(outputs) // copy before taking the lock
	m.mu.Lock()
	defer m.mu.Unlock()
	j, err := m.job(op, id)
	if err != nil {
		return JobRecord{}, err
	}
	if err := ValidateShardResult(j.rec, shard, owned, replicas); err != nil {
		return JobRecord{}, fmt.Errorf("%s: %w", op, err)
	}
	if j.results[shard] == nil {
		j.rec.Verified++
	} else {
		j.rec.Corrections++
	}
	j.rec.Replicas += replicas
	j.results[shard] = owned
	return j.rec.Clone(), nil
}

// ShardResults implements Store.
func (m *Memory) ShardResults(ctx context.Context, id string) ([][]*tensor.Tensor, error) {
	const op = "shard results"
	if err := m.begin(ctx, op); err != nil {
		return nil, err
	}
	m.mu.RLock()
	j, err := m.job(op, id)
	var results [][]*tensor.Tensor
	if err == nil {
		results = slices.Clone(j.results) // the entries are immutable
	}
	m.mu.RUnlock()
	if err != nil {
		return nil, err
	}
	for i, r := range results {
		if r != nil {
			results[i] = cloneTensors(r)
		}
	}
	return results, nil
}

// Credit implements Store.
func (m *Memory) Credit(ctx context.Context, addr [20]byte, flops float64) error {
	const op = "credit"
	if err := m.begin(ctx, op); err != nil {
		return err
	}
	if err := ValidateFLOPs(flops); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	m.ledgerMu.Lock()
	defer m.ledgerMu.Unlock()
	if m.closed.Load() {
		return fmt.Errorf("%w: %s", ErrClosed, op)
	}
	e := m.ledger[addr]
	if e == nil {
		e = &LedgerEntry{Address: addr}
		m.ledger[addr] = e
	}
	e.FLOPs += flops
	e.Shards++
	e.UnsettledFLOPs += flops
	return nil
}

// Forfeit implements Store.
func (m *Memory) Forfeit(ctx context.Context, addr [20]byte) (LedgerEntry, error) {
	const op = "forfeit"
	if err := m.begin(ctx, op); err != nil {
		return LedgerEntry{}, err
	}
	m.ledgerMu.Lock()
	defer m.ledgerMu.Unlock()
	if m.closed.Load() {
		return LedgerEntry{}, fmt.Errorf("%w: %s", ErrClosed, op)
	}
	e := m.ledger[addr]
	if e == nil {
		return LedgerEntry{Address: addr}, nil
	}
	e.ForfeitedFLOPs += e.UnsettledFLOPs
	e.UnsettledFLOPs = 0
	return *e, nil
}

// Settle implements Store.
func (m *Memory) Settle(ctx context.Context, addr [20]byte, flops float64) error {
	const op = "settle"
	if err := m.begin(ctx, op); err != nil {
		return err
	}
	if err := ValidateFLOPs(flops); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	m.ledgerMu.Lock()
	defer m.ledgerMu.Unlock()
	if m.closed.Load() {
		return fmt.Errorf("%w: %s", ErrClosed, op)
	}
	e := m.ledger[addr]
	if e == nil {
		return fmt.Errorf("%w: %s: address %x has no ledger entry", ErrNotFound, op, addr)
	}
	if flops > e.UnsettledFLOPs {
		return fmt.Errorf("%w: %s: %v FLOPs for address %x, %v unsettled", ErrInsufficient, op, flops, addr, e.UnsettledFLOPs)
	}
	e.UnsettledFLOPs -= flops
	e.SettledFLOPs += flops
	return nil
}

// Ledger implements Store.
func (m *Memory) Ledger(ctx context.Context) ([]LedgerEntry, error) {
	const op = "ledger"
	if err := m.begin(ctx, op); err != nil {
		return nil, err
	}
	m.ledgerMu.Lock()
	if m.closed.Load() {
		m.ledgerMu.Unlock()
		return nil, fmt.Errorf("%w: %s", ErrClosed, op)
	}
	out := make([]LedgerEntry, 0, len(m.ledger))
	for _, e := range m.ledger {
		out = append(out, *e)
	}
	m.ledgerMu.Unlock()
	slices.SortFunc(out, func(a, b LedgerEntry) int { return bytes.Compare(a.Address[:], b.Address[:]) })
	return out, nil
}

// AddAPIKey implements Store.
func (m *Memory) AddAPIKey(ctx context.Context, key APIKey) error {
	const op = "add api key"
	if err := m.begin(ctx, op); err != nil {
		return err
	}
	if key.Name == "" {
		return fmt.Errorf("%w: %s: the key's holder needs a name", ErrInvalid, op)
	}
	m.keysMu.Lock()
	defer m.keysMu.Unlock()
	if m.closed.Load() {
		return fmt.Errorf("%w: %s", ErrClosed, op)
	}
	if _, ok := m.keys[key.Hash]; ok {
		return fmt.Errorf("%w: %s: the key is already registered", ErrExists, op)
	}
	m.keys[key.Hash] = key
	return nil
}

// CheckAPIKey implements Store.
func (m *Memory) CheckAPIKey(ctx context.Context, keyHash [32]byte) (APIKey, bool, error) {
	const op = "check api key"
	if err := m.begin(ctx, op); err != nil {
		return APIKey{}, false, err
	}
	m.keysMu.RLock()
	defer m.keysMu.RUnlock()
	if m.closed.Load() {
		return APIKey{}, false, fmt.Errorf("%w: %s", ErrClosed, op)
	}
	key, ok := m.keys[keyHash]
	return key, ok, nil
}

// Close implements Store: it drops everything the store holds.
func (m *Memory) Close() error {
	if m.closed.Swap(true) {
		return nil
	}
	m.mu.Lock()
	m.jobs, m.order, m.owned = nil, nil, nil
	m.mu.Unlock()
	m.ledgerMu.Lock()
	m.ledger = nil
	m.ledgerMu.Unlock()
	m.keysMu.Lock()
	m.keys = nil
	m.keysMu.Unlock()
	return nil
}

// cloneTensors deep-copies ts into one allocation for all the data.
func cloneTensors(ts []*tensor.Tensor) []*tensor.Tensor {
	if ts == nil {
		return nil
	}
	n := 0
	for _, t := range ts {
		n += len(t.Data)
	}
	data := make([]float32, n)
	out := make([]*tensor.Tensor, len(ts))
	for i, t := range ts {
		k := copy(data, t.Data)
		out[i] = &tensor.Tensor{Shape: slices.Clone(t.Shape), Data: data[:k:k]}
		data = data[k:]
	}
	return out
}
