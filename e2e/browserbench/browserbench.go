package browserbench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/neurolov/neurolov/e2e/browser"
	"github.com/neurolov/neurolov/shaders"
	"github.com/neurolov/neurolov/shaders/blas"
	"github.com/neurolov/neurolov/tensor"
	wasmclient "github.com/neurolov/neurolov/wasm/browser"
	"github.com/neurolov/neurolov/web"
	"github.com/neurolov/neurolov/web/volunteer"
	"github.com/neurolov/neurolov/worker"
)

// Errors Run returns.
var (
	// ErrNotBuilt reports a binary built without the browser client.
	ErrNotBuilt = errors.New("browserbench: the browser client is not built: run make wasm, then rebuild")
	// ErrBench reports a benchmark that failed in the browser.
	ErrBench = errors.New("browserbench: benchmark failed")
)

// Options configures RunWith. Zero fields take the defaults.
type Options struct {
	// Runs is the number of timed runs; the median is reported (default 5).
	Runs int
	// Batch is the MLP shard's batch (default 256).
	Batch int
	// Timeout bounds each tab's benchmark (default 3 minutes).
	Timeout time.Duration
}

// Result is one measurement.
type Result struct {
	Backend string    // "webgpu", "cpu-wasm" or "native-blas"
	Device  string    // the adapter or CPU
	GFLOPS  float64   // the median
	Runs    []float64 // each run's GFLOP/s
	// KernelGFLOPS is the kernel alone in the same tab, without copies or
	// Go glue (cpu-wasm only; 0 otherwise): the baseline of GFLOPS.
	KernelGFLOPS float64
	Err          error // why the backend could not be measured (webgpu only)
}

// Run measures with the default options and prints the results, ending with
// the line "cpu-wasm: N GFLOP/s".
func Run(ctx context.Context, out io.Writer) error {
	_, err := RunWith(ctx, out, Options{})
	return err
}

// RunWith measures the WebGPU tab, the native BLAS worker and the CPU-WASM
// tabs (the kernel's two-thread pool where the page has one, then one
// thread), in that order, printing each line as it is measured; the last line
// is "cpu-wasm: N GFLOP/s". A WebGPU failure (no adapter) is printed and
// not an error; a CPU-WASM failure is.
func RunWith(ctx context.Context, out io.Writer, o Options) ([]Result, error) {
	if o.Runs <= 0 {
		o.Runs = 5
	}
	if o.Batch <= 0 {
		o.Batch = 256
	}
	if o.Timeout <= 0 {
		o.Timeout = 3 * time.Minute
	}
	if _, err := browser.Find(); err != nil {
		return nil, err
	}
	if err := built(); err != nil {
		return nil, err
	}
	in := wasmclient.MLPShard(o.Batch)
	fmt.Fprintf(out, "MLP shard 784-512-256-10, batch %d: %.0f MFLOP; median of %d runs after a warm-up\n",
		o.Batch, shaders.FLOPs(shaders.MLPInfer, in)/1e6, o.Runs)

	base, stop, err := serve()
	if err != nil {
		return nil, err
	}
	defer stop()
	b, err := browser.Launch(ctx, browser.Options{WebGPU: true})
	if err != nil {
		return nil, err
	}
	defer b.Close()

	var results []Result
	gpu := inTab(ctx, b, base, "webgpu", o)
	results = append(results, gpu)
	if gpu.Err != nil {
		fmt.Fprintf(out, "webgpu: unavailable (%v)\n", gpu.Err)
	} else {
		fmt.Fprintf(out, "webgpu: %.2f GFLOP/s on %s %s\n", gpu.GFLOPS, gpu.Device, runsText(gpu.Runs))
	}

	native, err := nativeBLAS(ctx, in, o.Runs)
	if err != nil {
		fmt.Fprintf(out, "native-blas: unavailable (%v)\n", err)
	} else {
		results = append(results, native)
		fmt.Fprintf(out, "native-blas: %.1f GFLOP/s on %s %s\n", native.GFLOPS, native.Device, runsText(native.Runs))
	}

	// The kernel's two-thread pool first, where the page has it; the
	// headline figure is one thread's.
	if pool := inTabThreads(ctx, b, base, "cpu-wasm", 2, o); pool.Err == nil && strings.Contains(pool.Device, "2 threads") {
		results = append(results, pool)
		fmt.Fprintf(out, "cpu-wasm, 2 threads: %.1f GFLOP/s on %s %s%s\n", pool.GFLOPS, pool.Device, runsText(pool.Runs), kernelText(pool))
	}
	cpu := inTabThreads(ctx, b, base, "cpu-wasm", 1, o)
	results = append(results, cpu)
	if cpu.Err != nil {
		return results, cpu.Err
	}
	fmt.Fprintf(out, "cpu-wasm runs on %s %s%s\n", cpu.Device, runsText(cpu.Runs), kernelText(cpu))
	fmt.Fprintf(out, "cpu-wasm: %.1f GFLOP/s\n", cpu.GFLOPS)
	return results, nil
}

