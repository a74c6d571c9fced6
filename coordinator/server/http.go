package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/neurolov/neurolov/client"
	"github.com/neurolov/neurolov/coordinator/planner"
	"github.com/neurolov/neurolov/coordinator/scheduler"
	"github.com/neurolov/neurolov/coordinator/store"
	"github.com/neurolov/neurolov/shaders"
	"github.com/neurolov/neurolov/tensor"
)

// Handler returns the coordinator's HTTP endpoints: the API under /v1/,
// the worker WebSocket at /v1/worker, /metrics and /healthz.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/worker", s.ServeWorker)
	mux.HandleFunc("POST /v1/jobs", s.authed(s.postJob))
	mux.HandleFunc("GET /v1/jobs", s.authed(s.listJobs))
	mux.HandleFunc("GET /v1/jobs/{id}", s.authed(s.getJob))
	mux.HandleFunc("DELETE /v1/jobs/{id}", s.authed(s.cancelJob))
	mux.HandleFunc("GET /v1/jobs/{id}/result", s.authed(s.getResult))
	mux.HandleFunc("GET /v1/workers", s.listWorkers)
	mux.HandleFunc("GET /v1/ledger", s.getLedger)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	if s.cfg.Pages != nil {
		mux.Handle("GET /{$}", s.cfg.Pages)
		mux.Handle("GET /static/", s.cfg.Pages)
	}
	return s.paceRequests(mux)
}

// The JSON of the API is the SDK's: client.JobStatus, client.WorkerStatus
// and client.LedgerEntry are its one definition.

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, format string, args ...any) {
	writeJSON(w, status, map[string]string{"error": fmt.Sprintf(format, args...)})
}

// writeClosed answers a request the server's loop has stopped for.
func writeClosed(w http.ResponseWriter) {
	writeError(w, http.StatusServiceUnavailable, "coordinator is shutting down; retry shortly")
}

// callerKey is the context key under which authed leaves the caller's
// store.APIKey.
type callerKey struct{}

// authed requires a valid API key (Authorization: Bearer KEY) and hands
// its record to h in the request's context (see caller). A request without
// one gets 401 before anything is looked up, so that it learns nothing of
// the jobs that exist.
func (s *Server) authed(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || key == "" {
			writeError(w, http.StatusUnauthorized, "missing API key: send Authorization: Bearer <key> (serve printed where it wrote the key)")
			return
		}
		rec, valid, err := s.store.CheckAPIKey(r.Context(), store.HashAPIKey(key))
		if err != nil || !valid {
			writeError(w, http.StatusUnauthorized, "invalid API key")
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), callerKey{}, rec)))
	}
}

// caller returns the API key of a request that passed authed.
func caller(r *http.Request) store.APIKey {
	k, _ := r.Context().Value(callerKey{}).(store.APIKey)
	return k
}

// ownedJob reads the job the request's path names for its caller. A job
// of another key is answered 404 exactly as one that does not exist, so
// that a key learns nothing of others' jobs; an admin key reads them all.
func (s *Server) ownedJob(w http.ResponseWriter, r *http.Request) (store.JobRecord, bool) {
	id := r.PathValue("id")
	rec, err := s.store.Job(r.Context(), id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusInternalServerError, "%v", err)
		return rec, false
	}
	if k := caller(r); err != nil || !k.Admin && rec.Owner != k.ID() {
		writeError(w, http.StatusNotFound, "job %q not found (or submitted with another API key)", id)
		return rec, false
	}
	return rec, true
}

// inputNames lists the tensor names a kernel's upload must hold, in kernel
// input order.
func inputNames(kernel string, tensors map[string]*tensor.Tensor) ([]string, error) {
	switch kernel {
	case shaders.Matmul:
		return []string{"A", "B"}, nil
	case shaders.MLPInfer:
		names := []string{"X"}
		for l := 1; ; l++ {
			w, b := fmt.Sprintf("W%d", l), fmt.Sprintf("b%d", l)
			if tensors[w] == nil {
				if l == 1 {
					return nil, fmt.Errorf("mlp-infer needs tensors X, W1, b1, W2, b2, ...; W1 is missing")
				}
				return names, nil
			}
			names = append(names, w, b)
		}
	}
	return nil, fmt.Errorf("unknown kernel %q: use matmul or mlp-infer", kernel)
}

