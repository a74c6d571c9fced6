//go:build !js && !(cgo && (darwin || windows || (linux && (amd64 || arm64))))

package gpu

import (
	"github.com/neurolov/neurolov/shaders"
	"github.com/neurolov/neurolov/tensor"
)

// This build has no WebGPU: native without cgo (wgpu-native is a C
// library), or a platform wgpu-native ships no library for. Open always
// fails with ErrNoGPU; the methods exist so that callers compile the same
// everywhere, and they fail the same way.

// Device is an open WebGPU device; this build cannot open one.
type Device struct{}

// Tensor is a float32 tensor on a Device.
type Tensor struct{}

// Open fails: this build has no GPU support.
func Open(Options) (*Device, error) { return nil, ErrNoGPU }

// Shape returns nil.
func (*Tensor) Shape() []int { return nil }

// Len returns 0.
func (*Tensor) Len() int { return 0 }

// Release does nothing.
func (*Tensor) Release() {}

// Info returns an empty description.
func (*Device) Info() AdapterInfo { return AdapterInfo{} }

// Err returns ErrNoGPU.
func (*Device) Err() error { return ErrNoGPU }

// Close does nothing.
func (*Device) Close() error { return nil }

// Sync fails with ErrNoGPU.
func (*Device) Sync() error { return ErrNoGPU }

// Upload fails with ErrNoGPU.
func (*Device) Upload(*tensor.Tensor) (*Tensor, error) { return nil, ErrNoGPU }

// Zeros fails with ErrNoGPU.
func (*Device) Zeros(...int) (*Tensor, error) { return nil, ErrNoGPU }

// Weight fails with ErrNoGPU.
func (*Device) Weight(*tensor.Tensor) (*Tensor, error) { return nil, ErrNoGPU }

// WeightCacheStats returns zeros.
func (*Device) WeightCacheStats() (hits, misses, bytes int64) { return 0, 0, 0 }

// Read fails with ErrNoGPU.
func (*Device) Read(*Tensor) (*tensor.Tensor, error) { return nil, ErrNoGPU }

// Run fails with ErrNoGPU.
func (*Device) Run(string, []*tensor.Tensor) ([]*tensor.Tensor, error) { return nil, ErrNoGPU }

// MatMul fails with ErrNoGPU.
func (*Device) MatMul(_, _, _ *Tensor, _ shaders.MatMulOpts) (*Tensor, error) { return nil, ErrNoGPU }

// MatMulVariant fails with ErrNoGPU.
func (*Device) MatMulVariant(string, *Tensor, *Tensor, *Tensor, shaders.MatMulOpts) (*Tensor, error) {
	return nil, ErrNoGPU
}

// Softmax fails with ErrNoGPU.
func (*Device) Softmax(*Tensor) (*Tensor, error) { return nil, ErrNoGPU }

// SoftmaxCrossEntropy fails with ErrNoGPU.
func (*Device) SoftmaxCrossEntropy(_, _ *Tensor, _ float32) (loss, grad *Tensor, err error) {
	return nil, nil, ErrNoGPU
}

// LayerNorm fails with ErrNoGPU.
func (*Device) LayerNorm(_, _, _ *Tensor, _ float32) (*Tensor, error) { return nil, ErrNoGPU }

// ColSums fails with ErrNoGPU.
func (*Device) ColSums(*Tensor) (*Tensor, error) { return nil, ErrNoGPU }

// RowSums fails with ErrNoGPU.
func (*Device) RowSums(*Tensor) (*Tensor, error) { return nil, ErrNoGPU }

// ActBackward fails with ErrNoGPU.
func (*Device) ActBackward(_, _ *Tensor, _ shaders.Act) (*Tensor, error) { return nil, ErrNoGPU }

// Axpby fails with ErrNoGPU.
func (*Device) Axpby(_, _ *Tensor, _, _ float32) (*Tensor, error) { return nil, ErrNoGPU }

// SGDStep fails with ErrNoGPU.
func (*Device) SGDStep(_, _, _ *Tensor, _ shaders.SGDConfig) error { return ErrNoGPU }

// AdamStep fails with ErrNoGPU.
func (*Device) AdamStep(_, _, _, _ *Tensor, _ shaders.AdamConfig, _ int) error { return ErrNoGPU }

// Im2Col fails with ErrNoGPU.
func (*Device) Im2Col(*Tensor, shaders.ConvGeom) (*Tensor, error) { return nil, ErrNoGPU }
