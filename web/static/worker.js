// worker.js: the Neurolov browser compute client's dedicated Web Worker.
//
// It loads Go's wasm_exec.js, the SIMD GEMM kernel (gemm.wasm) and the Go
// client (neurolov.wasm, package wasm/browser), then relays the page's
// messages to the Go API (globalThis.neurolov) and the client's messages
// back to the page (the Go client calls postMessage itself).
//
// Asset URLs come from this script's query string (wasm_exec, client,
// kernel, and kernel_shared and helper for the two-thread kernel pool: the
// content-hashed URLs the page is given), and default to dist/<name>
// beside this script.
//
// Page → worker:
//   {type:"start", coordinator, backend, share, identity:{kind, address}}
//   {type:"pause"} {type:"resume"} {type:"share", value}
//   {type:"signature", id, signature} | {type:"signature", id, error}
//   {type:"bench", id, backend, kernel, runs, batch, threads}
//   {type:"stop"} {type:"status"}
// Worker → page:
//   {type:"status", state, backend, device, adapter, gflopsWebGPU, gflopsCPU,
//    address, shardsDone, verified, rejected, gflopsLive, earnedFLOPs, share,
//    message}
//   {type:"sign", id, message}
//   {type:"bench-result", id, result:{kernel, backend, device, batch, flops,
//    gflops, runs}} | {type:"bench-result", id, error}
"use strict";

const params = new URL(self.location.href).searchParams;
function asset(param, name) {
  return new URL(params.get(param) || "dist/" + name, self.location.href).href;
}

// --- the local identity's key store (IndexedDB) ------------------------------

const DB_NAME = "neurolov", STORE = "neurolov", KEY = "identity";

function openDB() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB_NAME, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function inStore(mode, f) {
  return openDB().then((db) => new Promise((resolve, reject) => {
    const tx = db.transaction(STORE, mode);
    const req = f(tx.objectStore(STORE));
    tx.oncomplete = () => { db.close(); resolve(req.result); };
    tx.onerror = tx.onabort = () => { db.close(); reject(tx.error || req.error); };
  }));
}

if (typeof indexedDB !== "undefined") {
  // load() resolves with the key as hex, or null; save(hex) stores it.
  globalThis.neurolovKeyStore = {
    load: () => inStore("readonly", (s) => s.get(KEY)).then((v) => (typeof v === "string" ? v : null)),
    save: (hex) => inStore("readwrite", (s) => s.put(hex, KEY)).then(() => undefined),
  };
}

// --- messages ----------------------------------------------------------------

let ready = false;
const queued = [];

function errText(e) {
  return String((e && e.message) || e);
}

function handle(m) {
  const api = globalThis.neurolov;
  switch (m && m.type) {
    case "start": api.start(m); break;
    case "stop": api.stop(); break;
    case "pause": api.pause(); break;
    case "resume": api.resume(); break;
    case "share": api.setShare(Number(m.value)); break;
    case "signature": api.provideSignature(m.id, m.signature || "", m.error ? String(m.error) : ""); break;
    case "status": postMessage(api.status()); break;
    case "bench":
      api.bench(m).then(
        (result) => postMessage({ type: "bench-result", id: m.id, result }),
        (e) => postMessage({ type: "bench-result", id: m.id, error: errText(e) }));
      break;
  }
}

self.onmessage = (ev) => {
  if (ready) handle(ev.data);
  else queued.push(ev.data);
};

function failed(message) {
  postMessage({ type: "status", state: "error", message });
  // Answer waiting benchmarks too.
  for (const m of queued.splice(0)) {
    if (m && m.type === "bench") postMessage({ type: "bench-result", id: m.id, error: message });
  }
}

// --- loading -----------------------------------------------------------------

async function instantiate(url, imports) {
  try {
    return await WebAssembly.instantiateStreaming(fetch(url), imports);
  } catch (e) {
    // A server that does not send application/wasm: compile from bytes.
    const r = await fetch(url);
    if (!r.ok) throw new Error(url + ": HTTP " + r.status);
    return await WebAssembly.instantiate(await r.arrayBuffer(), imports);
  }
}