func (s *Server) postJob(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	kernel := q.Get("kernel")
	replication := 0
	if v := q.Get("replication"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > client.MaxReplication {
			writeError(w, http.StatusBadRequest, "replication must be an integer from 1 to %d, got %q", client.MaxReplication, v)
			return
		}
		replication = n
	}
	body := http.MaxBytesReader(w, r.Body, s.cfg.MaxJobBytes)
	tensors, release, err := s.readUpload(r, body)
	defer release()
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.Is(err, ErrBudget) {
			writeBudget(w, err)
			return
		}
		if errors.Is(err, errSlow) {
			writeError(w, http.StatusRequestTimeout, "%s", paceReason(err))
			return
		}
		if errors.As(err, &mbe) || errors.Is(err, tensor.ErrTooLarge) {
			writeError(w, http.StatusRequestEntityTooLarge, "job body over %d bytes: split the job or raise the coordinator's limit", s.cfg.MaxJobBytes)
			return
		}
		writeError(w, http.StatusBadRequest, "reading safetensors body: %v", err)
		return
	}
	names, err := inputNames(kernel, tensors)
	if err != nil {
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	}
	inputs := make([]*tensor.Tensor, len(names))
	for i, n := range names {
		if inputs[i] = tensors[n]; inputs[i] == nil {
			writeError(w, http.StatusBadRequest, "%s needs a tensor named %q", kernel, n)
			return
		}
	}
	if len(tensors) > len(names) {
		wanted := make(map[string]bool, len(names))
		for _, n := range names {
			wanted[n] = true
		}
		var extra []string
		for n := range tensors {
			if !wanted[n] {
				extra = append(extra, n)
			}
		}
		slices.Sort(extra)
		writeError(w, http.StatusBadRequest, "%s takes tensors %s; unexpected: %s", kernel, strings.Join(names, ", "), strings.Join(extra, ", "))
		return
	}
	outShapes, err := shaders.OutputShapes(kernel, inputs)
	if err != nil {
		// The one shape rule (empty and degenerate shapes included),
		// before the data is scanned or anything planned.
		writeError(w, http.StatusBadRequest, "%s job refused: %v", kernel, err)
		return
	}
	if need, most := assemblyBytes(inputs, outShapes), s.budgets.results.perHolder; need > most {
		writeError(w, http.StatusBadRequest, "%s job refused: assembling its result would take %d MiB, over the %d MiB a key may hold of the memory budget's share for results: split the job or raise serve -memory-budget",
			kernel, (need+1<<20-1)>>20, most>>20)
		return
	}
	for i, t := range inputs {
		if !t.AllFinite() {
			writeError(w, http.StatusBadRequest, "tensor %q holds NaN or Inf: results could not be verified", names[i])
			return
		}
	}
	shards, plan, err := s.planFor(r.Context(), kernel, inputs)
	if errors.Is(err, ErrClosed) {
		writeClosed(w)
		return
	}
	if errors.Is(err, ErrInternal) {
		writeError(w, http.StatusInternalServerError, "planning job: %v; the job was not created", err)
		return
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "planning job: %v", err)
		return
	}
	id := newJobID()
	var flops float64
	for _, sh := range shards {
		flops += sh.FLOPs
	}
	rec := store.JobRecord{
		ID: string(id), Owner: caller(r).ID(), Name: q.Get("name"), Kernel: kernel, Status: store.StatusQueued,
		Replication: replication, Shards: len(shards), FLOPs: flops, Created: s.cfg.Now(), InputNames: names,
	}
	if err := s.store.CreateJob(r.Context(), rec, inputs); err != nil {
		writeError(w, http.StatusInternalServerError, "storing job: %v", err)
		return
	}
	sub := &submission{id: id, shards: shards, replication: replication, plan: plan}
	if err := s.request(event{kind: evSubmit, job: sub}); err != nil {
		writeClosed(w)
		return
	}
	s.log.Info("job submitted", "job", id, "kernel", kernel, "shards", len(shards), "gflop", flops/1e9, "replication", replication)
	rec, err = s.store.Job(r.Context(), string(id))
	if err != nil {
		writeError(w, http.StatusInternalServerError, "reading job: %v", err)
		return
	}
	writeJSON(w, http.StatusCreated, s.jobStatus(rec))
}

