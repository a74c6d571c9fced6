package gpu

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/neurolov/neurolov/shaders"
)

func TestSizeClass(t *testing.T) {
	for _, tt := range [][2]uint64{{0, 256}, {1, 256}, {256, 256}, {257, 512}, {4096, 4096}, {4097, 8192}, {1<<30 + 1, 1 << 31}} {
		if got := sizeClass(tt[0]); got != tt[1] {
			t.Errorf("sizeClass(%d) = %d, want %d", tt[0], got, tt[1])
		}
	}
}

func TestPool(t *testing.T) {
	var destroyed []int
	p := newPool(1024, func(b int) { destroyed = append(destroyed, b) })
	if _, ok := p.get(1, 512); ok {
		t.Fatal("empty pool returned a buffer")
	}
	p.put(1, 512, 10)
	p.put(1, 512, 11)
	p.put(2, 256, 12) // pool full (1024 bytes idle): destroyed
	if len(destroyed) != 1 || destroyed[0] != 12 || p.idle != 1024 {
		t.Fatalf("destroyed %v, idle %d", destroyed, p.idle)
	}
	if b, ok := p.get(2, 512); ok {
		t.Fatalf("usage 2 got buffer %d of usage 1", b)
	}
	if b, ok := p.get(1, 512); !ok || b != 11 || p.idle != 512 {
		t.Fatalf("get = %d, %v; idle %d", b, ok, p.idle)
	}
	p.drain()
	if len(destroyed) != 2 || p.idle != 0 {
		t.Fatalf("after drain destroyed %v idle %d", destroyed, p.idle)
	}
}

func TestWeightCache(t *testing.T) {
	var evicted []string
	c := newWeightCache(100, func(v string) { evicted = append(evicted, v) })
	k := func(s string) (key [32]byte) { copy(key[:], s); return }
	c.add(k("a"), "A", 60) // held
	c.add(k("b"), "B", 30) // held
	if v, ok := c.acquire(k("a")); !ok || v != "A" {
		t.Fatalf("acquire a = %q, %v", v, ok)
	}
	c.release(k("a"))
	c.release(k("a")) // a unheld, b held: 90 bytes, within budget
	if len(evicted) != 0 {
		t.Fatalf("evicted %v within budget", evicted)
	}
	c.add(k("c"), "C", 40) // 130 bytes: a is the only unheld entry
	if strings.Join(evicted, ",") != "A" || c.bytes != 70 {
		t.Fatalf("evicted %v, bytes %d; want A, 70", evicted, c.bytes)
	}
	if _, ok := c.acquire(k("a")); ok {
		t.Fatal("evicted entry still cached")
	}
	c.add(k("d"), "D", 50) // 120 bytes, all held: over budget but kept
	if len(evicted) != 1 {
		t.Fatalf("held entries evicted: %v", evicted)
	}
	c.release(k("b")) // b unheld and least recent: evicted
	if strings.Join(evicted, ",") != "A,B" || c.bytes != 90 {
		t.Fatalf("evicted %v, bytes %d", evicted, c.bytes)
	}
	if c.hits != 1 || c.misses != 1 {
		t.Errorf("hits %d misses %d", c.hits, c.misses)
	}
	c.clear()
	if len(evicted) != 4 || c.bytes != 0 || len(c.entries) != 0 {
		t.Errorf("clear: evicted %v bytes %d", evicted, c.bytes)
	}
}

func TestAdapterChoice(t *testing.T) {
	lvp := AdapterInfo{Name: "llvmpipe (LLVM 15.0.6, 256 bits)", Type: "cpu", Backend: "vulkan"}
	lvp.Software = isSoftware(lvp.Type, lvp.Name)
	nv := AdapterInfo{Name: "NVIDIA H100 80GB HBM3", Type: "discrete-gpu", Backend: "vulkan"}
	igpu := AdapterInfo{Name: "Intel(R) UHD Graphics", Type: "integrated-gpu", Backend: "vulkan"}
	swift := AdapterInfo{Name: "SwiftShader Device (Subzero)", Type: "unknown", Backend: "webgpu"}
	swift.Software = isSoftware(swift.Type, swift.Name)
	if !lvp.Software || !swift.Software || isSoftware(nv.Type, nv.Name) {
		t.Fatal("software detection wrong")
	}
	all := []candidate{{0, lvp}, {1, igpu}, {2, nv}}
	tests := []struct {
		cands []candidate
		opts  Options
		want  int
	}{
		{all, Options{}, 2},
		{all, Options{Software: SoftwarePrefer}, 0},
		{all, Options{Software: SoftwareNever}, 2},
		{all[:1], Options{}, 0},
		{all[:1], Options{Software: SoftwareNever}, -1},
		{all[:2], Options{}, 1},
		{all, Options{Adapter: "INTEL"}, 1},
		{all, Options{Adapter: "radeon"}, -1},
		{[]candidate{{0, swift}}, Options{}, 0},
	}
	for _, tt := range tests {
		if got := pickAdapter(tt.cands, tt.opts); got != tt.want {
			t.Errorf("pickAdapter(%d adapters, %+v) = %d, want %d", len(tt.cands), tt.opts, got, tt.want)
		}
	}
}