// The GEMM kernel's pool: on a cross-origin isolated page (which may share
// memory between threads) with more than one core, gemm-shared.wasm runs
// on a shared memory in this worker and in one helper worker
// (gemm-helper.js), and each nl_gemm call is split by rows between them.
// The Go client sees the same exports as gemm.wasm's, plus nl_pool_size(),
// nl_threads() and nl_set_threads(n).
const POOL_MIN_ROWS = 16; // smaller calls stay on this thread

async function pooledGemm() {
  const url = params.get("kernel_shared"), helperURL = params.get("helper");
  if (!self.crossOriginIsolated || !url || !helperURL || (navigator.hardwareConcurrency || 1) < 2) return null;
  const memory = new WebAssembly.Memory({ initial: 32, maximum: 32768, shared: true });
  const module = await WebAssembly.compileStreaming(fetch(new URL(url, self.location.href)));
  const main = await WebAssembly.instantiate(module, { env: { memory } });
  // The helper's stack: the lower half of the kernel's 64 KiB stack, below
  // this thread's (the kernel uses a few hundred bytes of stack at most).
  const stack = main.exports.__stack_pointer.value - 32768;
  const control = new SharedArrayBuffer(64);
  const ctl = new Int32Array(control);
  const helper = new Worker(new URL(helperURL, self.location.href));
  await new Promise((resolve, reject) => {
    helper.onmessage = (ev) => (ev.data && ev.data.ready ? resolve() : reject(new Error(ev.data && ev.data.error)));
    helper.onerror = (ev) => reject(new Error(ev.message || "the helper worker failed"));
    helper.postMessage({ module, memory, control, stack });
  });
  const gemm = main.exports.nl_gemm;
  const exports = Object.assign({}, main.exports, { memory });
  // The Go client measures one thread against two at start-up and keeps
  // the faster: on a machine whose cores are busy the pool can lose.
  let threads = 2;
  exports.nl_pool_size = () => 2;
  exports.nl_threads = () => threads;
  exports.nl_set_threads = (n) => { threads = n >= 2 ? 2 : 1; };
  exports.nl_gemm = (a, lda, bp, bias, c, h, ldc, m, k, n) => {
    if (threads < 2 || m < POOL_MIN_ROWS) return gemm(a, lda, bp, bias, c, h, ldc, m, k, n);
    const m0 = (m >> 3) << 2; // this thread's rows: half, a multiple of 4
    ctl.set([a + 4 * m0 * lda, lda, bp, bias, c + 4 * m0 * ldc, h ? h + 4 * m0 * ldc : 0, ldc, m - m0, k, n], 1);
    Atomics.store(ctl, 0, 1);
    Atomics.notify(ctl, 0);
    gemm(a, lda, bp, bias, c, h, ldc, m0, k, n);
    while (Atomics.load(ctl, 0) !== 2) Atomics.wait(ctl, 0, 1);
    Atomics.store(ctl, 0, 0);
  };
  return exports;
}

async function boot() {
  importScripts(asset("wasm_exec", "wasm_exec.js"));
  try {
    globalThis.neurolovGemm = await pooledGemm();
  } catch (e) {
    console.warn("neurolov: the two-thread kernel pool did not start, using one thread:", e);
  }
  if (!globalThis.neurolovGemm) {
    try {
      const gemm = await instantiate(asset("kernel", "gemm.wasm"), {});
      globalThis.neurolovGemm = gemm.instance.exports;
    } catch (e) {
      // The Go client falls back to its own (slower) kernels and says so.
      console.warn("neurolov: gemm.wasm did not load:", e);
    }
  }
  const go = new Go();
  // cogentcore/webgpu's js backend reads the Go module's memory through
  // globalThis.wasm (the instantiateStreaming result).
  globalThis.wasm = await instantiate(asset("client", "neurolov.wasm"), go.importObject);
  globalThis.neurolovReady = () => {
    ready = true;
    for (const m of queued.splice(0)) handle(m);
  };
  go.run(globalThis.wasm.instance).then(
    () => failed("the compute client exited; reload the page"),
    (e) => failed("the compute client crashed: " + errText(e) + "; reload the page"));
}

boot().catch((e) => failed("loading the compute client failed: " + errText(e)));
