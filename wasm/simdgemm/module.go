package simdgemm

// ABI is the version of gemm.wasm's interface (its nl_abi export) this
// package speaks.
const ABI = 1

// PanelWidth is the number of columns of B per packed panel (NR in
// gemm.c): packed B and padded biases hold a multiple of it.
const PanelWidth = 8

// PageBytes is the size of a WebAssembly memory page.
const PageBytes = 64 << 10

// Module is gemm.wasm as the Backend drives it: its linear memory and its
// exports. Offsets are byte addresses in that memory; 0 means "none". Load
// (GOOS=js) wraps the real module; tests substitute fakes.
type Module interface {
	// HeapBase is the first byte the Backend may allocate (nl_heap_base).
	HeapBase() uint32
	// Size is the memory's current size in bytes.
	Size() uint32
	// Grow adds pages of 64 KiB to the memory, reporting false when the
	// engine refuses.
	Grow(pages uint32) bool
	// Write copies src into the memory at off.
	Write(off uint32, src []float32)
	// Read copies len(dst) floats from the memory at off into dst.
	Read(off uint32, dst []float32)
	// PackB packs the row-major k×n matrix at b into panels at dst
	// (nl_pack_b; dst holds PackedLen(k, n) floats).
	PackB(b uint32, k, n int, dst uint32)
	// Gemm computes C = A·B + bias and, when h ≠ 0, H = relu(C)
	// (nl_gemm): A is m×k with row stride lda, bp the packed B, bias
	// n floats padded with zeros to a multiple of PanelWidth (0: none), C
	// and H m×n with row stride ldc.
	Gemm(a uint32, lda int, bp, bias, c, h uint32, ldc, m, k, n int)
}

// PackedLen returns the floats of B (k×n) once packed into panels.
func PackedLen(k, n int) int { return (n + PanelWidth - 1) / PanelWidth * PanelWidth * k }
