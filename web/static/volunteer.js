// The volunteer page's script: it runs the browser client in a dedicated Web
// Worker (worker.js) and speaks the page ⇄ worker protocol of the browser
// contract. The page owns the user's intent: it reads the controls, tab
// visibility and the battery, and tells the worker to start, pause, resume
// or change its compute share; the worker reports its status, which is shown
// here. Pay earned is read from the coordinator's GET /v1/ledger.
(function () {
  "use strict";

  var LEDGER_EVERY_MS = 5000;
  var BACKEND_NAMES = { webgpu: "WebGPU", "cpu-wasm": "CPU (WASM SIMD)" };
  var PAUSE_REASONS = {
    user: "you paused it",
    hidden: "this tab is hidden",
    battery: "the battery is low",
  };

  var cfg = JSON.parse(document.getElementById("neurolov-config").textContent);
  function $(id) { return document.getElementById(id); }
  var ui = {
    toggle: $("toggle"),
    state: $("state"),
    detail: $("state-detail"),
    share: $("share"),
    shareValue: $("share-value"),
    hidden: $("pause-hidden"),
    battery: $("pause-battery"),
    threshold: $("battery-threshold"),
    batteryNote: $("battery-note"),
    backend: $("backend"),
    wallet: $("wallet"),
    identity: $("identity"),
    st: {
      state: $("st-state"),
      backend: $("st-backend"),
      device: $("st-device"),
      measured: $("st-measured"),
      gflops: $("st-gflops"),
      done: $("st-done"),
      verified: $("st-verified"),
      rejected: $("st-rejected"),
      earned: $("st-earned"),
      address: $("st-address"),
    },
  };

  var page = {
    worker: null,
    started: false, // the start message was sent
    benches: new Map(), // pending bench requests by id
    nextBench: 1,
    pauses: new Set(), // why the page wants the worker paused: user, hidden, battery
    sentPaused: false, // what the worker was last told
    status: { state: "idle" },
    identity: { kind: "local" },
    battery: null,
    address: "",
    ledgerTimer: 0,
    ledger: null, // the address's ledger entry, once read
    failure: "", // a failure of the worker script itself
  };

  // --- starting and steering the worker ---------------------------------

  function workerURL() {
    var scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return scheme + "//" + location.host + "/v1/worker";
  }

  function shareFraction() { return Number(ui.share.value) / 100; }

  // ensureWorker creates the Web Worker (it loads the client at once) if
  // there is none; it returns null after reporting a failure.
  function ensureWorker() {
    if (page.worker) return page.worker;
    var w;
    try {
      w = new Worker(cfg.worker);
    } catch (e) {
      fail("The background worker could not be created: " + errText(e));
      return null;
    }
    w.onmessage = function (ev) { onWorkerMessage(ev.data); };
    w.onerror = function (ev) {
      ev.preventDefault();
      fail("The compute client stopped: " + (ev.message || "it failed to load") + ". Reload the page to try again.");
    };
    w.onmessageerror = function () { fail("The compute client sent a message the page cannot read."); };
    page.worker = w;
    page.failure = "";
    return w;
  }

  function start() {
    if (!cfg.ready || page.started) return;
    var w = ensureWorker();
    if (!w) return;
    page.started = true;
    page.sentPaused = false;
    page.status = { state: "idle" };
    w.postMessage({
      type: "start",
      coordinator: workerURL(),
      backend: ui.backend.value,
      share: shareFraction(),
      identity: page.identity,
      assets: { wasmExec: cfg.wasmExec, client: cfg.client, kernel: cfg.kernel },
    });
    ui.backend.disabled = true;
    ui.wallet.hidden = true;
    apply();
  }

  // bench asks the worker to time a shard (globalThis.neurolov.bench there):
  // opts {backend: "cpu-wasm"|"webgpu", kernel, runs, batch}. It resolves
  // with {kernel, backend, device, batch, flops, gflops, runs}.
  function bench(opts) {
    return new Promise(function (resolve, reject) {
      if (!cfg.ready) { reject(new Error("the browser client is not built on this server")); return; }
      var w = ensureWorker();
      if (!w) { reject(new Error(page.failure)); return; }
      var id = page.nextBench++;
      page.benches.set(id, { resolve: resolve, reject: reject });
      w.postMessage(Object.assign({}, opts || {}, { type: "bench", id: id }));
    });
  }

  function onBenchResult(msg) {
    var p = page.benches.get(msg.id);
    if (!p) return;
    page.benches.delete(msg.id);
    if (msg.error) p.reject(new Error(String(msg.error)));
    else p.resolve(msg.result);
  }

  // fail stops the client with message; state is the state shown
  // ("error", or "reload" when only reloading the page can help).
  function fail(message, state) {
    if (page.worker) page.worker.terminate();
    page.worker = null;
    page.started = false;
    page.failure = message;
    page.failureState = state || "error";
    page.benches.forEach(function (p) { p.reject(new Error(message)); });
    page.benches.clear();
    ui.backend.disabled = false;
    render();
  }

  // apply tells the worker whether to run, from the pause reasons.
  function apply() {
    var want = page.pauses.size > 0;
    if (page.started && want !== page.sentPaused) {
      page.worker.postMessage({ type: want ? "pause" : "resume" });
      page.sentPaused = want;
    }
    render();
  }

  function setPause(reason, on) {
    if (on) page.pauses.add(reason); else page.pauses.delete(reason);
    apply();
  }

  ui.toggle.addEventListener("click", function () {
    switch (ui.toggle.dataset.action) {
      case "start": start(); break;
      case "pause": setPause("user", true); break;
      case "resume": setPause("user", false); break;
    }
  });

  ui.share.addEventListener("input", function () {
    showShare();
    if (page.started) page.worker.postMessage({ type: "share", value: shareFraction() });
  });

  function showShare() {
    var v = ui.share.value + "%";
    if (Number(ui.share.value) === 0) v += " (paused)";
    ui.shareValue.textContent = v;
    ui.share.setAttribute("aria-valuetext", v);
  }

  // --- visibility and battery -------------------------------------------

  function onVisibility() {
    setPause("hidden", ui.hidden.checked && document.visibilityState === "hidden");
  }
  document.addEventListener("visibilitychange", onVisibility);
  ui.hidden.addEventListener("change", onVisibility);

  function onBattery() {
    var b = page.battery;
    if (!b) return;
    var pct = Math.round(b.level * 100);
    ui.batteryNote.textContent = "Battery " + pct + "%, " + (b.charging ? "charging." : "not charging.");
    setPause("battery", ui.battery.checked && !b.charging && pct < Number(ui.threshold.value));
  }
  function noBattery() {
    ui.batteryNote.textContent = "This browser does not report the battery, so this setting has no effect here.";
  }
  ui.battery.addEventListener("change", onBattery);
  ui.threshold.addEventListener("input", onBattery);
  if (typeof navigator.getBattery === "function") {
    navigator.getBattery().then(function (b) {
      page.battery = b;
      b.addEventListener("levelchange", onBattery);
      b.addEventListener("chargingchange", onBattery);
      onBattery();
    }, noBattery);
  } else {
    noBattery();
  }

  // --- wallet identity (EIP-1193) -----------------------------------------

  var eth = window.ethereum;
  if (eth && typeof eth.request === "function") {
    ui.wallet.hidden = false;
    ui.wallet.addEventListener("click", function () {
      if (page.identity.kind === "wallet") {
        page.identity = { kind: "local" };
        ui.wallet.textContent = "Use my wallet instead";
        ui.identity.textContent = "Credited to a key kept in this browser; its address appears below once started.";
        return;
      }
      eth.request({ method: "eth_requestAccounts" }).then(function (accounts) {
        if (!accounts || !accounts.length) throw new Error("the wallet shared no account");
        page.identity = { kind: "wallet", address: String(accounts[0]) };
        ui.wallet.textContent = "Use a key kept in this browser";
        ui.identity.textContent = "Credited to your wallet " + page.identity.address + "; it will ask you to sign in once.";
      }).catch(function (e) {
        ui.identity.textContent = "The wallet did not connect (" + errText(e) + "); work is credited to a key kept in this browser.";
      });
    });
  }

  function utf8Hex(s) {
    var bytes = new TextEncoder().encode(s);
    var out = "0x";
    for (var i = 0; i < bytes.length; i++) out += (bytes[i] < 16 ? "0" : "") + bytes[i].toString(16);
    return out;
  }

  function onSign(msg) {
    var w = page.worker;
    if (!w) return;
    if (page.identity.kind !== "wallet" || !eth) {
      w.postMessage({ type: "signature", id: msg.id, error: "no wallet on this page" });
      return;
    }
    eth.request({ method: "personal_sign", params: [utf8Hex(msg.message), page.identity.address] })
      .then(function (sig) { w.postMessage({ type: "signature", id: msg.id, signature: String(sig) }); })
      .catch(function (e) { w.postMessage({ type: "signature", id: msg.id, error: errText(e) }); });
  }

  // --- worker messages -----------------------------------------------------

  function onWorkerMessage(msg) {
    if (!msg || typeof msg !== "object") return;
    switch (msg.type) {
      case "status":
        page.status = msg;
        if (msg.state === "reload") {
          // The coordinator was upgraded: its page serves the new client.
          fail("The coordinator was upgraded: reload this page to load its new client.", "reload");
          return;
        }
        if (msg.state === "error") {
          // The client stopped for good (it says why): start afresh next time.
          fail("Stopped: " + (msg.message || "the compute client failed") + ". Press Start to try again.");
          return;
        }
        if (msg.address && msg.address !== page.address) {
          page.address = msg.address;
          page.ledger = null;
          pollLedger();
        }
        render();
        break;
      case "sign":
        onSign(msg);
        break;
      case "bench-result":
        onBenchResult(msg);
        break;
    }
  }

  // --- the ledger ------------------------------------------------------------

  function pollLedger() {
    clearTimeout(page.ledgerTimer);
    if (!page.address) return;
    fetch(cfg.ledger, { cache: "no-store" }).then(function (r) {
      if (!r.ok) throw new Error("HTTP " + r.status);
      return r.json();
    }).then(function (body) {
      var want = page.address.toLowerCase();
      var entries = (body && body.entries) || [];
      page.ledger = { flops: 0, unsettled_flops: 0 };
      for (var i = 0; i < entries.length; i++) {
        if (String(entries[i].address).toLowerCase() === want) page.ledger = entries[i];
      }
      render();
    }).catch(function () { /* keep the last figure; try again later */ })
      .then(function () { page.ledgerTimer = setTimeout(pollLedger, LEDGER_EVERY_MS); });
  }

  // --- rendering ---------------------------------------------------------------

  function errText(e) { return (e && e.message) || String(e); }

  function num(v) { return typeof v === "number" && isFinite(v) ? v : 0; }

  function gflops(v) {
    if (typeof v !== "number" || !isFinite(v)) return "n/a";
    return v >= 10 ? v.toFixed(0) : v.toFixed(1);
  }

  function flopsText(f) {
    f = num(f);
    if (f >= 1e12) return (f / 1e12).toFixed(2) + " TFLOP";
    if (f >= 1e9) return (f / 1e9).toFixed(2) + " GFLOP";
    return (f / 1e6).toFixed(1) + " MFLOP";
  }

  function stateText(st) {
    if (page.failure) return [page.failureState, page.failure];
    if (!page.started) return ["idle", cfg.ready ? "Not running. Nothing is computed until you press Start." : "The browser client is not built on this server."];
    if (page.pauses.size > 0) {
      var why = [];
      page.pauses.forEach(function (r) { why.push(PAUSE_REASONS[r]); });
      return ["paused", "Paused: " + why.join(", ") + "." + (page.pauses.has("user") ? " Press Resume to continue." : "")];
    }
    switch (st.state) {
      case "measuring": return ["measuring", "Measuring this device (WebGPU and CPU) to choose the faster…"];
      case "connecting": return ["connecting", "Connecting to the coordinator…"];
      case "working": return ["working", "Working: computing shards for the coordinator."];
      case "paused": return ["paused", "Paused."];
      default: return ["starting", "Loading the compute client…"];
    }
  }

  function render() {
    var st = page.status || {};
    var action = !page.started ? "start" : page.pauses.has("user") ? "resume" : "pause";
    ui.toggle.dataset.action = action;
    ui.toggle.textContent = action === "start" ? "Start contributing" : action === "pause" ? "Pause" : "Resume";
    ui.toggle.disabled = !cfg.ready;

    var s = stateText(st);
    if (ui.state.dataset.state !== s[0] || ui.state.textContent !== s[1]) {
      ui.state.dataset.state = s[0];
      ui.state.textContent = s[1];
    }
    ui.st.state.textContent = s[0];
    // The worker's own words (reconnect delays, backend choice), unless the
    // state line already says them.
    var detail = page.started && s[0] !== "error" && st.message ? String(st.message) : "";
    if (ui.detail.textContent !== detail) ui.detail.textContent = detail;

    var backend = st.backend || "";
    ui.st.backend.dataset.backend = backend;
    ui.st.backend.textContent = BACKEND_NAMES[backend] || (backend || "—");
    var device = st.device || "";
    var ad = st.adapter;
    if (ad && ad.isFallbackAdapter && backend === "webgpu" && !/fallback|software/i.test(device)) device += " (software adapter)";
    ui.st.device.textContent = device || "—";
    if (st.gflopsCPU !== undefined || st.gflopsWebGPU !== undefined) {
      ui.st.measured.textContent = "WebGPU " + gflops(st.gflopsWebGPU) + " · CPU " + gflops(st.gflopsCPU) + " GFLOP/s";
    }
    ui.st.gflops.textContent = gflops(num(st.gflopsLive)) + " GFLOP/s";
    ui.st.done.textContent = String(num(st.shardsDone));
    // Verified shards: the worker's figure, or the ledger's if that is newer.
    ui.st.verified.textContent = String(Math.max(num(st.verified), page.ledger ? num(page.ledger.shards) : 0));
    ui.st.rejected.textContent = String(num(st.rejected));
    ui.st.address.textContent = page.address || "—";
    if (page.ledger && num(page.ledger.flops) === 0 && num(page.ledger.unsettled_flops) === 0) {
      ui.st.earned.textContent = "none yet";
    } else if (page.ledger) {
      var t = flopsText(page.ledger.flops) + " verified";
      if (num(page.ledger.unsettled_flops) > 0) t += " (" + flopsText(page.ledger.unsettled_flops) + " awaiting settlement)";
      ui.st.earned.textContent = t;
    } else if (num(st.earnedFLOPs) > 0) {
      ui.st.earned.textContent = flopsText(st.earnedFLOPs) + " accepted";
    }
  }

  // A read-only view for tests and for people poking at the console.
  globalThis.neurolovPage = Object.freeze({
    status: function () { return Object.assign({}, page.status); },
    pauses: function () { return Array.from(page.pauses); },
    running: function () { return page.started; },
    bench: bench,
    failure: function () { return page.failure; },
  });

  showShare();
  onVisibility();
  render();
})();
