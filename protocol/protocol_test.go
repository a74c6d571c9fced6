package protocol

import (
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/neurolov/neurolov/tensor"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func hash(b byte) (h [32]byte) {
	for i := range h {
		h[i] = b + byte(i)
	}
	return h
}

func floats(n int) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(i)*0.5 - 3
	}
	return out
}

type sample struct {
	name string
	msg  Message
}

// samples returns one or more values of every message type, with every
// field set, plus edge cases (empty strings and lists, scalars, by-hash).
func samples() []sample {
	var addr [20]byte
	for i := range addr {
		addr[i] = 0xa0 + byte(i)
	}
	var sig [65]byte
	for i := range sig {
		sig[i] = byte(i * 3)
	}
	sig[64] = 28
	nan := math.Float32frombits(0x7fc00001) // a NaN with a payload survives
	return []sample{
		{"hello", &Hello{Version: Version, Address: addr, Agent: "neurolov-worker/0.1 (linux; amd64)"}},
		{"hello-empty", &Hello{}},
		{"challenge", &Challenge{Message: "coordinator.example wants you to sign in with your Ethereum account:\n0xA0a1A2a3A4a5a6a7A8a9aAabacADaEAfb0B1B2B3\n\nURI: https://coordinator.example\nVersion: 1\nChain ID: 1\nNonce: 0123456789abcdef\nIssued At: 2026-01-02T03:04:05Z"}},
		{"auth", &Auth{Signature: sig}},
		{"capabilities", &Capabilities{Backend: BackendWebGPU, Device: "NVIDIA H100 (vulkan)", MaxBufferBytes: 2 << 30, MaxShardBytes: 256 << 20, GFLOPS: 41234.5, Threads: 16}},
		{"window", &Window{Size: 8}},
		{"assign", &Assign{
			Lease: 0x0102030405060708, Job: "job-42", Shard: 7, Kernel: "matmul",
			Params: []byte{1, 2, 3},
			Inputs: []TensorRef{
				{Hash: hash(1), Shape: []int{2, 3}, Inline: true, Data: []float32{1, -2, 3.5, 0, float32(math.Inf(1)), nan}},
				{Hash: hash(2), Shape: []int{3, 4}},
			},
		}},
		{"assign-scalar", &Assign{Lease: 1, Job: "j", Kernel: "mlp-infer", Inputs: []TensorRef{
			{Shape: []int{}, Inline: true, Data: []float32{42}},
			{Hash: hash(9), Shape: []int{0, 5}, Inline: true},
		}}},
		{"assign-empty", &Assign{}},
		{"result", &Result{Lease: 99, Outputs: []TensorRef{
			{Shape: []int{2, 2}, Inline: true, Data: []float32{1, 2, 3, 4}},
			{Hash: hash(3), Shape: []int{1000, 1000}},
		}}},
		{"result-empty", &Result{Lease: 5}},
		{"fetch", &Fetch{Hashes: [][32]byte{hash(4), hash(5)}}},
		{"fetch-empty", &Fetch{}},
		{"tensordata", &TensorData{Hash: hash(6), Shape: []int{4, 5}, Offset: 12, Data: floats(8)}},
		{"heartbeat", &Heartbeat{Seq: 77, UnixMilli: -1234567890123}},
		{"error", &Error{Lease: 3, Code: CodeUnsupported, Message: "kernel \"conv2d\" unknown"}},
		{"error-connection", &Error{Code: CodeProtocol, Message: "bad frame"}},
		{"goodbye", &Goodbye{Reason: "shutting down"}},
		{"cancel", &Cancel{Lease: 12345}},
	}
}

// equalMsg compares messages field by field, treating nil and empty slices
// as equal and comparing floats by their bits (so NaNs compare).
func equalMsg(a, b Message) bool {
	return reflect.TypeOf(a) == reflect.TypeOf(b) && equalValue(reflect.ValueOf(a), reflect.ValueOf(b))
}

