package browser

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/neurolov/neurolov/identity"
	"github.com/neurolov/neurolov/shaders"
	"github.com/neurolov/neurolov/tensor"
	"github.com/neurolov/neurolov/worker"
)

// Errors the client reports (in the status message, and from Start).
var (
	// ErrOptions reports a start message the client cannot use.
	ErrOptions = errors.New("browser: bad start options")
	// ErrNoWebGPU reports a page that forced WebGPU where none can be used.
	ErrNoWebGPU = errors.New("browser: WebGPU forced but unavailable")
	// ErrSignature reports a wallet that did not sign the challenge.
	ErrSignature = errors.New("browser: the wallet did not sign")
)

// GPU is an opened WebGPU device as the client uses it: a worker.Backend
// named "webgpu" whose errors wrap ErrDeviceLost once the device is gone.
type GPU interface {
	worker.Backend
	Adapter() Adapter
	Close() error
}

// LedgerEntry is one address's line of the coordinator's ledger.
type LedgerEntry struct {
	Address string  `json:"address"`
	FLOPs   float64 `json:"flops"`
	Shards  int64   `json:"shards"`
}

// Platform is what the browser provides to the client; the js build fills
// it from the Web Worker's globals and tests substitute fakes.
type Platform struct {
	// Post sends a message to the page.
	Post func(msg map[string]any)
	// OpenCPU returns the CPU backend, "cpu-wasm" (WASM SIMD).
	OpenCPU func(ctx context.Context) (worker.Backend, error)
	// OpenGPU opens WebGPU; nil when this build has none. Its error says why
	// no device is usable (navigator.gpu missing, no adapter).
	OpenGPU func(ctx context.Context) (GPU, error)
	// LocalSigner returns the key kept in the browser (IndexedDB), making
	// and storing one on first use.
	LocalSigner func(ctx context.Context) (worker.Signer, error)
	// Ledger fetches the coordinator's ledger (GET httpURL); nil skips the
	// verified and earned figures.
	Ledger func(ctx context.Context, httpURL string) ([]LedgerEntry, error)
	Logger *slog.Logger
}

// StartOptions are the page's {type:"start"} message.
type StartOptions struct {
	// Coordinator is the worker endpoint, ws(s)://host/v1/worker.
	Coordinator string
	// Backend is "auto" (measure both, use the faster), "webgpu" or
	// "cpu-wasm".
	Backend string
	// Share is the duty cycle, 0..1.
	Share float64
	// Identity is "local" (a key in IndexedDB) or "wallet" (the page signs
	// with the visitor's wallet; WalletAddress is its address).
	Identity      string
	WalletAddress string
}

// Timing of the client; variables so that tests can shorten them.
var (
	// pauseDisconnect is how long a pause holds the connection (and the
	// leases) before disconnecting, so that the coordinator re-issues them.
	pauseDisconnect = 10 * time.Second
	// settle is how long a graceful disconnect waits after the last shard
	// ended before closing, so that its result is written.
	settle = 300 * time.Millisecond
	// statusEvery bounds how often counter updates are posted.
	statusEvery = 250 * time.Millisecond
	// ledgerEvery is how often the ledger is polled while connected.
	ledgerEvery = 5 * time.Second
	// measureWarm is the warm-up before the start-up measurement.
	measureWarm = 300 * time.Millisecond
	// signTimeout bounds the wait for the wallet's signature.
	signTimeout = 5 * time.Minute
)

// measureBatch is the batch of the start-up measurement and the default
// benchmark: the MLP shard 784-512-256-10 at batch 256.
const measureBatch = 256

// Client runs the browser worker: it measures the backends, connects with
// worker.Worker, applies pause and the duty cycle, and reports status.
type Client struct {
	p    Platform
	log  *slog.Logger
	gate *gate

	mu      sync.Mutex
	st      Status
	dirty   bool
	cpu     worker.Backend
	gpu     GPU
	gpuErr  error
	stop    context.CancelFunc // the running supervisor
	stopped chan struct{}
	cmds    chan string
	signs   map[int]chan signResult
	nextID  int
	liveAvg float64
}

