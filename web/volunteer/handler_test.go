package volunteer_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/net/html"

	"github.com/neurolov/neurolov/web/volunteer"
)

// fakeAssets serves the names it holds under /h/<name>.
type fakeAssets map[string]bool

func (f fakeAssets) URL(name string) (string, bool) {
	if f[name] {
		return "/h/" + name, true
	}
	return "/plain/" + name, false
}

func allAssets() fakeAssets {
	return fakeAssets{
		volunteer.StyleFile: true, volunteer.ScriptFile: true, volunteer.WorkerFile: true,
		volunteer.WasmExecFile: true, volunteer.ClientFile: true, volunteer.KernelFile: true,
	}
}

func render(t *testing.T, assets volunteer.Assets, query string) *html.Node {
	t.Helper()
	rec := httptest.NewRecorder()
	volunteer.New(assets).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/"+query, nil))
	if rec.Code != 200 {
		t.Fatalf("status %d", rec.Code)
	}
	doc, err := html.Parse(strings.NewReader(rec.Body.String()))
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func attr(n *html.Node, key string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val, true
		}
	}
	return "", false
}

func walk(n *html.Node, fn func(*html.Node)) {
	fn(n)
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		walk(c, fn)
	}
}

func byID(doc *html.Node, id string) *html.Node {
	var found *html.Node
	walk(doc, func(n *html.Node) {
		if v, _ := attr(n, "id"); n.Type == html.ElementNode && v == id && found == nil {
			found = n
		}
	})
	return found
}

func text(n *html.Node) string {
	var b strings.Builder
	walk(n, func(c *html.Node) {
		if c.Type == html.TextNode {
			b.WriteString(c.Data)
		}
	})
	return b.String()
}