func TestVariants(t *testing.T) {
	seen := map[string]bool{}
	for _, v := range Variants {
		name := v.Name()
		if seen[name] {
			t.Errorf("duplicate variant %s", name)
		}
		seen[name] = true
		if got, ok := VariantByName(name); !ok || got != v {
			t.Errorf("VariantByName(%s) = %+v, %v", name, got, ok)
		}
		c := v.consts()
		src, err := shaders.WGSL(v.Shader, c)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if v.Shader == shaders.ShaderMatMulTile {
			if c["TA_LEN"] != v.BK*(v.BlockRows()+1) || c["TB_LEN"] != v.BK*(v.BlockCols()+1) {
				t.Errorf("%s: workgroup arrays %d, %d do not match the tile", name, c["TA_LEN"], c["TB_LEN"])
			}
			if v.WorkgroupBytes() > 16384 || v.Invocations() > 256 {
				t.Errorf("%s exceeds WebGPU's default limits (16 KiB, 256 invocations)", name)
			}
		} else if v.TM != 4 || v.TN != 4 {
			t.Errorf("%s: register-blocked variants compute 4×4", name)
		}
		if !strings.Contains(src, "const WG_X: u32 = "+itoa(v.WGX)+"u;") {
			t.Errorf("%s: WG_X not set in the source", name)
		}
	}
	if _, ok := VariantByName("nope"); ok {
		t.Error("unknown variant found")
	}
	if !Variants[0].vec4OK(3, 8, 12, shaders.MatMulOpts{}) || Variants[0].vec4OK(3, 8, 12, shaders.MatMulOpts{TransB: true}) ||
		Variants[0].vec4OK(3, 7, 12, shaders.MatMulOpts{}) || Variants[len(Variants)-1].vec4OK(4, 4, 4, shaders.MatMulOpts{}) {
		t.Error("vec4OK wrong")
	}
}

func TestTuneCacheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "variants.json")
	if _, ok := fileTune(path, "k"); ok {
		t.Fatal("entry in a missing file")
	}
	e := tuneEntry{Variant: Variants[1].Name(), GFLOPS: 5.5, Tuning: []VariantResult{{Variants[1].Name(), 5.5}}, Measured: time.Unix(1, 0).UTC()}
	if err := saveTune(path, "k", e); err != nil {
		t.Fatal(err)
	}
	if err := saveTune(path, "other", tuneEntry{Variant: "gone-variant"}); err != nil {
		t.Fatal(err)
	}
	got, ok := fileTune(path, "k")
	if !ok || got.Variant != e.Variant || got.GFLOPS != 5.5 || len(got.Tuning) != 1 {
		t.Fatalf("fileTune = %+v, %v", got, ok)
	}
	if _, ok := fileTune(path, "other"); ok {
		t.Error("an unknown variant name was accepted from the file")
	}
	if err := os.WriteFile(path, []byte("{garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, ok := fileTune(path, "k"); ok {
		t.Error("corrupt file yielded an entry")
	}
	if err := saveTune(path, "k", e); err != nil { // replaces the corrupt file
		t.Fatal(err)
	}
	if _, ok := fileTune(path, "k"); !ok {
		t.Error("entry lost after rewriting a corrupt file")
	}
	if tunePath("-") != "" || tunePath("/x/y.json") != "/x/y.json" {
		t.Error("tunePath")
	}
	k1 := tuneKey(AdapterInfo{Name: "a", Driver: "d"})
	if k1 == tuneKey(AdapterInfo{Name: "b", Driver: "d"}) || !strings.Contains(k1, shaders.WGSLVersion()) {
		t.Errorf("tuneKey %q does not separate adapters or omit the kernels' version", k1)
	}
}