// kernelText tells the same tab's kernel-alone figure, the baseline of the
// end-to-end one.
func kernelText(r Result) string {
	if r.KernelGFLOPS <= 0 {
		return ""
	}
	return fmt.Sprintf("; the kernel alone in the same tab (no copies, no Go glue) %.1f GFLOP/s, end to end is %.0f%% of it",
		r.KernelGFLOPS, 100*r.GFLOPS/r.KernelGFLOPS)
}

func runsText(runs []float64) string {
	parts := make([]string, len(runs))
	for i, r := range runs {
		parts[i] = fmt.Sprintf("%.2f", r)
	}
	return "(runs: " + strings.Join(parts, " ") + ")"
}

// built checks that the embedded static tree holds the browser client.
func built() error {
	assets, err := web.NewAssets(web.Static(), web.StaticPrefix)
	if err != nil {
		return err
	}
	for _, f := range []string{volunteer.WorkerFile, volunteer.WasmExecFile, volunteer.ClientFile, volunteer.KernelFile} {
		if _, ok := assets.URL(f); !ok {
			return fmt.Errorf("%w (missing web/static/%s)", ErrNotBuilt, f)
		}
	}
	return nil
}

// serve serves the pages on a loopback port.
func serve() (base string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("browserbench: listening: %w", err)
	}
	srv := &http.Server{Handler: web.Handler(), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() { _ = srv.Serve(ln); close(done) }()
	return "http://" + ln.Addr().String(), func() { _ = srv.Close(); <-done }, nil
}

// benchReply is what neurolovPage.bench resolves with.
type benchReply struct {
	Backend string    `json:"backend"`
	Device  string    `json:"device"`
	GFLOPS  float64   `json:"gflops"`
	Runs    []float64 `json:"runs"`
	Kernel  float64   `json:"kernelGflops"`
	Error   string    `json:"error"`
}

// inTab opens a tab of the page and times the shard on backend there.
func inTab(ctx context.Context, b *browser.Browser, base, backend string, o Options) Result {
	return inTabThreads(ctx, b, base, backend, 0, o)
}

// inTabThreads is inTab with cpu-wasm on threads of its kernel pool (0: as
// the tab has it).
func inTabThreads(ctx context.Context, b *browser.Browser, base, backend string, threads int, o Options) Result {
	res := Result{Backend: backend}
	tab, cancel := b.NewTab()
	defer cancel()
	tctx, tcancel := context.WithTimeout(tab, o.Timeout)
	defer tcancel()
	if err := chromedp.Do(tctx, chromedp.Navigate(base+"/?backend="+backend)); err != nil {
		res.Err = fmt.Errorf("%w: opening the page: %w", ErrBench, err)
		return res
	}
	js := fmt.Sprintf(`neurolovPage.bench({backend: %q, kernel: %q, runs: %d, batch: %d, threads: %d}).then(r => r, e => ({error: String(e && e.message || e)}))`,
		backend, shaders.MLPInfer, o.Runs, o.Batch, threads)
	r, err := chromedp.Run(tctx, chromedp.Evaluate[benchReply](js, chromedp.EvalAwaitPromise))
	switch {
	case err != nil:
		res.Err = fmt.Errorf("%w: %s: %w", ErrBench, backend, err)
	case r.Error != "":
		res.Err = fmt.Errorf("%w: %s: %s", ErrBench, backend, r.Error)
	default:
		res.Device, res.GFLOPS, res.Runs, res.KernelGFLOPS = r.Device, r.GFLOPS, r.Runs, r.Kernel
		if r.Backend != "" && r.Backend != backend {
			res.Err = fmt.Errorf("%w: asked for %s, measured %s", ErrBench, backend, r.Backend)
		}
	}
	return res
}

// blasInto is the native BLAS worker's kernel call, writing into outputs
// allocated once.
type blasInto struct{ outs []*tensor.Tensor }

func (blasInto) Name() string   { return "native-blas" }
func (blasInto) Device() string { return "OpenBLAS (" + blas.Core() + ")" }
func (b blasInto) Run(_ context.Context, kernel string, in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	return b.outs, blas.RunInto(kernel, in, b.outs)
}

var _ worker.Backend = blasInto{}

// nativeBLAS times the shard through shaders/blas.RunInto, the native CPU
// worker's kernel, with the same warm-up and median as the tabs.
func nativeBLAS(ctx context.Context, in []*tensor.Tensor, runs int) (Result, error) {
	if !blas.Available() {
		return Result{}, blas.ErrUnavailable
	}
	shapes, err := shaders.OutputShapes(shaders.MLPInfer, in)
	if err != nil {
		return Result{}, err
	}
	b := blasInto{}
	for _, s := range shapes {
		b.outs = append(b.outs, tensor.New(s...))
	}
	med, each, err := wasmclient.Measure(ctx, b, shaders.MLPInfer, in, 300*time.Millisecond, runs)
	if err != nil {
		return Result{}, err
	}
	device := fmt.Sprintf("%s, %d threads", b.Device(), blas.Threads())
	return Result{Backend: b.Name(), Device: device, GFLOPS: med, Runs: each}, nil
}
