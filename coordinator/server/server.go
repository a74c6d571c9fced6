package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"time"

	"github.com/neurolov/neurolov/coordinator/planner"
	"github.com/neurolov/neurolov/coordinator/scheduler"
	"github.com/neurolov/neurolov/coordinator/store"
	"github.com/neurolov/neurolov/coordinator/verify"
	"github.com/neurolov/neurolov/identity"
	"github.com/neurolov/neurolov/protocol"
	"github.com/neurolov/neurolov/tensor"
)

// Errors the server returns.
var (
	// ErrClosed reports a call on a server whose loop has stopped.
	ErrClosed = errors.New("server: closed")
)

// Config configures a Server. Zero fields take the documented defaults.
type Config struct {
	// Domain is the SIWE domain workers sign for (host[:port]). Default
	// "localhost".
	Domain string
	// TLS says workers reach the coordinator over TLS (wss): the URI in
	// the sign-in message they sign says so.
	TLS bool
	// Scheduler configures the state machine (default scheduler.DefaultConfig).
	Scheduler *scheduler.Config
	// Planner configures how jobs are split into shards.
	Planner planner.Options
	// ReplanHeavy: when a job has shards over the scheduler's HeavyFLOPs or
	// HeavyBytes (which only native-gpu workers take) and no native-gpu
	// worker is connected, plan it into shards under those budgets instead
	// of letting it wait for one.
	ReplanHeavy bool
	// Window is the number of leases granted to each worker (default 8).
	Window int
	// MaxJobBytes bounds an uploaded job body (default, and at most, what
	// one API key may hold of the uploads share: an eighth of
	// MemoryBudget, 512 MiB by default).
	MaxJobBytes int64
	// InlineBytes: tensors up to this size travel inside Assign messages;
	// larger ones travel once per connection as TensorData chunks and are
	// then named by hash (default 256 KiB, at most MaxInlineBytes). An
	// Assign whose inline tensors together would near the frame limit sends
	// the rest by hash too.
	InlineBytes int
	// MaxHeldOutputBytes bounds the chunked result tensors one worker may
	// send ahead of their Results, in bytes (default 256 MiB: as much
	// again as it may have unfinished); a worker over it is closed.
	MaxHeldOutputBytes int64
	// MemoryBudget is the memory, in bytes, the coordinator lets what peers
	// send it hold at once (default 4 GiB): an eighth for worker frames
	// being read, a quarter for chunked outputs awaiting their Results, a
	// quarter for job uploads being read, a quarter for results being
	// assembled and sent. One worker address holds at most half the frames
	// share, one API key half the uploads share (so MaxJobBytes is at most
	// an eighth) and half the results share (so a job whose inputs and
	// twice its outputs exceed an eighth is refused at submission, and
	// Planner.MaxOutputBytes is at most a sixteenth). A peer that would go over is
	// refused with a clear error: a worker connection closes 1013 (try
	// again later), an upload gets a 503 with a Retry-After. `neurolov serve -memory-budget` sets it, and sets the Go
	// runtime's soft memory limit to it.
	MemoryBudget int64
	// SpotChecks is the number of output elements recomputed exactly per
	// result (default 2).
	SpotChecks int
	// TickEvery is how often lease deadlines are checked (default 250 ms).
	TickEvery time.Duration
	// HandshakeTimeout bounds the worker handshake (default 10 s).
	HandshakeTimeout time.Duration
	// PingEvery and PingTimeout: each worker is pinged every PingEvery
	// (default 15 s) and dropped when it does not answer within PingTimeout
	// (default 10 s).
	PingEvery, PingTimeout time.Duration
	// MinRate and RateGrace bound how slowly a peer may send: a worker
	// message, once its first byte has arrived, must finish within
	// RateGrace plus its size over MinRate (bytes per second), or its
	// connection is closed (defaults 64 KiB/s and 10 s: a 16 MiB frame may
	// take 4 min 26 s).
	MinRate   int64
	RateGrace time.Duration
	// IdleTimeout is how long an HTTP keep-alive connection may wait for
	// its next request (default 2 min).
	IdleTimeout time.Duration
	// Rand returns the scheduler's random source (default
	// verify.NewSecretRand: ChaCha8 seeded from crypto/rand).
	Rand func() *mrand.Rand
	// Now returns the current time (default time.Now).
	Now func() time.Time
	// Logger receives structured logs (default slog.Default()).
	Logger *slog.Logger
	// Pages, when set, serves the web pages (the volunteer page at "/" and
	// its files under "/static/"; see package web). The coordinator does
	// not import the pages: the main wires them in.
	Pages http.Handler
	// Observe, when set, sees every scheduler action the loop carries out
	// (the demo prints them; the dashboard streams them). It runs on the
	// loop goroutine: it must return quickly and must not keep the action's
	// slices.
	Observe func(scheduler.Action)
}

