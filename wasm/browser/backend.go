package browser

import (
	"context"
	"errors"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/neurolov/neurolov/shaders"
	"github.com/neurolov/neurolov/tensor"
	"github.com/neurolov/neurolov/worker"
)

// ErrDeviceLost reports a GPU that can no longer compute: the WebGPU device
// was lost (driver reset, tab in the background too long, out of memory).
// GPU backends wrap it in their errors.
var ErrDeviceLost = errors.New("browser: GPU device lost")

// switching is the Backend the worker runs: it waits at the gate (pause,
// duty cycle), computes on the GPU when one was chosen and on the CPU
// otherwise, and finishes on the CPU any shard the GPU failed. When the GPU
// device is lost it switches to the CPU for good and calls onLost once, so
// that the client reconnects and reports backend cpu-wasm.
type switching struct {
	gate    *gate
	cpu     worker.Backend
	log     *slog.Logger
	onLost  func(error)
	onShard func(flops float64, compute time.Duration)

	mu  sync.Mutex
	gpu worker.Backend // nil once lost, or when the CPU was chosen
}

func (s *switching) current() worker.Backend {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gpu != nil {
		return s.gpu
	}
	return s.cpu
}

// Name is the backend in use: "webgpu" or "cpu-wasm".
func (s *switching) Name() string { return s.current().Name() }

// Device describes the backend in use.
func (s *switching) Device() string { return s.current().Device() }

// Run waits for the gate and computes one shard.
func (s *switching) Run(ctx context.Context, kernel string, in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	if err := s.gate.Wait(ctx); err != nil {
		return nil, err
	}
	start := time.Now()
	b := s.current()
	outs, err := b.Run(ctx, kernel, in)
	if err != nil && b != s.cpu && ctx.Err() == nil {
		if errors.Is(err, ErrDeviceLost) {
			s.mu.Lock()
			lost := s.gpu == b
			s.gpu = nil
			s.mu.Unlock()
			if lost && s.onLost != nil {
				s.onLost(err)
			}
		}
		s.log.Warn("GPU failed a shard; finishing it on the CPU", "kernel", kernel, "err", err)
		outs, err = s.cpu.Run(ctx, kernel, in)
	}
	d := time.Since(start)
	s.gate.Done(d)
	if err == nil && s.onShard != nil {
		s.onShard(shaders.FLOPs(kernel, in), d)
	}
	return outs, err
}

// MLPShard returns the benchmark shard: the 784-512-256-10 MLP at the given
// batch, with fixed pseudo-random inputs (the same tensors on every call
// with equal batch would be cached as weights; callers keep one).
func MLPShard(batch int) []*tensor.Tensor {
	dims := []int{784, 512, 256, 10}
	seed := uint32(1)
	fill := func(t *tensor.Tensor, scale float32) *tensor.Tensor {
		for i := range t.Data {
			seed = seed*1664525 + 1013904223
			t.Data[i] = scale * (float32(seed>>8)/float32(1<<24) - 0.5)
		}
		return t
	}
	in := []*tensor.Tensor{fill(tensor.New(batch, dims[0]), 2)}
	for l := 0; l+1 < len(dims); l++ {
		in = append(in, fill(tensor.New(dims[l], dims[l+1]), 0.1), fill(tensor.New(dims[l+1]), 0.1))
	}
	return in
}

// benchInputs returns the inputs of a benchmark shard of kernel.
func benchInputs(kernel string, batch int) ([]*tensor.Tensor, error) {
	switch kernel {
	case "", shaders.MLPInfer:
		return MLPShard(batch), nil
	case shaders.Matmul:
		in := MLPShard(batch)
		return []*tensor.Tensor{tensor.New(batch, 784), in[1]}, nil
	}
	return nil, errors.New("browser: bench kernel must be mlp-infer or matmul")
}

// Measure runs the shard in on b: warm-up runs until warm has passed (one
// when warm is 0, else at least three: the first packs or uploads the
// weights, and the engine's optimizing compiler needs a few hundred
// milliseconds of calls before the kernel runs at full speed), then runs
// timed runs. It returns each run's speed in GFLOP/s, end to end (copies
// and Go glue included), and their median.
func Measure(ctx context.Context, b worker.Backend, kernel string, in []*tensor.Tensor, warm time.Duration, runs int) (median float64, each []float64, err error) {
	flops := shaders.FLOPs(kernel, in)
	if flops == 0 {
		_, err := shaders.OutputShapes(kernel, in)
		return 0, nil, err
	}
	for start, n := time.Now(), 1; ; n++ {
		if err := ctx.Err(); err != nil {
			return 0, nil, err
		}
		if _, err := b.Run(ctx, kernel, in); err != nil {
			return 0, nil, err
		}
		if time.Since(start) >= warm && (warm == 0 || n >= 3) {
			break
		}
	}
	for range max(runs, 1) {
		if err := ctx.Err(); err != nil {
			return 0, nil, err
		}
		start := time.Now()
		if _, err := b.Run(ctx, kernel, in); err != nil {
			return 0, nil, err
		}
		each = append(each, flops/max(time.Since(start).Seconds(), 1e-9)/1e9)
	}
	sorted := append([]float64(nil), each...)
	sort.Float64s(sorted)
	return sorted[len(sorted)/2], each, nil
}