// NewClient returns an idle client.
func NewClient(p Platform) *Client {
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	c := &Client{p: p, log: p.Logger, gate: newGate(1), signs: make(map[int]chan signResult), cmds: make(chan string, 16)}
	c.st = Status{State: StateIdle, Share: 1}
	return c
}

// Status returns the current status.
func (c *Client) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st
}

// update changes the status; now posts it at once (state changes),
// otherwise the status ticker posts it within statusEvery.
func (c *Client) update(now bool, f func(*Status)) {
	c.mu.Lock()
	f(&c.st)
	st := c.st
	c.dirty = !now
	c.mu.Unlock()
	if now {
		c.p.Post(st.Map())
	}
}

func (c *Client) flush() {
	c.mu.Lock()
	st, dirty := c.st, c.dirty
	c.dirty = false
	c.mu.Unlock()
	if dirty {
		c.p.Post(st.Map())
	}
}

func (c *Client) fail(err error) {
	c.log.Warn("browser worker stopped", "err", err)
	c.update(true, func(s *Status) { s.State, s.Message = StateError, err.Error() })
}

// outdated reports, as StateReload, that the coordinator refused this
// client's protocol version: the coordinator was upgraded and serves the
// new client with the page.
func (c *Client) outdated(err error) {
	c.log.Warn("browser worker stopped: protocol version refused", "err", err)
	c.update(true, func(s *Status) {
		s.State, s.Message = StateReload, "reload this page: the coordinator was upgraded and no longer speaks this tab's protocol ("+err.Error()+")"
	})
}

// Pause stops taking shards (the shard in flight finishes and is sent).
// After pauseDisconnect the client disconnects, so that the coordinator
// re-issues the leases it held; Resume reconnects.
func (c *Client) Pause() {
	c.gate.SetPaused(true)
	c.command("pause")
}

// Resume takes shards again.
func (c *Client) Resume() {
	c.gate.SetPaused(false)
	c.command("resume")
}

// SetShare sets the duty cycle: after each shard the client idles so that
// compute time over wall time is about share. A share of 0 holds like a
// pause.
func (c *Client) SetShare(share float64) {
	c.gate.SetShare(share)
	c.update(false, func(s *Status) { s.Share = c.gate.Share() })
	c.command("share")
}

func (c *Client) command(cmd string) {
	select {
	case c.cmds <- cmd:
	default: // the supervisor re-reads the gate's state anyway
	}
}

func (c *Client) holding() bool { return c.gate.Paused() || c.gate.Share() <= 0 }

// Stop ends the current run and waits for it.
func (c *Client) Stop() {
	c.mu.Lock()
	stop, stopped := c.stop, c.stopped
	c.stop, c.stopped = nil, nil
	c.mu.Unlock()
	if stop != nil {
		stop()
		<-stopped
	}
}

// Start measures the backends, chooses one, and works for the coordinator
// until Stop or a later Start; it returns once the worker is launched (or
// the start failed, which the status also reports). It blocks on the
// backends: call it from a goroutine, never inside a js.FuncOf callback.
func (c *Client) Start(ctx context.Context, o StartOptions) error {
	c.Stop()
	ctx, cancel := context.WithCancel(ctx)
	stopped := make(chan struct{})
	c.mu.Lock()
	c.stop, c.stopped = cancel, stopped
	c.mu.Unlock()
	sup, err := c.prepare(ctx, o)
	if err != nil {
		if ctx.Err() == nil { // not superseded by Stop or a later Start
			c.fail(err)
		}
		cancel()
		close(stopped)
		return err
	}
	go func() {
		defer close(stopped)
		sup.run(ctx)
	}()
	return nil
}

// httpBase turns the worker endpoint into the coordinator's HTTP base URL.
func httpBase(ws string) (string, error) {
	u, err := url.Parse(ws)
	if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
		return "", fmt.Errorf("%w: coordinator %q is not a ws:// or wss:// URL", ErrOptions, ws)
	}
	u.Scheme = strings.Replace(u.Scheme, "ws", "http", 1)
	u.Path, u.RawQuery = "", ""
	return u.String(), nil
}