func (c *Config) defaults() {
	if c.Domain == "" {
		c.Domain = "localhost"
	}
	if c.Scheduler == nil {
		d := scheduler.DefaultConfig()
		c.Scheduler = &d
	}
	if c.Window <= 0 {
		c.Window = 8
	}
	if c.InlineBytes <= 0 {
		c.InlineBytes = 256 << 10
	}
	if c.MaxHeldOutputBytes <= 0 {
		c.MaxHeldOutputBytes = chunkedOutputBytes
	}
	if c.MemoryBudget <= 0 {
		c.MemoryBudget = defaultMemoryBudget
	}
	if c.SpotChecks <= 0 {
		c.SpotChecks = 2
	}
	if c.TickEvery <= 0 {
		c.TickEvery = 250 * time.Millisecond
	}
	if c.PingEvery <= 0 {
		c.PingEvery = 15 * time.Second
	}
	if c.PingTimeout <= 0 {
		c.PingTimeout = 10 * time.Second
	}
	if c.MinRate <= 0 {
		c.MinRate = 64 << 10
	}
	if c.RateGrace <= 0 {
		c.RateGrace = 10 * time.Second
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 2 * time.Minute
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = 10 * time.Second
	}
	if c.Rand == nil {
		c.Rand = verify.NewSecretRand
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// MaxInlineBytes bounds the tensor data one Assign carries inline (and
// Config.InlineBytes): the frame limit less room for the message's other
// fields (protocol.MaxInlineBytes).
const MaxInlineBytes = protocol.MaxInlineBytes

// Server is the coordinator: it owns the scheduler (driven by one loop
// goroutine), the worker connections and the HTTP API.
type Server struct {
	cfg     Config
	store   store.Store
	log     *slog.Logger
	auth    *identity.Verifier
	metrics *metrics
	faults  *faults // a test's injected panics (export_test.go)
	budgets *budgets

	events chan event
	done   chan struct{}

	// Loop-owned state (touched only by the loop goroutine).
	sched  *scheduler.Scheduler
	conns  map[scheduler.WorkerID]*conn
	nextID scheduler.WorkerID
	// results are the results of the burst being handled, not yet
	// judged (see handle).
	results []scheduler.WorkerResults
	blobs   map[[32]byte]*blob // tensors sent by hash, for Fetch
	// orphans are the tensors sent by hash for no live job (canaries,
	// re-verification of finished jobs), oldest first: only the last
	// maxOrphans hold their blobs.
	orphans []orphan
	hashes  map[*tensor.Tensor][32]byte
	jobs    map[scheduler.JobID]*jobInfo // live jobs
	// plans are the plans of finished jobs planned otherwise than the
	// configured one: assembling such a job's result re-plans its stored
	// inputs with it.
	plans   map[scheduler.JobID]planner.Options
	addrs   map[scheduler.Address]*addrStats
	started time.Time
	// staged are the connections with messages waiting for flush.
	staged []*conn
}

// BurstEvents bounds how many queued events the loop handles before it
// flushes what they sent and judges the results they brought: enough that
// a burst of result frames from many workers is answered in full frames
// and checked in one batch, few enough that the first answer is not held
// back long. (`neurolov bench verify` hands its scheduler results in
// bursts of this size.)
const BurstEvents = 64

// jobInfo is what the loop keeps of a live job (the scheduler holds its
// tasks, the store its inputs and results). A finished job leaves only its
// plan, in Server.plans, and only when it differs from the configured one.
type jobInfo struct {
	plan    planner.Options  // the options its shards were planned with
	running bool             // whether its status says running (set at its first lease)
	tensors []*tensor.Tensor // tensors this job hashed, to forget when done
	// held are the blobs this job holds a reference to.
	held map[[32]byte]struct{}
}

// blob is a tensor sent by hash, kept for Fetch while any job that sent it
// by that hash is live: jobs with equal content (the same weights uploaded
// twice) share one blob, so one job ending must not take it from the other.
type blob struct {
	t       *tensor.Tensor
	jobs    int // live jobs holding it
	orphans int // entries of Server.orphans holding it
}

type addrStats struct {
	verified, rejected int
}

// New returns a server over st. Call Run to start its loop and Handler for
// its HTTP endpoints.
func New(cfg Config, st store.Store) *Server {
	cfg.defaults()
	if cfg.InlineBytes > MaxInlineBytes {
		cfg.Logger.Warn("InlineBytes over what a frame holds: lowered", "asked", cfg.InlineBytes, "max", MaxInlineBytes)
		cfg.InlineBytes = MaxInlineBytes
	}
	bud := newBudgets(cfg.MemoryBudget)
	if cfg.MaxJobBytes <= 0 {
		cfg.MaxJobBytes = bud.bodies.perHolder
	} else if cfg.MaxJobBytes > bud.bodies.perHolder {
		cfg.Logger.Warn("MaxJobBytes over what one API key may hold of the memory budget's share for uploads: lowered", "asked", cfg.MaxJobBytes, "max", bud.bodies.perHolder)
		cfg.MaxJobBytes = bud.bodies.perHolder
	}
	if most := float64(bud.results.perHolder / 2); cfg.Planner.MaxOutputBytes == 0 || cfg.Planner.MaxOutputBytes > most {
		// A result is assembled in memory, twice its size (assemblyBytes):
		// a job whose result could never be is refused at submission.
		cfg.Planner.MaxOutputBytes = most
	}
	s := &Server{
		cfg:     cfg,
		store:   st,
		log:     cfg.Logger,
		events:  make(chan event, 1024),
		done:    make(chan struct{}),
		conns:   make(map[scheduler.WorkerID]*conn),
		blobs:   make(map[[32]byte]*blob),
		hashes:  make(map[*tensor.Tensor][32]byte),
		jobs:    make(map[scheduler.JobID]*jobInfo),
		plans:   make(map[scheduler.JobID]planner.Options),
		addrs:   make(map[scheduler.Address]*addrStats),
		metrics: newMetrics(),
		faults:  &faults{},
		budgets: bud,
	}
	scheme := "ws://"
	if cfg.TLS {
		scheme = "wss://"
	}
	s.auth = identity.NewVerifier(identity.VerifierConfig{Domain: cfg.Domain, URI: scheme + cfg.Domain + "/v1/worker", Now: cfg.Now})
	s.sched = scheduler.New(*cfg.Scheduler, cfg.Rand(), newChecker(cfg.SpotChecks, s.faults, cfg.Logger))
	return s
}

// event is one input to the loop.
type event struct {
	kind    eventKind
	conn    *conn
	lease   uint64
	results []scheduler.LeaseResult // evResults: consecutive results of one frame
	msg     string
	hashes  [][32]byte
	job     *submission
	jobID   scheduler.JobID
	reply   chan any
	fn      func()
	batch   []event
}

type eventKind uint8

const (
	evJoin eventKind = iota + 1
	evLeave
	evResults
	evError
	evFetch
	evSubmit
	evCancel
	evCall
	evBatch
)

type submission struct {
	id          scheduler.JobID
	shards      []planner.Shard
	replication int
	plan        planner.Options
}

// Run runs the loop until ctx is cancelled; then it closes every worker
// connection and returns.
func (s *Server) Run(ctx context.Context) error {
	s.started = s.cfg.Now()
	ticker := time.NewTicker(s.cfg.TickEvery)
	defer ticker.Stop()
	defer close(s.done)
	defer s.closeAll("coordinator shutting down")
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-s.events:
			s.handle(ev)
			s.handleQueued(BurstEvents - 1)
			s.judgeResults()
		case <-ticker.C:
			s.apply(s.sched.Tick(s.cfg.Now()))
			s.metrics.leases.Set(float64(s.sched.OpenLeases()))
		}
		s.flush()
	}
}

