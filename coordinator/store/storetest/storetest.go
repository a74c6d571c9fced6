package storetest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/neurolov/neurolov/coordinator/store"
	"github.com/neurolov/neurolov/tensor"
)

// Opener returns a new, empty store for one test or benchmark. It may
// register cleanups with tb (to remove a file or flush a database); Run and
// Benchmark close the store themselves, and Close must tolerate being
// called twice.
type Opener func(tb testing.TB) store.Store

// Run checks the whole Store contract against the stores open returns, one
// fresh store per subtest.
func Run(t *testing.T, open Opener) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(*testing.T, store.Store)
	}{
		{"CreateAndRead", testCreateAndRead},
		{"CreateExists", testCreateExists},
		{"CreateInvalid", testCreateInvalid},
		{"NotFound", testNotFound},
		{"JobsOrder", testJobsOrder},
		{"JobsOwnedBy", testJobsOwnedBy},
		{"UpdateJob", testUpdateJob},
		{"UpdateJobConcurrent", testUpdateJobConcurrent},
		{"DeleteJob", testDeleteJob},
		{"PutShardResult", testPutShardResult},
		{"PutShardResultInvalid", testPutShardResultInvalid},
		{"PutShardResultConcurrent", testPutShardResultConcurrent},
		{"Ledger", testLedger},
		{"LedgerInvalid", testLedgerInvalid},
		{"LedgerConcurrent", testLedgerConcurrent},
		{"APIKeys", testAPIKeys},
		{"Isolation", testIsolation},
		{"CancelledContext", testCancelledContext},
		{"Closed", testClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tt.fn(t, s)
		})
	}
}

// t0 is the creation time of the jobs the tests make (they move it as
// they need).
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC)

// Owners of the jobs the tests make.
var (
	alice = store.KeyID(store.HashAPIKey("nlv_alice"))
	bob   = store.KeyID(store.HashAPIKey("nlv_bob"))
)

// newJob returns a valid queued matmul record owned by alice with inputs A
// (2×3) and B (3×2).
func newJob(id string, shards int) store.JobRecord {
	return store.JobRecord{
		ID: id, Owner: alice, Kernel: "matmul", Status: store.StatusQueued, Shards: shards,
		FLOPs: 24, Created: t0, InputNames: []string{"A", "B"},
	}
}

func newInputs() []*tensor.Tensor {
	return []*tensor.Tensor{mustTensor([]float32{1, 2, 3, 4, 5, 6}, 2, 3), mustTensor([]float32{-1, 0.5, 0.25, 8, 9, 10}, 3, 2)}
}

func mustTensor(data []float32, shape ...int) *tensor.Tensor {
	t, err := tensor.FromData(data, shape...)
	if err != nil {
		panic(err) // a bug in this file
	}
	return t
}

// output returns a distinct 2×2 result tensor for shard results.
func output(v float32) []*tensor.Tensor {
	return []*tensor.Tensor{mustTensor([]float32{v, v + 1, v + 2, v + 3}, 2, 2)}
}

func create(t *testing.T, s store.Store, rec store.JobRecord, inputs []*tensor.Tensor) {
	t.Helper()
	if err := s.CreateJob(t.Context(), rec, inputs); err != nil {
		t.Fatalf("CreateJob(%q): %v", rec.ID, err)
	}
}

func getJob(t *testing.T, s store.Store, id string) store.JobRecord {
	t.Helper()
	rec, err := s.Job(t.Context(), id)
	if err != nil {
		t.Fatalf("Job(%q): %v", id, err)
	}
	return rec
}

// checkRecord fails t unless got equals want, times compared as instants.
func checkRecord(t *testing.T, what string, got, want store.JobRecord) {
	t.Helper()
	if !got.Created.Equal(want.Created) || !got.Finished.Equal(want.Finished) {
		t.Errorf("%s: Created, Finished = %v, %v; want %v, %v", what, got.Created, got.Finished, want.Created, want.Finished)
	}
	got.Created, got.Finished = want.Created, want.Finished
	if len(got.InputNames) == 0 && len(want.InputNames) == 0 {
		got.InputNames = want.InputNames
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

// checkTensors fails t unless got holds the same shapes and bit patterns
// as want.
func checkTensors(t *testing.T, what string, got, want []*tensor.Tensor) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d tensors, want %d", what, len(got), len(want))
	}
	for i := range want {
		if got[i] == nil {
			t.Errorf("%s[%d]: nil", what, i)
			continue
		}
		if !slices.Equal(got[i].Shape, want[i].Shape) {
			t.Errorf("%s[%d]: shape %v, want %v", what, i, got[i].Shape, want[i].Shape)
			continue
		}
		if !slices.EqualFunc(got[i].Data, want[i].Data, func(a, b float32) bool { return math.Float32bits(a) == math.Float32bits(b) }) {
			t.Errorf("%s[%d]: data %v, want %v", what, i, got[i].Data, want[i].Data)
		}
	}
}

func checkErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: error %v, want %v", what, err, want)
	}
}

