package clienttest

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/neurolov/neurolov/client"
	"github.com/neurolov/neurolov/shaders"
	"github.com/neurolov/neurolov/tensor"
)

// Epoch is the fake clock's start: the created_at of the first job.
var Epoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// DefaultMaxBody is the largest job body accepted unless Config says
// otherwise.
const DefaultMaxBody int64 = 64 << 20

// Config scripts a fake coordinator. The zero value is a working one with
// no API key.
type Config struct {
	// Key is the API key every job route requires (submit, status, list,
	// result, cancel), as a real coordinator requires its owner's key; empty
	// accepts any. Workers and ledger stay public.
	Key string
	// Shards is the number of shards of every job (default 4).
	Shards int
	// Step is the number of shards verified per read of a job's status
	// (default 1).
	Step int
	// Tick is how far the fake clock moves per read of a running job's
	// status (default 500ms).
	Tick time.Duration
	// FailReason, when set, makes every job fail with this reason instead
	// of finishing.
	FailReason string
	// MaxBody bounds a job's body (default DefaultMaxBody); larger gives 413.
	MaxBody int64
	// Workers and Ledger are served as they are by /v1/workers and /v1/ledger.
	Workers []client.WorkerStatus
	Ledger  []client.LedgerEntry
}

// Request records one request the fake received.
type Request struct {
	Method, Path, RawQuery string
	// Header is a copy of the request's headers.
	Header http.Header
	// ContentLength is as Go's server saw it: -1 for a streamed (chunked) body.
	ContentLength int64
}

// Server is a running fake coordinator. Its URL is the base URL to give
// client.New.
type Server struct {
	*httptest.Server

	cfg      Config
	mu       sync.Mutex
	now      time.Time
	seq      int
	jobs     map[string]*job
	order    []string // newest last
	requests []Request
}

type job struct {
	status client.JobStatus
	inputs map[string]*tensor.Tensor
	result map[string]*tensor.Tensor
}

// NewServer starts a fake coordinator; Close it when done.
func NewServer(cfg Config) *Server {
	if cfg.Shards <= 0 {
		cfg.Shards = 4
	}
	if cfg.Step <= 0 {
		cfg.Step = 1
	}
	if cfg.Tick <= 0 {
		cfg.Tick = 500 * time.Millisecond
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	s := &Server{cfg: cfg, now: Epoch, jobs: map[string]*job{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/jobs", s.auth(s.submit))
	mux.HandleFunc("GET /v1/jobs", s.auth(s.list))
	mux.HandleFunc("GET /v1/jobs/{id}", s.auth(s.get))
	mux.HandleFunc("DELETE /v1/jobs/{id}", s.auth(s.cancel))
	mux.HandleFunc("GET /v1/jobs/{id}/result", s.auth(s.resultOf))
	mux.HandleFunc("GET /v1/workers", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"workers": nonNil(s.cfg.Workers)})
	})
	mux.HandleFunc("GET /v1/ledger", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"entries": nonNil(s.cfg.Ledger)})
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") })
	s.Server = httptest.NewServer(s.record(mux))
	return s
}

func nonNil[T any](xs []T) []T {
	if xs == nil {
		return []T{}
	}
	return xs
}

// Requests returns the requests received so far, oldest first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Inputs returns the tensors job id was submitted with, as the fake decoded
// them, or nil for an unknown id.
func (s *Server) Inputs(id string) map[string]*tensor.Tensor {
	s.mu.Lock()
	defer s.mu.Unlock()
	if j := s.jobs[id]; j != nil {
		return j.inputs
	}
	return nil
}

// Fail makes job id fail now with reason. It reports whether the job exists.
func (s *Server) Fail(id, reason string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.jobs[id]
	if j == nil {
		return false
	}
	j.finish(client.StateFailed, s.now, reason)
	return true
}

func (s *Server) record(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests = append(s.requests, Request{
			Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery,
			Header: r.Header.Clone(), ContentLength: r.ContentLength,
		})
		s.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

func (s *Server) auth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.Key != "" && r.Header.Get("Authorization") != "Bearer "+s.cfg.Key {
			writeError(w, http.StatusUnauthorized, "missing or wrong API key: send \"Authorization: Bearer <key>\"")
			return
		}
		h(w, r)
	}
}

