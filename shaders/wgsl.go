package shaders

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// The WGSL sources. A kernel file may start with a line
// "// requires: name ..." naming include files (common, rowreduce, params)
// that WGSL prepends, in order, since WGSL has no include of its own.
//
//go:embed wgsl/*.wgsl
var wgslFiles embed.FS

// Shader names: the kernel files in wgsl/, without the extension. Each has
// one entry point, "main", and a CPU reference in this package with the same
// semantics (see ops.go).
const (
	ShaderMatMulReg   = "matmul_reg"   // MatMulFused, register-blocked 4×4 per invocation
	ShaderMatMulVec4  = "matmul_vec4"  // MatMulFused, register-blocked on vec4 (untransposed, k and n multiples of 4)
	ShaderMatMulTile  = "matmul_tile"  // MatMulFused, workgroup-tiled
	ShaderSoftmax     = "softmax"      // Softmax
	ShaderXent        = "xent"         // SoftmaxCrossEntropy
	ShaderLayerNorm   = "layernorm"    // LayerNorm
	ShaderReduce      = "reduce"       // ColSums and RowSums
	ShaderActBackward = "act_backward" // ActBackward
	ShaderAxpby       = "axpby"        // Axpby
	ShaderSGD         = "sgd"          // SGDStep
	ShaderAdam        = "adam"         // AdamStep
	ShaderIm2Col      = "im2col"       // Im2Col
)

// EntryPoint is the entry point of every kernel.
const EntryPoint = "main"

// includeFiles are the WGSL files that only exist to be prepended.
var includeFiles = map[string]bool{"common": true, "rowreduce": true, "params": true}

// ErrShader reports a request for a shader or constant that does not exist.
var ErrShader = errors.New("shaders: bad shader request")

var requiresLine = regexp.MustCompile(`^// requires:((?: [a-z_]+)+)\n`)

// Shaders returns the names of the kernels, sorted.
func Shaders() []string {
	ents, err := fs.ReadDir(wgslFiles, "wgsl")
	if err != nil {
		panic("shaders: embedded wgsl folder unreadable: " + err.Error())
	}
	var names []string
	for _, e := range ents {
		name := strings.TrimSuffix(e.Name(), ".wgsl")
		if !includeFiles[name] {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

// WGSL returns the complete source of shader name, with its includes
// prepended, and each module-scope "const NAME: u32 = <n>u;" named in consts
// set to the given value (workgroup sizes and tile shapes, which WGSL
// override constants cannot size in every implementation). A constant that
// the source does not declare is an error.
func WGSL(name string, consts map[string]uint32) (string, error) {
	if includeFiles[name] {
		return "", fmt.Errorf("%w: %q is an include, not a kernel", ErrShader, name)
	}
	body, err := wgslFiles.ReadFile("wgsl/" + name + ".wgsl")
	if err != nil {
		return "", fmt.Errorf("%w: no shader %q", ErrShader, name)
	}
	src := string(body)
	var b strings.Builder
	if m := requiresLine.FindStringSubmatch(src); m != nil {
		for _, inc := range strings.Fields(m[1]) {
			text, err := wgslFiles.ReadFile("wgsl/" + inc + ".wgsl")
			if err != nil || !includeFiles[inc] {
				return "", fmt.Errorf("%w: shader %q requires unknown include %q", ErrShader, name, inc)
			}
			b.Write(text)
			b.WriteString("\n")
		}
	}
	b.WriteString(src)
	out := b.String()
	keys := make([]string, 0, len(consts))
	for k := range consts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		re, err := regexp.Compile(`(?m)^const ` + regexp.QuoteMeta(k) + `: u32 = [0-9]+u;$`)
		if err != nil {
			return "", fmt.Errorf("%w: constant name %q", ErrShader, k)
		}
		locs := re.FindAllStringIndex(out, -1)
		if len(locs) != 1 {
			return "", fmt.Errorf("%w: shader %q declares constant %q %d times, want once", ErrShader, name, k, len(locs))
		}
		decl := "const " + k + ": u32 = " + strconv.FormatUint(uint64(consts[k]), 10) + "u;"
		out = out[:locs[0][0]] + decl + out[locs[0][1]:]
	}
	return out, nil
}

var wgslVersion = sync.OnceValue(func() string {
	h := sha256.New()
	ents, err := fs.ReadDir(wgslFiles, "wgsl")
	if err != nil {
		panic("shaders: embedded wgsl folder unreadable: " + err.Error())
	}
	for _, e := range ents {
		body, err := wgslFiles.ReadFile("wgsl/" + e.Name())
		if err != nil {
			panic("shaders: embedded wgsl file unreadable: " + err.Error())
		}
		fmt.Fprintf(h, "%s\x00%d\x00", e.Name(), len(body))
		h.Write(body)
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
})

// WGSLVersion is a short hash of every embedded WGSL file. Caches of
// measurements made with the kernels (the GPU executor's variant choice)
// are keyed by it, so editing a kernel invalidates them.
func WGSLVersion() string { return wgslVersion() }