func testCreateAndRead(t *testing.T, s store.Store) {
	// Bit patterns a serialiser must keep: -0, a subnormal, NaN, ±Inf,
	// extremes; plus a tensor with no elements.
	special := []float32{float32(math.Copysign(0, -1)), math.SmallestNonzeroFloat32, float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), math.MaxFloat32}
	inputs := []*tensor.Tensor{mustTensor(special, 2, 3), mustTensor([]float32{1, 2, 3}, 3), mustTensor(nil, 0, 4)}
	created := time.Now() // carries a monotonic reading and nanoseconds
	rec := store.JobRecord{
		ID: "j-1", Owner: bob, Name: "demo", Kernel: "mlp-infer", Status: store.StatusRunning,
		Replication: 2, Shards: 5, Replicas: 7, FLOPs: 1.5e11,
		Created: created, Finished: created.Add(time.Second), InputNames: []string{"X", "b1", "E"},
	}
	create(t, s, rec, inputs)

	checkRecord(t, "Job", getJob(t, s, "j-1"), rec)
	got, err := s.JobInputs(t.Context(), "j-1")
	if err != nil {
		t.Fatalf("JobInputs: %v", err)
	}
	checkTensors(t, "JobInputs", got, inputs)
	jobs, err := s.Jobs(t.Context(), 0)
	if err != nil || len(jobs) != 1 {
		t.Fatalf("Jobs = %d records, %v; want 1", len(jobs), err)
	}
	checkRecord(t, "Jobs[0]", jobs[0], rec)
	results, err := s.ShardResults(t.Context(), "j-1")
	if err != nil {
		t.Fatalf("ShardResults: %v", err)
	}
	if len(results) != 5 || slices.ContainsFunc(results, func(r []*tensor.Tensor) bool { return r != nil }) {
		t.Errorf("ShardResults of a new job = %v, want 5 nil entries", results)
	}
}

func testCreateExists(t *testing.T, s store.Store) {
	rec := newJob("j-1", 2)
	create(t, s, rec, newInputs())
	other := rec
	other.Name, other.Shards = "impostor", 9
	checkErr(t, "second CreateJob", s.CreateJob(t.Context(), other, newInputs()), store.ErrExists)
	checkRecord(t, "Job after refused CreateJob", getJob(t, s, "j-1"), rec)
}

func testCreateInvalid(t *testing.T, s store.Store) {
	tests := []struct {
		name   string
		mutate func(*store.JobRecord, *[]*tensor.Tensor)
	}{
		{"no ID", func(r *store.JobRecord, _ *[]*tensor.Tensor) { r.ID = "" }},
		{"no owner", func(r *store.JobRecord, _ *[]*tensor.Tensor) { r.Owner = "" }},
		{"no kernel", func(r *store.JobRecord, _ *[]*tensor.Tensor) { r.Kernel = "" }},
		{"unknown status", func(r *store.JobRecord, _ *[]*tensor.Tensor) { r.Status = "paused" }},
		{"empty status", func(r *store.JobRecord, _ *[]*tensor.Tensor) { r.Status = "" }},
		{"zero Created", func(r *store.JobRecord, _ *[]*tensor.Tensor) { r.Created = time.Time{} }},
		{"negative shards", func(r *store.JobRecord, _ *[]*tensor.Tensor) { r.Shards = -1 }},
		{"shards over MaxShards", func(r *store.JobRecord, _ *[]*tensor.Tensor) { r.Shards = 1 << 62 }},
		{"negative replication", func(r *store.JobRecord, _ *[]*tensor.Tensor) { r.Replication = -1 }},
		{"Verified preset", func(r *store.JobRecord, _ *[]*tensor.Tensor) { r.Verified = 1 }},
		{"Corrections preset", func(r *store.JobRecord, _ *[]*tensor.Tensor) { r.Corrections = 1 }},
		{"NaN FLOPs", func(r *store.JobRecord, _ *[]*tensor.Tensor) { r.FLOPs = math.NaN() }},
		{"negative FLOPs", func(r *store.JobRecord, _ *[]*tensor.Tensor) { r.FLOPs = -1 }},
		{"more names than inputs", func(r *store.JobRecord, _ *[]*tensor.Tensor) { r.InputNames = append(r.InputNames, "C") }},
		{"empty name", func(r *store.JobRecord, _ *[]*tensor.Tensor) { r.InputNames[1] = "" }},
		{"repeated name", func(r *store.JobRecord, _ *[]*tensor.Tensor) { r.InputNames[1] = "A" }},
		{"nil tensor", func(_ *store.JobRecord, in *[]*tensor.Tensor) { (*in)[1] = nil }},
		{"shape does not match data", func(_ *store.JobRecord, in *[]*tensor.Tensor) { (*in)[0].Shape = []int{4, 4} }},
		{"negative dimension", func(_ *store.JobRecord, in *[]*tensor.Tensor) { (*in)[0].Shape = []int{-2, -3} }},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := fmt.Sprintf("j-bad-%d", i)
			rec, inputs := newJob(id, 2), newInputs()
			tt.mutate(&rec, &inputs)
			checkErr(t, "CreateJob", s.CreateJob(t.Context(), rec, inputs), store.ErrInvalid)
			_, err := s.Job(t.Context(), id)
			checkErr(t, "Job after refused CreateJob", err, store.ErrNotFound)
		})
	}
}

// op is one Store call, for the tests that try every operation.
type op struct {
	name string
	call func(ctx context.Context, s store.Store, id string) error
	// job is whether the call names a job (and so can be "not found").
	job bool
}