func (c *Client) prepare(ctx context.Context, o StartOptions) (*supervisor, error) {
	base, err := httpBase(o.Coordinator)
	if err != nil {
		return nil, err
	}
	if o.Backend == "" {
		o.Backend = BackendAuto
	}
	if o.Backend != BackendAuto && o.Backend != BackendWebGPU && o.Backend != BackendCPUWasm {
		return nil, fmt.Errorf("%w: backend %q (want auto, webgpu or cpu-wasm)", ErrOptions, o.Backend)
	}
	var wallet [20]byte
	switch o.Identity {
	case "", "local":
	case "wallet":
		if wallet, err = identity.ParseAddress(o.WalletAddress); err != nil {
			return nil, fmt.Errorf("%w: wallet address: %w", ErrOptions, err)
		}
	default:
		return nil, fmt.Errorf("%w: identity %q (want local or wallet)", ErrOptions, o.Identity)
	}
	c.gate.SetShare(o.Share)
	c.update(true, func(s *Status) {
		*s = Status{State: StateMeasuring, Share: c.gate.Share(), Message: "measuring the backends"}
	})

	cpu, gpu, err := c.backends(ctx, o.Backend)
	if err != nil {
		return nil, err
	}
	in := MLPShard(measureBatch)
	cpuSpeed, note, err := measureCPU(ctx, cpu, in)
	if err != nil {
		return nil, fmt.Errorf("browser: measuring the CPU backend: %w", err)
	}
	var gpuSpeed *float64
	if gpu != nil {
		v, _, err := Measure(ctx, gpu, shaders.MLPInfer, in, 0, 3)
		switch {
		case err == nil:
			gpuSpeed = &v
		case o.Backend == BackendWebGPU:
			return nil, fmt.Errorf("%w: measuring: %w", ErrNoWebGPU, err)
		default:
			note += "WebGPU failed its measurement (" + err.Error() + "); "
			gpu = nil
		}
	} else if err := c.gpuError(); err != nil && o.Backend == BackendAuto {
		note += "WebGPU unavailable (" + err.Error() + "); "
	}
	useGPU := gpu != nil && (o.Backend == BackendWebGPU || (o.Backend == BackendAuto && *gpuSpeed > cpuSpeed))
	var adapter *Adapter
	if gpu != nil {
		a := gpu.Adapter()
		adapter = &a
	}
	if !useGPU {
		c.closeGPU() // frees the device; Bench reopens it if asked
	}
	sw := &switching{gate: c.gate, cpu: cpu, log: c.log}
	gflops := cpuSpeed
	if useGPU {
		sw.gpu, gflops = gpu, *gpuSpeed
	}
	reason := "forced by the page"
	if o.Backend == BackendAuto {
		reason = "the faster measured"
	}
	note += fmt.Sprintf("%s (%s): CPU %.1f GFLOP/s", sw.Name(), reason, cpuSpeed)
	if gpuSpeed != nil {
		note += fmt.Sprintf(", WebGPU %.1f GFLOP/s", *gpuSpeed)
	}

	var signer worker.Signer
	if o.Identity == "wallet" {
		signer = &walletSigner{addr: wallet, c: c, ctx: ctx}
	} else if signer, err = c.p.LocalSigner(ctx); err != nil {
		return nil, fmt.Errorf("browser: the local identity: %w", err)
	}
	c.update(true, func(s *Status) {
		s.State, s.Backend, s.Device, s.Adapter = StateConnecting, sw.Name(), sw.Device(), adapter
		s.GFLOPSWebGPU, s.GFLOPSCPU, s.Address = gpuSpeed, cpuSpeed, identity.FormatAddress(signer.Address())
		s.Message = note
	})
	sup := &supervisor{c: c, url: o.Coordinator, ledgerURL: base + "/v1/ledger", signer: signer, sw: sw,
		gflops: gflops, cpuGFLOPS: cpuSpeed, lost: make(chan error, 1), note: note}
	sw.onLost = func(err error) {
		select {
		case sup.lost <- err:
		default:
		}
	}
	sw.onShard = c.recordSpeed
	return sup, nil
}

