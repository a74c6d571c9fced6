package blas

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"
	"unsafe"

	"github.com/neurolov/neurolov/shaders"
	"github.com/neurolov/neurolov/tensor"
)

// ErrUnavailable is returned by every OpenBLAS call in a build without cgo.
var ErrUnavailable = errors.New("blas: built without cgo: OpenBLAS unavailable, using the pure-Go kernels")

// ErrShape reports dimensions, slice lengths or output tensors that do not
// fit the operation, or an output that overlaps an input.
var ErrShape = errors.New("blas: bad shape")

// maxDim is the largest dimension OpenBLAS's 32-bit integers can take.
const maxDim = math.MaxInt32

// Sgemm computes c = a·b for row-major a (m×k), b (k×n) and c (m×n) with
// OpenBLAS. c is overwritten and must not overlap a or b; each slice must
// hold at least the elements its shape needs (only that prefix is used).
func Sgemm(c, a, b []float32, m, k, n int) error {
	if !Available() {
		return ErrUnavailable
	}
	if err := checkGemm(c, a, b, m, k, n); err != nil {
		return err
	}
	switch {
	case m == 0 || n == 0:
	case k == 0:
		clear(c[:m*n])
	default:
		gemm(c, a, b, m, k, n, 0)
	}
	return nil
}

// MatMulBiasReLUIn computes z = f(h)·w + bias with OpenBLAS, where f is relu
// when reluInput is set and the identity otherwise: h is m×k, w is k×n, bias
// has n elements and z is m×n, all row-major. It has the semantics of
// shaders.MatMulBiasReLUIn (see the package comment for the rounding and
// non-finite differences). z is overwritten and must not overlap h, w or
// bias; h is never modified.
func MatMulBiasReLUIn(z, h, w, bias []float32, m, k, n int, reluInput bool) error {
	if !Available() {
		return ErrUnavailable
	}
	if err := checkGemm(z, h, w, m, k, n); err != nil {
		return err
	}
	if len(bias) < n {
		return fmt.Errorf("%w: bias has %d elements, want %d", ErrShape, len(bias), n)
	}
	if overlap(z[:m*n], bias[:n]) {
		return fmt.Errorf("%w: output overlaps the bias", ErrShape)
	}
	if m == 0 || n == 0 {
		return nil
	}
	for i := 0; i < m; i++ {
		copy(z[i*n:i*n+n], bias[:n])
	}
	if k == 0 {
		return nil
	}
	in := h[:m*k]
	if !reluInput {
		gemm(z, in, w, m, k, n, 1)
		return nil
	}
	buf := scratch(m * k)
	reluCopy(*buf, in)
	gemm(z, *buf, w, m, k, n, 1)
	scratchPool.Put(buf)
	return nil
}

// RunInto runs kernel ("matmul" or "mlp-infer") on inputs through OpenBLAS
// and writes the results into outs, which must have exactly the shapes
// shaders.OutputShapes returns. It mirrors shaders.RunInto, but checks
// inputs and outputs first (with shaders.OutputShapes, whose few small
// slices are all it allocates) since OpenBLAS must not run past a slice.
func RunInto(kernel string, inputs, outs []*tensor.Tensor) error {
	if !Available() {
		return ErrUnavailable
	}
	shapes, err := shaders.OutputShapes(kernel, inputs)
	if err != nil {
		return fmt.Errorf("blas: run %s: %w", kernel, err)
	}
	if len(outs) != len(shapes) {
		return fmt.Errorf("%w: %s has %d outputs, got %d", ErrShape, kernel, len(shapes), len(outs))
	}
	for i, s := range shapes {
		if outs[i] == nil || !slices.Equal(outs[i].Shape, s) || len(outs[i].Data) != tensor.NumElements(s) {
			return fmt.Errorf("%w: %s output %d must have shape %v", ErrShape, kernel, i, s)
		}
	}
	switch kernel {
	case shaders.Matmul:
		a, b := inputs[0], inputs[1]
		if err := Sgemm(outs[0].Data, a.Data, b.Data, a.Rows(), a.Cols(), b.Cols()); err != nil {
			return fmt.Errorf("blas: run %s: %w", kernel, err)
		}
		return nil
	case shaders.MLPInfer:
		h := inputs[0]
		for l := range outs {
			w, bias, z := inputs[1+2*l], inputs[2+2*l], outs[l]
			if l > 0 {
				h = outs[l-1]
			}
			if err := MatMulBiasReLUIn(z.Data, h.Data, w.Data, bias.Data, h.Rows(), w.Rows(), w.Cols(), l > 0); err != nil {
				return fmt.Errorf("blas: run %s layer %d: %w", kernel, l+1, err)
			}
		}
		return nil
	}
	return fmt.Errorf("blas: run: %w: %q", shaders.ErrUnknownKernel, kernel)
}

// GFLOPS returns the rate of flops floating-point operations done in d, in
// GFLOP/s, or 0 when d is not positive.
func GFLOPS(flops float64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return flops / d.Seconds() / 1e9
}

// checkGemm checks the dimensions and slice lengths of c = a·b and that c
// overlaps neither operand, so that nothing past a slice reaches C code.
func checkGemm(c, a, b []float32, m, k, n int) error {
	if m < 0 || k < 0 || n < 0 || m > maxDim || k > maxDim || n > maxDim {
		return fmt.Errorf("%w: dimensions %d×%d×%d", ErrShape, m, k, n)
	}
	switch {
	case len(a) < m*k:
		return fmt.Errorf("%w: %d×%d input has %d elements", ErrShape, m, k, len(a))
	case len(b) < k*n:
		return fmt.Errorf("%w: %d×%d input has %d elements", ErrShape, k, n, len(b))
	case len(c) < m*n:
		return fmt.Errorf("%w: %d×%d output has %d elements", ErrShape, m, n, len(c))
	}
	if overlap(c[:m*n], a[:m*k]) || overlap(c[:m*n], b[:k*n]) {
		return fmt.Errorf("%w: output overlaps an input", ErrShape)
	}
	return nil
}

// overlap reports whether x and y share memory.
func overlap(x, y []float32) bool {
	if len(x) == 0 || len(y) == 0 {
		return false
	}
	const size = unsafe.Sizeof(float32(0))
	xs, ys := uintptr(unsafe.Pointer(unsafe.SliceData(x))), uintptr(unsafe.Pointer(unsafe.SliceData(y)))
	return xs < ys+uintptr(len(y))*size && ys < xs+uintptr(len(x))*size
}

// scratchPool holds *[]float32 buffers for relu'd copies of layer inputs.
var scratchPool = sync.Pool{New: func() any { return new([]float32) }}

// scratch returns a pooled buffer of length n; put it back in scratchPool.
func scratch(n int) *[]float32 {
	buf := scratchPool.Get().(*[]float32)
	if cap(*buf) < n {
		*buf = make([]float32, n)
	}
	*buf = (*buf)[:n]
	return buf
}
