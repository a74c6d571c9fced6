//go:build cgo

package blas

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestBetterCore(t *testing.T) {
	all := features{avx512: true, avx2: true}
	tests := []struct {
		name    string
		current string
		forced  bool
		f       features
		want    string
	}{
		{"generic on AVX-512", "Prescott", false, all, "SkylakeX"},
		{"generic on AVX2", "Prescott", false, features{avx2: true}, "Haswell"},
		{"generic on SSE only", "Prescott", false, features{}, ""},
		{"user chose the core", "Prescott", true, all, ""},
		{"detected core kept", "Haswell", false, all, ""},
		{"detected SkylakeX kept", "SkylakeX", false, all, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := betterCore(tt.current, tt.forced, tt.f); got != tt.want {
				t.Fatalf("betterCore(%q, %v, %+v) = %q, want %q", tt.current, tt.forced, tt.f, got, tt.want)
			}
		})
	}
}

// TestCoreInUse checks that init switched OpenBLAS off its generic kernels
// where this CPU supports better ones.
func TestCoreInUse(t *testing.T) {
	_, forced := os.LookupEnv("OPENBLAS_CORETYPE")
	want := betterCore(detectedCore, forced, x86Features())
	if want == "" {
		want = detectedCore
	}
	if got := Core(); !strings.EqualFold(got, want) {
		t.Fatalf("OpenBLAS runs %q kernels, want %q (it detected %q)", got, want, detectedCore)
	}
	t.Logf("OpenBLAS detected %q, runs %q", detectedCore, Core())
}

// TestCoreTypeRespected runs this test binary again with OPENBLAS_CORETYPE
// set and checks that init leaves the user's choice alone.
func TestCoreTypeRespected(t *testing.T) {
	if os.Getenv("NEUROLOV_BLAS_CHILD") == "1" {
		if got := Core(); got != "Core2" {
			t.Fatalf("Core() = %q under OPENBLAS_CORETYPE=Core2", got)
		}
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestCoreTypeRespected$", "-test.count=1")
	cmd.Env = append(os.Environ(), "NEUROLOV_BLAS_CHILD=1", "OPENBLAS_CORETYPE=Core2")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
}