func (s *Server) jobStatus(rec store.JobRecord) client.JobStatus {
	js := client.JobStatus{
		ID: rec.ID, Name: rec.Name, Kernel: rec.Kernel, Status: client.State(rec.Status), Shards: rec.Shards,
		Verified: rec.Verified, Replication: rec.Replication, Corrections: rec.Corrections,
		Replicas: rec.Replicas, FLOPs: rec.FLOPs, Error: rec.Error, CreatedAt: rec.Created.UTC(), FinishedAt: rec.Finished.UTC(),
	}
	if rec.Finished.IsZero() {
		js.FinishedAt = time.Time{}
	}
	if rec.Shards > 0 {
		js.Progress = float64(rec.Verified) / float64(rec.Shards)
	}
	if rec.Finished.IsZero() && js.Progress > 0 {
		elapsed := s.cfg.Now().Sub(rec.Created).Seconds()
		if eta := elapsed / js.Progress * (1 - js.Progress); !math.IsInf(eta, 0) && !math.IsNaN(eta) {
			js.ETASeconds = eta
		}
	}
	return js
}

func (s *Server) getJob(w http.ResponseWriter, r *http.Request) {
	if rec, ok := s.ownedJob(w, r); ok {
		writeJSON(w, http.StatusOK, s.jobStatus(rec))
	}
}

// listJobs lists the caller's newest jobs (an admin's: everyone's).
func (s *Server) listJobs(w http.ResponseWriter, r *http.Request) {
	const limit = 100
	var recs []store.JobRecord
	var err error
	if k := caller(r); k.Admin {
		recs, err = s.store.Jobs(r.Context(), limit)
	} else {
		recs, err = s.store.JobsOwnedBy(r.Context(), k.ID(), limit)
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, "%v", err)
		return
	}
	out := make([]client.JobStatus, len(recs))
	for i, rec := range recs {
		out[i] = s.jobStatus(rec)
	}
	writeJSON(w, http.StatusOK, map[string]any{"jobs": out})
}

func (s *Server) cancelJob(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.ownedJob(w, r); !ok {
		return
	}
	if err := s.request(event{kind: evCancel, jobID: scheduler.JobID(r.PathValue("id"))}); err != nil {
		writeClosed(w)
		return
	}
	s.getJob(w, r)
}

func (s *Server) getResult(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	rec, ok := s.ownedJob(w, r)
	if !ok {
		return
	}
	if rec.Status != store.StatusDone {
		msg := fmt.Sprintf("job %s is %s (%d of %d shards verified): poll GET /v1/jobs/%s until done", id, rec.Status, rec.Verified, rec.Shards, id)
		if rec.Error != "" {
			msg = fmt.Sprintf("job %s %s: %s", id, rec.Status, rec.Error)
		}
		writeError(w, http.StatusConflict, "%s", msg)
		return
	}
	acct := &account{b: &s.budgets.results, holder: caller(r).ID()}
	defer acct.close() // once the result is written
	outs, err := s.assemble(r.Context(), rec, acct)
	if errors.Is(err, ErrBudget) {
		writeBudget(w, err)
		return
	}
	if errors.Is(err, ErrClosed) {
		writeClosed(w)
		return
	}
	if errors.Is(err, ErrInternal) {
		s.noteInternal(r.Context(), id, err)
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, "assembling result: %v", err)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", id+".safetensors"))
	meta := map[string]string{"job": id, "kernel": rec.Kernel, "corrections": strconv.Itoa(rec.Corrections)}
	if err := tensor.WriteSafetensors(w, outs, meta); err != nil {
		s.log.Warn("writing result", "job", id, "err", err)
	}
}

