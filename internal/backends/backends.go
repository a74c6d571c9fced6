// Package backends provides the worker backends that need cgo — OpenBLAS
// (shaders/blas) and native WebGPU (shaders/gpu over wgpu-native) — for the
// native binary, and picks one by name. The worker package itself stays
// free of cgo so that the browser client can share it.
package backends

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/neurolov/neurolov/shaders"
	"github.com/neurolov/neurolov/shaders/blas"
	"github.com/neurolov/neurolov/shaders/gpu"
	"github.com/neurolov/neurolov/tensor"
	"github.com/neurolov/neurolov/worker"
)

// ErrUnknown reports a backend name Open does not know.
var ErrUnknown = errors.New("backends: unknown backend")

// BLAS runs shards through OpenBLAS, bias and activation fused around sgemm.
type BLAS struct{}

var _ worker.Backend = BLAS{}

// Name returns "cpu": it is a CPU backend on the wire.
func (BLAS) Name() string { return "cpu" }

// Device names the OpenBLAS kernel set in use.
func (BLAS) Device() string { return "OpenBLAS (" + blas.Core() + ")" }

// Run computes kernel on inputs.
func (BLAS) Run(_ context.Context, kernel string, in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	outs, err := newOutputs(kernel, in)
	if err != nil {
		return nil, err
	}
	return outs, blas.RunInto(kernel, in, outs)
}

func newOutputs(kernel string, in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	shapes, err := shaders.OutputShapes(kernel, in)
	if err != nil {
		return nil, err
	}
	outs := make([]*tensor.Tensor, len(shapes))
	for i, s := range shapes {
		outs[i] = tensor.New(s...)
	}
	return outs, nil
}

// GPU runs shards on a WebGPU device through wgpu-native: the same WGSL
// kernels the browser runs. It reports backend "native-gpu".
type GPU struct {
	mu  sync.Mutex
	dev *gpu.Device
}

var _ worker.Backend = (*GPU)(nil)

// OpenGPU opens the best adapter under opts (a software adapter such as
// lavapipe only when asked or when nothing else exists).
func OpenGPU(opts gpu.Options) (*GPU, error) {
	dev, err := gpu.Open(opts)
	if err != nil {
		return nil, err
	}
	return &GPU{dev: dev}, nil
}

// Name returns "native-gpu".
func (*GPU) Name() string { return "native-gpu" }

// Device describes the adapter and the matmul variant chosen by measurement.
func (g *GPU) Device() string {
	info := g.dev.Info()
	return fmt.Sprintf("%s (%s, %s, matmul %s)", info.Name, info.Backend, info.Type, info.Variant)
}

// Info returns the adapter's description and limits.
func (g *GPU) Info() gpu.AdapterInfo { return g.dev.Info() }

// Run computes kernel on the GPU. The device serialises its queue, so
// calls are serialised too. Once the device is lost, this shard and every
// later one is computed on the CPU instead (OpenBLAS, or pure Go without
// cgo), so no lease is dropped.
func (g *GPU) Run(ctx context.Context, kernel string, in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	g.mu.Lock()
	out, err := g.dev.Run(kernel, in)
	g.mu.Unlock()
	if errors.Is(err, gpu.ErrDeviceLost) {
		cpu, _ := Open("auto", gpu.Options{})
		return cpu.Run(ctx, kernel, in)
	}
	return out, err
}

// Close releases the device.
func (g *GPU) Close() error { return g.dev.Close() }

// Open returns the backend called name: "auto" (OpenBLAS when built with
// cgo, else pure Go), "cpu" (pure Go), "blas", or "gpu" (WebGPU; software
// adapters only when allowSoftware or when no other exists).
func Open(name string, opts gpu.Options) (worker.Backend, error) {
	switch name {
	case "auto":
		if blas.Available() {
			return BLAS{}, nil
		}
		return worker.CPU{}, nil
	case "cpu":
		return worker.CPU{}, nil
	case "blas":
		if !blas.Available() {
			return nil, blas.ErrUnavailable
		}
		return BLAS{}, nil
	case "gpu":
		return OpenGPU(opts)
	}
	return nil, fmt.Errorf("%w %q: use auto, cpu, blas or gpu", ErrUnknown, name)
}
