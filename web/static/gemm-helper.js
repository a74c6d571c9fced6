// gemm-helper.js: the second thread of the browser client's WASM SIMD
// kernel pool, a Web Worker started by worker.js on a cross-origin
// isolated page.
//
// It instantiates gemm-shared.wasm on the client's shared memory with its
// own stack (the stack pointer it is given), then serves GEMM calls posted
// through a control block of Int32s on a SharedArrayBuffer:
//   [0] state: 0 idle, 1 call posted, 2 call done
//   [1..10] the nl_gemm arguments (a, lda, bp, bias, c, h, ldc, m, k, n)
// worker.js posts a call, computes its own rows, and waits for state 2.
"use strict";

onmessage = async (ev) => {
  const { module, memory, control, stack } = ev.data;
  let instance;
  try {
    instance = await WebAssembly.instantiate(module, { env: { memory } });
    instance.exports.__stack_pointer.value = stack;
  } catch (e) {
    postMessage({ error: String((e && e.message) || e) });
    return;
  }
  const ctl = new Int32Array(control);
  const gemm = instance.exports.nl_gemm;
  postMessage({ ready: true });
  for (;;) {
    const state = Atomics.load(ctl, 0);
    if (state !== 1) {
      Atomics.wait(ctl, 0, state); // until the next call is posted
      continue;
    }
    gemm(ctl[1], ctl[2], ctl[3], ctl[4], ctl[5], ctl[6], ctl[7], ctl[8], ctl[9], ctl[10]);
    Atomics.store(ctl, 0, 2);
    Atomics.notify(ctl, 0);
  }
};
