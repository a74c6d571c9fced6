//go:build !js && !(cgo && (darwin || windows || (linux && (amd64 || arm64))))

package gpu

import (
	"errors"
	"testing"

	"github.com/neurolov/neurolov/shaders"
	"github.com/neurolov/neurolov/tensor"
)

func TestNoGPU(t *testing.T) {
	d, err := Open(Options{})
	if !errors.Is(err, ErrNoGPU) || d != nil {
		t.Fatalf("Open = %v, %v; want ErrNoGPU", d, err)
	}
	if err.Error() != "gpu: no GPU: built without cgo" {
		t.Errorf("message %q", err)
	}
	var dev *Device
	if _, err := dev.Run(shaders.Matmul, []*tensor.Tensor{tensor.New(1, 1), tensor.New(1, 1)}); !errors.Is(err, ErrNoGPU) {
		t.Errorf("Run: %v", err)
	}
}
