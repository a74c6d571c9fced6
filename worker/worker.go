package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/neurolov/neurolov/internal/wsio"
	"github.com/neurolov/neurolov/protocol"
	"github.com/neurolov/neurolov/shaders"
	"github.com/neurolov/neurolov/tensor"
)

// inlineOutputBytes: outputs up to this size travel inside the Result;
// larger ones go first as TensorData chunks.
const inlineOutputBytes = 4 << 20

// Errors the worker returns.
var (
	// ErrHandshake reports a coordinator that refused or broke the handshake.
	ErrHandshake = errors.New("worker: handshake failed")
	// ErrBanned reports that the coordinator banned this worker's address.
	ErrBanned = errors.New("worker: banned by the coordinator")
	// ErrVersion reports a coordinator that refused this worker's protocol
	// version (close status wsio.StatusVersion): reconnecting would be
	// refused again, so Run stops. Update the worker; a browser tab gets
	// the new client by reloading the page.
	ErrVersion = errors.New("worker: the coordinator speaks another protocol version")
)

// Backend computes shards. Implementations: the portable Go CPU kernels
// (CPU in this package), OpenBLAS (shaders/blas), WebGPU (shaders/gpu) and,
// in the browser, WASM SIMD.
type Backend interface {
	// Name is the backend reported in the handshake: "cpu", "native-gpu",
	// "webgpu" or "cpu-wasm".
	Name() string
	// Device names the adapter or CPU.
	Device() string
	// Run computes kernel on inputs and returns fresh outputs.
	Run(ctx context.Context, kernel string, inputs []*tensor.Tensor) ([]*tensor.Tensor, error)
}

// Signer proves the worker's identity: an Ethereum key signing with
// personal_sign (EIP-191) semantics — a local key, or a browser wallet.
type Signer interface {
	Address() [20]byte
	SignText(message string) ([65]byte, error)
}

// Tamper, when set, may replace a shard's outputs before they are sent. It
// exists for the demo and the adversarial tests (simulated cheaters); a real
// worker leaves it nil.
type Tamper func(lease uint64, kernel string, inputs, outputs []*tensor.Tensor) []*tensor.Tensor

// Config configures a worker.
type Config struct {
	// URL is the coordinator's worker endpoint, ws://host:port/v1/worker,
	// or wss:// for a coordinator serving TLS.
	URL string
	// DialOptions, when set, are passed to websocket.Dial: natively, an
	// HTTPClient whose transport trusts a coordinator's own certificate
	// (its TLSClientConfig.RootCAs), say. The browser's WebSocket takes
	// the page's trust and no options beyond subprotocols.
	DialOptions *websocket.DialOptions
	Signer      Signer
	Backend     Backend
	// GFLOPS is the speed reported in the handshake (measure it with
	// Measure).
	GFLOPS float64
	// MaxShardBytes is the largest shard (inputs plus outputs) taken; 0 =
	// no limit.
	MaxShardBytes uint64
	// MaxBufferBytes is the largest single tensor the device holds (a GPU's
	// max storage binding); 0 = no limit.
	MaxBufferBytes uint64
	// Parallel is how many shards run at once (default 1: backends use
	// every core themselves).
	Parallel int
	// CacheBytes bounds the tensors kept by content hash (default 512 MiB).
	CacheBytes int64
	// Agent names this client in the handshake.
	Agent string
	// MinBackoff and MaxBackoff bound the reconnect delay (defaults 200 ms
	// and 15 s); the delay doubles after each failed session, with jitter.
	MinBackoff, MaxBackoff time.Duration
	Tamper                 Tamper
	Logger                 *slog.Logger
	// OnEvent, when set, is told about progress (for the browser page and
	// the CLI): "connected", "shard-done", "rejected", "disconnected".
	OnEvent func(Event)
}

// Event is a progress notice for OnEvent.
type Event struct {
	Kind   string
	Lease  uint64
	FLOPs  float64
	Detail string
}

