package protocol

import (
	"errors"
	"math"
	"strings"
	"testing"
)

// raw builds a frame by hand from message types and bodies, so tests can
// write what the Encoder refuses to.
func raw(msgs ...any) []byte {
	b := []byte{'N', 'L', 'V', Version, 0, 0}
	le.PutUint16(b[4:], uint16(len(msgs)/2))
	for i := 0; i < len(msgs); i += 2 {
		body := msgs[i+1].([]byte)
		b = append(b, byte(msgs[i].(MsgType)))
		b = le.AppendUint32(b, uint32(len(body)))
		b = append(b, body...)
	}
	return b
}

// cat concatenates byte fields.
func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func u16(v uint16) []byte { return le.AppendUint16(nil, v) }
func u32(v uint32) []byte { return le.AppendUint32(nil, v) }
func u64(v uint64) []byte { return le.AppendUint64(nil, v) }
func zeros(n int) []byte  { return make([]byte, n) }

func TestDecodeErrors(t *testing.T) {
	valid := mustEncode(t, &Window{Size: 1}, &Cancel{Lease: 2})
	h := zeros(32)
	// assignHead is an Assign body up to its input list.
	assignHead := cat(u64(1), u16(1), []byte("j"), u32(0), u16(1), []byte("k"), u32(0))
	tests := []struct {
		name  string
		frame []byte
		want  error
	}{
		{"empty", nil, ErrShortFrame},
		{"short header", []byte("NLV\x01\x00"), ErrShortFrame},
		{"bad magic", []byte("NLW\x01\x00\x00"), ErrBadMagic},
		{"http", []byte("GET / HTTP/1.1\r\n"), ErrBadMagic},
		{"version 0", []byte("NLV\x00\x00\x00"), ErrVersion},
		{"version 2", append([]byte("NLV\x02"), valid[4:]...), ErrVersion},
		{"too large", append(append([]byte(nil), valid...), zeros(MaxFrameSize)...), ErrFrameTooLarge},
		{"type 0", raw(MsgType(0), []byte{}), ErrUnknownType},
		{"type 14", raw(MsgType(14), []byte{}), ErrUnknownType},
		{"type 255", raw(MsgType(255), []byte{}), ErrUnknownType},
		{"count beyond messages", append(append([]byte(nil), valid[:4]...), append(u16(3), valid[6:]...)...), ErrShortFrame},
		{"length beyond frame", cat(raw(TypeWindow, u32(1))[:7], u32(5), u32(1)), ErrShortFrame},
		{"huge claimed length", cat(raw(TypeWindow, u32(1))[:7], u32(math.MaxUint32), u32(1)), ErrShortFrame},
		{"bytes after last message", append(append([]byte(nil), valid...), 0), ErrMalformed},
		{"body too short", raw(TypeWindow, []byte{1, 2}), ErrMalformed},
		{"body left over", raw(TypeWindow, []byte{1, 2, 3, 4, 5}), ErrMalformed},
		{"empty heartbeat", raw(TypeHeartbeat, []byte{}), ErrMalformed},
		{"auth short", raw(TypeAuth, zeros(64)), ErrMalformed},
		{"string past body", raw(TypeGoodbye, cat(u16(10), []byte("abc"))), ErrMalformed},
		{"string over limit", raw(TypeGoodbye, cat(u16(MaxString+1), zeros(MaxString+1))), ErrLimit},
		{"params over limit", raw(TypeAssign, cat(u64(1), u16(0), u32(0), u16(0), u32(MaxParams+1), zeros(MaxParams+1), u16(0))), ErrLimit},
		{"params past body", raw(TypeAssign, cat(u64(1), u16(0), u32(0), u16(0), u32(100), zeros(10))), ErrMalformed},
		{"tensor count past body", raw(TypeAssign, cat(assignHead, u16(math.MaxUint16), h)), ErrMalformed},
		{"result count past body", raw(TypeResult, cat(u64(1), u16(2), h, []byte{0, 0})), ErrMalformed},
		{"rank 9", raw(TypeResult, cat(u64(1), u16(1), h, []byte{0, 9}, zeros(36))), ErrLimit},
		{"rank past body", raw(TypeResult, cat(u64(1), u16(1), h, []byte{0, 3}, u32(1))), ErrMalformed},
		{"shape overflow", raw(TypeResult, cat(u64(1), u16(1), h, []byte{0, 2}, u32(1<<20), u32(1<<20))), ErrShape},
		{"bad flags", raw(TypeResult, cat(u64(1), u16(1), h, []byte{2, 0})), ErrMalformed},
		{"inline data short", raw(TypeResult, cat(u64(1), u16(1), h, []byte{1, 1}, u32(3), zeros(8))), ErrMalformed},
		{"inline data claims 2 GiB", raw(TypeResult, cat(u64(1), u16(1), h, []byte{1, 2}, u32(1<<15), u32(1<<16-1), zeros(8))), ErrMalformed},
		{"by-hash ref with data", raw(TypeResult, cat(u64(1), u16(1), h, []byte{0, 1}, u32(1), zeros(4))), ErrMalformed},
		{"fetch count past body", raw(TypeFetch, cat(u16(3), h, h)), ErrMalformed},
		{"NaN GFLOPS", mustEncode(t, &Capabilities{Backend: "cpu", GFLOPS: math.NaN()}), ErrMalformed},
		{"infinite GFLOPS", mustEncode(t, &Capabilities{Backend: "cpu", GFLOPS: math.Inf(1)}), ErrMalformed},
		{"negative GFLOPS", mustEncode(t, &Capabilities{Backend: "cpu", GFLOPS: -1}), ErrMalformed},
		{"chunk past shape", raw(TypeTensorData, cat(h, []byte{1}, u32(4), u64(2), u32(3), zeros(12))), ErrShape},
		{"chunk offset past shape", raw(TypeTensorData, cat(h, []byte{1}, u32(4), u64(math.MaxUint64), u32(1), zeros(4))), ErrShape},
		{"chunk over limit", raw(TypeTensorData, cat(h, []byte{1}, u32(1<<30), u64(0), u32(MaxChunkElems+1))), ErrLimit},
		{"chunk data short", raw(TypeTensorData, cat(h, []byte{1}, u32(4), u64(0), u32(4), zeros(15))), ErrMalformed},
		{"second message bad", raw(TypeCancel, u64(1), TypeCancel, u64(2)[:7]), ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			err := Decode(tc.frame, func(Message) error { calls++; return nil })
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "protocol: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			if tc.name != "second message bad" && calls != 0 {
				t.Errorf("callback ran %d times before the error", calls)
			}
		})
	}
}

