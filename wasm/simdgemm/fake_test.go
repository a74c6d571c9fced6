package simdgemm

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/neurolov/neurolov/shaders"
)

// fakeModule models gemm.wasm's ABI in Go over a byte slice, so that the
// Backend's bookkeeping (allocation, caching, layer chaining, growth) is
// tested natively; the real module is tested in node (see node_test.go).
type fakeModule struct {
	mem      []byte
	heapBase uint32
	maxPages uint32 // Grow refuses beyond this many pages (0: no limit)
	grows    int
	gemms    int
	packs    int
}

func newFake(base uint32, pages uint32) *fakeModule {
	return &fakeModule{mem: make([]byte, pages*PageBytes), heapBase: base}
}

func (f *fakeModule) HeapBase() uint32 { return f.heapBase }
func (f *fakeModule) Size() uint32     { return uint32(len(f.mem)) }

func (f *fakeModule) Grow(pages uint32) bool {
	if f.maxPages != 0 && uint32(len(f.mem))/PageBytes+pages > f.maxPages {
		return false
	}
	f.grows++
	f.mem = append(f.mem, make([]byte, pages*PageBytes)...)
	return true
}

// check panics on a copy outside the heap or, for the Backend's copies
// (which always start a block), at an unaligned offset.
func (f *fakeModule) check(off uint32, floats int, aligned bool) {
	if off < f.heapBase || int(off)+4*floats > len(f.mem) || (aligned && off%align != 0) {
		panic(fmt.Sprintf("fakeModule: bad block %d+%d floats", off, floats))
	}
}

func (f *fakeModule) Write(off uint32, src []float32) {
	f.check(off, len(src), true)
	f.write(off, src)
}

func (f *fakeModule) write(off uint32, src []float32) {
	f.check(off, len(src), false)
	for i, v := range src {
		binary.LittleEndian.PutUint32(f.mem[int(off)+4*i:], math.Float32bits(v))
	}
}

func (f *fakeModule) Read(off uint32, dst []float32) {
	f.check(off, len(dst), true)
	f.read(off, dst)
}

func (f *fakeModule) read(off uint32, dst []float32) {
	f.check(off, len(dst), false)
	for i := range dst {
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(f.mem[int(off)+4*i:]))
	}
}

func (f *fakeModule) floats(off uint32, n int) []float32 {
	out := make([]float32, n)
	f.read(off, out)
	return out
}

func (f *fakeModule) PackB(b uint32, k, n int, dst uint32) {
	f.packs++
	src := f.floats(b, k*n)
	packed := make([]float32, PackedLen(k, n))
	i := 0
	for j0 := 0; j0 < n; j0 += PanelWidth {
		for p := 0; p < k; p++ {
			for j := j0; j < j0+PanelWidth; j++ {
				if j < n {
					packed[i] = src[p*n+j]
				}
				i++
			}
		}
	}
	f.write(dst, packed)
}

func (f *fakeModule) Gemm(a uint32, lda int, bp, bias, c, h uint32, ldc, m, k, n int) {
	f.gemms++
	av := make([]float32, 0, m*k)
	for i := 0; i < m; i++ {
		av = append(av, f.floats(a+uint32(4*i*lda), k)...)
	}
	packed := f.floats(bp, PackedLen(k, n))
	bv := make([]float32, k*n)
	for j := 0; j < n; j++ {
		for p := 0; p < k; p++ {
			bv[p*n+j] = packed[(j/PanelWidth)*PanelWidth*k+p*PanelWidth+j%PanelWidth]
		}
	}
	bs := make([]float32, PackedLen(1, n))
	if bias != 0 {
		bs = f.floats(bias, len(bs))
	}
	cv := make([]float32, m*n)
	shaders.MatMulBiasReLUIn(cv, av, bv, bs, m, k, n, false)
	for i := 0; i < m; i++ {
		row := cv[i*n : i*n+n]
		f.write(c+uint32(4*i*ldc), row)
		if h != 0 {
			r := make([]float32, n)
			for j, v := range row {
				r[j] = max(v, 0)
			}
			f.write(h+uint32(4*i*ldc), r)
		}
	}
}
