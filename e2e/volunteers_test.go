package e2e_test

import (
	"context"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/neurolov/neurolov/client"
	"github.com/neurolov/neurolov/coordinator/scheduler"
	"github.com/neurolov/neurolov/coordinator/server"
	"github.com/neurolov/neurolov/e2e/browser"
	"github.com/neurolov/neurolov/shaders"
	"github.com/neurolov/neurolov/tensor"
)

// TestVolunteersCompleteJob: a native CPU worker, a tab forced onto WebGPU
// (SwiftShader), a tab left to choose by measurement, a tab of a browser
// without WebGPU and one more CPU tab complete an MLP job whose every shard
// is computed twice. The shards are cross-verified across backends, each
// tab shows its backend, and the extra tab — paused while it holds leases,
// then closed mid-job — has its shards re-issued to the others.
func TestVolunteersCompleteJob(t *testing.T) {
	requirements(t)
	c := startCluster(t, func(cfg *server.Config) {
		// Only a departure re-issues a lease in this test, never a timeout.
		cfg.Scheduler.LeaseTimeout = 5 * time.Minute
	})
	c.startNativeWorker(t)
	gpu := launch(t, browser.Options{WebGPU: true})
	nogpu := launch(t, browser.Options{})

	tabs := []struct {
		name, query string
		b           *browser.Browser
		backend     string // "" when the tab chooses
		tab         *tab
	}{
		{name: "webgpu", query: "?backend=webgpu", b: gpu, backend: "webgpu"},
		{name: "auto", query: "", b: gpu},
		{name: "no-webgpu", query: "", b: nogpu, backend: "cpu-wasm"},
		{name: "closed", query: "?backend=cpu", b: nogpu, backend: "cpu-wasm"},
	}
	for i := range tabs {
		tabs[i].tab = openTab(t, tabs[i].b, tabs[i].name, c.http.URL+"/"+tabs[i].query)
		tabs[i].tab.click(t)
	}
	addr := map[string]string{} // tab name → address
	for _, tt := range tabs {
		s := tt.tab.waitState(t, "connected", 90*time.Second, working)
		addr[tt.name] = strings.ToLower(s.Status.Address) // as /v1/workers and the scheduler write it
		if tt.backend != "" && (s.Status.Backend != tt.backend || s.Backend != tt.backend) {
			t.Errorf("%s: backend %q, shown %q; want %q", tt.name, s.Status.Backend, s.Backend, tt.backend)
		}
		if s.Status.Device == "" {
			t.Errorf("%s: no device reported", tt.name)
		}
		// The page is cross-origin isolated and this machine has two cores
		// or more: the WASM SIMD kernel has its two-thread pool (and uses
		// it or one thread, whichever measured faster).
		if s.Status.Backend == "cpu-wasm" && runtime.NumCPU() > 1 &&
			!strings.Contains(s.Status.Device, "2 threads") && !strings.Contains(s.Status.Device, "pool of 2") {
			t.Errorf("%s: cpu-wasm on %q, want the kernel's two-thread pool", tt.name, s.Status.Device)
		}
		t.Logf("%s: %s on %q, measured %s (address %s)", tt.name, s.Status.Backend, s.Status.Device, s.Measured, s.Status.Address)
	}
	// The tab left to choose measured both backends and shows both figures.
	if s := tabs[1].tab.state(t); s.Status.GflopsWebGPU == nil || s.Status.GflopsCPU == nil || s.Backend == "" {
		t.Errorf("auto: measured WebGPU %v, CPU %v, shows backend %q; want both figures and a backend", s.Status.GflopsWebGPU, s.Status.GflopsCPU, s.Backend)
	}
	// Without --enable-unsafe-webgpu no adapter is returned: no WebGPU figure.
	if s := tabs[2].tab.state(t); s.Status.GflopsWebGPU != nil {
		t.Errorf("no-webgpu: measured WebGPU at %v GFLOP/s in a browser without an adapter", *s.Status.GflopsWebGPU)
	}

	backendOf := map[string]string{} // address → backend
	waitFor(t, "five workers", 30*time.Second, func() (bool, string) {
		ws := c.workers(t)
		for _, w := range ws {
			backendOf[w.Address] = w.Backend
		}
		return len(ws) == 5, ""
	})
	for _, tt := range tabs {
		if tt.backend != "" && backendOf[addr[tt.name]] != tt.backend {
			t.Errorf("%s: the coordinator lists backend %q, want %q", tt.name, backendOf[addr[tt.name]], tt.backend)
		}
	}
	if !slices.Contains(slices.Collect(maps.Values(backendOf)), "cpu") {
		t.Fatalf("no native cpu worker among %v", backendOf)
	}

	// Pause the tab that will be closed: it keeps its leases without
	// finishing them.
	closed := tabs[3].tab
	closed.click(t)
	closed.waitState(t, "paused", 20*time.Second, func(s pageState) bool { return s.Status.State == "paused" })

	x, layers := mlpJob(rand.New(rand.NewPCG(4, 2)), 192, 784, 64, 10)
	ctx := context.Background()
	job, err := c.client.SubmitMLP(ctx, x, layers, client.SubmitOptions{Replication: 2, Name: "e2e"})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("job %s: %d shards, %.2f GFLOP", job.ID, job.Shards, job.FLOPs/1e9)

	waitFor(t, "the paused tab to hold leases", 30*time.Second, func() (bool, string) {
		for _, w := range c.workers(t) {
			if w.Address == addr["closed"] {
				return w.Leases > 0, ""
			}
		}
		return false, "not connected"
	})
	held := map[int]bool{}
	for _, a := range c.recorded() {
		if a.kind == scheduler.Assign && a.address == addr["closed"] && a.job == job.ID {
			held[a.shard] = true
		}
	}
	closedAt := time.Now()
	closed.close()
	t.Logf("closed the paused tab holding shards %v", slices.Sorted(maps.Keys(held)))

	wctx, cancel := context.WithTimeout(ctx, 120*time.Second)
	defer cancel()
	final, err := c.client.Wait(wctx, job.ID, 200*time.Millisecond, nil)
	if err != nil {
		t.Fatalf("waiting for the job: %v", err)
	}
	if final.Status != client.StateDone {
		t.Fatalf("job %s: %s (%s)", job.ID, final.Status, final.Error)
	}
	if final.Replicas < 2*final.Shards || final.Corrections != 0 {
		t.Errorf("job %s: %d replicas for %d shards, %d corrections; want two replicas a shard, no correction", job.ID, final.Replicas, final.Shards, final.Corrections)
	}

	// The closed tab's shards went to other workers after it left.
	for shard := range held {
		reissued := false
		for _, a := range c.recorded() {
			if a.kind == scheduler.Assign && a.job == job.ID && a.shard == shard && a.at.After(closedAt) && a.address != addr["closed"] {
				reissued = true
			}
		}
		if !reissued {
			t.Errorf("shard %d held by the closed tab was not re-issued", shard)
		}
	}

	// Every shard was accepted on two agreeing results; some pairs span
	// backends, and WebGPU, WASM and native results all vouched.
	vouchedBy := map[string]int{}
	mixed, accepted := 0, 0
	for _, a := range c.recorded() {
		if a.kind != scheduler.Accept || a.job != job.ID {
			continue
		}
		accepted++
		kinds := map[string]bool{}
		for _, v := range a.vouchers {
			kinds[backendOf[v]] = true
			vouchedBy[backendOf[v]]++
			if v == addr["closed"] {
				t.Errorf("shard %d accepted on a result of the closed tab", a.shard)
			}
		}
		if len(a.vouchers) < 2 {
			t.Errorf("shard %d accepted on %d result(s), want 2", a.shard, len(a.vouchers))
		}
		if len(kinds) > 1 {
			mixed++
		}
	}
	t.Logf("%d shards accepted, %d verified across backends; vouchers by backend %v", accepted, mixed, vouchedBy)
	if accepted != job.Shards {
		t.Errorf("%d accepts for %d shards", accepted, job.Shards)
	}
	if mixed == 0 {
		t.Error("no shard was verified across backends")
	}
	for _, b := range []string{"webgpu", "cpu-wasm", "cpu"} {
		if vouchedBy[b] == 0 {
			t.Errorf("no accepted shard was computed on %s", b)
		}
	}

	// The result is right.
	got, err := c.client.Result(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	inputs := []*tensor.Tensor{x}
	for _, l := range layers {
		inputs = append(inputs, l.W, l.B)
	}
	want, err := shaders.Reference(shaders.MLPInfer, inputs)
	if err != nil {
		t.Fatal(err)
	}
	for i, w := range want {
		name := client.OutputName(shaders.MLPInfer, i)
		if d := maxDiff(got[name], w); d > 1e-3 {
			t.Errorf("%s differs from the reference by %g", name, d)
		}
	}

	// Each remaining tab did work and shows it, and the pay its address
	// earned (the page reads the ledger every 5 s).
	for _, tt := range tabs[:3] {
		s := tt.tab.waitState(t, "shards and pay shown", 15*time.Second, func(s pageState) bool {
			return s.Status.ShardsDone > 0 && s.Done != "0" && strings.Contains(s.Earned, " verified")
		})
		t.Logf("%s: %d shards done, %d verified, %d rejected, live %.1f GFLOP/s, pay earned %s", tt.name, s.Status.ShardsDone, s.Status.Verified, s.Status.Rejected, s.Status.GflopsLive, s.Earned)
		if s.Status.Rejected > 0 {
			t.Errorf("%s: %d results rejected", tt.name, s.Status.Rejected)
		}
		shot, err := chromedp.Run(tt.tab.ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(artifacts, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(artifacts, "volunteers-"+tt.name+".png"), shot, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// mlpJob makes a batch of n rows of width dims[0] and layers
// dims[0]→dims[1]→…; the weights are scaled so activations stay near 1.
func mlpJob(rng *rand.Rand, n int, dims ...int) (*tensor.Tensor, []client.Layer) {
	fill := func(t *tensor.Tensor, scale float64) *tensor.Tensor {
		for i := range t.Data {
			t.Data[i] = float32(rng.NormFloat64() * scale)
		}
		return t
	}
	x := fill(tensor.New(n, dims[0]), 1)
	var layers []client.Layer
	for l := 1; l < len(dims); l++ {
		layers = append(layers, client.Layer{
			W: fill(tensor.New(dims[l-1], dims[l]), 1/math.Sqrt(float64(dims[l-1]))),
			B: fill(tensor.New(dims[l]), 0.1),
		})
	}
	return x, layers
}

func maxDiff(a, b *tensor.Tensor) float64 {
	if a == nil || b == nil || len(a.Data) != len(b.Data) {
		return math.Inf(1)
	}
	d := 0.0
	for i := range a.Data {
		d = max(d, math.Abs(float64(a.Data[i]-b.Data[i])))
	}
	return d
}