// handleQueued handles up to n events already waiting, without blocking.
func (s *Server) handleQueued(n int) {
	for range n {
		select {
		case ev := <-s.events:
			s.handle(ev)
		default:
			return
		}
	}
}

// flush wakes the writers of the connections that have messages staged.
func (s *Server) flush() {
	for i, c := range s.staged {
		c.staged = false
		c.out.Flush()
		s.staged[i] = nil
	}
	s.staged = s.staged[:0]
}

// send queues ev for the loop; it fails once the loop has stopped. An
// event queued just as the loop stops is never handled: whoever waits for
// its reply must also watch s.done (await does).
func (s *Server) send(ev event) error {
	select {
	case <-s.done:
		return ErrClosed
	default:
	}
	select {
	case s.events <- ev:
		return nil
	case <-s.done:
		return ErrClosed
	}
}

// await waits for the loop's reply to an event; it fails with ErrClosed
// when the loop stops without answering.
func (s *Server) await(reply chan any) error {
	select {
	case <-reply:
		return nil
	case <-s.done:
		select {
		case <-reply: // answered before the loop stopped
			return nil
		default:
			return ErrClosed
		}
	}
}

// request sends ev to the loop and waits for its reply (ErrClosed once the
// loop has stopped).
func (s *Server) request(ev event) error {
	ev.reply = make(chan any, 1)
	if err := s.send(ev); err != nil {
		return err
	}
	return s.await(ev.reply)
}

