package shaders

import (
	"reflect"
	"regexp"
	"strings"
	"testing"
	"unsafe"
)

// wgslField is one member of a WGSL struct with its layout.
type wgslField struct {
	name         string
	offset, size uintptr
}

// wgslTypeLayout gives the size and alignment of the WGSL types the params
// structs may use (WGSL spec, "Alignment and Size").
var wgslTypeLayout = map[string][2]uintptr{
	"u32": {4, 4}, "i32": {4, 4}, "f32": {4, 4},
	"vec2<u32>": {8, 8}, "vec2<i32>": {8, 8}, "vec2<f32>": {8, 8},
	"vec3<u32>": {12, 16}, "vec3<i32>": {12, 16}, "vec3<f32>": {12, 16},
	"vec4<u32>": {16, 16}, "vec4<i32>": {16, 16}, "vec4<f32>": {16, 16},
}

var structDecl = regexp.MustCompile(`(?s)struct (\w+) \{(.*?)\n\}`)

// parseWGSLStructs lays out every struct of src with WGSL's rules: each
// member at the next multiple of its alignment, the struct's size rounded
// up to its alignment, and uniform-buffer structs to 16.
func parseWGSLStructs(t *testing.T, src string) map[string]struct {
	fields []wgslField
	size   uintptr
} {
	out := map[string]struct {
		fields []wgslField
		size   uintptr
	}{}
	for _, m := range structDecl.FindAllStringSubmatch(src, -1) {
		var fields []wgslField
		var off, align uintptr = 0, 1
		for _, line := range strings.Split(m[2], "\n") {
			line = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(line), ","))
			if line == "" || strings.HasPrefix(line, "//") {
				continue
			}
			name, typ, ok := strings.Cut(line, ":")
			if !ok {
				t.Fatalf("struct %s: cannot parse member %q", m[1], line)
			}
			l, ok := wgslTypeLayout[strings.TrimSpace(typ)]
			if !ok {
				t.Fatalf("struct %s: member %s has unsupported type %q", m[1], name, typ)
			}
			off = (off + l[1] - 1) / l[1] * l[1]
			fields = append(fields, wgslField{strings.TrimSpace(name), off, l[0]})
			off += l[0]
			align = max(align, l[1])
		}
		size := (off + align - 1) / align * align
		out[m[1]] = struct {
			fields []wgslField
			size   uintptr
		}{fields, size}
	}
	return out
}

func TestParamsLayout(t *testing.T) {
	src, err := wgslFiles.ReadFile("wgsl/params.wgsl")
	if err != nil {
		t.Fatal(err)
	}
	structs := parseWGSLStructs(t, string(src))
	goStructs := map[string]any{
		"MatMulParams": MatMulParams{}, "RowParams": RowParams{}, "ReduceParams": ReduceParams{},
		"ElemParams": ElemParams{}, "SGDParams": SGDParams{}, "AdamParams": AdamParams{},
		"Im2ColParams": Im2ColParams{},
	}
	if len(structs) != len(goStructs) {
		t.Errorf("params.wgsl declares %d structs, Go has %d twins", len(structs), len(goStructs))
	}
	for name, v := range goStructs {
		ws, ok := structs[name]
		if !ok {
			t.Errorf("%s: no WGSL struct of that name in params.wgsl", name)
			continue
		}
		typ := reflect.TypeOf(v)
		if typ.NumField() != len(ws.fields) {
			t.Errorf("%s: Go has %d fields, WGSL %d", name, typ.NumField(), len(ws.fields))
			continue
		}
		for i, wf := range ws.fields {
			f := typ.Field(i) // f.Offset is unsafe.Offsetof of the field
			if !strings.EqualFold(f.Name, wf.name) {
				t.Errorf("%s field %d: Go %s, WGSL %s", name, i, f.Name, wf.name)
			}
			if f.Offset != wf.offset || f.Type.Size() != wf.size {
				t.Errorf("%s.%s: Go offset %d size %d, WGSL offset %d size %d", name, f.Name, f.Offset, f.Type.Size(), wf.offset, wf.size)
			}
			if k := f.Type.Kind(); k != reflect.Uint32 && k != reflect.Float32 {
				t.Errorf("%s.%s: kind %v, want uint32 or float32", name, f.Name, k)
			}
		}
		if typ.Size() != ws.size || typ.Size()%16 != 0 {
			t.Errorf("%s: Go size %d, WGSL size %d (want equal, a multiple of 16)", name, typ.Size(), ws.size)
		}
	}
	// Spot checks with unsafe.Offsetof itself, against the WGSL layout.
	var mp MatMulParams
	if got, want := unsafe.Offsetof(mp.Rows), structs["MatMulParams"].fields[11].offset; got != want {
		t.Errorf("MatMulParams.Rows at %d, WGSL %d", got, want)
	}
	var ap AdamParams
	if got, want := unsafe.Offsetof(ap.WeightDecay), structs["AdamParams"].fields[8].offset; got != want {
		t.Errorf("AdamParams.WeightDecay at %d, WGSL %d", got, want)
	}
}

func TestParseWGSLStructsAlignment(t *testing.T) {
	// The layout rules themselves, on a struct that needs padding.
	s := parseWGSLStructs(t, "struct S {\n  a: f32,\n  b: vec4<f32>,\n  c: vec3<f32>,\n  d: u32,\n}")["S"]
	want := []uintptr{0, 16, 32, 44}
	for i, f := range s.fields {
		if f.offset != want[i] {
			t.Errorf("member %s at %d, want %d", f.name, f.offset, want[i])
		}
	}
	if s.size != 48 {
		t.Errorf("size %d, want 48", s.size)
	}
}

func TestParamBytes(t *testing.T) {
	p := RowParams{Rows: 3, Cols: 0x01020304, Scale: 1, Eps: -2}
	b := ParamBytes(&p)
	want := []byte{3, 0, 0, 0, 4, 3, 2, 1, 0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0}
	if string(b) != string(want) {
		t.Errorf("ParamBytes = % x, want % x", b, want)
	}
	b[0] = 9
	if p.Rows != 3 {
		t.Error("ParamBytes aliases the struct")
	}
}

func TestNewMatMulParamsStrides(t *testing.T) {
	tests := []struct {
		o                  MatMulOpts
		ars, acs, brs, bcs uint32
	}{
		{MatMulOpts{}, 5, 1, 7, 1},
		{MatMulOpts{TransA: true}, 1, 3, 7, 1},
		{MatMulOpts{TransB: true}, 5, 1, 1, 5},
		{MatMulOpts{TransA: true, TransB: true, ReLUIn: true, Act: ActGELU}, 1, 3, 1, 5},
	}
	for _, tt := range tests {
		p := NewMatMulParams(3, 5, 7, tt.o, true)
		if p.ARowStride != tt.ars || p.AColStride != tt.acs || p.BRowStride != tt.brs || p.BColStride != tt.bcs {
			t.Errorf("%+v: strides %d %d %d %d, want %d %d %d %d", tt.o, p.ARowStride, p.AColStride, p.BRowStride, p.BColStride, tt.ars, tt.acs, tt.brs, tt.bcs)
		}
		if p.M != 3 || p.K != 5 || p.N != 7 || p.Rows != 3 || p.Row0 != 0 || p.HasBias != 1 || p.Act != uint32(tt.o.Act) {
			t.Errorf("%+v: params %+v", tt.o, p)
		}
		if (p.ReLUIn == 1) != tt.o.ReLUIn {
			t.Errorf("%+v: ReLUIn %d", tt.o, p.ReLUIn)
		}
	}
}
