// Package browserbench measures the browser client on the MLP shard
// (784-512-256-10, batch 256) for `neurolov bench browser`: in a headless
// Chromium tab on WebGPU (SwiftShader on a machine without a GPU), in a tab
// on the WASM SIMD CPU kernel (one thread), and on the native OpenBLAS
// worker (shaders/blas.RunInto), each the median of five timed runs after a
// warm-up, end to end: copies and Go glue included.
//
// The tabs load the volunteer page from web.Handler, served on a loopback
// port, and time the shard through the page's neurolovPage.bench, which
// relays to globalThis.neurolov.bench in the client's Web Worker. Run needs
// chromium (make deps) and the client's build outputs (make wasm).
package browserbench
