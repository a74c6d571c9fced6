package volunteer

import (
	"net/http"
	"net/url"
	"strings"
)

// Assets is what the page reads from the static file server.
type Assets interface {
	// URL returns the URL of the static file name (a path under the static
	// tree, e.g. "dist/neurolov.wasm") and whether the file exists.
	URL(name string) (string, bool)
}

// The static files the page links.
const (
	IconFile     = "favicon.svg"
	StyleFile    = "volunteer.css"
	ScriptFile   = "volunteer.js"
	WorkerFile   = "worker.js"
	WasmExecFile = "dist/wasm_exec.js"
	ClientFile   = "dist/neurolov.wasm"
	KernelFile   = "dist/gemm.wasm"
	// SharedKernelFile and HelperFile make the kernel's two-thread pool on
	// a cross-origin isolated page; without them the kernel runs on one
	// thread.
	SharedKernelFile = "dist/gemm-shared.wasm"
	HelperFile       = "gemm-helper.js"
)

// clientFiles are the browser client's files; the page can start only when
// all are served.
var clientFiles = []string{WorkerFile, WasmExecFile, ClientFile, KernelFile}

// Backends the page offers: the value sent to the worker, and its label.
var backends = []struct{ Value, Label string }{
	{"auto", "Automatic: measure both, use the faster"},
	{"webgpu", "WebGPU (graphics card)"},
	{"cpu-wasm", "CPU (WebAssembly SIMD)"},
}

// Config is handed to the page script as JSON (element #neurolov-config).
type Config struct {
	// Worker is the Web Worker script's URL. Its query string repeats the
	// client's file URLs (wasm_exec, client, kernel, and kernel_shared and
	// helper when the kernel pool's files are built), so the worker can
	// load them before the start message arrives.
	Worker string `json:"worker"`
	// WasmExec, Client and Kernel are the URLs of wasm_exec.js, the Go
	// client and the SIMD kernel.
	WasmExec string `json:"wasmExec"`
	Client   string `json:"client"`
	Kernel   string `json:"kernel"`
	// Ledger is the coordinator's ledger endpoint, read for pay earned.
	Ledger string `json:"ledger"`
	// Ready says whether every file of the browser client is served.
	Ready bool `json:"ready"`
}

// View is what the page template renders.
type View struct {
	// Backend is the preselected backend: "auto", "webgpu" or "cpu-wasm".
	Backend   string
	IconURL   string
	StyleURL  string
	ScriptURL string
	// Missing lists the browser client's files that are not built.
	Missing []string
	Config  Config
}

// Handler serves the volunteer page.
type Handler struct {
	assets Assets
}

// New returns the page handler over assets.
func New(assets Assets) *Handler { return &Handler{assets: assets} }

// ServeHTTP renders the page. The query may preselect the backend:
// ?backend=auto|webgpu|cpu (or cpu-wasm).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	v := h.View(r.URL.Query().Get("backend"))
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "same-origin")
	w.Header().Set("Content-Security-Policy", contentSecurityPolicy)
	if err := Page(v).Render(r.Context(), w); err != nil {
		http.Error(w, "rendering the page: "+err.Error(), http.StatusInternalServerError)
	}
}

// contentSecurityPolicy allows only this origin's scripts, styles, workers
// and connections (the worker's WebSocket included).
const contentSecurityPolicy = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self'; " +
	"connect-src 'self'; img-src 'self' data:; style-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// View builds the page's view for the requested backend (any value other
// than webgpu, cpu or cpu-wasm means auto).
func (h *Handler) View(backend string) View {
	link := func(name string) string { u, _ := h.assets.URL(name); return u }
	v := View{
		Backend:   NormalizeBackend(backend),
		IconURL:   link(IconFile),
		StyleURL:  link(StyleFile),
		ScriptURL: link(ScriptFile),
	}
	for _, f := range clientFiles {
		if _, ok := h.assets.URL(f); !ok {
			v.Missing = append(v.Missing, f)
		}
	}
	c := Config{
		WasmExec: link(WasmExecFile), Client: link(ClientFile), Kernel: link(KernelFile),
		Ledger: "/v1/ledger", Ready: len(v.Missing) == 0,
	}
	query := url.Values{"wasm_exec": {c.WasmExec}, "client": {c.Client}, "kernel": {c.Kernel}}
	shared, okShared := h.assets.URL(SharedKernelFile)
	helper, okHelper := h.assets.URL(HelperFile)
	if okShared && okHelper {
		query.Set("kernel_shared", shared)
		query.Set("helper", helper)
	}
	c.Worker = link(WorkerFile) + "?" + query.Encode()
	v.Config = c
	return v
}

// NormalizeBackend maps a requested backend to one the worker takes:
// "webgpu", "cpu-wasm" ("cpu" is its short form) or "auto".
func NormalizeBackend(s string) string {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "webgpu", "gpu":
		return "webgpu"
	case "cpu", "cpu-wasm", "wasm":
		return "cpu-wasm"
	}
	return "auto"
}

// joinNames lists file names for people: "a, b and c".
func joinNames(names []string) string {
	switch len(names) {
	case 0:
		return ""
	case 1:
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}
