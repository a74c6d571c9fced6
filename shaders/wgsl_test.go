package shaders

import (
	"errors"
	"strings"
	"testing"
)

func TestShadersList(t *testing.T) {
	want := []string{ShaderActBackward, ShaderAdam, ShaderAxpby, ShaderIm2Col, ShaderLayerNorm, ShaderMatMulReg,
		ShaderMatMulTile, ShaderMatMulVec4, ShaderReduce, ShaderSGD, ShaderSoftmax, ShaderXent}
	got := Shaders()
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("Shaders() = %v, want %v", got, want)
	}
	for _, name := range got {
		src, err := WGSL(name, nil)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !strings.Contains(src, "fn "+EntryPoint+"(") {
			t.Errorf("%s has no entry point %s", name, EntryPoint)
		}
		if !strings.Contains(src, "struct MatMulParams") {
			t.Errorf("%s: params include missing", name)
		}
		if strings.Count(src, "fn activate(") != 1 {
			t.Errorf("%s: common included %d times", name, strings.Count(src, "fn activate("))
		}
	}
}

func TestWGSLConsts(t *testing.T) {
	src, err := WGSL(ShaderMatMulTile, map[string]uint32{"WG_X": 8, "TM": 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"\nconst WG_X: u32 = 8u;", "\nconst TM: u32 = 2u;", "\nconst WG_Y: u32 = 16u;"} {
		if !strings.Contains(src, want) {
			t.Errorf("source lacks %q", want)
		}
	}
	if src, err := WGSL(ShaderSoftmax, map[string]uint32{"RW": 32}); err != nil || !strings.Contains(src, "const RW: u32 = 32u;") {
		t.Errorf("override of an include's constant: %v", err)
	}
	for _, tt := range []struct {
		name   string
		consts map[string]uint32
	}{
		{ShaderMatMulReg, map[string]uint32{"TM": 4}}, // not declared by matmul_reg
		{"nope", nil},
		{"common", nil}, // an include, not a kernel
	} {
		if _, err := WGSL(tt.name, tt.consts); !errors.Is(err, ErrShader) {
			t.Errorf("WGSL(%q, %v) error %v, want ErrShader", tt.name, tt.consts, err)
		}
	}
}

func TestWGSLVersionStable(t *testing.T) {
	v := WGSLVersion()
	if len(v) != 16 || v != WGSLVersion() {
		t.Errorf("WGSLVersion() = %q", v)
	}
}