var ops = []op{
	{"CreateJob", func(ctx context.Context, s store.Store, id string) error {
		return s.CreateJob(ctx, newJob(id, 2), newInputs())
	}, false},
	{"Job", func(ctx context.Context, s store.Store, id string) error { _, err := s.Job(ctx, id); return err }, true},
	{"Jobs", func(ctx context.Context, s store.Store, _ string) error { _, err := s.Jobs(ctx, 10); return err }, false},
	{"JobsOwnedBy", func(ctx context.Context, s store.Store, _ string) error {
		_, err := s.JobsOwnedBy(ctx, alice, 10)
		return err
	}, false},
	{"JobInputs", func(ctx context.Context, s store.Store, id string) error { _, err := s.JobInputs(ctx, id); return err }, true},
	{"UpdateJob", func(ctx context.Context, s store.Store, id string) error {
		return s.UpdateJob(ctx, id, func(*store.JobRecord) error { return errors.New("storetest: UpdateJob callback called") })
	}, true},
	{"DeleteJob", func(ctx context.Context, s store.Store, id string) error { return s.DeleteJob(ctx, id) }, true},
	{"PutShardResult", func(ctx context.Context, s store.Store, id string) error {
		_, err := s.PutShardResult(ctx, id, 0, output(1), 1)
		return err
	}, true},
	{"ShardResults", func(ctx context.Context, s store.Store, id string) error {
		_, err := s.ShardResults(ctx, id)
		return err
	}, true},
	{"Credit", func(ctx context.Context, s store.Store, _ string) error { return s.Credit(ctx, [20]byte{1}, 1) }, false},
	{"Forfeit", func(ctx context.Context, s store.Store, _ string) error {
		_, err := s.Forfeit(ctx, [20]byte{1})
		return err
	}, false},
	{"Settle", func(ctx context.Context, s store.Store, _ string) error { return s.Settle(ctx, [20]byte{1}, 0) }, false},
	{"Ledger", func(ctx context.Context, s store.Store, _ string) error { _, err := s.Ledger(ctx); return err }, false},
	{"AddAPIKey", func(ctx context.Context, s store.Store, _ string) error {
		return s.AddAPIKey(ctx, store.APIKey{Name: "op", Hash: [32]byte{1}})
	}, false},
	{"CheckAPIKey", func(ctx context.Context, s store.Store, _ string) error {
		_, _, err := s.CheckAPIKey(ctx, [32]byte{1})
		return err
	}, false},
}

func testNotFound(t *testing.T, s store.Store) {
	create(t, s, newJob("j-1", 2), newInputs())
	for _, o := range ops {
		if o.job {
			checkErr(t, o.name+`("missing")`, o.call(t.Context(), s, "missing"), store.ErrNotFound)
		}
	}
	getJob(t, s, "j-1") // the other job is untouched
}

func testJobsOrder(t *testing.T, s store.Store) {
	empty, err := s.Jobs(t.Context(), 0)
	if err != nil || len(empty) != 0 {
		t.Fatalf("Jobs of an empty store = %v, %v; want none", empty, err)
	}
	// Created out of order, with a tie (j-b, j-c) broken by creation order.
	for _, j := range []struct {
		id string
		at time.Duration
	}{{"j-a", 2}, {"j-b", 5}, {"j-c", 5}, {"j-d", 1}, {"j-e", 9}} {
		rec := newJob(j.id, 1)
		rec.Created = t0.Add(j.at * time.Second)
		create(t, s, rec, newInputs())
	}
	all := []string{"j-e", "j-c", "j-b", "j-a", "j-d"}
	for _, tt := range []struct {
		limit int
		want  []string
	}{{0, all}, {-1, all}, {2, all[:2]}, {5, all}, {50, all}} {
		recs, err := s.Jobs(t.Context(), tt.limit)
		if err != nil {
			t.Fatalf("Jobs(%d): %v", tt.limit, err)
		}
		var ids []string
		for _, r := range recs {
			ids = append(ids, r.ID)
		}
		if !slices.Equal(ids, tt.want) {
			t.Errorf("Jobs(%d) = %v, want %v", tt.limit, ids, tt.want)
		}
	}
}

// ids returns the IDs of recs.
func ids(recs []store.JobRecord) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.ID
	}
	return out
}

func testJobsOwnedBy(t *testing.T, s store.Store) {
	// Two owners' jobs interleaved in time, with a tie broken by creation
	// order; then one of each deleted.
	for _, j := range []struct {
		id    string
		owner string
		at    time.Duration
	}{{"j-a1", alice, 2}, {"j-b1", bob, 3}, {"j-a2", alice, 5}, {"j-a3", alice, 5}, {"j-b2", bob, 1}, {"j-a4", alice, 9}} {
		rec := newJob(j.id, 1)
		rec.Owner, rec.Created = j.owner, t0.Add(j.at*time.Second)
		create(t, s, rec, newInputs())
	}
	check := func(what, owner string, limit int, want []string) {
		t.Helper()
		recs, err := s.JobsOwnedBy(t.Context(), owner, limit)
		if err != nil {
			t.Fatalf("%s: JobsOwnedBy(%q, %d): %v", what, owner, limit, err)
		}
		if got := ids(recs); !slices.Equal(got, want) {
			t.Errorf("%s: JobsOwnedBy(%q, %d) = %v, want %v", what, owner, limit, got, want)
		}
		for _, r := range recs {
			if r.Owner != owner {
				t.Errorf("%s: JobsOwnedBy(%q) returned %s of owner %q", what, owner, r.ID, r.Owner)
			}
		}
	}
	check("created", alice, 0, []string{"j-a4", "j-a3", "j-a2", "j-a1"})
	check("created", alice, 2, []string{"j-a4", "j-a3"})
	check("created", bob, -1, []string{"j-b1", "j-b2"})
	check("created", "k-nobody", 0, []string{})
	for _, id := range []string{"j-a3", "j-b2"} {
		if err := s.DeleteJob(t.Context(), id); err != nil {
			t.Fatalf("DeleteJob(%s): %v", id, err)
		}
	}
	check("after DeleteJob", alice, 0, []string{"j-a4", "j-a2", "j-a1"})
	check("after DeleteJob", bob, 0, []string{"j-b1"})
	all, err := s.Jobs(t.Context(), 0)
	if err != nil || !slices.Equal(ids(all), []string{"j-a4", "j-a2", "j-b1", "j-a1"}) {
		t.Errorf("Jobs after DeleteJob = %v, %v", ids(all), err)
	}
}