// call runs fn on the loop goroutine and waits for it. ctx is checked only
// before fn is queued: once it is, call waits for the loop (which answers
// promptly) or its end, so that fn never runs after call has returned and
// its caller reads what fn wrote.
func (s *Server) call(ctx context.Context, fn func()) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.request(event{kind: evCall, fn: fn})
}

// judgeResults hands the scheduler the results gathered since the last
// call, of every worker, in one ResultBatches.
func (s *Server) judgeResults() {
	if len(s.results) == 0 {
		return
	}
	s.apply(s.sched.ResultBatches(s.cfg.Now(), s.results))
	clear(s.results) // hold no outputs
	s.results = s.results[:0]
}

// handle handles one event. Results are gathered, not judged: the
// scheduler gets consecutive results of a burst, from any workers, in one
// ResultBatches (so that checks of results sharing inputs share their
// reads), before the next event of another kind and at the burst's end.
func (s *Server) handle(ev event) {
	if ev.kind != evResults && ev.kind != evBatch {
		s.judgeResults()
	}
	now := s.cfg.Now()
	switch ev.kind {
	case evBatch:
		for _, e := range ev.batch {
			s.handle(e)
		}
	case evJoin:
		s.join(now, ev.conn)
		ev.reply <- nil
	case evLeave:
		if _, ok := s.conns[ev.conn.id]; ok {
			delete(s.conns, ev.conn.id)
			s.metrics.workers.WithLabelValues(ev.conn.caps.Backend).Dec()
			s.apply(s.sched.WorkerLeft(now, ev.conn.id))
		}
	case evResults:
		s.metrics.results.Add(float64(len(ev.results)))
		s.results = append(s.results, scheduler.WorkerResults{Worker: ev.conn.id, Results: ev.results})
	case evError:
		s.apply(s.sched.WorkerError(now, ev.conn.id, scheduler.LeaseID(ev.lease), ev.msg))
	case evFetch:
		s.serveFetch(ev.conn, ev.hashes)
	case evSubmit:
		s.submit(now, ev.job)
		ev.reply <- nil
	case evCancel:
		s.apply(s.sched.CancelJob(now, ev.jobID))
		ev.reply <- nil
	case evCall:
		ev.fn()
		ev.reply <- nil
	}
}

