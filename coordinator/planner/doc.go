// Package planner turns a job into shards and puts the shards' outputs back
// together. It is pure: no I/O, no clock, no randomness, so planning the
// same job twice gives the same shards (the server re-plans a finished job
// to assemble it). It imports only tensor and shaders.
//
// # Shards
//
//   - "matmul", C = A·B with A m×k and B k×n: the output is cut into a grid
//     of tiles C[r0:r1, c0:c1]; the tile's shard computes A[r0:r1, :] ·
//     B[:, c0:c1]. Row slices of A are views of A's data (rows are
//     contiguous); column slices of B are copied into their own tensors.
//     Every tile in a row of the grid holds the same *Tensor for its A rows,
//     and every tile in a column the same *Tensor for its B columns, so a
//     content hash (and a worker's cache entry) is made once per slice. A
//     job that fits one tile is one shard holding the job's own inputs.
//   - "mlp-infer", X (b×d0) then (W_l, b_l) pairs: X is cut into row
//     batches X[r0:r1, :]; every shard holds the job's own weight and bias
//     tensors, so weights are hashed and sent to a worker once. A shard's
//     outputs are Z_1..Z_L for its rows.
//
// Shard inputs alias the job's inputs: treat them as read-only.
//
// # Cost model
//
// A shard's cost is what shaders.FLOPs says for its inputs (2 per
// multiply-add, plus the bias adds of mlp-infer), so shard costs add up to
// the job's exactly. Its size, Bytes, is 4 bytes per float32 of every input
// and every output: for a matmul tile tr×tc, 4·(tr·k + k·tc + tr·tc); for an
// mlp batch of r rows, 4·(r·d0 + Σ|W_l| + Σ|b_l| + r·Σd_l). Weights count in
// full even though a worker that holds them already is not sent them again,
// because the first shard a worker gets must fit.
//
// Tile sizes start from Options (TileRows, TileCols, BatchRows) or the
// defaults (512×512 tiles: big enough to amortise a round trip and keep a GPU
// busy, small enough for a browser tab; 256-row batches: the batch the
// browser kernels are tuned for). While a shard would exceed MaxShardFLOPs
// (default 4 GFLOP: a second or two on a browser's CPU, milliseconds on a
// GPU, and well under the ~5 s a software Vulkan submission survives) or
// MaxShardBytes (default 64 MiB: what a browser tab can hold and a WebGPU
// storage buffer can bind), the larger tile side shrinks by an eighth; a job
// whose single row and column (or single batch row) still exceeds a limit
// is refused, since splitting the inner dimension or the weights would
// change the kernels. Finally the tiles are evened out: a 1000-row job in
// tiles of at most 512 rows gets two tiles of 500 rather than 512 and 488,
// so shards cost alike and the slowest does not hold the job back.
//
// A job's outputs are bounded too (MaxOutputBytes, default 4 GiB): the
// coordinator holds every verified shard result until the result is read,
// and a few kilobytes of inputs can ask for an enormous, cheap product.
package planner
