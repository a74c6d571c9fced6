package gpu

import (
	"errors"
	"strconv"
	"time"

	"github.com/neurolov/neurolov/shaders"
)

// Errors. Every error the package returns wraps one of these, or one of
// package shaders' (ErrInputs and ErrUnknownKernel from Run, ErrShader).
var (
	// ErrNoGPU reports a build without GPU support (native without cgo, or a
	// platform wgpu-native has no library for).
	ErrNoGPU = errors.New("gpu: no GPU: built without cgo")
	// ErrNoAdapter reports that no usable adapter was found.
	ErrNoAdapter = errors.New("gpu: no usable WebGPU adapter (on Debian: apt-get install libvulkan1 mesa-vulkan-drivers)")
	// ErrDeviceLost reports a device that was lost or that failed a
	// submission; the device is unusable and the caller should fall back to
	// the CPU (or Open a new one).
	ErrDeviceLost = errors.New("gpu: device lost")
	// ErrGPU reports a WebGPU call that failed (validation, out of memory).
	ErrGPU = errors.New("gpu: WebGPU call failed")
	// ErrTooLarge reports a tensor larger than the device can bind.
	ErrTooLarge = errors.New("gpu: tensor too large for the device")
	// ErrShape reports operands whose shapes do not fit the operation.
	ErrShape = errors.New("gpu: bad operand shapes")
	// ErrClosed reports use of a closed device or a released tensor.
	ErrClosed = errors.New("gpu: device closed or tensor released")
	// ErrReadOnly reports an in-place update of a cached weight.
	ErrReadOnly = errors.New("gpu: cached weights are read-only")
)

// SoftwarePolicy says when a software (CPU) adapter such as lavapipe or
// SwiftShader may be used.
type SoftwarePolicy int

const (
	// SoftwareFallback uses a software adapter only when no hardware adapter
	// exists (the default).
	SoftwareFallback SoftwarePolicy = iota
	// SoftwarePrefer picks a software adapter even when hardware exists
	// (deterministic CI, tests).
	SoftwarePrefer
	// SoftwareNever refuses software adapters.
	SoftwareNever
)

// Options configure Open. The zero value is a sensible default.
type Options struct {
	// Software is the software-adapter policy.
	Software SoftwarePolicy
	// Adapter, when set, restricts the choice to adapters whose name or
	// driver description contains it (case-insensitive).
	Adapter string
	// Variant forces a matmul variant by name (see Variants) instead of
	// measuring at Open.
	Variant string
	// MaxSubmit bounds the estimated GPU time of one submission (default
	// 1 s). lavapipe returns stale data or crashes on submissions longer than
	// about 5 s, so large products are cut into row bands submitted and waited
	// for one at a time.
	MaxSubmit time.Duration
	// WeightCacheBytes bounds the device memory of cached weights that no
	// caller holds (default 256 MiB; see Device.Weight).
	WeightCacheBytes int64
	// PoolBytes bounds the idle buffers kept for reuse (default 256 MiB).
	PoolBytes int64
	// TuneCache is the JSON file caching the measured variant per adapter;
	// "" means gpu-variants.json under os.UserCacheDir()/neurolov, "-"
	// disables the file (measurements are still cached in memory).
	TuneCache string
}

func (o Options) withDefaults() Options {
	if o.MaxSubmit <= 0 {
		o.MaxSubmit = time.Second
	}
	if o.WeightCacheBytes <= 0 {
		o.WeightCacheBytes = 256 << 20
	}
	if o.PoolBytes <= 0 {
		o.PoolBytes = 256 << 20
	}
	return o
}

// AdapterInfo describes the adapter a Device runs on and what was measured
// on it.
type AdapterInfo struct {
	Name     string // readable name (natively the driver description, e.g. "llvmpipe (LLVM 15.0.6, 256 bits)")
	Vendor   string
	Driver   string // driver description as reported
	Backend  string // "vulkan", "metal", "d3d12", "webgpu" (browser), …
	Type     string // "discrete-gpu", "integrated-gpu", "cpu", "unknown"
	Software bool   // a CPU implementation (lavapipe, SwiftShader, WARP)

	MaxBufferBytes          uint64 // largest buffer
	MaxStorageBinding       uint64 // largest storage binding: the largest tensor
	MaxWorkgroupInvocations uint32
	MaxWorkgroupStorage     uint32

	// Variant is the matmul variant in use and VariantGFLOPS its measured
	// speed on the tuning problem (0 when forced by Options.Variant).
	Variant       string
	VariantGFLOPS float64
	// Tuning lists every candidate measured, fastest first (empty when the
	// choice came from a cache or was forced).
	Tuning []VariantResult
	// TunedFrom says where the choice came from: "measured", "memory",
	// "file" or "forced".
	TunedFrom string
}