func (s *Server) join(now time.Time, c *conn) {
	s.nextID++
	c.id = s.nextID
	s.conns[c.id] = c
	s.metrics.workers.WithLabelValues(c.caps.Backend).Inc()
	c.enqueue(&protocol.Window{Size: uint32(s.cfg.Window)})
	s.apply(s.sched.WorkerJoined(now, scheduler.Worker{
		ID:             c.id,
		Address:        c.addr,
		Backend:        c.caps.Backend,
		Window:         s.cfg.Window,
		MaxShardBytes:  float64(c.caps.MaxShardBytes),
		MaxBufferBytes: float64(c.caps.MaxBufferBytes),
		GFLOPS:         c.caps.GFLOPS,
	}))
}

func (s *Server) submit(now time.Time, sub *submission) {
	tasks := make([]scheduler.Task, len(sub.shards))
	for i, sh := range sub.shards {
		tasks[i] = scheduler.Task{Kernel: sh.Kernel, Inputs: sh.Inputs, FLOPs: sh.FLOPs, Bytes: sh.Bytes, MaxTensorBytes: sh.MaxTensorBytes}
	}
	s.jobs[sub.id] = &jobInfo{plan: sub.plan}
	s.metrics.jobs.Inc()
	s.apply(s.sched.SubmitJob(now, scheduler.Job{ID: sub.id, Tasks: tasks, Replication: sub.replication}))
	if n := s.identities(); n < 2 && sub.replication != 1 {
		s.log.Warn("job waits for workers of a second identity: a new identity's results are replicated, and one address never vouches twice for a shard",
			"job", sub.id, "identities connected", n)
	}
}

// identities counts the distinct addresses of the connected workers, up
// to 2 (all that submit needs to know).
func (s *Server) identities() int {
	n := 0
	var first scheduler.Address
	for _, c := range s.conns {
		if n == 0 {
			first, n = c.addr, 1
		} else if c.addr != first {
			return 2
		}
	}
	return n
}

// apply carries out the scheduler's actions.
func (s *Server) apply(acts []scheduler.Action) {
	ctx := context.Background()
	for i := range acts {
		a := &acts[i]
		if s.cfg.Observe != nil {
			s.cfg.Observe(*a)
		}
		switch a.Kind {
		case scheduler.Assign:
			if c := s.conns[a.Worker]; c != nil {
				s.assign(c, a)
			}
			if ji := s.jobs[a.Job]; ji != nil && !ji.running {
				ji.running = true // a job runs from its first lease, not its first verified shard
				s.setStatus(ctx, a.Job, store.StatusRunning, "")
			}
		case scheduler.Cancel:
			if c := s.conns[a.Worker]; c != nil {
				c.enqueue(&protocol.Cancel{Lease: uint64(a.Lease)})
			}
		case scheduler.Reject:
			s.metrics.rejected.Inc()
			s.stats(a.Address).rejected++
			if c := s.conns[a.Worker]; c != nil {
				c.enqueue(&protocol.Error{Lease: uint64(a.Lease), Code: protocol.CodeRejected, Message: a.Reason})
			}
			s.log.Debug("result rejected", "worker", a.Worker, "lease", a.Lease, "reason", a.Reason)
		case scheduler.Accept, scheduler.Correct:
			s.metrics.accepted.Inc()
			rec, err := s.store.PutShardResult(ctx, string(a.Job), a.Shard, a.Outputs, a.Replicas)
			if err != nil {
				s.log.Error("storing shard result", "job", a.Job, "shard", a.Shard, "err", err)
				continue
			}
			if a.Kind == scheduler.Correct {
				s.metrics.corrections.Inc()
				s.log.Warn("result corrected after re-verification", "job", a.Job, "shard", a.Shard, "method", a.Method)
			}
			if rec.Status == store.StatusQueued {
				s.setStatus(ctx, a.Job, store.StatusRunning, "")
			}
		case scheduler.Pay:
			s.stats(a.Address).verified++
			if err := s.store.Credit(ctx, a.Address, a.FLOPs); err != nil {
				s.log.Error("crediting", "address", a.Address, "err", err)
			}
		case scheduler.Forfeit:
			if _, err := s.store.Forfeit(ctx, a.Address); err != nil {
				s.log.Error("forfeiting", "address", a.Address, "err", err)
			}
		case scheduler.Ban:
			s.metrics.caught.Inc()
			s.log.Warn("worker caught cheating", "address", a.Address, "reason", a.Reason)
			for _, c := range s.conns {
				if c.addr == a.Address {
					c.closeWith(statusBanned, "banned: "+a.Reason)
				}
			}
		case scheduler.JobDone:
			s.setStatus(ctx, a.Job, store.StatusDone, "")
			s.finished(a.Job)
		case scheduler.JobFailed:
			status := store.StatusFailed
			if a.Reason == "cancelled" {
				status = store.StatusCancelled
			}
			s.setStatus(ctx, a.Job, status, a.Reason)
			s.finished(a.Job)
		}
	}
}

