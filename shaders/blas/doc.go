// Package blas runs Neurolov's CPU kernels through OpenBLAS, for native
// workers.
//
// It is the fast CPU backend: the same kernels as package shaders ("matmul"
// and "mlp-infer", see shaders.RunInto), with the same semantics and the same
// inputs and outputs, but with every matrix product handed to OpenBLAS's
// cblas_sgemm. The bias and the activation are fused around the sgemm call:
// the bias is copied into the output rows first and sgemm accumulates into
// them (beta = 1), so the only work outside OpenBLAS is one pass over the
// output and, where the layer's input is activated, one pass over the input.
//
// # Builds
//
// The OpenBLAS binding needs cgo and the OpenBLAS library and header
// (Debian's libopenblas-dev, which `make deps` installs). A build with
// CGO_ENABLED=0 still compiles: Available reports false and every function
// that would call OpenBLAS returns ErrUnavailable, so a worker falls back to
// the portable pure-Go kernels in package shaders. The browser client never
// imports this package.
//
// # Activation on the input
//
// A "mlp-infer" layer l > 1 multiplies relu(Z_{l-1}) by W_l, but Z_{l-1} must
// stay unactivated: it is an output the coordinator checks. MatMulBiasReLUIn
// therefore writes relu(h) into a scratch buffer taken from a pool and hands
// that to sgemm; the buffers are reused, so a worker running shards of a
// steady shape allocates nothing. The copy is a vectorized C loop costing
// m·k loads and stores against the 2·m·k·n flops of the product (about 13 µs
// for a 256×256 input; Go's scalar loop took five times as long, a third of
// the cost of the sgemm it fed).
//
// # Differences from the pure-Go reference
//
// Results agree with shaders.Reference within float32 rounding: OpenBLAS
// sums in a different order (and with fused multiply-adds), so each element
// differs from the reference by at most 2·γ_K·Σ_p |a_ip|·|b_pj| where
// γ_K = K·u/(1−K·u) and u = 2⁻²⁴ (K+1 terms when a bias is added). The
// reference also skips zero (and, under relu, negative) inputs, which only
// matters when a weight is ±Inf or NaN: there the reference keeps a finite
// result where 0·Inf makes OpenBLAS produce NaN. Workers reject non-finite
// results in any case.
//
// # Kernel selection
//
// OpenBLAS picks its kernels for the CPU at load time. The version in Debian
// 12 (0.3.21) does not know recent Intel Xeons (family 6 model 207, Emerald
// Rapids, as on the build machines) and falls back to its generic SSE3
// "Prescott" kernels, which run sgemm about five times slower (33 against
// 170 GFLOP/s on one core there). When that happens and the CPU and OS
// support AVX-512 (or AVX2 and FMA), this package's init switches OpenBLAS
// to its SkylakeX (or Haswell) kernels, as OPENBLAS_CORETYPE would; it
// never overrides an OPENBLAS_CORETYPE the user set. Core names the kernels
// in use, for logs and the worker's handshake.
//
// # Threads
//
// OpenBLAS keeps its own thread pool; Threads and SetThreads read and set
// its size (openblas_set_num_threads), which benchmarks use to measure one
// core. The setting is process-wide: change it only while no call into this
// package is running. Concurrent calls to Sgemm, MatMulBiasReLUIn and
// RunInto from several goroutines are safe.
package blas
