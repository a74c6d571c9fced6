package gpu

import "strings"

// softwareMarkers are substrings of the names of CPU implementations of
// Vulkan, D3D12 and WebGPU.
var softwareMarkers = []string{"llvmpipe", "lavapipe", "softpipe", "swiftshader", "microsoft basic render", "warp"}

// isSoftware reports whether an adapter is a CPU implementation.
func isSoftware(typ string, names ...string) bool {
	if typ == "cpu" {
		return true
	}
	for _, n := range names {
		l := strings.ToLower(n)
		for _, m := range softwareMarkers {
			if strings.Contains(l, m) {
				return true
			}
		}
	}
	return false
}

// candidate is an adapter found at Open, before a device is requested.
type candidate struct {
	index int
	info  AdapterInfo
}

// adapterRank orders adapters: lower is better. Discrete GPUs before
// integrated, unknown and software ones; within a type, Vulkan, Metal and
// D3D12 before the rest. The policy moves software adapters first
// (SoftwarePrefer) or out (SoftwareNever: ok is false).
func adapterRank(info AdapterInfo, policy SoftwarePolicy) (rank int, ok bool) {
	r := 0
	switch {
	case info.Software:
		r = 30
	case info.Type == "discrete-gpu":
		r = 0
	case info.Type == "integrated-gpu":
		r = 10
	default:
		r = 20
	}
	switch info.Backend {
	case "vulkan", "metal", "d3d12", "webgpu":
	default:
		r += 5
	}
	switch {
	case info.Software && policy == SoftwareNever:
		return 0, false
	case info.Software && policy == SoftwarePrefer:
		r -= 100
	}
	return r, true
}

// pickAdapter returns the index (into cands) of the best adapter allowed by
// the options, or -1.
func pickAdapter(cands []candidate, opts Options) int {
	best, bestRank := -1, 0
	for i, c := range cands {
		if opts.Adapter != "" {
			f := strings.ToLower(opts.Adapter)
			if !strings.Contains(strings.ToLower(c.info.Name), f) && !strings.Contains(strings.ToLower(c.info.Driver), f) {
				continue
			}
		}
		r, ok := adapterRank(c.info, opts.Software)
		if !ok {
			continue
		}
		if best < 0 || r < bestRank {
			best, bestRank = i, r
		}
	}
	return best
}