var errCallback = errors.New("storetest: callback refused")

func testUpdateJob(t *testing.T, s store.Store) {
	finished := t0.Add(time.Minute)
	tests := []struct {
		name    string
		status  store.JobStatus // the job's status before the update
		fn      func(*store.JobRecord) error
		wantErr error
		want    func(*store.JobRecord) // applied to the old record when the update succeeds
	}{
		{name: "mutable fields", fn: func(r *store.JobRecord) error {
			r.Name, r.Status, r.Error, r.Replicas, r.FLOPs, r.Finished = "renamed", store.StatusFailed, "boom", 9, 99, finished
			return nil
		}, want: func(r *store.JobRecord) {
			r.Name, r.Status, r.Error, r.Replicas, r.FLOPs, r.Finished = "renamed", store.StatusFailed, "boom", 9, 99, finished
		}},
		{name: "queued to running", fn: func(r *store.JobRecord) error { r.Status = store.StatusRunning; return nil },
			want: func(r *store.JobRecord) { r.Status = store.StatusRunning }},
		{name: "running back to queued", status: store.StatusRunning, fn: func(r *store.JobRecord) error { r.Status = store.StatusQueued; return nil },
			want: func(r *store.JobRecord) { r.Status = store.StatusQueued }},
		{name: "no change", fn: func(*store.JobRecord) error { return nil }, want: func(*store.JobRecord) {}},
		{name: "callback error", fn: func(r *store.JobRecord) error { r.Name = "half-done"; return errCallback }, wantErr: errCallback},
		{name: "ID", fn: func(r *store.JobRecord) error { r.ID = "other"; return nil }, wantErr: store.ErrInvalid},
		{name: "Owner", fn: func(r *store.JobRecord) error { r.Owner = bob; return nil }, wantErr: store.ErrInvalid},
		{name: "Kernel", fn: func(r *store.JobRecord) error { r.Kernel = "mlp-infer"; return nil }, wantErr: store.ErrInvalid},
		{name: "Replication", fn: func(r *store.JobRecord) error { r.Replication = 3; return nil }, wantErr: store.ErrInvalid},
		{name: "Shards", fn: func(r *store.JobRecord) error { r.Shards++; return nil }, wantErr: store.ErrInvalid},
		{name: "Created", fn: func(r *store.JobRecord) error { r.Created = r.Created.Add(1); return nil }, wantErr: store.ErrInvalid},
		{name: "InputNames", fn: func(r *store.JobRecord) error { r.InputNames[0] = "Z"; return nil }, wantErr: store.ErrInvalid},
		{name: "Verified", fn: func(r *store.JobRecord) error { r.Verified++; return nil }, wantErr: store.ErrInvalid},
		{name: "Corrections", fn: func(r *store.JobRecord) error { r.Corrections++; return nil }, wantErr: store.ErrInvalid},
		{name: "unknown status", fn: func(r *store.JobRecord) error { r.Status = "paused"; return nil }, wantErr: store.ErrInvalid},
		{name: "negative replicas", fn: func(r *store.JobRecord) error { r.Replicas = -1; return nil }, wantErr: store.ErrInvalid},
		{name: "infinite FLOPs", fn: func(r *store.JobRecord) error { r.FLOPs = math.Inf(1); return nil }, wantErr: store.ErrInvalid},
		{name: "done stays done", status: store.StatusDone, fn: func(r *store.JobRecord) error { r.Status = store.StatusRunning; return nil }, wantErr: store.ErrFinished},
		{name: "cancelled stays cancelled", status: store.StatusCancelled, fn: func(r *store.JobRecord) error { r.Status = store.StatusFailed; return nil }, wantErr: store.ErrFinished},
		{name: "failed job's error may change", status: store.StatusFailed, fn: func(r *store.JobRecord) error { r.Error = "more detail"; return nil },
			want: func(r *store.JobRecord) { r.Error = "more detail" }},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := newJob(fmt.Sprintf("j-%d", i), 3)
			if tt.status != "" {
				rec.Status = tt.status
			}
			create(t, s, rec, newInputs())
			err := s.UpdateJob(t.Context(), rec.ID, tt.fn)
			want := rec
			if tt.wantErr != nil {
				checkErr(t, "UpdateJob", err, tt.wantErr)
			} else if err != nil {
				t.Errorf("UpdateJob: %v", err)
			} else {
				want = rec.Clone()
				tt.want(&want)
			}
			checkRecord(t, "Job after UpdateJob", getJob(t, s, rec.ID), want)
		})
	}
}