// threadedCPU is a CPU backend that can run on a pool of threads
// (simdgemm.Backend on a cross-origin isolated page).
type threadedCPU interface {
	Threads() (threads, pool int)
	SetThreads(n int)
}

// measureCPU measures the CPU backend on the MLP shard in; with a pool of
// threads it measures one thread and the whole pool, keeps the faster and
// says so in the note it returns (a pool loses on a machine whose other
// cores are busy).
func measureCPU(ctx context.Context, cpu worker.Backend, in []*tensor.Tensor) (gflops float64, note string, err error) {
	measure := func() (float64, error) {
		v, _, err := Measure(ctx, cpu, shaders.MLPInfer, in, measureWarm, 5)
		return v, err
	}
	tc, ok := cpu.(threadedCPU)
	pool := 1
	if ok {
		_, pool = tc.Threads()
	}
	if pool < 2 {
		gflops, err = measure()
		return gflops, "", err
	}
	tc.SetThreads(1)
	one, err := measure()
	if err != nil {
		return 0, "", err
	}
	tc.SetThreads(pool)
	all, err := measure()
	if err != nil {
		return 0, "", err
	}
	if one >= all {
		tc.SetThreads(1)
		return one, fmt.Sprintf("CPU on 1 thread (%.1f GFLOP/s) rather than %d (%.1f); ", one, pool, all), nil
	}
	return all, fmt.Sprintf("CPU on %d threads (%.1f GFLOP/s) rather than 1 (%.1f); ", pool, all, one), nil
}

// backends opens the CPU backend and, unless the page forced the CPU, the
// GPU (kept open across starts).
func (c *Client) backends(ctx context.Context, choice string) (worker.Backend, GPU, error) {
	c.mu.Lock()
	cpu := c.cpu
	c.mu.Unlock()
	if cpu == nil {
		var err error
		if cpu, err = c.p.OpenCPU(ctx); err != nil {
			return nil, nil, fmt.Errorf("browser: the CPU backend: %w", err)
		}
		c.mu.Lock()
		c.cpu = cpu
		c.mu.Unlock()
	}
	if choice == BackendCPUWasm {
		return cpu, nil, nil
	}
	gpu, err := c.openGPU(ctx)
	if err != nil && choice == BackendWebGPU {
		return nil, nil, fmt.Errorf("%w: %w", ErrNoWebGPU, err)
	}
	return cpu, gpu, nil
}

func (c *Client) openGPU(ctx context.Context) (GPU, error) {
	c.mu.Lock()
	gpu := c.gpu
	c.mu.Unlock()
	if gpu != nil {
		return gpu, nil
	}
	if c.p.OpenGPU == nil {
		return nil, errors.New("this build has no WebGPU")
	}
	gpu, err := c.p.OpenGPU(ctx)
	c.mu.Lock()
	c.gpu, c.gpuErr = gpu, err
	c.mu.Unlock()
	return gpu, err
}

func (c *Client) gpuError() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gpuErr
}

func (c *Client) closeGPU() {
	c.mu.Lock()
	gpu := c.gpu
	c.gpu = nil
	c.mu.Unlock()
	if gpu != nil {
		_ = gpu.Close()
	}
}

// recordSpeed keeps gflopsLive: the speed of recent shards while computing,
// exponentially averaged.
func (c *Client) recordSpeed(flops float64, d time.Duration) {
	if flops <= 0 || d <= 0 {
		return
	}
	v := flops / d.Seconds() / 1e9
	c.update(false, func(s *Status) {
		if c.liveAvg == 0 {
			c.liveAvg = v
		} else {
			c.liveAvg += 0.2 * (v - c.liveAvg)
		}
		s.GFLOPSLive = c.liveAvg
	})
}

