//go:build !js && !wasip1

// The import check runs the go command, which a js/wasm test binary cannot.

package protocol

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestImports keeps the package light enough for the browser: built for
// GOOS=js, it may import the standard library and tensor, nothing else (no
// go-ethereum: signatures live in package identity) and no cgo.
func TestImports(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}} {{.CgoFiles}}{{end}}", ".")
	cmd.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	allowed := []string{"github.com/neurolov/neurolov/protocol", "github.com/neurolov/neurolov/tensor"}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		path, cgo, _ := strings.Cut(line, " ")
		if !slices.Contains(allowed, path) {
			t.Errorf("the js build of protocol imports %s; allowed: %v", path, allowed)
		}
		if cgo != "[]" {
			t.Errorf("%s has cgo files %s", path, cgo)
		}
	}
}
