package tensor

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"testing"
)

// goldenTensors is what testdata/golden.safetensors holds. That file was
// put together by hand from the format's rules: an 8-byte little-endian
// header length (296), a compact JSON header with "__metadata__" first and
// the tensors in name order, and the float bytes written out as IEEE-754
// binary32 (0.5 = 0x3f000000, -1 = 0xbf800000, 3.25 = 0x40500000, 1..6 =
// 0x3f800000, 0x40000000, 0x40400000, 0x40800000, 0x40a00000, 0x40c00000),
// little-endian. It covers a vector, an empty matrix (whose data_offsets
// are [8, 8], shared with the scalar after it), a rank-0 scalar and a
// matrix.
func goldenTensors() (map[string]*Tensor, map[string]string) {
	return map[string]*Tensor{
			"bias":   {Shape: []int{2}, Data: []float32{0.5, -1}},
			"empty":  {Shape: []int{0, 3}, Data: []float32{}},
			"scalar": {Shape: []int{}, Data: []float32{3.25}},
			"weight": {Shape: []int{2, 3}, Data: []float32{1, 2, 3, 4, 5, 6}},
		}, map[string]string{
			"format": "pt",
			"source": "neurolov testdata",
		}
}

// sameTensors reports how got differs from want (bitwise on the data),
// or "" when it does not.
func sameTensors(got, want map[string]*Tensor) string {
	if len(got) != len(want) {
		return fmt.Sprintf("%d tensors, want %d", len(got), len(want))
	}
	for name, w := range want {
		g, ok := got[name]
		if !ok {
			return fmt.Sprintf("tensor %q missing", name)
		}
		if !SameShape(g, w) || len(g.Data) != len(w.Data) {
			return fmt.Sprintf("tensor %q: shape %v with %d elements, want %v with %d", name, g.Shape, len(g.Data), w.Shape, len(w.Data))
		}
		for i := range w.Data {
			if math.Float32bits(g.Data[i]) != math.Float32bits(w.Data[i]) {
				return fmt.Sprintf("tensor %q element %d: %g, want %g", name, i, g.Data[i], w.Data[i])
			}
		}
	}
	return ""
}

func sameMetadata(got, want map[string]string) string {
	if len(got) != len(want) {
		return fmt.Sprintf("metadata %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			return fmt.Sprintf("metadata %q = %q, want %q", k, got[k], v)
		}
	}
	return ""
}

func TestSafetensorsGolden(t *testing.T) {
	file, err := os.ReadFile("testdata/golden.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	wantT, wantM := goldenTensors()

	gotT, gotM, err := ReadSafetensors(bytes.NewReader(file), int64(len(file)))
	if err != nil {
		t.Fatalf("read golden: %v", err)
	}
	if d := sameTensors(gotT, wantT); d != "" {
		t.Errorf("read golden: %s", d)
	}
	if d := sameMetadata(gotM, wantM); d != "" {
		t.Errorf("read golden: %s", d)
	}

	var buf bytes.Buffer
	if err := WriteSafetensors(&buf, wantT, wantM); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), file) {
		t.Errorf("written bytes differ from golden:\n got %q\nwant %q", buf.Bytes(), file)
	}

	// One byte short of the limit is refused.
	if _, _, err := ReadSafetensors(bytes.NewReader(file), int64(len(file)-1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("limit one byte short: err = %v, want ErrTooLarge", err)
	}
}

// le32 writes float32s as little-endian bytes.
func le32(vs ...float32) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	return b
}

// withLength prefixes header with its 8-byte little-endian length.
func withLength(header string) []byte {
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(header)))
	return append(n[:], header...)
}

