//go:build !js && cgo && (darwin || windows || (linux && (amd64 || arm64)))

package gpu

import (
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"testing"

	"github.com/neurolov/neurolov/shaders"
	"github.com/neurolov/neurolov/tensor"
)

// churn is the hostile moment of upstream cogentcore/webgpu issue 6: a full
// collection, then enough small pointer-free objects holding a value that
// is no live cgo.Handle to reuse every freed small slot. In v0.23.0 the
// only reference to a pending callback's handle is the C side's pointer to
// a Go heap word; this frees that word and overwrites it.
func churn() {
	runtime.GC()
	const n = 1 << 15
	keep := make([]*[2]uintptr, n)
	for i := range keep {
		keep[i] = &[2]uintptr{0x5eed_dead_beef, 0x5eed_dead_beef}
	}
	runtime.KeepAlive(keep)
}

// TestAsyncCallbacksSurviveACollection runs matmuls on a fresh device with a
// collection and slot reuse forced between registering each asynchronous
// callback (work done, buffer mapped) and polling for it. It runs in a
// child process: with the upstream bug the callback panics inside a cgo
// callback ("misuse of an invalid Handle"), which no recover catches.
func TestAsyncCallbacksSurviveACollection(t *testing.T) {
	if os.Getenv("NEUROLOV_GC_CHILD") == "1" {
		runChurnedMatmuls(t)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestAsyncCallbacksSurviveACollection$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "NEUROLOV_GC_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("matmuls with a collection between registering a callback and polling for it: %v\n%s", err, out)
	}
}

func runChurnedMatmuls(t *testing.T) {
	d, err := Open(Options{TuneCache: "-", Variant: "reg4x4-8x8"})
	if err != nil {
		t.Fatalf("no WebGPU device: %v", err)
	}
	defer d.Close()
	churned := 0
	betweenRegisterAndPoll = func() { churned++; churn() }
	defer func() { betweenRegisterAndPoll = nil }()
	rng := rand.New(rand.NewPCG(6, 6))
	for range 5 {
		a, b := tensor.New(33, 17), tensor.New(17, 29)
		for i := range a.Data {
			a.Data[i] = rng.Float32() - 0.5
		}
		for i := range b.Data {
			b.Data[i] = rng.Float32() - 0.5
		}
		out, err := d.Run(shaders.Matmul, []*tensor.Tensor{a, b})
		if err != nil {
			t.Fatal(err)
		}
		want, _ := shaders.Reference(shaders.Matmul, []*tensor.Tensor{a, b})
		for i, v := range want[0].Data {
			if diff := v - out[0].Data[i]; diff > 1e-4 || diff < -1e-4 {
				t.Fatalf("element %d: got %v, want %v", i, out[0].Data[i], v)
			}
		}
	}
	// Each matmul waits for its submission and maps its output at least.
	if churned < 10 {
		t.Fatalf("the collection was forced %d times in 5 matmuls, want every wait and mapping", churned)
	}
	t.Logf("forced a collection and slot reuse %d times between registration and poll", churned)
}
