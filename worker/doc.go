// Package worker is the worker loop shared by the native worker
// (`neurolov worker`) and the browser client: connect to the coordinator,
// authenticate with a signed challenge, take shards, run them on a Backend,
// send results, and reconnect with backoff when the connection drops.
//
// The coordinator grants a window of leases; the worker keeps them in a
// queue so that a fast backend never waits on a round trip. Inputs arrive
// inline or by content hash (sent once per connection as chunks and kept in
// a bounded LRU cache, so weights travel once); a worker missing a hashed
// tensor asks for it with Fetch. Results travel inline, or in chunks when
// large. Cancelled leases are dropped before or after computing.
//
// Backends plug in from the mains: CPU (here, pure Go, builds everywhere),
// OpenBLAS (shaders/blas) and WebGPU (shaders/gpu) natively, WebGPU and
// WASM SIMD in the browser. The worker package imports no cgo and no
// go-ethereum code, so it builds for GOOS=js.
package worker