// VariantResult is one candidate's measured speed.
type VariantResult struct {
	Variant string  `json:"variant"`
	GFLOPS  float64 `json:"gflops"`
}

// Variant is one matmul kernel configuration.
type Variant struct {
	Shader   string // shaders.ShaderMatMulReg or shaders.ShaderMatMulTile
	WGX, WGY uint32 // workgroup size
	TM, TN   uint32 // outputs per invocation (rows, columns); 4×4 for matmul_reg
	BK       uint32 // depth of the staged slices (tiled only)
}

// Name is the variant's stable name, e.g. "reg4x4-8x8" or "tile64x64k16-16x16".
func (v Variant) Name() string {
	if v.Shader == shaders.ShaderMatMulReg {
		return "reg4x4-" + itoa(v.WGX) + "x" + itoa(v.WGY)
	}
	return "tile" + itoa(v.WGY*v.TM) + "x" + itoa(v.WGX*v.TN) + "k" + itoa(v.BK) + "-" + itoa(v.WGX) + "x" + itoa(v.WGY)
}

// BlockRows is the number of output rows one workgroup covers.
func (v Variant) BlockRows() uint32 { return v.WGY * v.TM }

// BlockCols is the number of output columns one workgroup covers.
func (v Variant) BlockCols() uint32 { return v.WGX * v.TN }

// Invocations is the workgroup size.
func (v Variant) Invocations() uint32 { return v.WGX * v.WGY }

// WorkgroupBytes is the workgroup memory the variant uses.
func (v Variant) WorkgroupBytes() uint32 {
	if v.Shader == shaders.ShaderMatMulReg {
		return 0
	}
	return 4 * v.BK * (v.BlockRows() + 1 + v.BlockCols() + 1)
}

// vec4OK reports whether a register-blocked product of these shapes runs
// as matmul_vec4: untransposed operands, k and n multiples of 4.
func (v Variant) vec4OK(m, k, n int, o shaders.MatMulOpts) bool {
	return v.Shader == shaders.ShaderMatMulReg && !o.TransA && !o.TransB && k > 0 && k%4 == 0 && n%4 == 0
}

func (v Variant) consts() map[string]uint32 {
	c := map[string]uint32{"WG_X": v.WGX, "WG_Y": v.WGY}
	if v.Shader == shaders.ShaderMatMulTile {
		c["TM"], c["TN"], c["BK"] = v.TM, v.TN, v.BK
		c["TA_LEN"], c["TB_LEN"] = v.BK*(v.BlockRows()+1), v.BK*(v.BlockCols()+1)
	}
	return c
}

// Variants are the matmul candidates measured at Open, register-blocked
// first (the software-GPU favourites), then workgroup-tiled (real GPUs).
var Variants = []Variant{
	{Shader: shaders.ShaderMatMulReg, WGX: 8, WGY: 8, TM: 4, TN: 4},
	{Shader: shaders.ShaderMatMulReg, WGX: 16, WGY: 16, TM: 4, TN: 4},
	{Shader: shaders.ShaderMatMulReg, WGX: 16, WGY: 4, TM: 4, TN: 4},
	{Shader: shaders.ShaderMatMulTile, WGX: 8, WGY: 8, TM: 4, TN: 4, BK: 16},
	{Shader: shaders.ShaderMatMulTile, WGX: 16, WGY: 16, TM: 4, TN: 4, BK: 16},
	{Shader: shaders.ShaderMatMulTile, WGX: 16, WGY: 16, TM: 8, TN: 8, BK: 8},
}

// VariantByName returns the candidate with the given name.
func VariantByName(name string) (Variant, bool) {
	for _, v := range Variants {
		if v.Name() == name {
			return v, true
		}
	}
	return Variant{}, false
}

func itoa(v uint32) string { return strconv.FormatUint(uint64(v), 10) }