// The reference writer's exact output for small inputs: compact JSON,
// spaces up to a multiple of 8, "__metadata__" only when given.
func TestWriteSafetensorsMatchesReferenceLayout(t *testing.T) {
	cases := []struct {
		name     string
		tensors  map[string]*Tensor
		metadata map[string]string
		want     []byte
	}{
		{
			name: "empty",
			want: withLength("{}      "),
		},
		{
			name:     "metadata only",
			metadata: map[string]string{"framework": "pt"},
			want:     withLength(`{"__metadata__":{"framework":"pt"}}     `),
		},
		{
			name:    "64-byte header needs no padding",
			tensors: map[string]*Tensor{"attn.0": {Shape: []int{1, 2, 3}, Data: []float32{0, 1, 2, 3, 4, 5}}},
			want: append(withLength(`{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}`),
				0, 0, 0, 0, 0, 0, 0x80, 0x3f, 0, 0, 0, 0x40, 0, 0, 0x40, 0x40, 0, 0, 0x80, 0x40, 0, 0, 0xa0, 0x40),
		},
		{
			name:    "padded to 8",
			tensors: map[string]*Tensor{"attn0": {Shape: []int{1, 1, 2, 3}, Data: []float32{0, 1, 2, 3, 4, 5}}},
			want: append(withLength(`{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}       `),
				le32(0, 1, 2, 3, 4, 5)...),
		},
		{
			name:     "escaping like serde_json",
			tensors:  map[string]*Tensor{"a\"b\\c\n<&>é": {Shape: []int{1}, Data: []float32{math.Float32frombits(0x8000_0000)}}}, // -0,
			metadata: map[string]string{"k\t": "v\x01\u2028"},
			want: append(withLength(`{"__metadata__":{"k\t":"v\u0001`+"\u2028"+`"},"a\"b\\c\n<&>é":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}} `),
				0, 0, 0, 0x80),
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := WriteSafetensors(&buf, tc.tensors, tc.metadata); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf.Bytes(), tc.want) {
				t.Fatalf("got  %q\nwant %q", buf.Bytes(), tc.want)
			}
			gotT, gotM, err := ReadSafetensors(bytes.NewReader(tc.want), int64(len(tc.want)))
			if err != nil {
				t.Fatal(err)
			}
			if d := sameTensors(gotT, tc.tensors); d != "" {
				t.Error(d)
			}
			if d := sameMetadata(gotM, tc.metadata); d != "" {
				t.Error(d)
			}
		})
	}
}

func TestSafetensorsRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	shapes := [][]int{{}, {0}, {1}, {7}, {3, 5}, {13, 1, 2}, {2, 0, 4}, {1, 1, 1, 1, 1, 1, 1, 9}, {97, 131}}
	tensors := map[string]*Tensor{}
	for i, s := range shapes {
		tt := New(s...)
		for j := range tt.Data {
			tt.Data[j] = float32(r.NormFloat64())
		}
		tensors[fmt.Sprintf("layer.%d.weight", i)] = tt
	}
	// Special values survive bit for bit.
	tensors["special"] = &Tensor{Shape: []int{6}, Data: []float32{
		float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()),
		math.Float32frombits(0x7fc00001), math.Float32frombits(1), math.Float32frombits(0x80000000),
	}}
	metadata := map[string]string{"format": "pt", "quote\"": "back\\slash", "": "empty key", "ünï": "côdé 日本"}

	var buf bytes.Buffer
	if err := WriteSafetensors(&buf, tensors, metadata); err != nil {
		t.Fatal(err)
	}
	if hl := binary.LittleEndian.Uint64(buf.Bytes()); hl%8 != 0 {
		t.Errorf("header length %d is not a multiple of 8", hl)
	}
	gotT, gotM, err := ReadSafetensors(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	if d := sameTensors(gotT, tensors); d != "" {
		t.Error(d)
	}
	if d := sameMetadata(gotM, metadata); d != "" {
		t.Error(d)
	}

	// Reading through a reader that returns a byte at a time works too.
	gotT, _, err = ReadSafetensors(iotestOneByte{bytes.NewReader(buf.Bytes())}, int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	if d := sameTensors(gotT, tensors); d != "" {
		t.Error(d)
	}
}

// iotestOneByte reads one byte per call.
type iotestOneByte struct{ r io.Reader }

func (o iotestOneByte) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return o.r.Read(p[:1])
}