func (c *Config) defaults() {
	if c.Parallel <= 0 {
		c.Parallel = 1
	}
	if c.CacheBytes <= 0 {
		c.CacheBytes = 512 << 20
	}
	if c.Agent == "" {
		c.Agent = "neurolov-worker/1"
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = 200 * time.Millisecond
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 15 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Stats counts a worker's work across sessions.
type Stats struct {
	Sessions atomic.Int64
	Done     atomic.Int64
	Rejected atomic.Int64
	FLOPs    atomic.Uint64 // stored as uint64 of whole FLOPs
}

// Worker runs sessions against a coordinator, reconnecting with backoff.
type Worker struct {
	cfg   Config
	cache *cache
	Stats Stats

	mu   sync.Mutex
	drop context.CancelCauseFunc // ends the current session
}

// errDropped ends a session that Drop closed.
var errDropped = errors.New("worker: connection dropped on request")

// Drop closes the current connection as if the network had failed; Run
// reconnects after its backoff. Tests use it to simulate flaky volunteers.
func (w *Worker) Drop() {
	w.mu.Lock()
	drop := w.drop
	w.mu.Unlock()
	if drop != nil {
		drop(errDropped)
	}
}

// New returns a worker for cfg.
func New(cfg Config) *Worker {
	cfg.defaults()
	return &Worker{cfg: cfg, cache: newCache(cfg.CacheBytes)}
}

// Run connects and works until ctx is cancelled or the address is banned,
// reconnecting with exponential backoff and jitter after each lost session.
func (w *Worker) Run(ctx context.Context) error {
	delay := w.cfg.MinBackoff
	for {
		start := time.Now()
		err := w.Session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, ErrBanned) || errors.Is(err, ErrVersion) {
			return err
		}
		if time.Since(start) > 10*time.Second {
			delay = w.cfg.MinBackoff
		}
		w.cfg.Logger.Info("worker session ended; reconnecting", "err", err, "in", delay)
		w.event(Event{Kind: "disconnected", Detail: errString(err)})
		jitter := time.Duration(rand.Int64N(int64(delay)/2 + 1))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay + jitter):
		}
		delay = min(2*delay, w.cfg.MaxBackoff)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func (w *Worker) event(e Event) {
	if w.cfg.OnEvent != nil {
		w.cfg.OnEvent(e)
	}
}

// session is one connection's state.
type session struct {
	w      *Worker
	ws     *websocket.Conn
	ctx    context.Context
	cancel context.CancelCauseFunc

	out *wsio.Outbox
	mu  sync.Mutex
	// open maps the leases assigned and not yet answered to whether the
	// coordinator cancelled them: a Cancel for a lease already answered
	// (its other replica won, or it expired on the way) is not
	// remembered for ever.
	open    map[uint64]bool
	waiting map[[32]byte][]slot // inputs waiting for fetched tensors

	tasks chan *task
}

type task struct {
	lease   uint64
	kernel  string
	inputs  []*tensor.Tensor
	missing int
	// failed: an input could not be fetched, the lease is reported failed
	// (missing and failed are read-loop only).
	failed bool
}

// slot is input i of a task, waiting for a tensor.
type slot struct {
	t *task
	i int
}

// Session runs one connection until it ends.
func (w *Worker) Session(ctx context.Context) error {
	ws, _, err := websocket.Dial(ctx, w.cfg.URL, w.cfg.DialOptions)
	if err != nil {
		return fmt.Errorf("worker: dialing %s: %w", w.cfg.URL, err)
	}
	ws.SetReadLimit(protocol.MaxFrameSize)
	defer ws.CloseNow()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	w.mu.Lock()
	w.drop = cancel
	w.mu.Unlock()
	s := &session{
		w: w, ws: ws, ctx: ctx, cancel: cancel,
		out:     wsio.NewOutbox(),
		open:    make(map[uint64]bool),
		waiting: make(map[[32]byte][]slot),
		tasks:   make(chan *task, 1024),
	}
	if err := s.handshake(); err != nil {
		return err
	}
	w.Stats.Sessions.Add(1)
	w.event(Event{Kind: "connected"})
	var wg sync.WaitGroup
	wg.Go(s.writeLoop)
	for range w.cfg.Parallel {
		wg.Go(s.computeLoop)
	}
	err = s.readLoop()
	cancel(err)
	wg.Wait()
	if ctx.Err() != nil && context.Cause(ctx) != nil && !errors.Is(context.Cause(ctx), context.Canceled) {
		err = context.Cause(ctx)
	}
	if err == nil {
		_ = ws.Close(websocket.StatusNormalClosure, "bye")
	}
	return err
}

func (s *session) write(msgs ...protocol.Message) error {
	frame, err := protocol.Encode(msgs...)
	if err != nil {
		return err
	}
	return s.ws.Write(s.ctx, websocket.MessageBinary, frame)
}

func (s *session) readFrame(buf []byte) ([]byte, error) {
	return wsio.ReadFrame(s.ctx, s.ws, buf)
}

func (s *session) handshake() error {
	cfg := &s.w.cfg
	addr := cfg.Signer.Address()
	if err := s.write(&protocol.Hello{Version: protocol.Version, Address: addr, Agent: cfg.Agent}); err != nil {
		return fmt.Errorf("%w: %v", ErrHandshake, err)
	}
	frame, err := s.readFrame(nil)
	if err != nil {
		if refused := closedFor(err, err.Error()); refused != nil {
			return refused
		}
		return fmt.Errorf("%w: waiting for the challenge: %v", ErrHandshake, err)
	}
	var challenge string
	err = protocol.Decode(frame, func(m protocol.Message) error {
		switch m := m.(type) {
		case *protocol.Challenge:
			challenge = m.Message
		case *protocol.Goodbye:
			return goodbye(m.Reason)
		}
		return nil
	})
	if err != nil || challenge == "" {
		// A refusal's Goodbye (of a coordinator of this version) or an
		// undecodable frame (of another): the close that follows says which.
		if err := s.awaitClose(errString(err)); !errors.As(err, new(goodbye)) {
			return err
		}
		return fmt.Errorf("%w: no challenge: %v", ErrHandshake, err)
	}
	sig, err := cfg.Signer.SignText(challenge)
	if err != nil {
		return fmt.Errorf("%w: signing the challenge: %v", ErrHandshake, err)
	}
	caps := &protocol.Capabilities{
		Backend: cfg.Backend.Name(), Device: cfg.Backend.Device(),
		MaxShardBytes: cfg.MaxShardBytes, MaxBufferBytes: cfg.MaxBufferBytes, GFLOPS: cfg.GFLOPS, Threads: uint16(cfg.Parallel),
	}
	if err := s.write(&protocol.Auth{Signature: sig}, caps); err != nil {
		return fmt.Errorf("%w: %v", ErrHandshake, err)
	}
	return nil
}

// readLoop decodes coordinator frames until the session ends.
func (s *session) readLoop() error {
	var dec protocol.Decoder
	asm := protocol.NewAssembler(2 * s.w.cfg.CacheBytes)
	var buf []byte
	for {
		frame, err := s.readFrame(buf)
		if err != nil {
			if refused := closedFor(err, err.Error()); refused != nil {
				return refused
			}
			return err
		}
		buf = frame
		err = dec.Decode(frame, func(m protocol.Message) error {
			switch m := m.(type) {
			case *protocol.Assign:
				s.assign(m)
			case *protocol.TensorData:
				t, err := asm.Add(m)
				if err != nil {
					return err
				}
				if t != nil {
					s.w.cache.put(m.Hash, t)
					s.arrived(m.Hash, t)
				}
			case *protocol.Cancel:
				s.mu.Lock()
				if _, ok := s.open[m.Lease]; ok {
					s.open[m.Lease] = true
				}
				s.mu.Unlock()
			case *protocol.Error:
				if h, ok := protocol.NotFoundHash(m); ok {
					s.notFound(h)
				}
				if m.Lease != 0 {
					s.w.Stats.Rejected.Add(1)
					s.w.event(Event{Kind: "rejected", Lease: m.Lease, Detail: m.Message})
				}
				s.w.cfg.Logger.Info("coordinator error", "lease", m.Lease, "code", m.Code, "message", m.Message)
			case *protocol.Goodbye:
				return goodbye(m.Reason)
			case *protocol.Window, *protocol.Heartbeat:
			}
			return nil
		})
		var bye goodbye
		if errors.As(err, &bye) {
			return s.awaitClose(string(bye))
		}
		if err != nil {
			return err
		}
	}
}

// goodbye is the reason of the coordinator's Goodbye.
type goodbye string

func (g goodbye) Error() string { return "worker: coordinator said goodbye: " + string(g) }

// awaitClose reads, for a few seconds, until the close that follows the
// coordinator's Goodbye: only its code says whether this address is banned
// (wsio.StatusBanned) or this worker's version refused
// (wsio.StatusVersion); otherwise it returns the goodbye.
func (s *session) awaitClose(reason string) error {
	ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
	defer cancel()
	var buf []byte
	for {
		frame, err := wsio.ReadFrame(ctx, s.ws, buf)
		if refused := closedFor(err, reason); refused != nil {
			return refused
		}
		if err != nil {
			return goodbye(reason)
		}
		buf = frame
	}
}

// closedFor maps a read error that is the coordinator's close to
// ErrBanned or ErrVersion by its status, with reason; nil for any other.
func closedFor(err error, reason string) error {
	switch websocket.CloseStatus(err) {
	case wsio.StatusBanned:
		return fmt.Errorf("%w: %s", ErrBanned, reason)
	case wsio.StatusVersion:
		return fmt.Errorf("%w: %s", ErrVersion, reason)
	}
	return nil
}

// assign turns an Assign into a task, fetching inputs it lacks.
func (s *session) assign(m *protocol.Assign) {
	t := &task{lease: m.Lease, kernel: m.Kernel, inputs: make([]*tensor.Tensor, len(m.Inputs))}
	s.mu.Lock()
	s.open[m.Lease] = false
	s.mu.Unlock()
	var fetch [][32]byte
	for i := range m.Inputs {
		ref := &m.Inputs[i]
		if ref.Inline {
			t.inputs[i] = &tensor.Tensor{Shape: append([]int(nil), ref.Shape...), Data: append([]float32(nil), ref.Data...)}
			continue
		}
		if c := s.w.cache.get(ref.Hash); c != nil {
			t.inputs[i] = c
			continue
		}
		// The coordinator sends a tensor's chunks ahead of the first Assign
		// that names it, on the same ordered stream: a miss here means the
		// cache evicted it, so ask again.
		t.missing++
		s.mu.Lock()
		first := len(s.waiting[ref.Hash]) == 0
		s.waiting[ref.Hash] = append(s.waiting[ref.Hash], slot{t, i})
		s.mu.Unlock()
		if first {
			fetch = append(fetch, ref.Hash)
		}
	}
	if len(fetch) > 0 {
		s.enqueue(&protocol.Fetch{Hashes: fetch})
	}
	if t.missing == 0 {
		s.tasks <- t
	}
}

// closeLease forgets lease once it is answered, failed or dropped.
func (s *session) closeLease(lease uint64) {
	s.mu.Lock()
	delete(s.open, lease)
	s.mu.Unlock()
}

// isCancelled reports whether the coordinator cancelled lease.
func (s *session) isCancelled(lease uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.open[lease]
}

// arrived fills tasks waiting for tensor h.
func (s *session) arrived(h [32]byte, t *tensor.Tensor) {
	s.mu.Lock()
	ws := s.waiting[h]
	delete(s.waiting, h)
	s.mu.Unlock()
	for _, sl := range ws {
		if sl.t.failed {
			continue
		}
		sl.t.inputs[sl.i] = t
		sl.t.missing--
		if sl.t.missing == 0 {
			s.tasks <- sl.t
		}
	}
}

// notFound fails the leases waiting for tensor h, which the coordinator
// answered a Fetch for with NotFound: reported as errors, they are
// re-issued (or their job failed) instead of waiting here forever.
func (s *session) notFound(h [32]byte) {
	s.mu.Lock()
	ws := s.waiting[h]
	delete(s.waiting, h)
	s.mu.Unlock()
	for _, sl := range ws {
		if sl.t.failed {
			continue
		}
		sl.t.failed = true
		s.enqueue(&protocol.Error{Lease: sl.t.lease, Code: protocol.CodeNotFound, Message: fmt.Sprintf("input %d (tensor %x) could not be fetched: the coordinator no longer holds it", sl.i, h[:8])})
		s.closeLease(sl.t.lease)
	}
}

func (s *session) computeLoop() {
	for {
		select {
		case <-s.ctx.Done():
			return
		case t := <-s.tasks:
			s.compute(t)
		}
	}
}

func (s *session) compute(t *task) {
	defer s.closeLease(t.lease)
	if s.isCancelled(t.lease) {
		return
	}
	cfg := &s.w.cfg
	outs, err := cfg.Backend.Run(s.ctx, t.kernel, t.inputs)
	if err != nil {
		s.enqueue(&protocol.Error{Lease: t.lease, Code: protocol.CodeInternal, Message: err.Error()})
		return
	}
	if cfg.Tamper != nil {
		outs = cfg.Tamper(t.lease, t.kernel, t.inputs, outs)
	}
	if s.isCancelled(t.lease) {
		return
	}
	res := &protocol.Result{Lease: t.lease, Outputs: make([]protocol.TensorRef, len(outs))}
	size := 0
	var chunked map[[32]byte]bool
	for i, o := range outs {
		// The inline data stays under protocol.MaxInlineBytes, so that the
		// Result fits a frame however many outputs a shard has (a deep
		// MLP's layers).
		size += protocol.RefBytes(o.Shape)
		if n := 4 * o.Len(); n <= inlineOutputBytes && size+n <= protocol.MaxInlineBytes {
			size += n
			res.Outputs[i] = protocol.TensorRef{Shape: o.Shape, Inline: true, Data: o.Data}
			continue
		}
		// Too big to share a frame, or the Result is full: send it in
		// chunks first, once per distinct content.
		h := o.Hash()
		res.Outputs[i] = protocol.TensorRef{Hash: h, Shape: o.Shape}
		if chunked[h] {
			continue
		}
		if chunked == nil {
			chunked = make(map[[32]byte]bool)
		}
		chunked[h] = true
		chunks, err := protocol.ChunkTensor(h, o.Shape, o.Data, 0)
		if err != nil {
			s.enqueue(&protocol.Error{Lease: t.lease, Code: protocol.CodeInternal, Message: err.Error()})
			return
		}
		for j := range chunks {
			s.enqueue(&chunks[j])
		}
	}
	s.enqueue(res)
	flops := shaders.FLOPs(t.kernel, t.inputs)
	s.w.Stats.Done.Add(1)
	s.w.Stats.FLOPs.Add(uint64(flops))
	s.w.event(Event{Kind: "shard-done", Lease: t.lease, FLOPs: flops})
}

func (s *session) enqueue(m protocol.Message) { s.out.Enqueue(m) }

// writeLoop sends queued messages, as many per frame as fit.
func (s *session) writeLoop() {
	err := s.out.Run(s.ctx, s.ws, func(_ protocol.Message, err error) {
		s.cancel(fmt.Errorf("worker: message does not fit a frame: %w", err))
	})
	if s.ctx.Err() == nil {
		s.cancel(err)
	}
}
