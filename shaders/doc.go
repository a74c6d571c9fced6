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
// Beyond the shard kernels, the set needed for MLP and small-CNN inference
// and training has one WGSL source each in wgsl/ (embedded; see wgsl.go),
// a params struct laid out to WGSL's uniform rules (params.go, checked by a
// test), a CPU reference with the same semantics (ops.go) and a float32
// error bound derived per kernel (ops_bound.go): matmul with transpose flags
// and a fused bias + relu/gelu epilogue, in register-blocked and
// workgroup-tiled variants; row softmax; softmax cross-entropy and its
// gradient; relu/gelu backward; axpby, SGD and Adam updates; row and column
// sums; layer norm; im2col.
//
// This package has no GPU and no cgo code: the coordinator imports it for
// its checks. The WebGPU executor lives in shaders/gpu and the BLAS binding
// in shaders/blas.
package shaders
