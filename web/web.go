package web

import (
	"embed"
	"io/fs"
	"net/http"
	"sync"

	"github.com/neurolov/neurolov/web/volunteer"
)

// static holds the page assets and, when make has built them, the browser
// client's build outputs in static/dist.
//
//go:embed static
var static embed.FS

// StaticPrefix is the URL path under which the static files are served.
const StaticPrefix = "/static/"

// Options configures New.
type Options struct {
	// Static replaces the embedded static tree (a tree shaped like
	// web/static: volunteer.js, volunteer.css, worker.js, dist/...), e.g.
	// os.DirFS("web/static") to serve a client rebuilt since this binary.
	Static fs.FS
}

// Static returns the embedded static tree (volunteer.js, volunteer.css,
// worker.js and, when make built them, dist/...).
func Static() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		// "static" is a valid path: fs.Sub cannot fail on it.
		panic(err)
	}
	return sub
}

// New returns the pages and their static files: the volunteer page at "/"
// and the files under "/static/". Every other path answers 404.
func New(opts Options) (http.Handler, error) {
	tree := opts.Static
	if tree == nil {
		tree = Static()
	}
	assets, err := NewAssets(tree, StaticPrefix)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /{$}", volunteer.New(assets))
	mux.Handle("GET "+StaticPrefix, assets)
	return crossOriginIsolated(mux), nil
}

// crossOriginIsolated sets the headers that make the page cross-origin
// isolated (COOP same-origin, COEP require-corp; CORP same-origin on every
// file): only such a page, and the workers it starts, may share memory
// between threads, which the WASM SIMD kernel's two-thread pool needs.
// Everything the page loads comes from this origin, so nothing it uses is
// blocked.
func crossOriginIsolated(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Embedder-Policy", "require-corp")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		next.ServeHTTP(w, r)
	})
}

// Handler returns New over the embedded static files. The handler is made
// once per process and shared, so files are compressed once.
func Handler() http.Handler {
	h, err := embedded()
	if err != nil {
		// The embedded tree is part of the binary: failing to read it is a
		// build bug.
		panic(err)
	}
	return h
}

var embedded = sync.OnceValues(func() (http.Handler, error) { return New(Options{}) })