func (s *Server) submit(w http.ResponseWriter, r *http.Request) {
	kernel := r.URL.Query().Get("kernel")
	if !shaders.Known(kernel) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("unknown kernel %q: use matmul or mlp-infer", kernel))
		return
	}
	replication := 0
	if v := r.URL.Query().Get("replication"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > client.MaxReplication {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("replication must be an integer from 1 to %d, got %q", client.MaxReplication, v))
			return
		}
		replication = n
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/octet-stream" {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("content type %q: send application/octet-stream", ct))
		return
	}
	body := http.MaxBytesReader(w, r.Body, s.cfg.MaxBody)
	named, _, err := tensor.ReadSafetensors(body, s.cfg.MaxBody)
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok || errors.Is(err, tensor.ErrTooLarge) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("job body over %d bytes: split the job", s.cfg.MaxBody))
			return
		}
		writeError(w, http.StatusBadRequest, "reading the safetensors body: "+err.Error())
		return
	}
	inputs, err := client.KernelInputs(kernel, named)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	outs, err := shaders.Reference(kernel, inputs)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	result := make(map[string]*tensor.Tensor, len(outs))
	for i, t := range outs {
		result[client.OutputName(kernel, i)] = t
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	id := fmt.Sprintf("j-%04x", s.seq)
	j := &job{
		inputs: named,
		result: result,
		status: client.JobStatus{
			ID: id, Name: r.URL.Query().Get("name"), Kernel: kernel, Status: client.StateQueued,
			Shards: s.cfg.Shards, Replication: replication,
			FLOPs: shaders.FLOPs(kernel, inputs), CreatedAt: s.now,
		},
	}
	s.jobs[id] = j
	s.order = append(s.order, id)
	writeJSON(w, http.StatusCreated, j.status)
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	jobs := make([]client.JobStatus, 0, len(s.order))
	for i := len(s.order) - 1; i >= 0; i-- {
		jobs = append(jobs, s.jobs[s.order[i]].status)
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"jobs": jobs})
}

// lookup returns job {id} with s.mu held, or writes 404 and returns nil
// with s.mu released.
func (s *Server) lookup(w http.ResponseWriter, r *http.Request) *job {
	id := r.PathValue("id")
	s.mu.Lock()
	j := s.jobs[id]
	if j == nil {
		s.mu.Unlock()
		writeError(w, http.StatusNotFound, fmt.Sprintf("job %q not found: list jobs with GET /v1/jobs", id))
	}
	return j
}

func (s *Server) get(w http.ResponseWriter, r *http.Request) {
	j := s.lookup(w, r)
	if j == nil {
		return
	}
	s.advance(j)
	st := j.status
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, st)
}

// advance moves a job one read forward: the clock ticks and Step more
// shards are verified; at the end the job is done (or fails, as scripted).
func (s *Server) advance(j *job) {
	st := &j.status
	if st.Status.Terminal() {
		return
	}
	s.now = s.now.Add(s.cfg.Tick)
	st.Status = client.StateRunning
	v := min(st.Verified+s.cfg.Step, st.Shards)
	if v == st.Shards && s.cfg.FailReason != "" {
		j.finish(client.StateFailed, s.now, s.cfg.FailReason)
		return
	}
	st.Verified = v
	st.Replicas = v * max(1, st.Replication)
	st.Progress = float64(v) / float64(st.Shards)
	st.ETASeconds = s.cfg.Tick.Seconds() * float64((st.Shards-v+s.cfg.Step-1)/s.cfg.Step)
	if v == st.Shards {
		j.finish(client.StateDone, s.now, "")
	}
}

func (j *job) finish(state client.State, now time.Time, reason string) {
	j.status.Status = state
	j.status.Error = reason
	j.status.FinishedAt = now
	j.status.ETASeconds = 0
}

func (s *Server) cancel(w http.ResponseWriter, r *http.Request) {
	j := s.lookup(w, r)
	if j == nil {
		return
	}
	if !j.status.Status.Terminal() {
		j.finish(client.StateCancelled, s.now, "")
	}
	st := j.status
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) resultOf(w http.ResponseWriter, r *http.Request) {
	j := s.lookup(w, r)
	if j == nil {
		return
	}
	st, result := j.status, j.result
	s.mu.Unlock()
	switch st.Status {
	case client.StateDone:
		w.Header().Set("Content-Type", "application/octet-stream")
		// The tensors came from the CPU reference, so the only error left
		// is a client that hung up; there is no one to tell.
		_ = tensor.WriteSafetensors(w, result, nil)
	case client.StateFailed:
		writeError(w, http.StatusConflict, fmt.Sprintf("job %q failed: %s", st.ID, st.Error))
	case client.StateCancelled:
		writeError(w, http.StatusConflict, fmt.Sprintf("job %q was cancelled: submit it again", st.ID))
	default:
		writeError(w, http.StatusConflict, fmt.Sprintf("job %q is %s (%d/%d shards verified): wait for it", st.ID, st.Status, st.Verified, st.Shards))
	}
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": strings.TrimSpace(msg)})
}