// BenchOptions choose a benchmark (neurolov.bench in JavaScript).
type BenchOptions struct {
	Kernel  string // "mlp-infer" (default) or "matmul"
	Backend string // "cpu-wasm" (default) or "webgpu"
	Runs    int    // timed runs (default 5)
	Batch   int    // rows of the shard (default 256)
	// Threads runs cpu-wasm on this many of its pool's threads for the
	// benchmark (0: as it is set).
	Threads int
}

// BenchResult is a benchmark's outcome.
type BenchResult struct {
	Kernel, Backend, Device string
	Batch                   int
	FLOPs                   float64   // per run
	GFLOPS                  float64   // median over Runs
	Runs                    []float64 // each run's GFLOP/s
	// KernelGFLOPS is the same-run baseline where the backend has one
	// (cpu-wasm on gemm.wasm): the median GFLOP/s of the kernel alone, on
	// resident buffers, without copies or Go glue; 0 otherwise.
	KernelGFLOPS float64
}

// kernelTimer is a backend that can time its kernel alone
// (simdgemm.Backend).
type kernelTimer interface {
	KernelGFLOPS(ctx context.Context, kernel string, inputs []*tensor.Tensor, runs int) (float64, []float64, error)
}

// Map returns the result as a JavaScript-friendly object.
func (r BenchResult) Map() map[string]any {
	runs := make([]any, len(r.Runs))
	for i, v := range r.Runs {
		runs[i] = v
	}
	return map[string]any{"kernel": r.Kernel, "backend": r.Backend, "device": r.Device, "batch": r.Batch,
		"flops": r.FLOPs, "gflops": r.GFLOPS, "runs": runs, "kernelGflops": r.KernelGFLOPS}
}

// Bench times a shard end to end (copies and Go glue included) on a
// backend, with a warm-up first, and then, as a same-run baseline, the
// kernel alone where the backend can time it (cpu-wasm). It uses the
// backends directly, not the worker's gate: run it while the client is
// idle or paused.
func (c *Client) Bench(ctx context.Context, o BenchOptions) (BenchResult, error) {
	if o.Kernel == "" {
		o.Kernel = shaders.MLPInfer
	}
	if o.Backend == "" {
		o.Backend = BackendCPUWasm
	}
	o.Runs = max(o.Runs, 1)
	if o.Batch <= 0 {
		o.Batch = measureBatch
	}
	in, err := benchInputs(o.Kernel, o.Batch)
	if err != nil {
		return BenchResult{}, err
	}
	var b worker.Backend
	switch o.Backend {
	case BackendCPUWasm:
		cpu, _, err := c.backends(ctx, BackendCPUWasm)
		if err != nil {
			return BenchResult{}, err
		}
		if tc, ok := cpu.(threadedCPU); ok && o.Threads > 0 {
			prev, _ := tc.Threads()
			tc.SetThreads(o.Threads)
			defer tc.SetThreads(prev)
		}
		b = cpu
	case BackendWebGPU:
		gpu, err := c.openGPU(ctx)
		if err != nil {
			return BenchResult{}, fmt.Errorf("%w: %w", ErrNoWebGPU, err)
		}
		b = gpu
	default:
		return BenchResult{}, fmt.Errorf("%w: bench backend %q (want cpu-wasm or webgpu)", ErrOptions, o.Backend)
	}
	warm := measureWarm
	if o.Backend == BackendWebGPU {
		warm = 0
	}
	med, each, err := Measure(ctx, b, o.Kernel, in, warm, o.Runs)
	if err != nil {
		return BenchResult{}, err
	}
	r := BenchResult{Kernel: o.Kernel, Backend: b.Name(), Device: b.Device(), Batch: o.Batch,
		FLOPs: shaders.FLOPs(o.Kernel, in), GFLOPS: med, Runs: each}
	if kt, ok := b.(kernelTimer); ok {
		if r.KernelGFLOPS, _, err = kt.KernelGFLOPS(ctx, o.Kernel, in, o.Runs); err != nil {
			return BenchResult{}, err
		}
	}
	return r, nil
}