func equalValue(a, b reflect.Value) bool {
	switch a.Kind() {
	case reflect.Pointer:
		return equalValue(a.Elem(), b.Elem())
	case reflect.Struct:
		for i := range a.NumField() {
			if !equalValue(a.Field(i), b.Field(i)) {
				return false
			}
		}
		return true
	case reflect.Slice, reflect.Array:
		if a.Len() != b.Len() {
			return false
		}
		for i := range a.Len() {
			if !equalValue(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Float32:
		return math.Float32bits(float32(a.Float())) == math.Float32bits(float32(b.Float()))
	case reflect.Float64:
		return math.Float64bits(a.Float()) == math.Float64bits(b.Float())
	default:
		return a.Equal(b)
	}
}

func mustEncode(t testing.TB, msgs ...Message) []byte {
	t.Helper()
	frame, err := Encode(msgs...)
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	return frame
}

func TestRoundTrip(t *testing.T) {
	for _, s := range samples() {
		t.Run(s.name, func(t *testing.T) {
			frame := mustEncode(t, s.msg)
			got, err := DecodeAll(frame)
			if err != nil {
				t.Fatalf("DecodeAll: %v", err)
			}
			if len(got) != 1 || !equalMsg(got[0], s.msg) {
				t.Fatalf("round trip:\n got %#v\nwant %#v", got, s.msg)
			}
			if got[0].Type() != s.msg.Type() {
				t.Errorf("Type() = %v, want %v", got[0].Type(), s.msg.Type())
			}
		})
	}
}

// TestBatchRoundTrip decodes one frame holding every sample twice with one
// Decoder, checking that reusing its storage never leaks one message into
// another.
func TestBatchRoundTrip(t *testing.T) {
	ss := samples()
	var enc Encoder
	for _, s := range ss {
		if err := enc.Append(s.msg); err != nil {
			t.Fatalf("Append(%s): %v", s.name, err)
		}
	}
	if enc.Count() != len(ss) || enc.Len() != len(enc.Bytes()) {
		t.Fatalf("Count %d Len %d, frame %d bytes; want %d messages", enc.Count(), enc.Len(), len(enc.Bytes()), len(ss))
	}
	var dec Decoder
	for round := range 2 {
		i := 0
		err := dec.Decode(enc.Bytes(), func(m Message) error {
			if !equalMsg(m, ss[i].msg) {
				t.Errorf("round %d message %d (%s):\n got %#v\nwant %#v", round, i, ss[i].name, m, ss[i].msg)
			}
			i++
			return nil
		})
		if err != nil || i != len(ss) {
			t.Fatalf("round %d: %d messages, err %v", round, i, err)
		}
	}
}

func TestEncoderReuse(t *testing.T) {
	var enc Encoder
	if got, err := DecodeAll(enc.Bytes()); err != nil || len(got) != 0 || enc.Len() != HeaderSize {
		t.Fatalf("empty encoder: %d messages, Len %d, err %v", len(got), enc.Len(), err)
	}
	for i := range 3 {
		enc.Reset()
		for j := range i + 1 {
			if err := enc.Append(&Cancel{Lease: uint64(10*i + j)}); err != nil {
				t.Fatal(err)
			}
		}
		got, err := DecodeAll(enc.Bytes())
		if err != nil || len(got) != i+1 {
			t.Fatalf("round %d: %d messages, err %v", i, len(got), err)
		}
		for j, m := range got {
			if c := m.(*Cancel); c.Lease != uint64(10*i+j) {
				t.Errorf("round %d message %d: lease %d", i, j, c.Lease)
			}
		}
	}
}

func TestCallbackError(t *testing.T) {
	stop := errors.New("stop")
	frame := mustEncode(t, &Window{Size: 1}, &Window{Size: 2}, &Window{Size: 3})
	calls := 0
	err := Decode(frame, func(Message) error {
		calls++
		if calls == 2 {
			return stop
		}
		return nil
	})
	if err != stop || calls != 2 {
		t.Fatalf("err %v after %d calls; want the callback's error after 2", err, calls)
	}
}

// TestClone checks that a clone survives the frame and the decoder being
// reused.
func TestClone(t *testing.T) {
	for _, s := range samples() {
		frame := mustEncode(t, s.msg)
		var kept Message
		var d Decoder
		if err := d.Decode(frame, func(m Message) error { kept = Clone(m); return nil }); err != nil {
			t.Fatal(err)
		}
		for i := HeaderSize + MsgHeaderSize; i < len(frame); i++ {
			frame[i] ^= 0x55
		}
		_ = d.Decode(mustEncode(t, samples()[6].msg, samples()[9].msg, samples()[13].msg), func(Message) error { return nil })
		if !equalMsg(kept, s.msg) {
			t.Errorf("%s: clone changed with its frame:\n got %#v\nwant %#v", s.name, kept, s.msg)
		}
	}
	a := Clone(&Assign{Job: "x"}) // typed: no assertion needed
	if a.Job != "x" {
		t.Fatal("Clone lost a field")
	}
}

func TestAliasing(t *testing.T) {
	in := &TensorData{Hash: hash(1), Shape: []int{4}, Data: []float32{1, 2, 3, 4}}
	frame := mustEncode(t, in)
	var got []float32
	if err := Decode(frame, func(m Message) error { got = m.(*TensorData).Data; return nil }); err != nil {
		t.Fatal(err)
	}
	frame[len(frame)-1] ^= 0x80 // flip the sign of the last element
	if nativeLittleEndian && got[3] != -4 {
		t.Errorf("little-endian decode should view the frame: got %v", got)
	}
}

// TestFloatsPortable checks the unsafe fast path against the portable one.
func TestFloatsPortable(t *testing.T) {
	data := append(floats(1000), float32(math.NaN()), math.Float32frombits(0x7f800001), float32(math.Inf(-1)), -0)
	fast := appendFloats([]byte{9}, data)
	slow := appendFloatsPortable([]byte{9}, data)
	if !bytes.Equal(fast, slow) {
		t.Fatal("appendFloats and appendFloatsPortable differ")
	}
	var scratch []float32
	for _, off := range []int{0, 1, 2, 3} { // unaligned views too
		buf := append(make([]byte, off), slow[1:]...)
		view := viewFloats(buf[off:], &scratch)
		want := decodeFloatsPortable(nil, buf[off:])
		if !equalValue(reflect.ValueOf(view), reflect.ValueOf(want)) || !equalValue(reflect.ValueOf(view), reflect.ValueOf(data)) {
			t.Fatalf("offset %d: viewFloats differs from the portable decoder", off)
		}
	}
}

// TestDecodeAllocs checks the hot path's promise: a reused Decoder and
// Encoder allocate nothing per message in the steady state.
func TestDecodeAllocs(t *testing.T) {
	frame := mustEncode(t, samples()[6].msg, samples()[9].msg, samples()[13].msg, &Heartbeat{Seq: 1})
	var d Decoder
	fn := func(Message) error { return nil }
	if err := d.Decode(frame, fn); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { _ = d.Decode(frame, fn) }); n != 0 {
		t.Errorf("Decode allocates %.1f times per frame, want 0", n)
	}
	var enc Encoder
	msgs := []Message{samples()[6].msg, samples()[9].msg}
	if n := testing.AllocsPerRun(100, func() {
		enc.Reset()
		for _, m := range msgs {
			_ = enc.Append(m)
		}
	}); n != 0 {
		t.Errorf("Encoder allocates %.1f times per frame, want 0", n)
	}
}

func TestTypeString(t *testing.T) {
	for _, s := range samples() {
		if name := s.msg.Type().String(); !strings.EqualFold(strings.Split(s.name, "-")[0], name) {
			t.Errorf("%s: Type().String() = %q", s.name, name)
		}
	}
	if got := MsgType(200).String(); got != "MsgType(200)" {
		t.Errorf("unknown type String() = %q", got)
	}
}

// TestGolden pins the wire format: each sample's frame must equal the bytes
// in testdata/<name>.hex. Run with -update to rewrite them after a
// deliberate format change (and bump Version).
func TestGolden(t *testing.T) {
	for _, s := range samples() {
		t.Run(s.name, func(t *testing.T) {
			frame := mustEncode(t, s.msg)
			path := filepath.Join("testdata", s.name+".hex")
			if *update {
				if err := os.WriteFile(path, formatHex(s.name, frame), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			text, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./protocol -run Golden -update to create it)", err)
			}
			want, err := parseHex(text)
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			if !bytes.Equal(frame, want) {
				t.Fatalf("encoding changed:\n got %x\nwant %x", frame, want)
			}
			got, err := DecodeAll(want)
			if err != nil || len(got) != 1 || !equalMsg(got[0], s.msg) {
				t.Fatalf("golden bytes decode to %#v, %v", got, err)
			}
		})
	}
}

// formatHex writes a frame as commented hex, 16 bytes a line.
func formatHex(name string, frame []byte) []byte {
	var b strings.Builder
	b.WriteString("# " + name + ": one frame; regenerate with go test ./protocol -run Golden -update\n")
	for i := 0; i < len(frame); i += 16 {
		line := frame[i:min(i+16, len(frame))]
		for j, c := range line {
			if j > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(hex.EncodeToString([]byte{c}))
		}
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

func parseHex(text []byte) ([]byte, error) {
	var digits strings.Builder
	for _, line := range strings.Split(string(text), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		digits.WriteString(strings.Join(strings.Fields(line), ""))
	}
	return hex.DecodeString(digits.String())
}

// TestNumElements checks the division-free element count against
// tensor.NumElements over shapes that straddle the limits.
func TestNumElements(t *testing.T) {
	dims := []int{0, 1, 2, 3, 7, 1 << 10, 1 << 15, 1<<16 + 1, 46341, 1<<31 - 1, 1 << 31, math.MaxUint32}
	var shape []int
	var walk func(rank int)
	walk = func(rank int) {
		if got, want := numElements(shape), tensor.NumElements(shape); got != want {
			t.Fatalf("numElements(%v) = %d, tensor.NumElements = %d", shape, got, want)
		}
		if rank == 3 {
			return
		}
		for _, d := range dims {
			shape = append(shape, d)
			walk(rank + 1)
			shape = shape[:len(shape)-1]
		}
	}
	walk(0)
	if numElements(make([]int, MaxRank+1)) != -1 || numElements([]int{-1}) != -1 {
		t.Fatal("numElements accepts a bad shape")
	}
}

func TestDecoderRemaining(t *testing.T) {
	frame, err := Encode(&Heartbeat{Seq: 1}, &Cancel{Lease: 2}, &Heartbeat{Seq: 3})
	if err != nil {
		t.Fatal(err)
	}
	var d Decoder
	var got []int
	if err := d.Decode(frame, func(Message) error {
		got = append(got, d.Remaining())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, []int{2, 1, 0}) {
		t.Fatalf("Remaining during Decode = %v, want [2 1 0]", got)
	}
}

func TestFrameVersion(t *testing.T) {
	frame, err := Encode(&Heartbeat{Seq: 1})
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := FrameVersion(frame); !ok || v != Version {
		t.Errorf("FrameVersion of a frame of this build = %d, %v; want %d, true", v, ok, Version)
	}
	frame[3] = Version + 7
	if v, ok := FrameVersion(frame); !ok || v != Version+7 {
		t.Errorf("FrameVersion of a frame of version %d = %d, %v", Version+7, v, ok)
	}
	for _, bad := range [][]byte{nil, []byte("NLV"), []byte("XYZ\x01\x00\x00")} {
		if _, ok := FrameVersion(bad); ok {
			t.Errorf("FrameVersion(%q) reports a header", bad)
		}
	}
}
