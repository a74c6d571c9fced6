package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/neurolov/neurolov/internal/backends"
	"github.com/neurolov/neurolov/shaders"
	"github.com/neurolov/neurolov/shaders/blas"
	"github.com/neurolov/neurolov/shaders/gpu"
	"github.com/neurolov/neurolov/tensor"
	"github.com/neurolov/neurolov/worker"
)

// benchKernels prints, in one run, GFLOP/s of matmul on every backend
// present (WebGPU with the variant chosen by measurement, the OpenBLAS
// backend, pure Go) beside bare OpenBLAS sgemm on the same shapes, and the
// MLP shard through the CPU worker's path against bare sgemm.
func benchKernels(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench kernels", flag.ContinueOnError)
	fs.SetOutput(stderr)
	runs := fs.Int("runs", 3, "runs per figure (the median is printed)")
	big := fs.Bool("big", true, "also 4096×4096×1024 (one run on software GPUs and pure Go: tens of seconds)")
	software := fs.Bool("software-gpu", true, "use a software adapter (lavapipe) when no real GPU exists")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	rng := newRand(3)
	type shape struct{ m, k, n int }
	shapes := []shape{{1024, 1024, 1024}}
	if *big {
		shapes = append(shapes, shape{4096, 4096, 1024})
	}

	type backend struct {
		name string
		b    worker.Backend
		slow bool // one run on the big shape
	}
	var list []backend
	opts := gpu.Options{}
	if !*software {
		opts.Software = gpu.SoftwareNever
	}
	g, gerr := backends.OpenGPU(opts)
	if gerr == nil {
		defer g.Close()
		info := g.Info()
		fmt.Fprintf(stdout, "webgpu adapter: %s (%s, %s, software %v); matmul variant %s (%s, %.2f GFLOP/s when tuned)\n",
			info.Name, info.Backend, info.Type, info.Software, info.Variant, info.TunedFrom, info.VariantGFLOPS)
		list = append(list, backend{"webgpu", g, info.Software})
	} else {
		fmt.Fprintf(stdout, "webgpu: not present (%v)\n", gerr)
	}
	if blas.Available() {
		list = append(list, backend{"blas-backend", backends.BLAS{}, false})
	}
	list = append(list, backend{"pure-go", worker.CPU{}, true})

	gflops := map[string]float64{}
	for _, s := range shapes {
		a, b := scaledTensor(rng, 1, s.m, s.k), scaledTensor(rng, 1, s.k, s.n)
		in := []*tensor.Tensor{a, b}
		flops := shaders.FLOPs(shaders.Matmul, in)
		label := fmt.Sprintf("%dx%dx%d", s.m, s.k, s.n)
		if blas.Available() {
			c := make([]float32, s.m*s.n)
			t := median(timeRuns(*runs, func() error { return blas.Sgemm(c, a.Data, b.Data, s.m, s.k, s.n) }))
			gflops["openblas-sgemm "+label] = flops / t.Seconds() / 1e9
			fmt.Fprintf(stdout, "matmul %-14s bare OpenBLAS sgemm (%d threads): %8.2f GFLOP/s\n", label, blas.Threads(), flops/t.Seconds()/1e9)
		}
		for _, be := range list {
			n := *runs
			if be.slow && s.m*s.k*s.n > 1<<30 {
				n = 1
			}
			t := median(timeRuns(n, func() error { _, err := be.b.Run(ctx, shaders.Matmul, in); return err }))
			gflops[be.name+" "+label] = flops / t.Seconds() / 1e9
			fmt.Fprintf(stdout, "matmul %-14s %-28s %8.2f GFLOP/s (median of %d)\n", label, be.name+" ("+be.b.Device()+")", flops/t.Seconds()/1e9, n)
		}
	}

	// The MLP shard through the CPU worker's path vs bare sgemm.
	x := scaledTensor(rng, 1, 256, 784)
	mlp := []*tensor.Tensor{x,
		scaledTensor(rng, 0.05, 784, 512), scaledTensor(rng, 0.1, 512),
		scaledTensor(rng, 0.05, 512, 256), scaledTensor(rng, 0.1, 256),
		scaledTensor(rng, 0.05, 256, 10), scaledTensor(rng, 0.1, 10)}
	mlpFlops := shaders.FLOPs(shaders.MLPInfer, mlp)
	cpuPath, _ := backends.Open("auto", gpu.Options{})
	var ratio float64
	if blas.Available() {
		bufs := [][]float32{make([]float32, 256*512), make([]float32, 256*256), make([]float32, 256*10)}
		var bare, path []time.Duration
		for range max(5, *runs) { // alternate so both see the same machine
			bare = append(bare, timeRuns(1, func() error {
				if err := blas.Sgemm(bufs[0], x.Data, mlp[1].Data, 256, 784, 512); err != nil {
					return err
				}
				if err := blas.Sgemm(bufs[1], bufs[0], mlp[3].Data, 256, 512, 256); err != nil {
					return err
				}
				return blas.Sgemm(bufs[2], bufs[1], mlp[5].Data, 256, 256, 10)
			})...)
			path = append(path, timeRuns(1, func() error { _, err := cpuPath.Run(ctx, shaders.MLPInfer, mlp); return err })...)
		}
		tb, tp := median(bare), median(path)
		ratio = tb.Seconds() / tp.Seconds()
		fmt.Fprintf(stdout, "mlp shard 784-512-256-10 batch 256: worker path (%s) %.2f GFLOP/s, bare sgemm on the same shapes %.2f GFLOP/s\n",
			cpuPath.Device(), mlpFlops/tp.Seconds()/1e9, mlpFlops/tb.Seconds()/1e9)
	} else {
		t := median(timeRuns(*runs, func() error { _, err := cpuPath.Run(ctx, shaders.MLPInfer, mlp); return err }))
		fmt.Fprintf(stdout, "mlp shard 784-512-256-10 batch 256: worker path (%s) %.2f GFLOP/s (no OpenBLAS in this build)\n", cpuPath.Device(), mlpFlops/t.Seconds()/1e9)
	}
	if g != nil && blas.Available() {
		fmt.Fprintf(stdout, "webgpu/cpu: %.2fx\n", gflops["webgpu 1024x1024x1024"]/gflops["blas-backend 1024x1024x1024"])
	}
	if blas.Available() {
		fmt.Fprintf(stdout, "cpu/openblas: %.2fx\n", ratio)
	}
	return nil
}

// timeRuns runs fn n times after one warm-up and returns the wall times.
func timeRuns(n int, fn func() error) []time.Duration {
	if err := fn(); err != nil {
		return []time.Duration{time.Hour}
	}
	var ts []time.Duration
	for range n {
		t0 := time.Now()
		if err := fn(); err != nil {
			return []time.Duration{time.Hour}
		}
		ts = append(ts, time.Since(t0))
	}
	return ts
}

func median[T int | time.Duration | float64](xs []T) T {
	if len(xs) == 0 {
		var zero T
		return zero
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
