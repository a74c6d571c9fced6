// Package browser is the Neurolov compute client that runs in a browser
// tab: compiled with GOOS=js GOARCH=wasm (wasm/cmd/neurolov-wasm) and run
// inside the dedicated Web Worker web/static/worker.js, so that the page
// stays responsive. It drives the shared worker loop (package worker) with
// a backend chosen by measurement, applies the volunteer's pause and
// compute share, and reports status to the page.
//
// # JavaScript API
//
// Main registers globalThis.neurolov; worker.js relays the page's messages
// to it (the browser contract, issue 4):
//
//	neurolov.start({coordinator, backend, share, identity: {kind, address}})
//	neurolov.stop()
//	neurolov.pause()  neurolov.resume()  neurolov.setShare(0..1)
//	neurolov.provideSignature(id, "0x…65 bytes", errorText)
//	neurolov.status()  → the last status object
//	neurolov.bench({kernel, backend, runs, batch}) → Promise of
//	    {kernel, backend, device, batch, flops, gflops (median), runs: [GFLOP/s…]}
//
// Every function returns at once; work that blocks on promises (WebGPU,
// IndexedDB, fetch) runs in goroutines. The client posts to the page
// {type:"status", state, backend, device, adapter, gflopsWebGPU, gflopsCPU,
// address, shardsDone, verified, rejected, gflopsLive, earnedFLOPs, share,
// message} (state changes at once, counters at most every 250 ms) and, for a
// wallet identity, {type:"sign", id, message}.
//
// # An upgraded coordinator
//
// A coordinator refuses a client of another protocol version with the close
// status wsio.StatusVersion (worker.ErrVersion). Reconnecting would be
// refused again, and the page that serves the matching client comes from
// the same coordinator, so the client stops with state "reload" and the
// message "reload this page: the coordinator was upgraded …"; the page
// asks the volunteer to reload.
//
// # Choosing the backend by measurement
//
// Start opens the WASM SIMD CPU backend (wasm/simdgemm on gemm.wasm) and,
// unless the page forces "cpu-wasm", WebGPU (shaders/gpu; the adapter's
// vendor, architecture, description and isFallbackAdapter are read from
// adapter.info). It times the MLP shard 784-512-256-10 at batch 256 on each,
// end to end (copies and Go glue included), and uses the faster ("auto"), or
// the one the page forces. Both figures are reported; a software adapter
// such as SwiftShader is a CPU and loses to SIMD. Without navigator.gpu or an
// adapter, "auto" uses the CPU and says why; a forced "webgpu" stops with an
// error instead. The CPU backend falls back to the Go kernels if gemm.wasm
// did not load (it says so in the device name).
//
// # Device lost
//
// The GPU backend wraps errors of a lost device in ErrDeviceLost. The shard
// that met the loss is finished on the CPU and its result sent as usual;
// the client then switches to the CPU for good and reconnects, so that the
// coordinator sees backend cpu-wasm (and the CPU's speed) in the new
// handshake. Any other GPU error also finishes that shard on the CPU, but
// keeps the GPU.
//
// # Pause and duty cycle
//
// The worker's backend waits at a gate before each shard. Pause closes it:
// the shard in flight finishes and is sent, queued leases wait; a pause
// longer than 10 s disconnects (after the last result is written), so that
// the coordinator re-issues the leases at once, and Resume reconnects. The
// share s is a duty cycle: after a shard that computed for d, the next one
// starts no sooner than d·(1−s)/s later, so compute time over wall time is
// about s; a share of 0 holds like a pause.
//
// # Identity
//
// "local": a secp256k1 key generated in the worker and kept in IndexedDB
// (database "neurolov", store "neurolov", key "identity", as hex) by
// worker.js's neurolovKeyStore; without IndexedDB the key lasts for the
// session. "wallet": the page's EIP-1193 wallet signs the coordinator's
// challenge: the client posts {type:"sign"} and waits for the page's
// {type:"signature"} (every connection asks again).
//
// # Figures
//
// shardsDone, rejected and gflopsLive (the speed of recent shards while
// computing) come from the worker's events; verified and earnedFLOPs from
// the coordinator's GET /v1/ledger (same origin), polled every 5 s while
// connected.
package browser
