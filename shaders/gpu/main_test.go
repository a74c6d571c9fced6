//go:build js || (cgo && (darwin || windows || (linux && (amd64 || arm64))))

package gpu

import (
	"os"
	"sync"
	"testing"
)

// The parity tests share one device: opening measures the variants, which
// takes a second or two on lavapipe.
var shared struct {
	once sync.Once
	dev  *Device
	err  error
}

// device returns the shared device. A missing adapter fails the test (never
// skips it): CI must have a GPU or lavapipe.
func device(t testing.TB) *Device {
	t.Helper()
	shared.once.Do(func() {
		shared.dev, shared.err = Open(Options{TuneCache: "-"})
	})
	if shared.err != nil {
		t.Fatalf("no WebGPU device: %v\n(on Debian: apt-get install libvulkan1 mesa-vulkan-drivers; lavapipe is enough)", shared.err)
	}
	if err := shared.dev.Err(); err != nil {
		t.Fatalf("shared device unusable: %v", err)
	}
	return shared.dev
}

func TestMain(m *testing.M) {
	// wgpu-native warns when it finds no XDG_RUNTIME_DIR.
	var xdg string
	if os.Getenv("XDG_RUNTIME_DIR") == "" {
		if dir, err := os.MkdirTemp("", "xdg"); err == nil {
			xdg = dir
			os.Setenv("XDG_RUNTIME_DIR", dir)
		}
	}
	code := m.Run()
	if shared.dev != nil {
		shared.dev.Close()
	}
	printRatios()
	if xdg != "" {
		os.RemoveAll(xdg)
	}
	os.Exit(code)
}
