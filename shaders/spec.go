package shaders

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

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
// outputs a correct result has. It is the one shape rule: the planner, the
// HTTP API, the SDK and every backend consult it. Every tensor must have the
// kernel's rank (matmul: A m×k and B k×n; mlp-infer: X b×d0, then W_l
// d_{l-1}×d_l and b_l of d_l per layer) and every dimension must be at
// least 1: an empty or degenerate shape (a k of 0, a layer of width 0) is
// refused here, before any work, because nothing downstream has anything
// to compute or check on it. Errors wrap ErrInputs and name the tensor by
// its API name (A, B, X, W1, b1, …).
func OutputShapes(kernel string, inputs []*tensor.Tensor) ([][]int, error) {
	switch kernel {
	case Matmul:
		if len(inputs) != 2 {
			return nil, fmt.Errorf("%w: matmul takes 2 inputs, got %d", ErrInputs, len(inputs))
		}
		a, b := inputs[0], inputs[1]
		if err := checkDims("A", a, 2); err != nil {
			return nil, err
		}
		if err := checkDims("B", b, 2); err != nil {
			return nil, err
		}
		if b.Rows() != a.Cols() {
			return nil, fmt.Errorf("%w: A is %s but B is %s: B needs as many rows as A has columns (%d rows)", ErrInputs, dims(a.Shape), dims(b.Shape), a.Cols())
		}
		return [][]int{{a.Rows(), b.Cols()}}, nil
	case MLPInfer:
		if len(inputs) < 3 || len(inputs)%2 != 1 {
			return nil, fmt.Errorf("%w: mlp-infer takes X and (W, b) pairs, got %d inputs", ErrInputs, len(inputs))
		}
		x := inputs[0]
		if err := checkDims("X", x, 2); err != nil {
			return nil, err
		}
		width := x.Cols()
		var out [][]int
		for l := 1; l < len(inputs); l += 2 {
			if err := checkLayer(l/2+1, inputs[l], inputs[l+1], width); err != nil {
				return nil, err
			}
			width = inputs[l].Cols()
			out = append(out, []int{x.Rows(), width})
		}
		return out, nil
	}
	return nil, fmt.Errorf("%w: %q", ErrUnknownKernel, kernel)
}

// checkLayer checks mlp-infer layer n's W and b against the width of what
// feeds it.
func checkLayer(n int, w, b *tensor.Tensor, width int) error {
	wn, bn := fmt.Sprintf("W%d", n), fmt.Sprintf("b%d", n)
	if err := checkDims(wn, w, 2); err != nil {
		return err
	}
	if err := checkDims(bn, b, 1); err != nil {
		return err
	}
	if w.Rows() != width {
		return fmt.Errorf("%w: %s is %s but what feeds it is %d wide: %s needs %d rows", ErrInputs, wn, dims(w.Shape), width, wn, width)
	}
	if b.Shape[0] != w.Cols() {
		return fmt.Errorf("%w: %s has %d elements but %s is %s: %s needs %d, one per column of %s", ErrInputs, bn, b.Shape[0], wn, dims(w.Shape), bn, w.Cols(), wn)
	}
	return nil
}

// checkDims reports a missing tensor, one whose rank is not rank, or one
// with a dimension under 1.
func checkDims(name string, t *tensor.Tensor, rank int) error {
	if t == nil {
		return fmt.Errorf("%w: %s is missing", ErrInputs, name)
	}
	if len(t.Shape) != rank {
		return fmt.Errorf("%w: %s is %s: want %d-D", ErrInputs, name, dims(t.Shape), rank)
	}
	for _, d := range t.Shape {
		if d < 1 {
			return fmt.Errorf("%w: %s is %s: every dimension must be at least 1 (an empty tensor leaves nothing to compute)", ErrInputs, name, dims(t.Shape))
		}
	}
	return nil
}

// dims writes a shape as people do: 32768×0, or "a scalar" for rank 0.
func dims(shape []int) string {
	if len(shape) == 0 {
		return "a scalar"
	}
	parts := make([]string, len(shape))
	for i, d := range shape {
		parts[i] = strconv.Itoa(d)
	}
	return strings.Join(parts, "×")
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