// assemble puts a job's verified shard outputs back together, named as the
// API documents (matmul: C; mlp-infer: Z1..ZL), holding what that takes
// (assemblyBytes) on acct: charged once the inputs are loaded, before the
// results are, and refused with ErrBudget when it does not fit. A panic in
// it is an error wrapping ErrInternal (logged at Error with its stack).
func (s *Server) assemble(ctx context.Context, rec store.JobRecord, acct *account) (_ map[string]*tensor.Tensor, err error) {
	defer catch(s.log, &err, "assembly", "job", rec.ID)
	inputs, err := s.store.JobInputs(ctx, rec.ID)
	if err != nil {
		return nil, err
	}
	shapes, err := shaders.OutputShapes(rec.Kernel, inputs)
	if err != nil {
		return nil, err
	}
	if err := acct.hold(assemblyBytes(inputs, shapes)); err != nil {
		return nil, err
	}
	s.faults.at("assemble", rec.Kernel, inputs)
	results, err := s.store.ShardResults(ctx, rec.ID)
	if err != nil {
		return nil, err
	}
	opts, err := s.planOf(ctx, rec.ID)
	if err != nil {
		return nil, err
	}
	shards, err := planner.Plan(rec.Kernel, inputs, opts)
	if err != nil {
		return nil, err
	}
	outs, err := planner.Assemble(rec.Kernel, inputs, shards, results)
	if err != nil {
		return nil, err
	}
	named := make(map[string]*tensor.Tensor, len(outs))
	if rec.Kernel == shaders.Matmul {
		named["C"] = outs[0]
	} else {
		for l, t := range outs {
			named[fmt.Sprintf("Z%d", l+1)] = t
		}
	}
	return named, nil
}

// noteInternal records on a done job that assembling its result hit a
// coordinator bug, so that its status says so. Its status stays done (a
// terminal status never changes, in every store) and its verified shard
// results stay stored, for a fixed coordinator to serve.
func (s *Server) noteInternal(ctx context.Context, id string, cause error) {
	err := s.store.UpdateJob(ctx, id, func(r *store.JobRecord) error {
		r.Error = cause.Error()
		return nil
	})
	if err != nil {
		s.log.Error("recording an internal error on its job", "job", id, "cause", cause, "err", err)
	}
}

func (s *Server) listWorkers(w http.ResponseWriter, r *http.Request) {
	var out []client.WorkerStatus
	err := s.call(r.Context(), func() {
		out = make([]client.WorkerStatus, 0, len(s.conns))
		for _, c := range s.conns {
			trusted, run := s.sched.Trusted(c.addr)
			st := s.stats(c.addr)
			out = append(out, client.WorkerStatus{
				Address: c.addr.String(), Backend: c.caps.Backend, Device: c.caps.Device, GFLOPS: c.caps.GFLOPS,
				Window: s.cfg.Window, Leases: s.sched.LeasesOf(c.id), Trusted: trusted, Run: run,
				Verified: st.verified, Rejected: st.rejected, ConnectedAt: c.joined.UTC(),
			})
		}
	})
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "%v", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"workers": out})
}

func (s *Server) getLedger(w http.ResponseWriter, r *http.Request) {
	entries, err := s.store.Ledger(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, "%v", err)
		return
	}
	out := make([]client.LedgerEntry, len(entries))
	for i, e := range entries {
		out[i] = client.LedgerEntry{Address: scheduler.Address(e.Address).String(), FLOPs: e.FLOPs, Shards: int(e.Shards), UnsettledFLOPs: e.UnsettledFLOPs, ForfeitedFLOPs: e.ForfeitedFLOPs}
	}
	writeJSON(w, http.StatusOK, map[string]any{"entries": out})
}
