// Package gpu runs the kernels of package shaders on a GPU through WebGPU
// (github.com/cogentcore/webgpu v0.23.0): natively with wgpu-native over
// Vulkan, Metal or D3D12 (cgo), and in the browser with GOOS=js, from the
// same WGSL sources.
//
// # Use
//
//	dev, err := gpu.Open(gpu.Options{})      // picks an adapter, measures the matmul variants
//	if err != nil { /* fall back to the CPU: errors.Is(err, gpu.ErrNoGPU / ErrNoAdapter) */ }
//	defer dev.Close()
//	outs, err := dev.Run(shaders.MLPInfer, inputs) // shard kernels, same semantics as shaders.Reference
//
// Lower-level operations work on device tensors (*Tensor, from Upload,
// Weight or Zeros; Read brings them back): MatMul (transposes, bias, ReLU
// on the input, none/ReLU/GELU epilogue), Softmax, SoftmaxCrossEntropy,
// ActBackward, Axpby, SGDStep, AdamStep, ColSums, RowSums, LayerNorm and
// Im2Col. Work is queued and submitted in batches; Read and Sync wait for
// it. Every error wraps one of the Err* sentinels. After ErrDeviceLost the
// device is unusable (Err reports it) and a worker should fall back to the
// CPU. Results agree with the CPU references within the bounds of
// shaders.Bound* (see the parity tests, which log the measured ratios).
//
// # Adapters
//
// Open prefers real GPUs (discrete, then integrated) on the primary backends;
// a software adapter (lavapipe, SwiftShader, WARP) is used only when nothing
// else exists, unless Options.Software says otherwise. AdapterInfo.Name is
// readable: wgpu-native reports a device id ("0x0") as the name on Vulkan
// and the name ("llvmpipe (LLVM 15.0.6, 256 bits)") as the driver
// description, so the description is used.
//
// # Variants chosen by measurement
//
// Software GPUs punish workgroup memory and barriers; real GPUs reward them.
// Matmul therefore has variants (Variants): register-blocked (matmul_reg,
// 4×4 outputs per invocation, no barriers, and its vec4 form matmul_vec4 for
// untransposed operands with k and n multiples of 4) and workgroup-tiled
// (matmul_tile: 32×32, 64×64 and 128×128 tiles staged in workgroup memory).
// Open times every variant that fits the device's limits on a square
// product (from 256, doubling while the fastest takes under 3 ms, up to
// 2048), keeps the fastest and caches the choice per adapter, driver and
// kernel-source version: in memory for the process, and in a JSON file
// (Options.TuneCache; by default gpu-variants.json under
// os.UserCacheDir()/neurolov). AdapterInfo reports the variant, its speed and
// where the choice came from; Options.Variant forces one.
//
// # Bounded submissions (lavapipe's bug)
//
// On lavapipe a single submission that runs longer than about 5 s returns
// stale data or crashes the process (wgpu issue 4589). Every submission is
// therefore kept under Options.MaxSubmit (1 s by default) of estimated GPU
// time: a large product is cut into row bands sized from the variant's
// measured speed, each band is submitted alone and waited for before the
// next. The speed estimate follows each submission's real duration (a slower
// measurement is adopted at once), so a loaded machine does not make
// submissions outgrow the bound. Should a submission on a software adapter
// still run past 4 s, its results are discarded with an ErrGPU error rather
// than risk returning stale data.
//
// # Memory
//
// Buffers are pooled by usage and power-of-two size class (Options.PoolBytes
// idle at most) and return to the pool only after the queued work that used
// them has completed. Weight caches model weights by content
// (tensor.Tensor.Hash): Run sends the weights and biases of mlp-infer and the
// second operand of matmul through it, so they are uploaded once and stay on
// the device across shards; entries no caller holds are evicted least
// recently used first beyond Options.WeightCacheBytes. Cached weights are
// read-only (in-place updates return ErrReadOnly). A tensor larger than the
// device's maximum storage binding is refused with ErrTooLarge (the
// coordinator routes such shards elsewhere or splits them).
//
// # Builds
//
//   - cgo on linux/amd64, linux/arm64, darwin or windows: wgpu-native. Needs a
//     driver: on Debian, apt-get install libvulkan1 mesa-vulkan-drivers
//     (lavapipe) or the GPU vendor's Vulkan driver.
//   - GOOS=js: the browser's WebGPU.
//   - Anything else, including CGO_ENABLED=0: Open returns ErrNoGPU ("no GPU:
//     built without cgo"); the API is the same, so callers compile everywhere.
//
// # What the browser build cannot do
//
//   - Open and every method block on JavaScript promises: call them from a
//     goroutine, never inside a js.FuncOf callback (that deadlocks), and do
//     not let main return.
//   - Uploads go through Queue.WriteBuffer, which reads the wasm memory via
//     globalThis.wasm: the page's loader must set it to the result of
//     WebAssembly.instantiateStreaming.
//   - Layouts are always explicit (the shaders' binding declarations are
//     parsed into bind-group and pipeline layouts): cogentcore's js backend
//     has no GetBindGroupLayout or "auto" layout.
//   - The adapter is requested by this package through navigator.gpu (with
//     powerPreference "high-performance", or forceFallbackAdapter for
//     SoftwarePrefer) because cogentcore's GetInfo is empty on js; there is
//     one adapter, so Options.Adapter only filters it. Chromium's SwiftShader
//     is a fallback adapter and counts as software.
//   - Device.Poll is a no-op: waiting is onSubmittedWorkDone. MapAsync
//     reports success even when its promise rejects; a failed mapping shows
//     as an error when the range is read. Validation and out-of-memory errors
//     are caught with error scopes around each batch and pipeline, and an
//     uncaptured error or device.lost marks the device lost.
//   - Wasm is single-threaded: the CPU side of a shard (hashing weights,
//     copying results) competes with the page.
//
// Natively, cogentcore v0.23.0's DeviceLostCallback hands C a Go pointer
// (the cgo checker panics), so it is not used: a lost device shows in the
// status of the next submission or mapping, or as a submission that does not
// finish within two minutes, and becomes ErrDeviceLost.
//
// Natively, waiting for a submission and mapping a buffer do not go through
// cogentcore's Queue.OnSubmittedWorkDone and Buffer.MapAsync: those hand C
// the address of a cgo.Handle that only C points at, so a collection before
// the callback fires frees it and the callback panics (upstream
// cogentcore/webgpu issue 6). async_native.go makes both calls through a C
// shim whose callbacks write into C memory; it says why neither a patched
// copy of the module nor holding the collector off was chosen.
// TestAsyncCallbacksSurviveACollection forces a collection and the reuse of
// the freed slots at that moment; `make test` also runs the package 20
// times under GOGC=1.
package gpu
