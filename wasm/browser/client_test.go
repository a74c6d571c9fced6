//go:build !js

package browser

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/neurolov/neurolov/client"
	"github.com/neurolov/neurolov/identity"
	"github.com/neurolov/neurolov/internal/servertest"
	"github.com/neurolov/neurolov/shaders"
	"github.com/neurolov/neurolov/tensor"
	"github.com/neurolov/neurolov/worker"
)

type harness struct {
	t     *testing.T
	coord *servertest.Coordinator
	c     *Client
	cpu   *fakeBackend
	gpu   *fakeBackend

	mu    sync.Mutex
	posts []map[string]any
	onMsg func(map[string]any)
}

func shortTimings(t *testing.T) {
	old := []time.Duration{pauseDisconnect, settle, statusEvery, ledgerEvery, measureWarm}
	pauseDisconnect, settle, statusEvery, ledgerEvery, measureWarm = 300*time.Millisecond, 50*time.Millisecond, 20*time.Millisecond, 50*time.Millisecond, 0
	t.Cleanup(func() {
		pauseDisconnect, settle, statusEvery, ledgerEvery, measureWarm = old[0], old[1], old[2], old[3], old[4]
	})
}

// newHarness starts a coordinator with one native worker beside the
// client (replicas need two workers) and a client whose GPU is gpu (nil:
// no WebGPU).
func newHarness(t *testing.T, gpu *fakeBackend) *harness {
	shortTimings(t)
	h := &harness{t: t, coord: servertest.Start(t, nil), cpu: &fakeBackend{name: BackendCPUWasm}, gpu: gpu}
	servertest.StartWorker(t, h.coord, worker.CPU{}, nil)
	key, err := identity.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	p := Platform{
		Post: func(m map[string]any) {
			h.mu.Lock()
			h.posts = append(h.posts, m)
			f := h.onMsg
			h.mu.Unlock()
			if f != nil {
				f(m)
			}
		},
		OpenCPU:     func(context.Context) (worker.Backend, error) { return h.cpu, nil },
		LocalSigner: func(context.Context) (worker.Signer, error) { return identity.NewKeySigner(key), nil },
		Ledger: func(ctx context.Context, url string) ([]LedgerEntry, error) {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return nil, err
			}
			defer resp.Body.Close()
			var body struct{ Entries []LedgerEntry }
			return body.Entries, json.NewDecoder(resp.Body).Decode(&body)
		},
		Logger: servertest.Logger(t),
	}
	if gpu != nil {
		p.OpenGPU = func(context.Context) (GPU, error) { return gpu, nil }
	} else {
		p.OpenGPU = func(context.Context) (GPU, error) {
			return nil, errors.New("requestAdapter returned null")
		}
	}
	h.c = NewClient(p)
	t.Cleanup(h.c.Stop)
	return h
}

func (h *harness) start(o StartOptions) error {
	if o.Coordinator == "" {
		o.Coordinator = h.coord.WorkerURL()
	}
	return h.c.Start(context.Background(), o)
}

func (h *harness) waitStatus(what string, cond func(Status) bool) Status {
	h.t.Helper()
	var st Status
	servertest.WaitFor(h.t, what, func() bool { st = h.c.Status(); return cond(st) })
	return st
}

// runJob submits a matmul, replicated on both workers, and waits for it
// to finish.
func (h *harness) runJob() { h.t.Helper(); h.runJobReplicated(2) }

func (h *harness) runJobReplicated(replication int) {
	h.t.Helper()
	ctx := context.Background()
	cl := h.coord.Client()
	rng := rand.New(rand.NewPCG(1, 2))
	a, b := tensor.New(32, 24), tensor.New(24, 16)
	for _, t := range []*tensor.Tensor{a, b} {
		for i := range t.Data {
			t.Data[i] = float32(rng.NormFloat64())
		}
	}
	job, err := cl.SubmitMatmul(ctx, a, b, client.SubmitOptions{Replication: replication})
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	st, err := cl.Wait(ctx, job.ID, 20*time.Millisecond, nil)
	if err != nil || st.Status != client.StateDone {
		h.t.Fatalf("job %s: %v (%s %s)", job.ID, err, st.Status, st.Error)
	}
}

