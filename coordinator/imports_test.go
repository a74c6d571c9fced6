// Package coordinator_test guards the coordinator's import graph: the
// coordinator verifies with the CPU references only, so it must pull in no
// GPU code, no BLAS binding and no worker code.
package coordinator_test

import (
	"os/exec"
	"strings"
	"testing"
)

func TestCoordinatorImportsNoGPUBLASOrWorker(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "./...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	forbidden := []string{
		"github.com/neurolov/neurolov/shaders/gpu",
		"github.com/neurolov/neurolov/shaders/blas",
		"github.com/neurolov/neurolov/worker",
		"github.com/cogentcore/webgpu",
	}
	var bad []string
	for _, pkg := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if pkg == f || strings.HasPrefix(pkg, f+"/") {
				bad = append(bad, pkg)
			}
		}
	}
	if len(bad) > 0 {
		t.Fatalf("the coordinator imports %v: keep GPU, BLAS and worker code out of coordinator/", bad)
	}
}
