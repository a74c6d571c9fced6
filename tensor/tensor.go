// Package tensor holds the float32 tensor type that travels between the
// coordinator and its workers, and reads and writes the safetensors format
// used by the HTTP API.
//
// A Tensor is a shape and a flat, row-major slice of float32. It has no
// device state and no methods that allocate behind the caller's back beyond
// the documented constructors, so it is safe to hand to a GPU upload, a BLAS
// call or the wire encoder alike.
package tensor

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// ErrShape reports a shape that does not match the data or the operation.
var ErrShape = errors.New("tensor: shape mismatch")

// MaxDims is the largest rank a tensor may have.
const MaxDims = 8

// Tensor is a dense, row-major float32 tensor.
type Tensor struct {
	Shape []int
	Data  []float32
}

// New returns a zeroed tensor of the given shape.
// It panics on a negative dimension (a programmer error).
func New(shape ...int) *Tensor {
	n := NumElements(shape)
	if n < 0 {
		panic(fmt.Sprintf("tensor.New: bad shape %v", shape))
	}
	return &Tensor{Shape: append([]int(nil), shape...), Data: make([]float32, n)}
}

// FromData wraps data (not copied) in a tensor of the given shape.
func FromData(data []float32, shape ...int) (*Tensor, error) {
	if n := NumElements(shape); n < 0 || n != len(data) {
		return nil, fmt.Errorf("%w: shape %v holds %d elements, data has %d", ErrShape, shape, n, len(data))
	}
	return &Tensor{Shape: append([]int(nil), shape...), Data: data}, nil
}

// NumElements returns the product of shape, or -1 when a dimension is
// negative, the rank exceeds MaxDims, or the product overflows int32 range
// of elements (a tensor larger than 8 GiB is refused everywhere).
func NumElements(shape []int) int {
	if len(shape) > MaxDims {
		return -1
	}
	n := 1
	for _, d := range shape {
		if d < 0 {
			return -1
		}
		if d != 0 && n > math.MaxInt32/d {
			return -1
		}
		n *= d
	}
	return n
}

// Len returns the number of elements.
func (t *Tensor) Len() int { return len(t.Data) }

// Rows returns the first dimension of a 2-D tensor (1 for a vector).
func (t *Tensor) Rows() int {
	if len(t.Shape) == 1 {
		return 1
	}
	return t.Shape[0]
}

// Cols returns the last dimension of a tensor.
func (t *Tensor) Cols() int { return t.Shape[len(t.Shape)-1] }

// Is2D reports whether t has rank 2 and the given shape (a dimension of -1
// matches anything).
func (t *Tensor) Is2D(rows, cols int) bool {
	return len(t.Shape) == 2 && (rows < 0 || t.Shape[0] == rows) && (cols < 0 || t.Shape[1] == cols)
}

// Clone returns a deep copy of t.
func (t *Tensor) Clone() *Tensor {
	return &Tensor{Shape: append([]int(nil), t.Shape...), Data: append([]float32(nil), t.Data...)}
}

// At returns element (i, j) of a 2-D tensor.
func (t *Tensor) At(i, j int) float32 { return t.Data[i*t.Shape[1]+j] }

// Hash returns the content hash of t: SHA-256 over the rank, the dimensions
// and the little-endian data. Weights are cached by this hash on workers.
func (t *Tensor) Hash() [32]byte {
	h := sha256.New()
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(len(t.Shape)))
	h.Write(b[:])
	for _, d := range t.Shape {
		binary.LittleEndian.PutUint64(b[:], uint64(d))
		h.Write(b[:])
	}
	buf := make([]byte, 0, 4096)
	for i, v := range t.Data {
		buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
		if len(buf) == cap(buf) || i == len(t.Data)-1 {
			h.Write(buf)
			buf = buf[:0]
		}
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// AllFinite reports whether every element is neither NaN nor ±Inf.
func (t *Tensor) AllFinite() bool {
	for _, v := range t.Data {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return false
		}
	}
	return true
}

// SameShape reports whether a and b have identical shapes.
func SameShape(a, b *Tensor) bool {
	if len(a.Shape) != len(b.Shape) {
		return false
	}
	for i := range a.Shape {
		if a.Shape[i] != b.Shape[i] {
			return false
		}
	}
	return true
}