// entryJSON is one well-formed F32 tensor entry.
func entryJSON(name string, shape string, begin, end int) string {
	return fmt.Sprintf(`"%s":{"dtype":"F32","shape":%s,"data_offsets":[%d,%d]}`, name, shape, begin, end)
}

func TestReadSafetensorsMalformed(t *testing.T) {
	ok := entryJSON("a", "[2]", 0, 8)
	data8 := le32(1, 2)
	file := func(header string, data []byte) []byte { return append(withLength(header), data...) }
	lengthOnly := func(n uint64) []byte {
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], n)
		return b[:]
	}
	cases := []struct {
		name     string
		in       []byte
		maxBytes int64 // 0: 1 MiB
		want     error
		mention  string // the error text must contain this
	}{
		{"empty input", nil, 0, ErrSafetensors, "header length"},
		{"seven bytes", []byte{1, 2, 3, 4, 5, 6, 7}, 0, ErrSafetensors, "header length"},
		{"header length over the format's limit", lengthOnly(MaxHeaderBytes + 1), 1 << 40, ErrSafetensors, "not a safetensors file"},
		{"header length 2^64-1", lengthOnly(math.MaxUint64), 1 << 40, ErrSafetensors, ""},
		{"text, not safetensors", []byte("hello world"), 1 << 30, ErrSafetensors, "not a safetensors file"},
		{"header length over maxBytes", lengthOnly(1000), 500, ErrTooLarge, "500"},
		{"maxBytes below 8", file("{}", nil), 4, ErrTooLarge, ""},
		{"header length zero", lengthOnly(0), 0, ErrSafetensors, "too short"},
		{"header length one", file("{", nil), 0, ErrSafetensors, "too short"},
		{"header truncated", append(lengthOnly(100), `{"a":`...), 0, ErrSafetensors, "header"},
		{"header not an object", file(`["a"]`, nil), 0, ErrSafetensors, "'{'"},
		{"header starts with a space", file(` {}`, nil), 0, ErrSafetensors, "'{'"},
		{"header not UTF-8", file("{\"\xff\":1}", nil), 0, ErrSafetensors, "UTF-8"},
		{"header not JSON", file(`{"a":}`, nil), 0, ErrSafetensors, ""},
		{"header unterminated", file(`{"a":{"dtype":"F32"`, nil), 0, ErrSafetensors, ""},
		{"data after the JSON", file(`{}x`, nil), 0, ErrSafetensors, "after its closing brace"},
		{"second object after the JSON", file(`{} {}`, nil), 0, ErrSafetensors, "after its closing brace"},
		{"duplicate tensor", file("{"+ok+","+ok+"}", data8), 0, ErrSafetensors, `"a" twice`},
		{"duplicate metadata key", file(`{"__metadata__":{"k":"1","k":"2"}}`, nil), 0, ErrSafetensors, `"k" twice`},
		{"duplicate metadata", file(`{"__metadata__":{},"__metadata__":{}}`, nil), 0, ErrSafetensors, "twice"},
		{"metadata value not a string", file(`{"__metadata__":{"k":1}}`, nil), 0, ErrSafetensors, `"k"`},
		{"metadata not an object", file(`{"__metadata__":"x"}`, nil), 0, ErrSafetensors, "__metadata__"},
		{"tensor not an object", file(`{"a":[1]}`, nil), 0, ErrSafetensors, `"a"`},
		{"unknown field", file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1}}`, data8), 0, ErrSafetensors, `"x"`},
		{"duplicate field", file(`{"a":{"dtype":"F32","dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, data8), 0, ErrSafetensors, "twice"},
		{"missing dtype", file(`{"a":{"shape":[2],"data_offsets":[0,8]}}`, data8), 0, ErrSafetensors, "lacks"},
		{"missing shape", file(`{"a":{"dtype":"F32","data_offsets":[0,8]}}`, data8), 0, ErrSafetensors, "lacks"},
		{"null shape", file(`{"a":{"dtype":"F32","shape":null,"data_offsets":[0,8]}}`, data8), 0, ErrSafetensors, "lacks"},
		{"missing offsets", file(`{"a":{"dtype":"F32","shape":[2]}}`, data8), 0, ErrSafetensors, "lacks"},
		{"dtype not a string", file(`{"a":{"dtype":32,"shape":[2],"data_offsets":[0,8]}}`, data8), 0, ErrSafetensors, "dtype"},
		{"dtype F16", file(`{"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}`, le32(1)), 0, ErrDtype, `"F16"`},
		{"dtype BF16", file(`{"a":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}}`, le32(1)), 0, ErrDtype, `"BF16"`},
		{"dtype F64", file(`{"a":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}}`, data8), 0, ErrDtype, `"F64"`},
		{"dtype lower case", file(`{"a":{"dtype":"f32","shape":[2],"data_offsets":[0,8]}}`, data8), 0, ErrDtype, `"f32"`},
		{"negative dimension", file(`{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}`, data8), 0, ErrSafetensors, "dimension -2"},
		{"fractional dimension", file(`{"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,8]}}`, data8), 0, ErrSafetensors, "shape"},
		{"dimension over int32", file(`{"a":{"dtype":"F32","shape":[4294967298],"data_offsets":[0,8]}}`, data8), 0, ErrSafetensors, "dimension"},
		{"dimension over int64", file(`{"a":{"dtype":"F32","shape":[99999999999999999999],"data_offsets":[0,8]}}`, data8), 0, ErrSafetensors, "shape"},
		{"rank over MaxDims", file(`{"a":{"dtype":"F32","shape":[1,1,1,1,1,1,1,1,2],"data_offsets":[0,8]}}`, data8), 0, ErrSafetensors, "rank 9"},
		{"element count overflows", file(`{"a":{"dtype":"F32","shape":[65536,65536],"data_offsets":[0,8]}}`, data8), 0, ErrTooLarge, "65536"},
		{"three offsets", file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8,8]}}`, data8), 0, ErrSafetensors, "3 data_offsets"},
		{"one offset", file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[8]}}`, data8), 0, ErrSafetensors, "1 data_offsets"},
		{"negative offset", file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}}`, data8), 0, ErrSafetensors, "data_offsets"},
		{"end before begin", file(`{"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}`, data8), 0, ErrSafetensors, "[8, 0]"},
		{"offsets longer than shape", file(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,8]}}`, data8), 0, ErrSafetensors, "[0, 8]"},
		{"offsets shorter than shape", file(`{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, data8), 0, ErrSafetensors, "[0, 8]"},
		{"offsets past 2^64", file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[18446744073709551615,7]}}`, data8), 0, ErrSafetensors, ""},
		{"gap at the start", file("{"+entryJSON("a", "[2]", 4, 12)+"}", le32(0, 1, 2)), 0, ErrSafetensors, "gap"},
		{"gap between tensors", file("{"+entryJSON("a", "[1]", 0, 4)+","+entryJSON("b", "[1]", 8, 12)+"}", le32(0, 1, 2)), 0, ErrSafetensors, "gap"},
		{"overlapping tensors", file("{"+entryJSON("a", "[2]", 0, 8)+","+entryJSON("b", "[2]", 4, 12)+"}", le32(0, 1, 2)), 0, ErrSafetensors, "overlaps"},
		{"same bytes twice", file("{"+entryJSON("a", "[2]", 0, 8)+","+entryJSON("b", "[2]", 0, 8)+"}", data8), 0, ErrSafetensors, "overlaps"},
		{"data truncated", file("{"+ok+"}", data8[:5]), 0, ErrSafetensors, `"a"`},
		{"data missing", file("{"+ok+"}", nil), 0, ErrSafetensors, "unexpected EOF"},
		{"bytes after the last tensor", file("{"+ok+"}", append(data8, 0)), 0, ErrSafetensors, "follow the last tensor"},
		{"bytes with no tensor at all", file("{}", []byte{1}), 0, ErrSafetensors, "follow the last tensor"},
		{"data over maxBytes", file("{"+entryJSON("a", "[1000]", 0, 4000)+"}", make([]byte, 4000)), 3000, ErrTooLarge, "3000"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			maxBytes := tc.maxBytes
			if maxBytes == 0 {
				maxBytes = 1 << 20
			}
			tensors, meta, err := ReadSafetensors(bytes.NewReader(tc.in), maxBytes)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("error %q does not mention %q", err, tc.mention)
			}
			if tensors != nil || meta != nil {
				t.Errorf("returned %v, %v with an error", tensors, meta)
			}
		})
	}
}

// A header may promise a huge tensor that the stream never delivers; the
// reader must not allocate what was promised.
func TestReadSafetensorsDoesNotTrustDeclaredSize(t *testing.T) {
	const elems = 64 << 20 // 256 MiB promised
	in := append(withLength("{"+entryJSON("big", fmt.Sprintf("[%d]", elems), 0, 4*elems)+"}"), le32(1, 2, 3)...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, _, err := ReadSafetensors(bytes.NewReader(in), 1<<30)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrSafetensors) || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("err = %v, want a truncation error", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Errorf("allocated %d bytes for a 3-element stream", grew)
	}
}

// failWriter fails after n bytes.
type failWriter struct{ n int }

var errWrite = errors.New("disk full")

func (f *failWriter) Write(p []byte) (int, error) {
	if len(p) > f.n {
		k := f.n
		f.n = 0
		return k, errWrite
	}
	f.n -= len(p)
	return len(p), nil
}

func TestWriteSafetensorsErrors(t *testing.T) {
	good := &Tensor{Shape: []int{2}, Data: []float32{1, 2}}
	cases := []struct {
		name     string
		tensors  map[string]*Tensor
		metadata map[string]string
		want     error
	}{
		{"nil tensor", map[string]*Tensor{"a": nil}, nil, ErrSafetensors},
		{"reserved name", map[string]*Tensor{"__metadata__": good}, nil, ErrSafetensors},
		{"name not UTF-8", map[string]*Tensor{"\xff": good}, nil, ErrSafetensors},
		{"metadata not UTF-8", map[string]*Tensor{"a": good}, map[string]string{"k": "\xfe"}, ErrSafetensors},
		{"shape and data disagree", map[string]*Tensor{"a": {Shape: []int{3}, Data: []float32{1, 2}}}, nil, ErrShape},
		{"negative dimension", map[string]*Tensor{"a": {Shape: []int{-1}, Data: nil}}, nil, ErrShape},
		{"rank over MaxDims", map[string]*Tensor{"a": {Shape: make([]int, MaxDims+1), Data: nil}}, nil, ErrShape},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := WriteSafetensors(&buf, tc.tensors, tc.metadata)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if buf.Len() != 0 {
				t.Errorf("wrote %d bytes before failing", buf.Len())
			}
		})
	}

	big := New(100000)
	for _, at := range []int{0, 8, 100, 50000} {
		err := WriteSafetensors(&failWriter{n: at}, map[string]*Tensor{"big": big}, nil)
		if !errors.Is(err, errWrite) {
			t.Errorf("writer failing after %d bytes: err = %v, want %v", at, err, errWrite)
		}
	}
}

func FuzzReadSafetensors(f *testing.F) {
	golden, err := os.ReadFile("testdata/golden.safetensors")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(golden)
	f.Add(withLength("{}      "))
	f.Add(append(withLength("{"+entryJSON("a", "[2]", 0, 8)+","+entryJSON("b", "[1]", 8, 12)+"}"), le32(1, 2, 3)...))
	f.Add(append(withLength(`{"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}`), 0, 0, 0, 0))
	f.Fuzz(func(t *testing.T, in []byte) {
		tensors, meta, err := ReadSafetensors(bytes.NewReader(in), 1<<20)
		if err != nil {
			if !errors.Is(err, ErrSafetensors) && !errors.Is(err, ErrDtype) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("error without a sentinel: %v", err)
			}
			return
		}
		// Whatever was accepted writes back and reads back the same.
		var buf bytes.Buffer
		if err := WriteSafetensors(&buf, tensors, meta); err != nil {
			t.Fatalf("accepted input does not write back: %v", err)
		}
		again, meta2, err := ReadSafetensors(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
		if err != nil {
			t.Fatalf("written file does not read back: %v", err)
		}
		if d := sameTensors(again, tensors); d != "" {
			t.Fatal(d)
		}
		if d := sameMetadata(meta2, meta); d != "" {
			t.Fatal(d)
		}
	})
}

