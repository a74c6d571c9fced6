// Package shaders defines the compute kernels Neurolov runs and their Go CPU
// references.
//
// Each kernel has one meaning everywhere: the WGSL source run by browser
// tabs and data-center GPUs, the BLAS path of native CPU workers, and the
// pure-Go reference in this package, which is the portable CPU backend and
// the ground truth that parity tests and the coordinator's checks rely on.
//
// Kernels that travel as shards (see Spec):
//
//   - "matmul": inputs A (m×k), B (k×n); output C = A·B (m×n).
//   - "mlp-infer": inputs X (b×d0), then for each layer l = 1..L a weight
//     W_l (d_{l-1}×d_l) and a bias b_l (d_l); outputs every layer's
//     pre-activation Z_l = H_{l-1}·W_l + b_l (b×d_l), where H_0 = X and
//     H_l = relu(Z_l). The logits are Z_L. Returning every Z_l lets the
//     coordinator check each layer with Freivalds' algorithm.
//
// This package has no GPU and no cgo code: the coordinator imports it for
// its checks. The WebGPU executor lives in shaders/gpu and the BLAS binding
// in shaders/blas.
package shaders
