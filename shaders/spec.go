package shaders

import (
	"errors"
	"fmt"

	"github.com/neurolov/neurolov/tensor"
)

// Kernel names, as they appear on the wire.
const (
	Matmul   = "matmul"
	MLPInfer = "mlp-infer"
)

// ErrUnknownKernel reports a kernel name this build does not know.
var ErrUnknownKernel = errors.New("shaders: unknown kernel")

// ErrInputs reports inputs whose count or shapes do not fit the kernel.
var ErrInputs = errors.New("shaders: bad kernel inputs")

// Known reports whether kernel is a kernel name this build can run.
func Known(kernel string) bool { return kernel == Matmul || kernel == MLPInfer }

// OutputShapes checks inputs against kernel and returns the shapes of the
// outputs a correct result has.
func OutputShapes(kernel string, inputs []*tensor.Tensor) ([][]int, error) {
	switch kernel {
	case Matmul:
		if len(inputs) != 2 {
			return nil, fmt.Errorf("%w: matmul takes 2 inputs, got %d", ErrInputs, len(inputs))
		}
		a, b := inputs[0], inputs[1]
		if !a.Is2D(-1, -1) || !b.Is2D(a.Cols(), -1) {
			return nil, fmt.Errorf("%w: matmul of %v by %v", ErrInputs, a.Shape, b.Shape)
		}
		return [][]int{{a.Rows(), b.Cols()}}, nil
	case MLPInfer:
		if len(inputs) < 3 || len(inputs)%2 != 1 {
			return nil, fmt.Errorf("%w: mlp-infer takes X and (W, b) pairs, got %d inputs", ErrInputs, len(inputs))
		}
		x := inputs[0]
		if !x.Is2D(-1, -1) {
			return nil, fmt.Errorf("%w: mlp-infer X has shape %v, want 2-D", ErrInputs, x.Shape)
		}
		width := x.Cols()
		var out [][]int
		for l := 1; l < len(inputs); l += 2 {
			w, b := inputs[l], inputs[l+1]
			if !w.Is2D(width, -1) || len(b.Shape) != 1 || b.Shape[0] != w.Cols() {
				return nil, fmt.Errorf("%w: mlp-infer layer %d: W %v, b %v after width %d", ErrInputs, l/2+1, w.Shape, b.Shape, width)
			}
			width = w.Cols()
			out = append(out, []int{x.Rows(), width})
		}
		return out, nil
	}
	return nil, fmt.Errorf("%w: %q", ErrUnknownKernel, kernel)
}

// FLOPs returns the floating-point operations of one run of kernel on inputs
// (2 per multiply-add), or 0 when the inputs do not fit.
func FLOPs(kernel string, inputs []*tensor.Tensor) float64 {
	shapes, err := OutputShapes(kernel, inputs)
	if err != nil {
		return 0
	}
	switch kernel {
	case Matmul:
		return 2 * float64(inputs[0].Rows()) * float64(inputs[0].Cols()) * float64(inputs[1].Cols())
	case MLPInfer:
		var f float64
		for l := range shapes {
			w := inputs[1+2*l]
			f += 2*float64(inputs[0].Rows())*float64(w.Rows())*float64(w.Cols()) + 2*float64(inputs[0].Rows())*float64(w.Cols())
		}
		return f
	}
	return 0
}

// Reference runs kernel on the CPU with the portable Go implementation and
// returns fresh output tensors.
func Reference(kernel string, inputs []*tensor.Tensor) ([]*tensor.Tensor, error) {
	shapes, err := OutputShapes(kernel, inputs)
	if err != nil {
		return nil, err
	}
	outs := make([]*tensor.Tensor, len(shapes))
	for i, s := range shapes {
		outs[i] = tensor.New(s...)
	}
	if err := RunInto(kernel, inputs, outs); err != nil {
		return nil, err
	}
	return outs, nil
}

// RunInto runs kernel on the CPU into outs, which must have the shapes
// OutputShapes returns. It allocates nothing in steady state beyond what
// MatMul needs for its scratch.
func RunInto(kernel string, inputs, outs []*tensor.Tensor) error {
	switch kernel {
	case Matmul:
		a, b := inputs[0], inputs[1]
		MatMul(outs[0].Data, a.Data, b.Data, a.Rows(), a.Cols(), b.Cols())
		return nil
	case MLPInfer:
		h := inputs[0]
		for l := range outs {
			w, bias, z := inputs[1+2*l], inputs[2+2*l], outs[l]
			if l > 0 {
				h = outs[l-1]
			}
			MatMulBiasReLUIn(z.Data, h.Data, w.Data, bias.Data, h.Rows(), w.Rows(), w.Cols(), l > 0)
		}
		return nil
	}
	return fmt.Errorf("%w: %q", ErrUnknownKernel, kernel)
}
