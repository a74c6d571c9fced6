//go:build !(386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64 || wasm)

package protocol

// nativeLittleEndian reports whether float32 values are stored little-endian
// in memory, so that tensor bytes can be viewed in place.
const nativeLittleEndian = false

// appendFloats appends data to b as little-endian float32 bytes.
func appendFloats(b []byte, data []float32) []byte { return appendFloatsPortable(b, data) }

// viewFloats decodes the little-endian float32 values in p into the
// decoder's scratch space (appending, so earlier views stay intact) and
// returns them.
func viewFloats(p []byte, scratch *[]float32) []float32 {
	if len(p) == 0 {
		return nil
	}
	start := len(*scratch)
	*scratch = append(*scratch, make([]float32, len(p)/4)...)
	out := (*scratch)[start:len(*scratch):len(*scratch)]
	return decodeFloatsPortable(out, p)
}
