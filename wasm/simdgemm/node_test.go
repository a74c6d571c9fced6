//go:build !js

package simdgemm

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestWasmInNode builds gemm.wasm with Debian's clang (scripts/build-wasm.sh)
// and runs this package's GOOS=js tests in node against it: parity with
// the Go reference on awkward shapes, memory growth and, unless -short, the
// benchmarks of the MLP shard (784-512-256-10, batch 256), end to end and
// the bare kernel.
func TestWasmInNode(t *testing.T) {
	for _, tool := range []struct{ name, install string }{
		{"clang", "apt-get install clang lld (or make deps)"},
		{"wasm-ld", "apt-get install lld (or make deps)"},
		{"node", "apt-get install nodejs (Node 16 or later: WebAssembly SIMD)"},
	} {
		if _, err := exec.LookPath(tool.name); err != nil {
			t.Fatalf("%s is missing: %s", tool.name, tool.install)
		}
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	out, err := exec.Command("bash", filepath.Join(root, "scripts", "build-wasm.sh"), "-o", dir, "gemm").CombinedOutput()
	if err != nil {
		t.Fatalf("building gemm.wasm: %v\n%s", err, out)
	}
	t.Logf("%s", out)
	gorootOut, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		t.Fatal(err)
	}
	execWrapper := filepath.Join(strings.TrimSpace(string(gorootOut)), "lib", "wasm", "go_js_wasm_exec")
	args := []string{"test", "-count=1", "-exec=" + execWrapper, "-run=Wasm", "-v"}
	if !testing.Short() {
		args = append(args, "-bench=Wasm", "-benchtime=40x")
	}
	cmd := exec.Command("go", append(args, ".")...)
	cmd.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm", "NEUROLOV_GEMM_WASM="+filepath.Join(dir, "gemm.wasm"))
	out, err = cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the js tests failed in node: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "GFLOP/s") || strings.Contains(line, "|Δ|") || strings.HasPrefix(line, "ok") {
			t.Log(strings.TrimSpace(line))
		}
	}
}
