// Package simdgemm runs the shard kernels ("matmul", "mlp-infer") on the
// WebAssembly SIMD GEMM of wasm/simd/gemm.c: the browser client's CPU
// backend, "cpu-wasm". Go emits no WASM SIMD, so the hot loop is C, built by
// clang (--target=wasm32 -msimd128) into gemm.wasm, loaded beside the Go
// client and called through syscall/js on memory the module owns.
//
// A shard copies each input into the module once (one js.CopyBytesToJS per
// tensor) and each output back once; weights (B of matmul, W_l and b_l of
// mlp-infer) are packed into panels of 8 columns on first use and stay
// resident across shards, keyed by content hash (tensor.Hash, computed once
// per tensor object: the worker hands out the same object for every shard
// that names a cached weight), up to Options.CacheBytes. An MLP layer
// writes Z_l (an output) and relu(Z_l) (the next layer's input) in the same
// pass. The summation order and roundings are those of the Go reference
// (shaders.MatMulBiasReLUIn), so results agree with it, well within the
// float32 bound of shaders.BoundMatMul (bit for bit in the tests).
//
// On a cross-origin isolated page the client's worker may instead load
// gemm-shared.wasm, the same kernel on a shared memory, and split each
// nl_gemm call by rows with a helper worker (web/static/worker.js and
// gemm-helper.js); the Module then reports its pool (PoolSize, Threads,
// SetThreads) and Backend.SetThreads chooses how many threads run.
//
// The package is portable: Backend drives any Module; Load (GOOS=js) wraps
// the real gemm.wasm. Native tests use a Go model of the module; the real
// module is tested in node by TestWasmInNode, which builds it with clang
// and runs the GOOS=js tests and benchmarks through go_js_wasm_exec.
package simdgemm
