package worker

import (
	"context"
	"fmt"
	"runtime"
	"time"

	"github.com/neurolov/neurolov/shaders"
	"github.com/neurolov/neurolov/tensor"
)

// CPU is the portable backend: the pure-Go kernels of package shaders,
// blocked and multi-goroutine. It builds everywhere, the browser included.
type CPU struct{}

// Name returns "cpu".
func (CPU) Name() string { return "cpu" }

// Device describes the CPU.
func (CPU) Device() string {
	return fmt.Sprintf("%s/%s, %d threads, pure Go", runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0))
}

// Run computes kernel with the Go reference kernels.
func (CPU) Run(_ context.Context, kernel string, inputs []*tensor.Tensor) ([]*tensor.Tensor, error) {
	return shaders.Reference(kernel, inputs)
}

// Measure times b on a representative shard (a 256×256·256×256 matmul)
// and returns its speed in GFLOP/s, the figure reported in the handshake.
func Measure(ctx context.Context, b Backend) (float64, error) {
	const n = 256
	a, m := tensor.New(n, n), tensor.New(n, n)
	for i := range a.Data {
		a.Data[i] = float32(i%7) - 3
		m.Data[i] = float32(i%5) - 2
	}
	in := []*tensor.Tensor{a, m}
	if _, err := b.Run(ctx, shaders.Matmul, in); err != nil { // warm up
		return 0, err
	}
	start := time.Now()
	runs := 0
	for time.Since(start) < 100*time.Millisecond || runs < 2 {
		if _, err := b.Run(ctx, shaders.Matmul, in); err != nil {
			return 0, err
		}
		runs++
	}
	return float64(runs) * shaders.FLOPs(shaders.Matmul, in) / time.Since(start).Seconds() / 1e9, nil
}
