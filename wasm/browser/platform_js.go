//go:build js

package browser

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"syscall/js"

	"github.com/ethereum/go-ethereum/crypto"

	"github.com/neurolov/neurolov/identity"
	"github.com/neurolov/neurolov/shaders"
	"github.com/neurolov/neurolov/shaders/gpu"
	"github.com/neurolov/neurolov/tensor"
	"github.com/neurolov/neurolov/wasm/internal/jsutil"
	"github.com/neurolov/neurolov/wasm/simdgemm"
	"github.com/neurolov/neurolov/worker"
)

// JSPlatform is the Web Worker's platform. worker.js provides its globals:
// neurolovGemm (the exports of gemm.wasm), neurolovKeyStore ({load, save}
// over IndexedDB) and, optionally, neurolovPost (else postMessage).
func JSPlatform(log *slog.Logger) Platform {
	return Platform{Post: post, OpenCPU: openCPU, OpenGPU: openGPU, LocalSigner: localSigner(log), Ledger: fetchLedger, Logger: log}
}

func post(msg map[string]any) {
	g := js.Global()
	if f := g.Get("neurolovPost"); f.Type() == js.TypeFunction {
		f.Invoke(js.ValueOf(msg))
		return
	}
	g.Call("postMessage", js.ValueOf(msg))
}

// goCPU runs the pure-Go kernels when gemm.wasm could not be loaded: still
// a CPU in the browser, reported as cpu-wasm.
type goCPU struct{ why string }

func (goCPU) Name() string { return BackendCPUWasm }

func (g goCPU) Device() string { return "Go WASM kernels, no SIMD (" + g.why + ")" }

func (goCPU) Run(_ context.Context, kernel string, in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	return shaders.Reference(kernel, in)
}

func openCPU(context.Context) (worker.Backend, error) {
	exports := js.Global().Get("neurolovGemm")
	if !exports.Truthy() {
		return goCPU{why: "gemm.wasm did not load"}, nil
	}
	mod, err := simdgemm.Load(exports)
	if err != nil {
		return goCPU{why: err.Error()}, nil
	}
	return simdgemm.New(mod, simdgemm.Options{}), nil
}

// webGPU is the browser's WebGPU device as a backend.
type webGPU struct {
	mu      sync.Mutex
	dev     *gpu.Device
	adapter Adapter
}

func (*webGPU) Name() string { return BackendWebGPU }

func (w *webGPU) Device() string {
	info := w.dev.Info()
	name := info.Name
	if name == "" {
		name = w.adapter.Vendor + " " + w.adapter.Architecture
	}
	if w.adapter.IsFallbackAdapter {
		name += ", fallback adapter"
	}
	return fmt.Sprintf("%s (WebGPU, matmul %s)", name, info.Variant)
}

func (w *webGPU) Adapter() Adapter { return w.adapter }

// MaxBufferBytes is the largest tensor the device binds, reported in the
// handshake so that the coordinator routes larger shards elsewhere.
func (w *webGPU) MaxBufferBytes() uint64 { return w.dev.Info().MaxStorageBinding }

func (w *webGPU) Close() error { return w.dev.Close() }

func (w *webGPU) Run(_ context.Context, kernel string, in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	outs, err := w.dev.Run(kernel, in)
	if err != nil && (errors.Is(err, gpu.ErrDeviceLost) || w.dev.Err() != nil) {
		err = fmt.Errorf("%w: %w", ErrDeviceLost, err)
	}
	return outs, err
}

// openGPU reads the adapter's description from navigator.gpu (cogentcore's
// js backend reports none) and opens a device with shaders/gpu, which
// measures its matmul variants.
func openGPU(context.Context) (GPU, error) {
	g := js.Global().Get("navigator").Get("gpu")
	if !g.Truthy() {
		return nil, errors.New("navigator.gpu is missing: this browser has no WebGPU, or it is turned off")
	}
	p, err := jsutil.Call(g, "requestAdapter", map[string]any{"powerPreference": "high-performance"})
	if err != nil {
		return nil, fmt.Errorf("requestAdapter: %w", err)
	}
	adapter, err := jsutil.Await(p)
	if err != nil {
		return nil, fmt.Errorf("requestAdapter: %w", err)
	}
	if !adapter.Truthy() {
		return nil, errors.New("no WebGPU adapter (requestAdapter returned null; in Chromium, --enable-unsafe-webgpu turns it on)")
	}
	info := adapter.Get("info")
	str := func(k string) string {
		if info.Truthy() && info.Get(k).Type() == js.TypeString {
			return info.Get(k).String()
		}
		return ""
	}
	a := Adapter{Vendor: str("vendor"), Architecture: str("architecture"), Description: str("description"),
		IsFallbackAdapter: adapter.Get("isFallbackAdapter").Truthy() || (info.Truthy() && info.Get("isFallbackAdapter").Truthy())}
	dev, err := gpu.Open(gpu.Options{TuneCache: "-"})
	if err != nil {
		return nil, fmt.Errorf("adapter %s %s (fallback %v): %w", a.Vendor, a.Architecture, a.IsFallbackAdapter, err)
	}
	return &webGPU{dev: dev, adapter: a}, nil
}

// localSigner loads the key kept in IndexedDB by worker.js, or makes one
// and stores it. Without a key store (IndexedDB disabled) the key lives
// for this session only.
func localSigner(log *slog.Logger) func(context.Context) (worker.Signer, error) {
	return func(context.Context) (worker.Signer, error) {
		ks := js.Global().Get("neurolovKeyStore")
		if ks.Truthy() {
			p, err := jsutil.Call(ks, "load")
			if err == nil {
				var v js.Value
				if v, err = jsutil.Await(p); err == nil && v.Type() == js.TypeString {
					key, err := crypto.HexToECDSA(v.String())
					if err != nil {
						return nil, fmt.Errorf("the key in IndexedDB is malformed (%v): clear the site's data to make a new one", err)
					}
					return identity.NewKeySigner(key), nil
				}
			}
			if err != nil {
				log.Warn("reading the key from IndexedDB failed; making a new one", "err", err)
			}
		}
		key, err := identity.NewKey()
		if err != nil {
			return nil, err
		}
		if !ks.Truthy() {
			log.Warn("no key store: this identity lasts for this session only")
			return identity.NewKeySigner(key), nil
		}
		p, err := jsutil.Call(ks, "save", hex.EncodeToString(crypto.FromECDSA(key)))
		if err == nil {
			_, err = jsutil.Await(p)
		}
		if err != nil {
			log.Warn("storing the key in IndexedDB failed: this identity lasts for this session only", "err", err)
		}
		return identity.NewKeySigner(key), nil
	}
}

func fetchLedger(_ context.Context, url string) ([]LedgerEntry, error) {
	p, err := jsutil.Call(js.Global(), "fetch", url)
	if err != nil {
		return nil, err
	}
	resp, err := jsutil.Await(p)
	if err != nil {
		return nil, err
	}
	if !resp.Get("ok").Bool() {
		return nil, fmt.Errorf("GET %s: HTTP %d", url, resp.Get("status").Int())
	}
	text, err := jsutil.Await(resp.Call("text"))
	if err != nil {
		return nil, err
	}
	var body struct {
		Entries []LedgerEntry `json:"entries"`
	}
	if err := json.Unmarshal([]byte(text.String()), &body); err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	return body.Entries, nil
}