// concurrently runs every fn at once, released together so that they
// overlap, and fails t with their errors.
func concurrently(t *testing.T, fns []func() error) {
	t.Helper()
	start := make(chan struct{})
	errs := make(chan error, len(fns))
	var wg sync.WaitGroup
	for _, fn := range fns {
		wg.Go(func() {
			<-start
			errs <- fn()
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func testUpdateJobConcurrent(t *testing.T, s store.Store) {
	const goroutines, each = 16, 200
	create(t, s, newJob("j-1", 2), newInputs())
	increment := func(r *store.JobRecord) error { r.Replicas++; return nil }
	fns := make([]func() error, goroutines)
	for g := range fns {
		fns[g] = func() error {
			for range each {
				if err := s.UpdateJob(t.Context(), "j-1", increment); err != nil {
					return fmt.Errorf("calling UpdateJob: %w", err)
				}
			}
			return nil
		}
	}
	concurrently(t, fns)
	if got := getJob(t, s, "j-1").Replicas; got != goroutines*each {
		t.Errorf("Replicas after %d concurrent increments = %d (lost updates)", goroutines*each, got)
	}
}

func testDeleteJob(t *testing.T, s store.Store) {
	create(t, s, newJob("j-1", 2), newInputs())
	create(t, s, newJob("j-2", 2), newInputs())
	if _, err := s.PutShardResult(t.Context(), "j-1", 0, output(1), 1); err != nil {
		t.Fatalf("PutShardResult: %v", err)
	}
	if err := s.DeleteJob(t.Context(), "j-1"); err != nil {
		t.Fatalf("DeleteJob: %v", err)
	}
	for _, o := range ops {
		if o.job {
			checkErr(t, o.name+" after DeleteJob", o.call(t.Context(), s, "j-1"), store.ErrNotFound)
		}
	}
	recs, err := s.Jobs(t.Context(), 0)
	if err != nil || len(recs) != 1 || recs[0].ID != "j-2" {
		t.Errorf("Jobs after DeleteJob = %v, %v; want only j-2", recs, err)
	}
	// The ID is free again, and the new job has none of the old results.
	create(t, s, newJob("j-1", 2), newInputs())
	if rec := getJob(t, s, "j-1"); rec.Verified != 0 {
		t.Errorf("re-created job has Verified %d", rec.Verified)
	}
	results, err := s.ShardResults(t.Context(), "j-1")
	if err != nil || len(results) != 2 || results[0] != nil {
		t.Errorf("ShardResults of the re-created job = %v, %v; want two nil entries", results, err)
	}
}

func testPutShardResult(t *testing.T, s store.Store) {
	rec := newJob("j-1", 3)
	create(t, s, rec, newInputs())
	steps := []struct {
		name     string
		shard    int
		out      []*tensor.Tensor
		replicas int
		// the counts after the step
		verified, corrections, totalReplicas int
	}{
		{"first result of shard 1", 1, output(10), 2, 1, 0, 2},
		{"correction of shard 1", 1, output(20), 3, 1, 1, 5},
		{"first result of shard 0", 0, output(30), 1, 2, 1, 6},
		{"second correction of shard 1", 1, output(40), 2, 2, 2, 8},
		{"first result of shard 2", 2, output(50), 2, 3, 2, 10},
	}
	want := make([][]*tensor.Tensor, 3)
	for _, st := range steps {
		got, err := s.PutShardResult(t.Context(), "j-1", st.shard, st.out, st.replicas)
		if err != nil {
			t.Fatalf("%s: PutShardResult: %v", st.name, err)
		}
		want[st.shard] = st.out
		if got.Verified != st.verified || got.Corrections != st.corrections || got.Replicas != st.totalReplicas {
			t.Errorf("%s: Verified, Corrections, Replicas = %d, %d, %d; want %d, %d, %d", st.name,
				got.Verified, got.Corrections, got.Replicas, st.verified, st.corrections, st.totalReplicas)
		}
		checkRecord(t, st.name+": returned record vs Job", got, getJob(t, s, "j-1"))
		results, err := s.ShardResults(t.Context(), "j-1")
		if err != nil {
			t.Fatalf("%s: ShardResults: %v", st.name, err)
		}
		if len(results) != 3 {
			t.Fatalf("%s: ShardResults has %d entries, want 3", st.name, len(results))
		}
		for i := range want {
			if want[i] == nil {
				if results[i] != nil {
					t.Errorf("%s: shard %d has result %v, want none", st.name, i, results[i])
				}
				continue
			}
			checkTensors(t, fmt.Sprintf("%s: shard %d", st.name, i), results[i], want[i])
		}
	}

	// A result may still be corrected after the job finished.
	if err := s.UpdateJob(t.Context(), "j-1", func(r *store.JobRecord) error { r.Status = store.StatusDone; return nil }); err != nil {
		t.Fatalf("UpdateJob: %v", err)
	}
	got, err := s.PutShardResult(t.Context(), "j-1", 0, output(60), 2)
	if err != nil || got.Corrections != 3 || got.Status != store.StatusDone {
		t.Errorf("correction after done = %+v, %v; want Corrections 3, status done", got, err)
	}
}

func testPutShardResultInvalid(t *testing.T, s store.Store) {
	create(t, s, newJob("j-1", 2), newInputs())
	before := getJob(t, s, "j-1")
	tests := []struct {
		name     string
		shard    int
		out      []*tensor.Tensor
		replicas int
	}{
		{"negative shard", -1, output(1), 1},
		{"shard past the end", 2, output(1), 1},
		{"no outputs", 0, nil, 1},
		{"no replicas", 0, output(1), 0},
		{"nil tensor", 0, []*tensor.Tensor{nil}, 1},
		{"shape does not match data", 0, []*tensor.Tensor{{Shape: []int{3, 3}, Data: []float32{1}}}, 1},
	}
	for _, tt := range tests {
		_, err := s.PutShardResult(t.Context(), "j-1", tt.shard, tt.out, tt.replicas)
		checkErr(t, tt.name, err, store.ErrInvalid)
	}
	checkRecord(t, "Job after refused results", getJob(t, s, "j-1"), before)
	results, err := s.ShardResults(t.Context(), "j-1")
	if err != nil || results[0] != nil || results[1] != nil {
		t.Errorf("ShardResults after refused results = %v, %v; want none stored", results, err)
	}
}

func testPutShardResultConcurrent(t *testing.T, s store.Store) {
	const shards, goroutines = 32, 8
	create(t, s, newJob("j-1", shards), newInputs())
	fns := make([]func() error, goroutines)
	for g := range fns {
		fns[g] = func() error {
			for i := range shards {
				shard := (i + g*5) % shards // each goroutine in its own order
				if _, err := s.PutShardResult(t.Context(), "j-1", shard, output(float32(g)), 2); err != nil {
					return fmt.Errorf("calling PutShardResult: %w", err)
				}
			}
			return nil
		}
	}
	concurrently(t, fns)
	rec := getJob(t, s, "j-1")
	if rec.Verified != shards || rec.Corrections != shards*(goroutines-1) || rec.Replicas != 2*shards*goroutines {
		t.Errorf("after %d concurrent results per shard: Verified, Corrections, Replicas = %d, %d, %d; want %d, %d, %d",
			goroutines, rec.Verified, rec.Corrections, rec.Replicas, shards, shards*(goroutines-1), 2*shards*goroutines)
	}
	results, err := s.ShardResults(t.Context(), "j-1")
	if err != nil {
		t.Fatalf("ShardResults: %v", err)
	}
	for i, r := range results {
		// Whichever goroutine wrote last, the result is one whole output.
		if len(r) != 1 || r[0].Len() != 4 || r[0].Data[1] != r[0].Data[0]+1 {
			t.Errorf("shard %d result %v is not one of the outputs written", i, r)
		}
	}
}

// Ledger addresses, listed out of byte order on purpose.
var (
	addrA = [20]byte{0x02, 0xaa}
	addrB = [20]byte{0x01, 0xbb}
	addrC = [20]byte{0x03, 0xcc}
)

func ledgerEntry(t *testing.T, s store.Store, addr [20]byte) store.LedgerEntry {
	t.Helper()
	entries, err := s.Ledger(t.Context())
	if err != nil {
		t.Fatalf("Ledger: %v", err)
	}
	for _, e := range entries {
		if e.Address == addr {
			return e
		}
	}
	t.Fatalf("Ledger has no entry for %x", addr)
	return store.LedgerEntry{}
}

func testLedger(t *testing.T, s store.Store) {
	ctx := t.Context()
	entries, err := s.Ledger(ctx)
	if err != nil || len(entries) != 0 {
		t.Fatalf("Ledger of an empty store = %v, %v; want none", entries, err)
	}
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	for range 3 {
		must("Credit A", s.Credit(ctx, addrA, 1e9))
	}
	must("Credit B", s.Credit(ctx, addrB, 5e8))
	must("Credit B 0", s.Credit(ctx, addrB, 0)) // a shard of no measurable cost still counts

	entries, err = s.Ledger(ctx)
	must("Ledger", err)
	want := []store.LedgerEntry{
		{Address: addrB, FLOPs: 5e8, Shards: 2, UnsettledFLOPs: 5e8},
		{Address: addrA, FLOPs: 3e9, Shards: 3, UnsettledFLOPs: 3e9},
	}
	if !reflect.DeepEqual(entries, want) {
		t.Fatalf("Ledger after credits:\n got %+v\nwant %+v", entries, want)
	}

	must("Settle A", s.Settle(ctx, addrA, 1e9))
	checkErr(t, "Settle A beyond unsettled", s.Settle(ctx, addrA, 2e9+1), store.ErrInsufficient)
	if e, want := ledgerEntry(t, s, addrA), (store.LedgerEntry{Address: addrA, FLOPs: 3e9, Shards: 3, UnsettledFLOPs: 2e9, SettledFLOPs: 1e9}); e != want {
		t.Errorf("A after settling 1e9 and refusing 2e9+1:\n got %+v\nwant %+v", e, want)
	}

	got, err := s.Forfeit(ctx, addrA)
	must("Forfeit A", err)
	wantA := store.LedgerEntry{Address: addrA, FLOPs: 3e9, Shards: 3, SettledFLOPs: 1e9, ForfeitedFLOPs: 2e9}
	if got != wantA {
		t.Errorf("Forfeit A returned\n %+v\nwant %+v", got, wantA)
	}
	if e := ledgerEntry(t, s, addrA); e != wantA {
		t.Errorf("A after Forfeit:\n got %+v\nwant %+v", e, wantA)
	}
	checkErr(t, "Settle A after Forfeit", s.Settle(ctx, addrA, 1), store.ErrInsufficient)

	// Work after a forfeit is credited again (a caught address is banned,
	// but results in flight may still be paid).
	must("Credit A again", s.Credit(ctx, addrA, 1e9))
	wantA.FLOPs, wantA.Shards, wantA.UnsettledFLOPs = 4e9, 4, 1e9
	if e := ledgerEntry(t, s, addrA); e != wantA {
		t.Errorf("A credited after Forfeit:\n got %+v\nwant %+v", e, wantA)
	}
	must("Settle all of A", s.Settle(ctx, addrA, 1e9))
	if e := ledgerEntry(t, s, addrA); e.UnsettledFLOPs != 0 || e.SettledFLOPs != 2e9 {
		t.Errorf("A after settling all: %+v", e)
	}

	// An address never credited: Forfeit is a no-op, Settle is not found.
	got, err = s.Forfeit(ctx, addrC)
	if err != nil || got != (store.LedgerEntry{Address: addrC}) {
		t.Errorf("Forfeit of an unknown address = %+v, %v; want a zero entry", got, err)
	}
	checkErr(t, "Settle unknown address", s.Settle(ctx, addrC, 0), store.ErrNotFound)
	entries, err = s.Ledger(ctx)
	must("Ledger", err)
	if len(entries) != 2 {
		t.Errorf("Ledger has %d entries after Forfeit of an unknown address, want 2: %+v", len(entries), entries)
	}
}

func testLedgerInvalid(t *testing.T, s store.Store) {
	ctx := t.Context()
	if err := s.Credit(ctx, addrA, 10); err != nil {
		t.Fatalf("Credit: %v", err)
	}
	for _, f := range []float64{-1, math.NaN(), math.Inf(1), math.Inf(-1)} {
		checkErr(t, fmt.Sprintf("Credit(%v)", f), s.Credit(ctx, addrA, f), store.ErrInvalid)
		checkErr(t, fmt.Sprintf("Settle(%v)", f), s.Settle(ctx, addrA, f), store.ErrInvalid)
	}
	if e, want := ledgerEntry(t, s, addrA), (store.LedgerEntry{Address: addrA, FLOPs: 10, Shards: 1, UnsettledFLOPs: 10}); e != want {
		t.Errorf("entry after refused calls:\n got %+v\nwant %+v", e, want)
	}
}

func testLedgerConcurrent(t *testing.T, s store.Store) {
	// Whole numbers of FLOPs keep float64 sums exact, so the books must
	// balance exactly whatever the interleaving.
	const goroutines, each = 8, 500
	addrs := [][20]byte{addrA, addrB, addrC}
	var fns []func() error
	for g := range goroutines {
		fns = append(fns, func() error {
			for i := range each {
				if err := s.Credit(t.Context(), addrs[(g+i)%len(addrs)], 2); err != nil {
					return fmt.Errorf("calling Credit: %w", err)
				}
			}
			return nil
		}, func() error { // settles A bit by bit while credits and forfeits run
			for range each {
				if err := s.Settle(t.Context(), addrA, 1); err != nil && !errors.Is(err, store.ErrInsufficient) && !errors.Is(err, store.ErrNotFound) {
					return fmt.Errorf("calling Settle: %w", err)
				}
			}
			return nil
		}, func() error { // forfeits B now and then
			for range each / 10 {
				if _, err := s.Forfeit(t.Context(), addrB); err != nil {
					return fmt.Errorf("calling Forfeit: %w", err)
				}
			}
			return nil
		})
	}
	concurrently(t, fns)
	entries, err := s.Ledger(t.Context())
	if err != nil {
		t.Fatalf("Ledger: %v", err)
	}
	var shards int64
	for _, e := range entries {
		shards += e.Shards
		if e.FLOPs != 2*float64(e.Shards) {
			t.Errorf("%x: FLOPs %v for %d shards of 2 (lost credits)", e.Address, e.FLOPs, e.Shards)
		}
		if sum := e.UnsettledFLOPs + e.SettledFLOPs + e.ForfeitedFLOPs; sum != e.FLOPs || e.UnsettledFLOPs < 0 {
			t.Errorf("%x: books do not balance: %+v (unsettled+settled+forfeited = %v)", e.Address, e, sum)
		}
	}
	if shards != goroutines*each {
		t.Errorf("%d shards credited in all, want %d", shards, goroutines*each)
	}
}

func testAPIKeys(t *testing.T, s store.Store) {
	ctx := t.Context()
	key, hash := store.NewAPIKey()
	key2, hash2 := store.NewAPIKey()
	admin, adminHash := store.NewAPIKey()
	for _, k := range []store.APIKey{{Name: "alice", Hash: hash}, {Name: "alice", Hash: hash2}, {Name: "root", Hash: adminHash, Admin: true}} {
		if err := s.AddAPIKey(ctx, k); err != nil {
			t.Fatalf("AddAPIKey(%+v): %v", k, err)
		}
	}
	checkErr(t, "AddAPIKey of a known hash", s.AddAPIKey(ctx, store.APIKey{Name: "mallory", Hash: hash, Admin: true}), store.ErrExists)
	checkErr(t, "AddAPIKey without a name", s.AddAPIKey(ctx, store.APIKey{Hash: [32]byte{9}}), store.ErrInvalid)
	for _, tt := range []struct {
		key    string
		want   store.APIKey
		wantOK bool
	}{
		{key, store.APIKey{Name: "alice", Hash: hash}, true},
		{key2, store.APIKey{Name: "alice", Hash: hash2}, true},
		{admin, store.APIKey{Name: "root", Hash: adminHash, Admin: true}, true},
		{key + "x", store.APIKey{}, false},
		{"", store.APIKey{}, false},
		{"nlv_" + key[len(store.APIKeyPrefix):len(key)-1], store.APIKey{}, false},
	} {
		got, ok, err := s.CheckAPIKey(ctx, store.HashAPIKey(tt.key))
		if err != nil || ok != tt.wantOK || got != tt.want {
			t.Errorf("CheckAPIKey(hash of %q) = %+v, %v, %v; want %+v, %v", tt.key, got, ok, err, tt.want, tt.wantOK)
		}
	}
	// The key itself is not a hash of anything stored.
	var raw [32]byte
	copy(raw[:], key)
	if _, ok, _ := s.CheckAPIKey(ctx, raw); ok {
		t.Errorf("CheckAPIKey accepted the key's bytes as its hash")
	}
	// A job's owner is its key's ID: no part of the key.
	rec := newJob("j-1", 1)
	rec.Owner = store.APIKey{Name: "alice", Hash: hash}.ID()
	create(t, s, rec, newInputs())
	if got := getJob(t, s, "j-1").Owner; got != store.KeyID(hash) || strings.Contains(got, key[len(store.APIKeyPrefix):]) {
		t.Errorf("stored owner %q, want KeyID of the key's hash and nothing of the key", got)
	}
}

func testIsolation(t *testing.T, s store.Store) {
	ctx := t.Context()
	rec, inputs := newJob("j-1", 2), newInputs()
	wantRec, wantInputs := rec.Clone(), []*tensor.Tensor{inputs[0].Clone(), inputs[1].Clone()}
	create(t, s, rec, inputs)
	// The caller's record and tensors are the caller's again.
	rec.InputNames[0] = "Z"
	inputs[0].Data[0], inputs[1].Shape[0] = 99, 1

	got := getJob(t, s, "j-1")
	got.InputNames[1] = "Y"
	if recs, err := s.Jobs(ctx, 0); err == nil && len(recs) == 1 {
		recs[0].InputNames[0] = "W"
	}
	if recs, err := s.JobsOwnedBy(ctx, alice, 0); err == nil && len(recs) == 1 {
		recs[0].InputNames[0], recs[0].Owner = "V", bob
	}
	in, err := s.JobInputs(ctx, "j-1")
	if err != nil {
		t.Fatalf("JobInputs: %v", err)
	}
	in[0].Data[1], in[0].Shape[1] = 77, 9
	in[1] = nil

	// An UpdateJob callback that keeps its pointer and writes later.
	var kept *store.JobRecord
	if err := s.UpdateJob(ctx, "j-1", func(r *store.JobRecord) error { kept = r; return nil }); err != nil {
		t.Fatalf("UpdateJob: %v", err)
	}
	kept.Name, kept.InputNames[0] = "late write", "L"

	out := output(1)
	wantOut := []*tensor.Tensor{out[0].Clone()}
	put, err := s.PutShardResult(ctx, "j-1", 0, out, 1)
	if err != nil {
		t.Fatalf("PutShardResult: %v", err)
	}
	put.InputNames[0] = "P"
	out[0].Data[0] = 42
	res, err := s.ShardResults(ctx, "j-1")
	if err != nil {
		t.Fatalf("ShardResults: %v", err)
	}
	res[0][0].Data[3], res[0][0].Shape[0] = -7, 1
	res[0] = nil

	wantRec.Verified, wantRec.Replicas = 1, 1
	checkRecord(t, "Job after callers wrote to their copies", getJob(t, s, "j-1"), wantRec)
	if in, err = s.JobInputs(ctx, "j-1"); err != nil {
		t.Fatalf("JobInputs: %v", err)
	}
	checkTensors(t, "JobInputs after callers wrote to their copies", in, wantInputs)
	if res, err = s.ShardResults(ctx, "j-1"); err != nil {
		t.Fatalf("ShardResults: %v", err)
	}
	checkTensors(t, "shard 0 after callers wrote to their copies", res[0], wantOut)
	if res[1] != nil {
		t.Errorf("shard 1 has a result %v, want none", res[1])
	}

	if err := s.Credit(ctx, addrA, 3); err != nil {
		t.Fatalf("Credit: %v", err)
	}
	entries, err := s.Ledger(ctx)
	if err != nil {
		t.Fatalf("Ledger: %v", err)
	}
	entries[0].UnsettledFLOPs = 0
	if e := ledgerEntry(t, s, addrA); e.UnsettledFLOPs != 3 {
		t.Errorf("writing to a Ledger entry changed the store: %+v", e)
	}
}

func testCancelledContext(t *testing.T, s store.Store) {
	create(t, s, newJob("j-1", 2), newInputs())
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	for _, o := range ops {
		checkErr(t, o.name+" with a cancelled context", o.call(ctx, s, "j-1"), context.Canceled)
	}
	// Nothing happened.
	checkRecord(t, "Job after cancelled calls", getJob(t, s, "j-1"), newJob("j-1", 2))
	if entries, err := s.Ledger(t.Context()); err != nil || len(entries) != 0 {
		t.Errorf("Ledger after cancelled calls = %v, %v; want empty", entries, err)
	}
}

func testClosed(t *testing.T, s store.Store) {
	create(t, s, newJob("j-1", 2), newInputs())
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for _, o := range ops {
		checkErr(t, o.name+" after Close", o.call(t.Context(), s, "j-1"), store.ErrClosed)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
