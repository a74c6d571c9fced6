//go:build cgo

package blas

/*
#cgo CFLAGS: -O3
#cgo LDFLAGS: -lopenblas
#include <stdlib.h>
#include <cblas.h>

// neurolov_relu_copy sets dst[i] = relu(src[i]), keeping NaN as the Go
// reference does; -O3 vectorizes it.
static void neurolov_relu_copy(float *restrict dst, const float *restrict src, size_t n) {
	for (size_t i = 0; i < n; i++) {
		float v = src[i];
		dst[i] = v < 0.0f ? 0.0f : v;
	}
}

// Exported by DYNAMIC_ARCH builds of OpenBLAS (Debian's among them); weak so
// that a build for one fixed CPU still links, and forceCore then does nothing.
extern void gotoblas_dynamic_init(void) __attribute__((weak));
extern void gotoblas_dynamic_quit(void) __attribute__((weak));

// neurolov_force_core re-runs OpenBLAS's kernel selection as if
// OPENBLAS_CORETYPE were core, and reports whether it could.
static int neurolov_force_core(const char *core) {
	if (!gotoblas_dynamic_init || !gotoblas_dynamic_quit) return 0;
	setenv("OPENBLAS_CORETYPE", core, 1);
	gotoblas_dynamic_quit();
	gotoblas_dynamic_init();
	unsetenv("OPENBLAS_CORETYPE");
	return 1;
}
*/
import "C"

import (
	"os"
	"strings"
	"unsafe"

	"golang.org/x/sys/cpu"
)

// maxThreads bounds SetThreads' argument before it becomes a C int;
// OpenBLAS clamps it further to the CPUs it was built for.
const maxThreads = 1 << 16

// defaultThreads is the size of OpenBLAS's thread pool at start-up
// (OPENBLAS_NUM_THREADS, or the number of cores).
var defaultThreads = int(C.openblas_get_num_threads())

// detectedCore is the kernel set OpenBLAS chose by itself at start-up.
var detectedCore = Core()

func init() {
	_, forced := os.LookupEnv("OPENBLAS_CORETYPE")
	if core := betterCore(detectedCore, forced, x86Features()); core != "" {
		forceCore(core)
	}
}

// Available reports whether this build calls OpenBLAS; it is true in builds
// with cgo.
func Available() bool { return true }

// Core returns the name of the kernel set OpenBLAS runs (openblas_get_corename),
// such as "SkylakeX" or "Haswell"; see the package comment for when it differs
// from the one OpenBLAS detected. It is "" in a build without cgo.
func Core() string { return C.GoString(C.openblas_get_corename()) }

// Threads returns the number of threads OpenBLAS uses for one call.
func Threads() int { return int(C.openblas_get_num_threads()) }

// SetThreads sets the number of threads OpenBLAS uses for one call; n ≤ 0
// restores the count at start-up. It is process-wide: call it only while no
// call into this package is running.
func SetThreads(n int) error {
	if n <= 0 {
		n = defaultThreads
	}
	C.openblas_set_num_threads(C.int(min(n, maxThreads)))
	return nil
}

// gemm computes c = a·b + beta·c (row-major, m×k by k×n) after checkGemm
// has accepted the arguments and m, k and n are all positive.
func gemm(c, a, b []float32, m, k, n int, beta float32) {
	C.cblas_sgemm(C.CblasRowMajor, C.CblasNoTrans, C.CblasNoTrans,
		C.blasint(m), C.blasint(n), C.blasint(k),
		1, (*C.float)(&a[0]), C.blasint(k),
		(*C.float)(&b[0]), C.blasint(n),
		C.float(beta), (*C.float)(&c[0]), C.blasint(n))
}

// reluCopy sets dst[i] = max(src[i], 0) for the len(src) > 0 elements of
// src (NaN stays NaN); dst must be as long and not overlap src. It runs in C:
// Go compiles it to scalar code whose cost, at about 1 ns an element, was a
// third of the sgemm it feeds in the reference MLP.
func reluCopy(dst, src []float32) {
	dst = dst[:len(src)]
	C.neurolov_relu_copy((*C.float)(&dst[0]), (*C.float)(&src[0]), C.size_t(len(src)))
}

// genericCore is the kernel set a DYNAMIC_ARCH OpenBLAS falls back to on an
// x86-64 CPU it does not know (0.3.21, Debian 12's, does not know Intel
// family 6 model 207, Emerald Rapids, and so runs SSE3 kernels on it).
const genericCore = "Prescott"

// features are the x86-64 instruction sets that OpenBLAS's better kernel
// sets need, as supported by both the CPU and the OS.
type features struct {
	avx512 bool // AVX-512 F, CD, BW, DQ and VL: the SkylakeX kernels
	avx2   bool // AVX2 and FMA: the Haswell kernels
}

// x86Features reads this machine's features (all false off x86-64).
func x86Features() features {
	x := cpu.X86
	return features{
		avx512: x.HasAVX512F && x.HasAVX512CD && x.HasAVX512BW && x.HasAVX512DQ && x.HasAVX512VL && x.HasAVX2 && x.HasFMA,
		avx2:   x.HasAVX2 && x.HasFMA,
	}
}

// betterCore returns the kernel set to switch to when OpenBLAS fell back to
// its generic kernels on a CPU that supports better ones, and "" to keep
// the current set (always when the user chose one with OPENBLAS_CORETYPE).
func betterCore(current string, forced bool, f features) string {
	if forced || !strings.EqualFold(current, genericCore) {
		return ""
	}
	switch {
	case f.avx512:
		return "SkylakeX"
	case f.avx2:
		return "Haswell"
	}
	return ""
}

// forceCore makes OpenBLAS use the named kernel set. It runs from init,
// before any call into OpenBLAS; it does nothing when the library cannot
// re-select its kernels (a build that is not DYNAMIC_ARCH).
func forceCore(core string) {
	cs := C.CString(core)
	defer C.free(unsafe.Pointer(cs))
	C.neurolov_force_core(cs)
}
