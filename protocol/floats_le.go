//go:build 386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64 || wasm

package protocol

import "unsafe"

// nativeLittleEndian reports whether float32 values are stored little-endian
// in memory, so that tensor bytes can be viewed in place.
const nativeLittleEndian = true

// appendFloats appends data to b as little-endian float32 bytes: one copy.
func appendFloats(b []byte, data []float32) []byte {
	if len(data) == 0 {
		return b
	}
	return append(b, unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(data))), 4*len(data))...)
}

// viewFloats returns the little-endian float32 values in p (len(p) is a
// multiple of 4) without copying: the result shares memory with p, which may
// be unaligned (float32 holds no pointers, and every listed target loads
// unaligned floats). scratch is unused here.
func viewFloats(p []byte, scratch *[]float32) []float32 {
	if len(p) == 0 {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(p))), len(p)/4)
}
