//go:build !cgo

package blas

import (
	"errors"
	"testing"

	"github.com/neurolov/neurolov/shaders"
	"github.com/neurolov/neurolov/tensor"
)

func TestUnavailableWithoutCgo(t *testing.T) {
	if Available() {
		t.Fatal("Available() in a build without cgo")
	}
	if n := Threads(); n != 0 {
		t.Fatalf("Threads() = %d without cgo", n)
	}
	c, a, b := make([]float32, 1), []float32{2}, []float32{3}
	a2 := tensor.New(1, 1)
	calls := map[string]error{
		"Sgemm":            Sgemm(c, a, b, 1, 1, 1),
		"MatMulBiasReLUIn": MatMulBiasReLUIn(c, a, b, []float32{0}, 1, 1, 1, true),
		"RunInto":          RunInto(shaders.Matmul, []*tensor.Tensor{a2, a2}, []*tensor.Tensor{tensor.New(1, 1)}),
		"SetThreads":       SetThreads(1),
	}
	for name, err := range calls {
		if !errors.Is(err, ErrUnavailable) {
			t.Errorf("%s: error %v, want ErrUnavailable", name, err)
		}
	}
	if c[0] != 0 {
		t.Fatalf("Sgemm wrote %g without cgo", c[0])
	}
}