func (s *Server) stats(a scheduler.Address) *addrStats {
	st := s.addrs[a]
	if st == nil {
		st = &addrStats{}
		s.addrs[a] = st
	}
	return st
}

func (s *Server) setStatus(ctx context.Context, id scheduler.JobID, status store.JobStatus, reason string) {
	now := s.cfg.Now()
	err := s.store.UpdateJob(ctx, string(id), func(r *store.JobRecord) error {
		r.Status = status
		r.Error = reason
		if status != store.StatusRunning {
			r.Finished = now
		}
		return nil
	})
	if err != nil {
		s.log.Error("updating job", "job", id, "err", err)
	}
	if status == store.StatusDone || status == store.StatusFailed {
		s.log.Info("job finished", "job", id, "status", status, "reason", reason)
	}
}

// finished drops what the loop holds for a job that has ended but its plan,
// kept in s.plans unless it is the configured one (planOf falls back to it).
func (s *Server) finished(id scheduler.JobID) {
	ji := s.jobs[id]
	if ji == nil {
		return
	}
	s.forgetTensors(id)
	delete(s.jobs, id)
	if ji.plan != s.cfg.Planner {
		s.plans[id] = ji.plan
	}
}

// forgetTensors releases a finished job's references to hash-addressed
// tensors; a tensor leaves the Fetch table once no live job holds it
// (workers keep their cached copies).
func (s *Server) forgetTensors(id scheduler.JobID) {
	ji := s.jobs[id]
	if ji == nil {
		return
	}
	for _, t := range ji.tensors {
		delete(s.hashes, t)
	}
	for h := range ji.held {
		if b := s.blobs[h]; b != nil {
			b.jobs--
			s.dropUnheld(h, b)
		}
	}
	ji.tensors, ji.held = nil, nil
}

// assign sends a lease to c, sending large inputs once per connection as
// TensorData chunks and naming them by hash afterwards. Inputs go inline
// while they are small and the message stays under MaxInlineBytes (a deep
// MLP's layers are each small, but not all of them together); an Assign
// that still cannot be encoded fails its lease (see conn.startWriter).
func (s *Server) assign(c *conn, a *scheduler.Action) {
	m := &protocol.Assign{Lease: uint64(a.Lease), Kernel: a.Task.Kernel, Inputs: make([]protocol.TensorRef, len(a.Task.Inputs))}
	size := 0
	ji := s.jobs[a.Job] // nil for no live job (a canary, a finished job's re-verification)
	for i, t := range a.Task.Inputs {
		size += protocol.RefBytes(t.Shape)
		if n := 4 * t.Len(); n <= s.cfg.InlineBytes && size+n <= MaxInlineBytes {
			size += n
			m.Inputs[i] = protocol.TensorRef{Shape: t.Shape, Inline: true, Data: t.Data}
			continue
		}
		h := s.hashOf(ji, t)
		if !c.sent[h] {
			c.markSent(h)
			s.sendTensor(c, h, t)
		}
		m.Inputs[i] = protocol.TensorRef{Hash: h, Shape: t.Shape}
	}
	c.enqueue(m)
}

// maxOrphans bounds the tensors sent by hash for no job (canaries) that
// the coordinator keeps for Fetch. A worker is sent a tensor with its
// Assign and fetches it only if it lost its copy before computing, so the
// last few hundred cover every canary still out; older ones are dropped
// (a canary's tensors were kept for ever).
const maxOrphans = 256

