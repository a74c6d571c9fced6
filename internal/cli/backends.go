package cli

import (
	"context"
	"fmt"

	"github.com/neurolov/neurolov/shaders"
	"github.com/neurolov/neurolov/shaders/blas"
	"github.com/neurolov/neurolov/tensor"
	"github.com/neurolov/neurolov/worker"
)

// blasBackend runs shards through OpenBLAS (cgo).
type blasBackend struct{}

func (blasBackend) Name() string   { return "cpu" }
func (blasBackend) Device() string { return "OpenBLAS (" + blas.Core() + ")" }

func (blasBackend) Run(_ context.Context, kernel string, in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	shapes, err := shaders.OutputShapes(kernel, in)
	if err != nil {
		return nil, err
	}
	outs := make([]*tensor.Tensor, len(shapes))
	for i, s := range shapes {
		outs[i] = tensor.New(s...)
	}
	if err := blas.RunInto(kernel, in, outs); err != nil {
		return nil, err
	}
	return outs, nil
}

// pickBackend returns the named backend; "auto" is OpenBLAS when this build
// has it, else pure Go.
func pickBackend(name string) (worker.Backend, error) {
	switch name {
	case "auto":
		if blas.Available() {
			return blasBackend{}, nil
		}
		return worker.CPU{}, nil
	case "cpu":
		return worker.CPU{}, nil
	case "blas":
		if !blas.Available() {
			return nil, blas.ErrUnavailable
		}
		return blasBackend{}, nil
	}
	return nil, fmt.Errorf("%w: unknown backend %q (auto, cpu, blas)", ErrUsage, name)
}
