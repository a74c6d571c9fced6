//go:build js

package simdgemm

import (
	"fmt"
	"syscall/js"
	"unsafe"
)

// jsModule is the real gemm.wasm instance, driven through syscall/js.
type jsModule struct {
	exports, memory js.Value
	u8              js.Value // the Uint8Array constructor
	buf             js.Value // memory.buffer, replaced when the memory grows
	pack, gemm      js.Value
	heapBase        uint32
	pool            int      // threads the kernel pool has (1: no pool)
	setThreads      js.Value // nl_set_threads, with a pool
	threads         int      // threads in use
}

// Load wraps the exports of an instantiated gemm.wasm (the instance's
// exports object) as a Module, checking its ABI version.
func Load(exports js.Value) (Module, error) {
	if !exports.Truthy() {
		return nil, fmt.Errorf("%w: no exports object", ErrModule)
	}
	m := &jsModule{exports: exports, u8: js.Global().Get("Uint8Array")}
	for _, name := range []string{"memory", "nl_abi", "nl_heap_base", "nl_pack_b", "nl_gemm"} {
		if !exports.Get(name).Truthy() {
			return nil, fmt.Errorf("%w: export %q missing (rebuild gemm.wasm from wasm/simd/gemm.c)", ErrModule, name)
		}
	}
	if v := exports.Call("nl_abi").Int(); v != ABI {
		return nil, fmt.Errorf("%w: ABI %d, want %d (rebuild gemm.wasm from wasm/simd/gemm.c)", ErrModule, v, ABI)
	}
	m.memory = exports.Get("memory")
	m.buf = m.memory.Get("buffer")
	m.pack, m.gemm = exports.Get("nl_pack_b"), exports.Get("nl_gemm")
	m.heapBase = uint32(exports.Call("nl_heap_base").Int())
	m.pool, m.threads = 1, 1
	if size, set, cur := exports.Get("nl_pool_size"), exports.Get("nl_set_threads"), exports.Get("nl_threads"); size.Type() == js.TypeFunction &&
		set.Type() == js.TypeFunction && cur.Type() == js.TypeFunction {
		m.pool, m.setThreads, m.threads = max(1, size.Invoke().Int()), set, max(1, cur.Invoke().Int())
	}
	return m, nil
}

// PoolSize is the number of threads nl_gemm can run on: 2 with the pool
// that web/static/worker.js starts on a cross-origin isolated page, else 1.
func (m *jsModule) PoolSize() int { return m.pool }

// Threads is the number of threads nl_gemm runs on now.
func (m *jsModule) Threads() int { return m.threads }

// SetThreads makes nl_gemm run on n threads (1 up to PoolSize).
func (m *jsModule) SetThreads(n int) {
	if m.pool > 1 {
		m.threads = min(max(n, 1), m.pool)
		m.setThreads.Invoke(m.threads)
	}
}

func (m *jsModule) HeapBase() uint32 { return m.heapBase }

func (m *jsModule) Size() uint32 { return uint32(m.buf.Get("byteLength").Int()) }

func (m *jsModule) Grow(pages uint32) (ok bool) {
	defer func() {
		// memory.grow throws a RangeError when the engine refuses; syscall/js
		// turns the exception into a panic.
		if recover() != nil {
			ok = false
		}
		m.buf = m.memory.Get("buffer")
	}()
	m.memory.Call("grow", pages)
	return true
}

func (m *jsModule) view(off uint32, floats int) js.Value {
	return m.u8.New(m.buf, off, 4*floats)
}

func floatBytes(f []float32) []byte { return unsafe.Slice((*byte)(unsafe.Pointer(&f[0])), 4*len(f)) }

func (m *jsModule) Write(off uint32, src []float32) {
	if len(src) > 0 {
		js.CopyBytesToJS(m.view(off, len(src)), floatBytes(src))
	}
}

func (m *jsModule) Read(off uint32, dst []float32) {
	if len(dst) > 0 {
		js.CopyBytesToGo(floatBytes(dst), m.view(off, len(dst)))
	}
}

func (m *jsModule) PackB(b uint32, k, n int, dst uint32) { m.pack.Invoke(b, k, n, dst) }

func (m *jsModule) Gemm(a uint32, lda int, bp, bias, c, h uint32, ldc, mm, k, n int) {
	m.gemm.Invoke(a, lda, bp, bias, c, h, ldc, mm, k, n)
}