// orphan is a tensor sent by hash for no live job, and its hash.
type orphan struct {
	t *tensor.Tensor
	h [32]byte
}

// keepOrphan records t (of hash h), a tensor sent by hash for no live job,
// and drops the oldest such tensor past maxOrphans; its blob leaves the
// Fetch table once neither a live job nor a newer orphan of the same
// content holds it.
func (s *Server) keepOrphan(t *tensor.Tensor, h [32]byte) {
	s.blobs[h].orphans++
	s.orphans = append(s.orphans, orphan{t, h})
	if len(s.orphans) <= maxOrphans {
		return
	}
	old := s.orphans[0]
	n := copy(s.orphans, s.orphans[1:])
	s.orphans[n] = orphan{}
	s.orphans = s.orphans[:n]
	if s.hashes[old.t] == old.h {
		delete(s.hashes, old.t)
	}
	if b := s.blobs[old.h]; b != nil {
		b.orphans--
		s.dropUnheld(old.h, b)
	}
}

// dropUnheld removes b, the blob of hash h, from the Fetch table once
// neither a live job nor an orphan holds it.
func (s *Server) dropUnheld(h [32]byte, b *blob) {
	if b.jobs <= 0 && b.orphans <= 0 {
		delete(s.blobs, h)
	}
}

// hashOf returns t's content hash and records t for Fetch: held by ji, the
// live job sending it, or — for ji nil, no live job (canaries,
// re-verification of a finished job) — among the last maxOrphans such
// tensors.
func (s *Server) hashOf(ji *jobInfo, t *tensor.Tensor) [32]byte {
	h, known := s.hashes[t]
	if !known {
		h = t.Hash()
		s.hashes[t] = h
	}
	if ji == nil { // no live job will release it: the FIFO does
		if s.blobs[h] == nil {
			s.blobs[h] = &blob{t: t}
		}
		if !known {
			s.keepOrphan(t, h)
		}
		return h
	}
	if !known {
		ji.tensors = append(ji.tensors, t)
	}
	if _, ok := ji.held[h]; !ok {
		if ji.held == nil {
			ji.held = make(map[[32]byte]struct{})
		}
		ji.held[h] = struct{}{}
		b := s.blobs[h]
		if b == nil {
			b = &blob{t: t}
			s.blobs[h] = b
		}
		b.jobs++
	}
	return h
}

// serveFetch answers a Fetch: each distinct hash once, as chunks or
// NotFound. A worker that would have more than maxQueuedTensorBytes of
// tensors waiting for it to read is closed instead.
func (s *Server) serveFetch(c *conn, hashes [][32]byte) {
	if len(hashes) > 1 {
		hashes = distinct(hashes)
	}
	need := c.out.QueuedBytes()
	for _, h := range hashes {
		if b := s.blobs[h]; b != nil {
			need += 4 * int64(b.t.Len())
		}
	}
	if need > maxQueuedTensorBytes {
		s.log.Info("worker fetches faster than it reads: closing", "address", c.addr, "queued_bytes", need)
		c.closeWith(statusBadFrame, fmt.Sprintf("fetch refused: over %d MiB of tensors would wait for this worker to read them", maxQueuedTensorBytes>>20))
		return
	}
	for _, h := range hashes {
		b := s.blobs[h]
		if b == nil {
			c.enqueue(protocol.NotFound(h))
			continue
		}
		c.markSent(h)
		s.sendTensor(c, h, b.t)
	}
}

// distinct returns hashes without repeats, in first-seen order (a new
// slice: hashes is not changed).
func distinct(hashes [][32]byte) [][32]byte {
	seen := make(map[[32]byte]struct{}, len(hashes))
	out := make([][32]byte, 0, len(hashes))
	for _, h := range hashes {
		if _, dup := seen[h]; !dup {
			seen[h] = struct{}{}
			out = append(out, h)
		}
	}
	return out
}