func TestNormalizeBackend(t *testing.T) {
	for in, want := range map[string]string{
		"": "auto", "auto": "auto", "webgpu": "webgpu", "WebGPU": "webgpu", "gpu": "webgpu",
		"cpu": "cpu-wasm", "cpu-wasm": "cpu-wasm", " wasm ": "cpu-wasm", "cuda": "auto",
	} {
		if got := volunteer.NormalizeBackend(in); got != want {
			t.Errorf("NormalizeBackend(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestBackendQuery: ?backend= preselects exactly one option.
func TestBackendQuery(t *testing.T) {
	for query, want := range map[string]string{
		"": "auto", "?backend=webgpu": "webgpu", "?backend=cpu": "cpu-wasm", "?backend=bogus": "auto",
	} {
		doc := render(t, allAssets(), query)
		var selected []string
		walk(byID(doc, "backend"), func(n *html.Node) {
			if _, ok := attr(n, "selected"); n.Data == "option" && ok {
				v, _ := attr(n, "value")
				selected = append(selected, v)
			}
		})
		if len(selected) != 1 || selected[0] != want {
			t.Errorf("query %q: selected %v, want [%s]", query, selected, want)
		}
	}
}

// TestConfig: the page hands the script hashed URLs, and the worker's URL
// carries the client's files so it can load them before "start".
func TestConfig(t *testing.T) {
	doc := render(t, allAssets(), "")
	el := byID(doc, "neurolov-config")
	if el == nil {
		t.Fatal("no #neurolov-config")
	}
	var cfg volunteer.Config
	if err := json.Unmarshal([]byte(text(el)), &cfg); err != nil {
		t.Fatal(err)
	}
	if !cfg.Ready || cfg.Client != "/h/dist/neurolov.wasm" || cfg.Kernel != "/h/dist/gemm.wasm" ||
		cfg.WasmExec != "/h/dist/wasm_exec.js" || cfg.Ledger != "/v1/ledger" {
		t.Errorf("config %+v", cfg)
	}
	u, err := url.Parse(cfg.Worker)
	if err != nil || u.Path != "/h/worker.js" {
		t.Fatalf("worker URL %q (%v)", cfg.Worker, err)
	}
	q := u.Query()
	if q.Get("client") != cfg.Client || q.Get("kernel") != cfg.Kernel || q.Get("wasm_exec") != cfg.WasmExec {
		t.Errorf("worker query %v", q)
	}
}

// TestMissingClient: without the build outputs the page names them, says
// how to build them, and its start button is disabled.
func TestMissingClient(t *testing.T) {
	assets := allAssets()
	delete(assets, volunteer.ClientFile)
	delete(assets, volunteer.KernelFile)
	doc := render(t, assets, "")
	var alert string
	walk(doc, func(n *html.Node) {
		if v, _ := attr(n, "role"); v == "alert" {
			alert = text(n)
		}
	})
	if !strings.Contains(alert, "dist/neurolov.wasm and dist/gemm.wasm") || !strings.Contains(alert, "make wasm") {
		t.Errorf("alert %q", alert)
	}
	if _, disabled := attr(byID(doc, "toggle"), "disabled"); !disabled {
		t.Error("start button enabled without the client")
	}
	if _, disabled := attr(byID(render(t, allAssets(), ""), "toggle"), "disabled"); disabled {
		t.Error("start button disabled with the client built")
	}
}

// TestAccessibleForm: every form control has a label, ids are unique, the
// share slider is a 0–100 range, and the page declares its language and
// viewport.
func TestAccessibleForm(t *testing.T) {
	doc := render(t, allAssets(), "")
	ids := map[string]int{}
	labelFor := map[string]bool{}
	var controls []*html.Node
	walk(doc, func(n *html.Node) {
		if n.Type != html.ElementNode {
			return
		}
		if id, ok := attr(n, "id"); ok {
			ids[id]++
		}
		switch n.Data {
		case "label":
			if f, ok := attr(n, "for"); ok {
				labelFor[f] = true
			}
		case "input", "select", "textarea":
			controls = append(controls, n)
		case "html":
			if lang, _ := attr(n, "lang"); lang == "" {
				t.Error("html has no lang")
			}
		}
	})
	for id, n := range ids {
		if n > 1 {
			t.Errorf("id %q used %d times", id, n)
		}
	}
	if len(controls) < 5 {
		t.Fatalf("found %d form controls", len(controls))
	}
	for _, c := range controls {
		id, _ := attr(c, "id")
		_, aria := attr(c, "aria-label")
		if !labelFor[id] && !aria {
			t.Errorf("<%s id=%q> has no label", c.Data, id)
		}
	}
	share := byID(doc, "share")
	for k, want := range map[string]string{"type": "range", "min": "0", "max": "100"} {
		if v, _ := attr(share, k); v != want {
			t.Errorf("share %s = %q, want %q", k, v, want)
		}
	}
	if _, checked := attr(byID(doc, "pause-hidden"), "checked"); !checked {
		t.Error("pause when hidden is off by default")
	}
	var viewport bool
	walk(doc, func(n *html.Node) {
		if v, _ := attr(n, "name"); n.Data == "meta" && v == "viewport" {
			viewport = true
		}
	})
	if !viewport {
		t.Error("no viewport meta")
	}
}

// TestWorkerQueryKernelPool: the worker is told where the kernel pool's
// files are when both are served, and not otherwise (it then runs the
// kernel on one thread).
func TestWorkerQueryKernelPool(t *testing.T) {
	withPool := allAssets()
	withPool[volunteer.SharedKernelFile] = true
	withPool[volunteer.HelperFile] = true
	halfPool := allAssets()
	halfPool[volunteer.SharedKernelFile] = true
	for _, tc := range []struct {
		name   string
		assets fakeAssets
		want   bool
	}{{"both files", withPool, true}, {"no helper", halfPool, false}, {"neither", allAssets(), false}} {
		u, err := url.Parse(volunteer.New(tc.assets).View("").Config.Worker)
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		got := q.Get("kernel_shared") != "" && q.Get("helper") != ""
		if got != tc.want || (!tc.want && (q.Has("kernel_shared") || q.Has("helper"))) {
			t.Errorf("%s: worker query %v, want the pool's files: %v", tc.name, q, tc.want)
		}
		if tc.want && (q.Get("kernel_shared") != "/h/"+volunteer.SharedKernelFile || q.Get("helper") != "/h/"+volunteer.HelperFile) {
			t.Errorf("%s: worker query %v", tc.name, q)
		}
	}
}

// The page tells volunteers plainly that job inputs and models reach
// anonymous workers, this tab among them.
func TestPageSaysInputsGoToAnonymousWorkers(t *testing.T) {
	page := text(render(t, allAssets(), ""))
	if !strings.Contains(page, "A job's inputs and models are sent to anonymous workers") {
		t.Errorf("the page does not say that job inputs and models go to anonymous workers:\n%s", page)
	}
}
