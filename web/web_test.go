package web_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/neurolov/neurolov/web"
)

func get(t *testing.T, h http.Handler, path string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec
}

// TestHandlerLinksResolve serves the embedded tree: the page's stylesheet
// and script links are hashed and answer 200 with their types.
func TestHandlerLinksResolve(t *testing.T) {
	h := web.Handler()
	page := get(t, h, "/")
	if page.Code != 200 || !strings.HasPrefix(page.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("GET / = %d %q", page.Code, page.Header().Get("Content-Type"))
	}
	if page.Header().Get("Content-Security-Policy") == "" {
		t.Error("the page has no Content-Security-Policy")
	}
	body := page.Body.String()
	links := regexp.MustCompile(`(?:href|src)="(/static/[^"]+)"`).FindAllStringSubmatch(body, -1)
	if len(links) < 3 {
		t.Fatalf("page links %d static files, want the icon, the stylesheet and the script:\n%s", len(links), body)
	}
	wantType := map[string]string{".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".svg": "image/svg+xml"}
	for _, l := range links {
		u := l[1]
		if !regexp.MustCompile(`^/static/[0-9a-f]{16}/(volunteer\.css|volunteer\.js|favicon\.svg)$`).MatchString(u) {
			t.Errorf("link %q is not content-hashed", u)
		}
		rec := get(t, h, u)
		if rec.Code != 200 {
			t.Errorf("GET %s = %d", u, rec.Code)
			continue
		}
		for ext, ct := range wantType {
			if strings.HasSuffix(u, ext) && rec.Header().Get("Content-Type") != ct {
				t.Errorf("GET %s: Content-Type %q, want %q", u, rec.Header().Get("Content-Type"), ct)
			}
		}
		if rec.Header().Get("Cache-Control") != "public, max-age=31536000, immutable" {
			t.Errorf("GET %s: Cache-Control %q", u, rec.Header().Get("Cache-Control"))
		}
	}
	for _, p := range []string{"/nope", "/static/", "/v1/ledger"} {
		if rec := get(t, h, p); rec.Code != 404 {
			t.Errorf("GET %s = %d, want 404", p, rec.Code)
		}
	}
}

// TestCrossOriginIsolated: the page and every static file carry the
// headers that make the page cross-origin isolated, which the kernel's
// two-thread pool (shared memory) needs.
func TestCrossOriginIsolated(t *testing.T) {
	h := web.Handler()
	want := map[string]string{
		"Cross-Origin-Opener-Policy":   "same-origin",
		"Cross-Origin-Embedder-Policy": "require-corp",
		"Cross-Origin-Resource-Policy": "same-origin",
	}
	for _, p := range []string{"/", "/static/worker.js", "/static/gemm-helper.js", "/static/volunteer.js"} {
		rec := get(t, h, p)
		if rec.Code != 200 {
			t.Errorf("GET %s = %d", p, rec.Code)
			continue
		}
		for k, v := range want {
			if got := rec.Header().Get(k); got != v {
				t.Errorf("GET %s: %s %q, want %q", p, k, got, v)
			}
		}
	}
}

// TestHandlerWithoutClient: with no build outputs the page says how to build
// them and cannot start; with them it can.
func TestHandlerWithoutClient(t *testing.T) {
	tree := fstest.MapFS{
		"volunteer.js":  {Data: []byte("//")},
		"volunteer.css": {Data: []byte("")},
		"worker.js":     {Data: []byte("//")},
	}
	tests := []struct {
		name    string
		dist    bool
		notice  bool
		disable bool
	}{
		{"empty dist", false, true, true},
		{"built", true, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := fstest.MapFS{}
			for k, v := range tree {
				fs[k] = v
			}
			if tt.dist {
				for _, n := range []string{"dist/neurolov.wasm", "dist/gemm.wasm", "dist/wasm_exec.js"} {
					fs[n] = &fstest.MapFile{Data: []byte(n)}
				}
			}
			h, err := web.New(web.Options{Static: fs})
			if err != nil {
				t.Fatal(err)
			}
			body := get(t, h, "/").Body.String()
			if got := strings.Contains(body, "make wasm"); got != tt.notice {
				t.Errorf("notice shown = %v, want %v", got, tt.notice)
			}
			toggle := regexp.MustCompile(`<button id="toggle"[^>]*>`).FindString(body)
			if got := strings.Contains(toggle, "disabled"); got != tt.disable {
				t.Errorf("start button %q: disabled = %v, want %v", toggle, got, tt.disable)
			}
			if tt.dist {
				u := regexp.MustCompile(`/static/dist/[0-9a-f]{16}/neurolov\.wasm`).FindString(body)
				if u == "" {
					t.Fatalf("page names no hashed client URL:\n%s", body)
				}
				rec := get(t, h, u)
				b, _ := io.ReadAll(rec.Body)
				if rec.Code != 200 || string(b) != "dist/neurolov.wasm" || rec.Header().Get("Content-Type") != "application/wasm" {
					t.Errorf("GET %s = %d %q %q", u, rec.Code, rec.Header().Get("Content-Type"), b)
				}
			}
		})
	}
}
