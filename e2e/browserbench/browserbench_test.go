package browserbench_test

import (
	"bytes"
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/neurolov/neurolov/e2e/browser"
	"github.com/neurolov/neurolov/e2e/browserbench"
)

// TestMain checks that Run leaves no goroutine behind.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestRunPrintsEveryBackend runs a short benchmark (two runs, batch 64):
// every backend is measured, and the output ends with the cpu-wasm line.
func TestRunPrintsEveryBackend(t *testing.T) {
	var out bytes.Buffer
	results, err := browserbench.RunWith(context.Background(), &out, browserbench.Options{Runs: 2, Batch: 64})
	t.Logf("output:\n%s", out.String())
	if errors.Is(err, browser.ErrNoChromium) || errors.Is(err, browserbench.ErrNotBuilt) {
		t.Fatal(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	last := lines[len(lines)-1]
	if !regexp.MustCompile(`^cpu-wasm: [0-9]+\.[0-9] GFLOP/s$`).MatchString(last) {
		t.Errorf("last line %q, want cpu-wasm: N GFLOP/s", last)
	}
	seen := map[string]bool{}
	for _, r := range results {
		if r.Err != nil {
			t.Errorf("%s: %v", r.Backend, r.Err)
			continue
		}
		seen[r.Backend] = true
		if r.GFLOPS <= 0 || len(r.Runs) != 2 {
			t.Errorf("%s: %.2f GFLOP/s over %d runs", r.Backend, r.GFLOPS, len(r.Runs))
		}
	}
	for _, b := range []string{"webgpu", "cpu-wasm", "native-blas"} {
		if !seen[b] {
			t.Errorf("%s was not measured", b)
		}
	}
}