// sendTensor queues t as TensorData chunks on c.
func (s *Server) sendTensor(c *conn, h [32]byte, t *tensor.Tensor) {
	chunks, err := protocol.ChunkTensor(h, t.Shape, t.Data, 0)
	if err != nil {
		s.log.Error("chunking tensor", "err", err)
		return
	}
	for i := range chunks {
		c.enqueue(&chunks[i])
	}
}

func (s *Server) closeAll(reason string) {
	for _, c := range s.conns {
		c.closeWith(statusGoingAway, reason)
	}
}

// newJobID returns a random job id.
func newJobID() scheduler.JobID {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return scheduler.JobID("j-" + hex.EncodeToString(b[:]))
}

// Stats returns the scheduler's counters and the number of connected
// workers.
func (s *Server) Stats(ctx context.Context) (scheduler.Stats, int, error) {
	var st scheduler.Stats
	var n int
	err := s.call(ctx, func() {
		st = s.sched.Stats()
		n = len(s.conns)
	})
	return st, n, err
}

// Traffic returns the worker traffic counters: frames and the messages
// they carried, each way.
func (s *Server) Traffic() Traffic { return s.metrics.traffic.snapshot() }

// Pending returns the replicas the scheduler still has to compute (open
// leases and queued replicas, re-verifications included).
func (s *Server) Pending(ctx context.Context) (int, error) {
	var n int
	err := s.call(ctx, func() { n = s.sched.Pending() })
	return n, err
}

// Caught reports whether addr has been caught cheating (for tests and the
// dashboard).
func (s *Server) Caught(addr scheduler.Address) bool {
	var caught bool
	_ = s.call(context.Background(), func() { caught = s.sched.Caught(addr) })
	return caught
}

// planFor returns the planner options for a new job: the configured ones,
// or, with ReplanHeavy and no native-gpu worker connected, ones that keep
// every shard under the heavy budgets. A panic in planning is an error
// wrapping ErrInternal (logged at Error with its stack).
func (s *Server) planFor(ctx context.Context, kernel string, inputs []*tensor.Tensor) (shards []planner.Shard, opts planner.Options, err error) {
	defer catch(s.log, &err, "planning", "kernel", kernel)
	s.faults.at("plan", kernel, inputs)
	return s.plan(ctx, kernel, inputs)
}

// plan is planFor without its guard.
func (s *Server) plan(ctx context.Context, kernel string, inputs []*tensor.Tensor) ([]planner.Shard, planner.Options, error) {
	opts := s.cfg.Planner
	shards, err := planner.Plan(kernel, inputs, opts)
	if err != nil || !s.cfg.ReplanHeavy {
		return shards, opts, err
	}
	sc := s.cfg.Scheduler
	heavy := false
	for _, sh := range shards {
		if (sc.HeavyFLOPs > 0 && sh.FLOPs > sc.HeavyFLOPs) || (sc.HeavyBytes > 0 && sh.Bytes > sc.HeavyBytes) {
			heavy = true
			break
		}
	}
	if !heavy {
		return shards, opts, nil
	}
	gpus := 0
	if err := s.call(ctx, func() { gpus = s.sched.NativeGPUs() }); err != nil {
		return nil, opts, err
	}
	if gpus > 0 {
		return shards, opts, nil
	}
	if sc.HeavyFLOPs > 0 {
		opts.MaxShardFLOPs = sc.HeavyFLOPs
	}
	if sc.HeavyBytes > 0 {
		opts.MaxShardBytes = sc.HeavyBytes
	}
	s.log.Info("no data-center GPU connected: re-planning heavy job into smaller shards", "kernel", kernel)
	shards, err = planner.Plan(kernel, inputs, opts)
	return shards, opts, err
}

// planOf returns the planner options job id was planned with (the
// configured ones for a job this server did not plan, such as one from
// before a restart).
func (s *Server) planOf(ctx context.Context, id string) (planner.Options, error) {
	opts := s.cfg.Planner
	err := s.call(ctx, func() {
		if ji := s.jobs[scheduler.JobID(id)]; ji != nil {
			opts = ji.plan
		} else if plan, ok := s.plans[scheduler.JobID(id)]; ok {
			opts = plan
		}
	})
	return opts, err
}
