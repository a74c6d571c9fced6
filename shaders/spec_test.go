package shaders_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/neurolov/neurolov/shaders"
	"github.com/neurolov/neurolov/tensor"
)

// TestOutputShapesRefusesEmptyAndDegenerate: the one shape rule refuses
// every dimension under 1 and every rank or size that does not fit, and
// passes the smallest real shapes.
func TestOutputShapesRefusesEmptyAndDegenerate(t *testing.T) {
	n := tensor.New
	for _, tc := range []struct {
		kernel string
		inputs []*tensor.Tensor
		want   [][]int // nil: refused with ErrInputs
	}{
		{shaders.Matmul, []*tensor.Tensor{n(1, 1), n(1, 1)}, [][]int{{1, 1}}},
		{shaders.Matmul, []*tensor.Tensor{n(32768, 0), n(0, 32768)}, nil},
		{shaders.Matmul, []*tensor.Tensor{n(0, 2), n(2, 3)}, nil},
		{shaders.Matmul, []*tensor.Tensor{n(2, 2), n(2, 0)}, nil},
		{shaders.Matmul, []*tensor.Tensor{n(2, 2), n(3, 2)}, nil},
		{shaders.Matmul, []*tensor.Tensor{n(2, 2, 1), n(2, 2)}, nil},
		{shaders.Matmul, []*tensor.Tensor{n(2, 2), nil}, nil},
		{shaders.MLPInfer, []*tensor.Tensor{n(1, 1), n(1, 1), n(1)}, [][]int{{1, 1}}},
		{shaders.MLPInfer, []*tensor.Tensor{n(4, 3), n(3, 0), n(0), n(0, 2), n(2)}, nil},
		{shaders.MLPInfer, []*tensor.Tensor{n(0, 3), n(3, 2), n(2)}, nil},
		{shaders.MLPInfer, []*tensor.Tensor{n(4, 3), n(3, 2), n(3)}, nil},
		{shaders.MLPInfer, []*tensor.Tensor{n(4, 3), n(3, 2), n(1, 2)}, nil},
		{shaders.MLPInfer, []*tensor.Tensor{n(4, 3), n(3, 2), n(2), n(3, 1), n(1)}, nil},
	} {
		got, err := shaders.OutputShapes(tc.kernel, tc.inputs)
		if tc.want == nil {
			if !errors.Is(err, shaders.ErrInputs) {
				t.Errorf("%s %v: got %v, %v; want ErrInputs", tc.kernel, tc.inputs, got, err)
			}
			continue
		}
		if err != nil || !slices.EqualFunc(got, tc.want, slices.Equal[[]int]) {
			t.Errorf("%s %v: got %v, %v; want %v", tc.kernel, tc.inputs, got, err, tc.want)
		}
	}
}
