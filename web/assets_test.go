package web_test

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/neurolov/neurolov/web"
)

// wasmBytes is compressible, like a real module.
var wasmBytes = append([]byte("\x00asm\x01\x00\x00\x00"), bytes.Repeat([]byte("neurolov gemm kernel "), 400)...)

func testTree() fstest.MapFS {
	return fstest.MapFS{
		"volunteer.js":       {Data: []byte(strings.Repeat("console.log('hi');\n", 100))},
		"volunteer.css":      {Data: []byte("body{}")},
		"dist/neurolov.wasm": {Data: wasmBytes},
		"dist/gemm.wasm":     {Data: wasmBytes[:200]},
		"dist/big.js":        {Data: []byte(strings.Repeat("x", 5000))},
		"dist/big.js.br":     {Data: []byte("pretend-brotli")},
		"dist/.keep":         {Data: nil},
	}
}

func hashOf(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])[:16]
}

func newAssets(t *testing.T) *web.Assets {
	t.Helper()
	a, err := web.NewAssets(testTree(), "/static/")
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestAssetsURL(t *testing.T) {
	a := newAssets(t)
	tests := []struct {
		name   string
		want   string
		exists bool
	}{
		{"dist/neurolov.wasm", "/static/dist/" + hashOf(wasmBytes) + "/neurolov.wasm", true},
		{"volunteer.css", "/static/" + hashOf([]byte("body{}")) + "/volunteer.css", true},
		{"dist/missing.wasm", "/static/dist/missing.wasm", false},
		{"dist/.keep", "/static/dist/.keep", false},
	}
	for _, tt := range tests {
		got, ok := a.URL(tt.name)
		if got != tt.want || ok != tt.exists {
			t.Errorf("URL(%q) = %q, %v; want %q, %v", tt.name, got, ok, tt.want, tt.exists)
		}
	}
}

func TestAssetsServe(t *testing.T) {
	a := newAssets(t)
	wasmURL, _ := a.URL("dist/neurolov.wasm")
	smallURL, _ := a.URL("dist/gemm.wasm")
	bigURL, _ := a.URL("dist/big.js")
	tests := []struct {
		name     string
		method   string
		path     string
		encoding string
		header   map[string]string
		status   int
		want     map[string]string // response headers
		body     []byte            // after decoding
	}{
		{
			name: "hashed wasm, gzip", path: wasmURL, encoding: "gzip, deflate, br", status: 200,
			want: map[string]string{"Content-Type": "application/wasm", "Cache-Control": "public, max-age=31536000, immutable", "Content-Encoding": "gzip", "Vary": "Accept-Encoding"},
			body: wasmBytes,
		},
		{
			name: "hashed wasm, identity", path: wasmURL, status: 200,
			want: map[string]string{"Content-Type": "application/wasm", "Content-Encoding": "", "ETag": `"` + hashOf(wasmBytes) + `"`},
			body: wasmBytes,
		},
		{
			name: "gzip refused with q=0", path: wasmURL, encoding: "gzip;q=0, identity", status: 200,
			want: map[string]string{"Content-Encoding": ""}, body: wasmBytes,
		},
		{
			name: "plain URL revalidates", path: "/static/dist/neurolov.wasm", encoding: "gzip", status: 200,
			want: map[string]string{"Cache-Control": "no-cache", "Content-Encoding": "gzip", "ETag": `"` + hashOf(wasmBytes) + `-gzip"`},
			body: wasmBytes,
		},
		{
			name: "not modified", path: "/static/dist/neurolov.wasm", header: map[string]string{"If-None-Match": `"` + hashOf(wasmBytes) + `"`},
			status: 304,
		},
		{
			name: "small file stays uncompressed", path: smallURL, encoding: "gzip", status: 200,
			want: map[string]string{"Content-Encoding": ""}, body: wasmBytes[:200],
		},
		{
			name: "brotli sibling", path: bigURL, encoding: "gzip, br", status: 200,
			want: map[string]string{"Content-Encoding": "br", "Content-Type": "text/javascript; charset=utf-8"}, body: []byte("pretend-brotli"),
		},
		{
			name: "gzip when brotli is not accepted", path: bigURL, encoding: "gzip", status: 200,
			want: map[string]string{"Content-Encoding": "gzip"}, body: []byte(strings.Repeat("x", 5000)),
		},
		{name: "stale hash", path: "/static/dist/0000000000000000/neurolov.wasm", status: 404},
		{name: "hidden file", path: "/static/dist/.keep", status: 404},
		{name: "missing", path: "/static/nope.js", status: 404},
		{name: "outside the prefix", path: "/other/volunteer.js", status: 404},
		{name: "head", method: http.MethodHead, path: wasmURL, status: 200, want: map[string]string{"Content-Type": "application/wasm"}},
		{name: "post", method: http.MethodPost, path: wasmURL, status: 405},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = http.MethodGet
			}
			req := httptest.NewRequest(method, tt.path, nil)
			if tt.encoding != "" {
				req.Header.Set("Accept-Encoding", tt.encoding)
			}
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			a.ServeHTTP(rec, req)
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d", rec.Code, tt.status)
			}
			for k, v := range tt.want {
				if got := rec.Header().Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			if tt.body == nil {
				return
			}
			got := rec.Body.Bytes()
			if rec.Header().Get("Content-Encoding") == "gzip" {
				zr, err := gzip.NewReader(bytes.NewReader(got))
				if err != nil {
					t.Fatal(err)
				}
				if got, err = io.ReadAll(zr); err != nil {
					t.Fatal(err)
				}
				if rec.Body.Len() >= len(tt.body) {
					t.Errorf("gzip body %d bytes, not smaller than %d", rec.Body.Len(), len(tt.body))
				}
			}
			if !bytes.Equal(got, tt.body) {
				t.Errorf("body differs: %d bytes, want %d", len(got), len(tt.body))
			}
		})
	}
}

func TestNewAssetsPrefix(t *testing.T) {
	for _, p := range []string{"", "static/", "/static"} {
		if _, err := web.NewAssets(testTree(), p); !errors.Is(err, web.ErrAssets) {
			t.Errorf("prefix %q: err %v, want ErrAssets", p, err)
		}
	}
}
