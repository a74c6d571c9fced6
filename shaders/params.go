package shaders

import "unsafe"

// The uniform parameter structs of the kernels. Each mirrors a struct in
// wgsl/params.wgsl field for field (the names match case-insensitively) and
// follows WGSL's uniform layout: 4-byte scalars at 4-byte alignment, sizes a
// multiple of 16 (explicit pad fields). TestParamsLayout checks every offset
// and size against the WGSL declaration.

// MatMulParams drives matmul_reg and matmul_tile. Element (i, p) of op(A)
// is a[i*ARowStride + p*AColStride] and (p, j) of op(B) is
// b[p*BRowStride + j*BColStride], so transposes are strides. A dispatch
// computes rows [Row0, Row0+Rows) of the m×n output C.
type MatMulParams struct {
	M, N, K, Row0          uint32
	ARowStride, AColStride uint32
	BRowStride, BColStride uint32
	Act, ReLUIn, HasBias   uint32
	Rows                   uint32
}

// RowParams drives the one-workgroup-per-row kernels: softmax, xent (Scale
// multiplies the gradient) and layernorm (Eps).
type RowParams struct {
	Rows, Cols uint32
	Scale, Eps float32
}

// ReduceParams drives reduce: Axis 0 sums over rows (one sum per column),
// Axis 1 over columns (one per row).
type ReduceParams struct {
	Rows, Cols, Axis, Pad0 uint32
}

// ElemParams drives the elementwise kernels: axpby (Alpha, Beta) and
// act_backward (Act).
type ElemParams struct {
	N, Act      uint32
	Alpha, Beta float32
}

// SGDParams drives sgd.
type SGDParams struct {
	N, Pad0                   uint32
	LR, Momentum, WeightDecay float32
	Pad1, Pad2, Pad3          uint32
}

// AdamParams drives adam; C1 and C2 are the bias corrections
// 1/(1−Beta1^t) and 1/(1−Beta2^t) of step t.
type AdamParams struct {
	N, Pad0                       uint32
	LR, Beta1, Beta2, Eps, C1, C2 float32
	WeightDecay                   float32
	Pad1, Pad2, Pad3              uint32
}

// Im2ColParams drives im2col (see ConvGeom).
type Im2ColParams struct {
	Batch, Ch, H, W  uint32
	KH, KW           uint32
	StrideH, StrideW uint32
	PadH, PadW       uint32
	OutH, OutW       uint32
}

// Params is the set of uniform parameter structs.
type Params interface {
	MatMulParams | RowParams | ReduceParams | ElemParams | SGDParams | AdamParams | Im2ColParams
}

// ParamBytes returns the bytes of p as the GPU reads them (little-endian,
// which every WebGPU host is).
func ParamBytes[P Params](p *P) []byte {
	return append([]byte(nil), unsafe.Slice((*byte)(unsafe.Pointer(p)), unsafe.Sizeof(*p))...)
}

// NewMatMulParams returns the parameters of the whole product
// C = act(f(op(A))·op(B) + bias) with op(A) m×k and op(B) k×n.
func NewMatMulParams(m, k, n int, o MatMulOpts, hasBias bool) MatMulParams {
	p := MatMulParams{M: uint32(m), N: uint32(n), K: uint32(k), Rows: uint32(m), Act: uint32(o.Act)}
	if o.TransA { // A stored k×m
		p.ARowStride, p.AColStride = 1, uint32(m)
	} else {
		p.ARowStride, p.AColStride = uint32(k), 1
	}
	if o.TransB { // B stored n×k
		p.BRowStride, p.BColStride = 1, uint32(k)
	} else {
		p.BRowStride, p.BColStride = uint32(n), 1
	}
	if o.ReLUIn {
		p.ReLUIn = 1
	}
	if hasBias {
		p.HasBias = 1
	}
	return p
}