// TestTruncated cuts a valid multi-message frame at every position: each
// strict prefix is a short frame.
func TestTruncated(t *testing.T) {
	var msgs []Message
	for _, s := range samples() {
		msgs = append(msgs, s.msg)
	}
	frame := mustEncode(t, msgs...)
	for i := range len(frame) {
		if err := Decode(frame[:i], func(Message) error { return nil }); !errors.Is(err, ErrShortFrame) {
			t.Fatalf("frame cut to %d of %d bytes: got %v, want ErrShortFrame", i, len(frame), err)
		}
	}
}

func TestEncodeErrors(t *testing.T) {
	long := strings.Repeat("x", MaxString+1)
	big := make([]float32, MaxFrameSize/4)
	tests := []struct {
		name string
		msg  Message
		want error
	}{
		{"long agent", &Hello{Agent: long}, ErrLimit},
		{"long challenge", &Challenge{Message: long}, ErrLimit},
		{"long backend", &Capabilities{Backend: long}, ErrLimit},
		{"long device", &Capabilities{Device: long}, ErrLimit},
		{"long job", &Assign{Job: long}, ErrLimit},
		{"long kernel", &Assign{Kernel: long}, ErrLimit},
		{"long error", &Error{Message: long}, ErrLimit},
		{"long reason", &Goodbye{Reason: long}, ErrLimit},
		{"long params", &Assign{Params: make([]byte, MaxParams+1)}, ErrLimit},
		{"rank 9", &Result{Outputs: []TensorRef{{Shape: make([]int, 9)}}}, ErrLimit},
		{"negative dim", &Result{Outputs: []TensorRef{{Shape: []int{-1}}}}, ErrShape},
		{"dim over u32", &Result{Outputs: []TensorRef{{Shape: []int{0, math.MaxUint32 + 1}}}}, ErrShape},
		{"elements overflow", &Result{Outputs: []TensorRef{{Shape: []int{1 << 20, 1 << 20}}}}, ErrShape},
		{"data short", &Result{Outputs: []TensorRef{{Shape: []int{2, 2}, Inline: true, Data: []float32{1}}}}, ErrShape},
		{"data on by-hash ref", &Result{Outputs: []TensorRef{{Shape: []int{1}, Data: []float32{1}}}}, ErrShape},
		{"inline tensor over a frame", &Result{Outputs: []TensorRef{{Shape: []int{len(big)}, Inline: true, Data: big}}}, ErrFrameTooLarge},
		{"inputs over a frame", &Assign{Inputs: []TensorRef{
			{Shape: []int{len(big) / 2}, Inline: true, Data: big[:len(big)/2]},
			{Shape: []int{len(big) / 2}, Inline: true, Data: big[len(big)/2:]},
		}}, ErrFrameTooLarge},
		{"too many tensors", &Result{Outputs: make([]TensorRef, MaxTensors+1)}, ErrLimit},
		{"too many hashes", &Fetch{Hashes: make([][32]byte, MaxHashes+1)}, ErrLimit},
		{"chunk over limit", &TensorData{Shape: []int{MaxChunkElems + 1}, Data: make([]float32, MaxChunkElems+1)}, ErrLimit},
		{"chunk past shape", &TensorData{Shape: []int{4}, Offset: 2, Data: make([]float32, 3)}, ErrShape},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var enc Encoder
			if err := enc.Append(&Window{Size: 1}); err != nil {
				t.Fatal(err)
			}
			before := append([]byte(nil), enc.Bytes()...)
			err := enc.Append(tc.msg)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if string(enc.Bytes()) != string(before) || enc.Count() != 1 {
				t.Fatalf("a failed Append changed the frame")
			}
		})
	}
}