func ExampleWriteSafetensors() {
	w, _ := FromData([]float32{1, 2, 3, 4, 5, 6}, 2, 3)
	var buf bytes.Buffer
	if err := WriteSafetensors(&buf, map[string]*Tensor{"w": w}, map[string]string{"format": "pt"}); err != nil {
		fmt.Println(err)
		return
	}
	tensors, metadata, err := ReadSafetensors(&buf, 1<<20)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(tensors["w"].Shape, tensors["w"].Data, metadata["format"])
	// Output: [2 3] [1 2 3 4 5 6] pt
}

// TestHeaderAllocatedAsItArrives: a file that claims a header of nearly
// MaxHeaderBytes and then ends costs about what it sent, not the claim.
func TestHeaderAllocatedAsItArrives(t *testing.T) {
	claim := binary.LittleEndian.AppendUint64(nil, MaxHeaderBytes-8)
	claim = append(claim, `{"a":`...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, _, err := ReadSafetensors(bytes.NewReader(claim), 1<<40)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrSafetensors) || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("err = %v, want a truncated header", err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 1<<20 {
		t.Fatalf("a %d-byte file allocated %d bytes: the header was allocated at its claimed size", len(claim), got)
	}
}

// TestReadSafetensorsChargedHoldsWhatArrived: the bytes a read is told it
// holds are, for a whole file, its size less the 8-byte length plus the
// copy buffer; for a file cut short, at most twice what arrived plus that
// buffer, whatever its header claims; and a refusal ends the read.
func TestReadSafetensorsChargedHoldsWhatArrived(t *testing.T) {
	var file bytes.Buffer
	big := New(300, 1000) // 1.2 MB
	if err := WriteSafetensors(&file, map[string]*Tensor{"a": New(3), "big": big}, nil); err != nil {
		t.Fatal(err)
	}
	var held int64
	hold := func(n int64) error { held += n; return nil }
	if _, _, err := ReadSafetensorsCharged(bytes.NewReader(file.Bytes()), 1<<30, hold); err != nil {
		t.Fatal(err)
	}
	if want := int64(file.Len()) - 8 + ioChunk; held != want {
		t.Errorf("whole file of %d bytes: held %d, want %d", file.Len(), held, want)
	}
	for _, cut := range []int{100, 300_000, 700_000} {
		held = 0
		if _, _, err := ReadSafetensorsCharged(bytes.NewReader(file.Bytes()[:cut]), 1<<30, hold); err == nil {
			t.Fatalf("a file cut at %d bytes was read", cut)
		}
		if held > 2*int64(cut)+ioChunk {
			t.Errorf("a file cut at %d bytes held %d, over twice what arrived plus the buffer", cut, held)
		}
	}
	refused := errors.New("refused")
	_, _, err := ReadSafetensorsCharged(bytes.NewReader(file.Bytes()), 1<<30, func(n int64) error {
		if n > 100_000 {
			return refused
		}
		return nil
	})
	if !errors.Is(err, refused) {
		t.Errorf("a refused hold: %v, want the refusal", err)
	}
}