// workerBackend returns the backend the coordinator lists for address,
// or "" when it is not connected.
func (h *harness) workerBackend(address string) string {
	ws, err := h.coord.Client().Workers(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	for _, w := range ws {
		if strings.EqualFold(w.Address, address) {
			return w.Backend
		}
	}
	return ""
}

func TestChoosesTheFasterBackend(t *testing.T) {
	for _, tc := range []struct {
		name     string
		gpuDelay time.Duration
		choice   string
		want     string
	}{
		{"slow GPU, auto", 50 * time.Millisecond, BackendAuto, BackendCPUWasm},
		{"fast GPU, auto", 0, BackendAuto, BackendWebGPU},
		{"slow GPU, forced", 50 * time.Millisecond, BackendWebGPU, BackendWebGPU},
		{"fast GPU, CPU forced", 0, BackendCPUWasm, BackendCPUWasm},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gpu := &fakeBackend{name: BackendWebGPU, delay: tc.gpuDelay}
			h := newHarness(t, gpu)
			if tc.want == BackendWebGPU {
				h.cpu.delay = 40 * time.Millisecond
			}
			if err := h.start(StartOptions{Backend: tc.choice, Share: 1}); err != nil {
				t.Fatal(err)
			}
			st := h.waitStatus("working", func(s Status) bool { return s.State == StateWorking })
			if st.Backend != tc.want {
				t.Fatalf("backend %s, want %s (status %+v)", st.Backend, tc.want, st)
			}
			if st.GFLOPSCPU <= 0 {
				t.Fatalf("no CPU figure: %+v", st)
			}
			if measured := st.GFLOPSWebGPU != nil; measured != (tc.choice != BackendCPUWasm) {
				t.Fatalf("WebGPU measured: %v, want %v", measured, tc.choice != BackendCPUWasm)
			}
			if tc.choice != BackendCPUWasm && (st.Adapter == nil || !st.Adapter.IsFallbackAdapter) {
				t.Fatalf("adapter not reported: %+v", st.Adapter)
			}
			if tc.want == BackendCPUWasm && tc.choice != BackendCPUWasm && !gpu.closed.Load() {
				t.Fatal("the unused GPU was not closed")
			}
			if got := h.workerBackend(st.Address); got != tc.want {
				t.Fatalf("the coordinator lists backend %q, want %q", got, tc.want)
			}
			h.runJob()
			h.waitStatus("shards counted", func(s Status) bool { return s.ShardsDone > 0 && s.GFLOPSLive > 0 })
			h.waitStatus("the ledger's figures", func(s Status) bool { return s.Verified > 0 && s.EarnedFLOPs > 0 })
		})
	}
}

func TestNoWebGPU(t *testing.T) {
	h := newHarness(t, nil)
	err := h.start(StartOptions{Backend: BackendWebGPU})
	if !errors.Is(err, ErrNoWebGPU) {
		t.Fatalf("forced WebGPU without an adapter: err %v, want ErrNoWebGPU", err)
	}
	if st := h.c.Status(); st.State != StateError || !strings.Contains(st.Message, "requestAdapter returned null") {
		t.Fatalf("status %+v: want state error saying why", st)
	}
	// auto falls back to the CPU and says why.
	if err := h.start(StartOptions{Backend: BackendAuto, Share: 1}); err != nil {
		t.Fatal(err)
	}
	st := h.waitStatus("working", func(s Status) bool { return s.State == StateWorking })
	if st.Backend != BackendCPUWasm || st.GFLOPSWebGPU != nil || !strings.Contains(st.Message, "WebGPU unavailable") {
		t.Fatalf("status %+v: want cpu-wasm, no WebGPU figure, and the reason", st)
	}
	h.runJob()
}

func TestBadStartOptions(t *testing.T) {
	h := newHarness(t, nil)
	for _, o := range []StartOptions{
		{Coordinator: "http://example.invalid/v1/worker"},
		{Backend: "tpu"},
		{Identity: "passkey"},
		{Identity: "wallet", WalletAddress: "0x123"},
	} {
		if err := h.start(o); !errors.Is(err, ErrOptions) {
			t.Errorf("%+v: err %v, want ErrOptions", o, err)
		}
	}
}