// TestFrameFull fills frames to both limits: bytes and message count.
func TestFrameFull(t *testing.T) {
	t.Run("bytes", func(t *testing.T) {
		chunk := &TensorData{Shape: []int{1 << 20}, Data: make([]float32, 1<<20)} // 4 MiB
		var enc Encoder
		n := 0
		for ; n < 10; n++ {
			if err := enc.Append(chunk); err != nil {
				if !errors.Is(err, ErrFrameTooLarge) {
					t.Fatalf("got %v, want ErrFrameTooLarge", err)
				}
				break
			}
		}
		if n != 3 || enc.Len() > MaxFrameSize {
			t.Fatalf("%d chunks of 4 MiB fit a frame of %d bytes; want 3 within %d", n, enc.Len(), MaxFrameSize)
		}
		if got, err := DecodeAll(enc.Bytes()); err != nil || len(got) != 3 {
			t.Fatalf("full frame: %d messages, %v", len(got), err)
		}
	})
	t.Run("count", func(t *testing.T) {
		var enc Encoder
		for i := range MaxMessages {
			if err := enc.Append(&Cancel{Lease: uint64(i)}); err != nil {
				t.Fatalf("message %d: %v", i, err)
			}
		}
		if err := enc.Append(&Cancel{}); !errors.Is(err, ErrFrameTooLarge) {
			t.Fatalf("message %d: got %v, want ErrFrameTooLarge", MaxMessages+1, err)
		}
		n := 0
		if err := Decode(enc.Bytes(), func(Message) error { n++; return nil }); err != nil || n != MaxMessages {
			t.Fatalf("decoded %d messages, %v", n, err)
		}
	})
}
