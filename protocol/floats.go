package protocol

import "math"

// Tensor data travels as raw little-endian IEEE-754 float32 values. On
// little-endian targets (amd64, arm64, wasm, ...) floats_le.go moves it with
// one memory copy on encode and no copy at all on decode (the decoded slice
// views the frame); elsewhere floats_be.go uses the portable loops below.
// BenchmarkFloats compares the two.

// appendFloatsPortable appends data to b as little-endian float32 bytes.
func appendFloatsPortable(b []byte, data []float32) []byte {
	for _, v := range data {
		b = le.AppendUint32(b, math.Float32bits(v))
	}
	return b
}

// decodeFloatsPortable decodes len(p)/4 little-endian float32 values from p
// into dst, growing it as needed, and returns the decoded values.
func decodeFloatsPortable(dst []float32, p []byte) []float32 {
	n := len(p) / 4
	if cap(dst) < n {
		dst = make([]float32, n)
	}
	dst = dst[:n]
	for i := range dst {
		dst[i] = math.Float32frombits(le.Uint32(p[4*i:]))
	}
	return dst
}