func TestDeviceLostFallsBackToCPU(t *testing.T) {
	gpu := &fakeBackend{name: BackendWebGPU, loseAt: 6} // 1 + 3 measured runs, then the 2nd shard
	h := newHarness(t, gpu)
	h.cpu.delay = 40 * time.Millisecond
	if err := h.start(StartOptions{Backend: BackendAuto, Share: 1}); err != nil {
		t.Fatal(err)
	}
	st := h.waitStatus("working", func(s Status) bool { return s.State == StateWorking })
	if st.Backend != BackendWebGPU {
		t.Fatalf("chose %s, want webgpu", st.Backend)
	}
	h.runJob()
	st = h.waitStatus("reconnected as cpu-wasm", func(s Status) bool {
		return s.State == StateWorking && s.Backend == BackendCPUWasm
	})
	if !strings.Contains(st.Message, "device lost") {
		t.Fatalf("status %+v", st)
	}
	servertest.WaitFor(t, "the coordinator to list the tab as cpu-wasm", func() bool {
		return h.workerBackend(st.Address) == BackendCPUWasm
	})
	h.runJob() // and it keeps working
}

func TestPauseDisconnectsAndResumeReconnects(t *testing.T) {
	h := newHarness(t, nil)
	if err := h.start(StartOptions{Backend: BackendCPUWasm, Share: 1}); err != nil {
		t.Fatal(err)
	}
	st := h.waitStatus("working", func(s Status) bool { return s.State == StateWorking })
	addr := st.Address
	h.c.Pause()
	h.waitStatus("paused", func(s Status) bool { return s.State == StatePaused })
	servertest.WaitFor(t, "the disconnect after a long pause", func() bool { return h.workerBackend(addr) == "" })
	runs := h.cpu.runs.Load()
	h.runJobReplicated(1) // the native worker does it alone
	if got := h.cpu.runs.Load(); got != runs {
		t.Fatalf("a paused client ran %d shards", got-runs)
	}
	h.c.Resume()
	h.waitStatus("working again", func(s Status) bool { return s.State == StateWorking })
	if h.workerBackend(addr) != BackendCPUWasm {
		t.Fatal("not reconnected after resume")
	}
	h.runJob()
}

func TestShareZeroHolds(t *testing.T) {
	h := newHarness(t, nil)
	if err := h.start(StartOptions{Backend: BackendCPUWasm, Share: 0}); err != nil {
		t.Fatal(err)
	}
	st := h.waitStatus("paused by share 0", func(s Status) bool { return s.State == StatePaused })
	if !strings.Contains(st.Message, "share is 0%") {
		t.Fatalf("message %q", st.Message)
	}
	h.c.SetShare(0.5)
	h.waitStatus("working", func(s Status) bool { return s.State == StateWorking && s.Share == 0.5 })
	h.runJob()
}

func TestWalletIdentity(t *testing.T) {
	h := newHarness(t, nil)
	key, err := identity.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	addr := identity.FormatAddress(identity.Address(key))
	var asked atomic.Int64
	h.mu.Lock()
	h.onMsg = func(m map[string]any) {
		if m["type"] != "sign" {
			return
		}
		asked.Add(1)
		id, msg := m["id"].(int), m["message"].(string)
		go func() { // the page answers later, as a wallet would
			sig, err := identity.Sign(key, msg)
			if err != nil {
				t.Error(err)
				return
			}
			if err := h.c.ProvideSignature(id, "0x"+hex.EncodeToString(sig[:]), ""); err != nil {
				t.Error(err)
			}
		}()
	}
	h.mu.Unlock()
	if err := h.start(StartOptions{Backend: BackendCPUWasm, Share: 1, Identity: "wallet", WalletAddress: addr}); err != nil {
		t.Fatal(err)
	}
	st := h.waitStatus("working", func(s Status) bool { return s.State == StateWorking })
	if !strings.EqualFold(st.Address, addr) || asked.Load() == 0 {
		t.Fatalf("address %s (want %s), %d sign requests", st.Address, addr, asked.Load())
	}
	if h.workerBackend(addr) == "" {
		t.Fatal("the coordinator does not list the wallet's address")
	}
	h.runJob()
}

