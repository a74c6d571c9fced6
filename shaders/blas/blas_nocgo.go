//go:build !cgo

package blas

// Available reports whether this build calls OpenBLAS; it is false in builds
// without cgo, where the pure-Go kernels of package shaders are the CPU path.
func Available() bool { return false }

// Core returns the name of the kernel set OpenBLAS runs: "" in a build
// without cgo.
func Core() string { return "" }

// Threads returns the number of threads OpenBLAS uses for one call: 0 in a
// build without cgo.
func Threads() int { return 0 }

// SetThreads sets the number of threads OpenBLAS uses for one call; in a
// build without cgo it returns ErrUnavailable.
func SetThreads(n int) error { return ErrUnavailable }

// gemm is never reached without cgo: every caller checks Available first.
func gemm(c, a, b []float32, m, k, n int, beta float32) {
	panic("blas: gemm called in a build without cgo")
}

// reluCopy is never reached without cgo: its only caller checks Available.
func reluCopy(dst, src []float32) {
	panic("blas: reluCopy called in a build without cgo")
}