func TestProvideSignatureErrors(t *testing.T) {
	c := NewClient(Platform{Post: func(map[string]any) {}})
	if err := c.ProvideSignature(7, "0x00", ""); !errors.Is(err, ErrSignature) {
		t.Fatalf("unknown id: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.requestSignature(context.Background(), "hello")
		done <- err
	}()
	servertest.WaitFor(t, "the request", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.signs) == 1
	})
	if err := c.ProvideSignature(1, "0x1234", ""); !errors.Is(err, ErrSignature) {
		t.Fatalf("short signature: %v", err)
	}
	if err := <-done; !errors.Is(err, ErrSignature) {
		t.Fatalf("the signer got %v, want ErrSignature", err)
	}
	go func() {
		_, err := c.requestSignature(context.Background(), "hello")
		done <- err
	}()
	servertest.WaitFor(t, "the request", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.signs) == 1
	})
	_ = c.ProvideSignature(2, "", "User rejected the request.")
	if err := <-done; !errors.Is(err, ErrSignature) || !strings.Contains(err.Error(), "User rejected") {
		t.Fatalf("refusal: %v", err)
	}
}

func TestBench(t *testing.T) {
	shortTimings(t)
	gpu := &fakeBackend{name: BackendWebGPU}
	c := NewClient(Platform{
		Post:    func(map[string]any) {},
		OpenCPU: func(context.Context) (worker.Backend, error) { return &fakeBackend{name: BackendCPUWasm}, nil },
		OpenGPU: func(context.Context) (GPU, error) { return gpu, nil },
	})
	for _, o := range []BenchOptions{{}, {Backend: BackendWebGPU, Runs: 3}, {Kernel: shaders.Matmul, Batch: 64}} {
		r, err := c.Bench(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		want := max(o.Runs, 1)
		if o.Runs == 0 {
			want = 1
		}
		if len(r.Runs) != want || r.GFLOPS <= 0 || r.FLOPs <= 0 {
			t.Fatalf("%+v: result %+v", o, r)
		}
		if o.Backend == "" && r.Backend != BackendCPUWasm || o.Backend == BackendWebGPU && r.Backend != BackendWebGPU {
			t.Fatalf("%+v ran on %s", o, r.Backend)
		}
	}
	if _, err := c.Bench(context.Background(), BenchOptions{Backend: "tpu"}); !errors.Is(err, ErrOptions) {
		t.Fatalf("unknown backend: %v", err)
	}
	// The benchmark shard's FLOPs: three GEMMs plus the biases.
	r, _ := c.Bench(context.Background(), BenchOptions{})
	want := 2.0 * 256 * (784*512 + 512*256 + 256*10 + 512 + 256 + 10)
	if r.FLOPs != want {
		t.Fatalf("mlp-infer batch 256: %g FLOPs, want %g", r.FLOPs, want)
	}
}

// TestMeasureCPUThreads: with a pool of threads the CPU backend is measured
// on one thread and on the pool, and the faster is kept and named.
func TestMeasureCPUThreads(t *testing.T) {
	in := MLPShard(8)
	for _, tc := range []struct {
		name      string
		one, two  time.Duration
		want      int
		wantWords string
	}{
		{"pool faster", 40 * time.Millisecond, 10 * time.Millisecond, 2, "CPU on 2 threads"},
		{"one faster", 10 * time.Millisecond, 40 * time.Millisecond, 1, "CPU on 1 thread"},
	} {
		f := &fakePool{fakeBackend: fakeBackend{name: BackendCPUWasm}, delay: map[int]time.Duration{1: tc.one, 2: tc.two}}
		f.threads.Store(2)
		gflops, note, err := measureCPU(context.Background(), f, in)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := f.Threads(); got != tc.want || !strings.Contains(note, tc.wantWords) || gflops <= 0 {
			t.Errorf("%s: %d threads, %v GFLOP/s, note %q; want %d threads and %q", tc.name, got, gflops, note, tc.want, tc.wantWords)
		}
	}
	// Without a pool: one measurement, no note.
	if _, note, err := measureCPU(context.Background(), &fakeBackend{name: BackendCPUWasm}, in); err != nil || note != "" {
		t.Errorf("no pool: note %q, err %v", note, err)
	}
}

// fakePool is a fakeBackend with a pool of threads: each run takes
// delay[threads].
type fakePool struct {
	fakeBackend
	delay   map[int]time.Duration
	threads atomic.Int64
}

func (f *fakePool) Threads() (threads, pool int) { return int(f.threads.Load()), 2 }
func (f *fakePool) SetThreads(n int)             { f.threads.Store(int64(n)) }

func (f *fakePool) Run(ctx context.Context, kernel string, in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	time.Sleep(f.delay[int(f.threads.Load())]) // simulated compute time, not synchronisation
	return shaders.Reference(kernel, in)
}
