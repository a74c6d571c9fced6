package protocol

import (
	"bytes"
	"errors"
	"testing"
)

var sentinels = []error{ErrShortFrame, ErrBadMagic, ErrVersion, ErrUnknownType, ErrFrameTooLarge, ErrMalformed, ErrLimit, ErrShape}

// FuzzDecode feeds the decoder arbitrary bytes, seeded with a frame of every
// sample message and one holding them all. For each input it also decodes
// both halves of every split (nats' trick for partial reads). Decoding must
// never panic; it either fails with one of the package's sentinels or
// succeeds, and then the messages re-encode to exactly the input (the
// encoding is canonical) and every strict prefix of the input is a short
// frame.
func FuzzDecode(f *testing.F) {
	var all []Message
	for _, s := range samples() {
		f.Add(mustEncode(f, s.msg))
		all = append(all, s.msg)
	}
	f.Add(mustEncode(f, all...))
	f.Fuzz(func(t *testing.T, data []byte) {
		var d Decoder
		var enc Encoder
		if checkDecode(t, &d, &enc, data) {
			for i := range len(data) {
				if err := d.Decode(data[:i], func(Message) error { return nil }); !errors.Is(err, ErrShortFrame) {
					t.Fatalf("prefix of %d of a valid %d-byte frame: got %v, want ErrShortFrame", i, len(data), err)
				}
			}
		}
		for i := 1; i < len(data); i++ {
			checkDecode(t, &d, &enc, data[:i])
			checkDecode(t, &d, &enc, data[i:])
		}
	})
}

// checkDecode decodes data and reports whether it was a valid frame.
func checkDecode(t *testing.T, d *Decoder, enc *Encoder, data []byte) bool {
	enc.Reset()
	err := d.Decode(data, func(m Message) error {
		if err := enc.Append(m); err != nil {
			t.Fatalf("decoded %s does not re-encode: %v", m.Type(), err)
		}
		return nil
	})
	if err != nil {
		for _, s := range sentinels {
			if errors.Is(err, s) {
				return false
			}
		}
		t.Fatalf("error wraps no sentinel: %v", err)
	}
	if !bytes.Equal(enc.Bytes(), data) {
		t.Fatalf("decoded frame re-encodes differently:\n  in %x\n out %x", data, enc.Bytes())
	}
	return true
}
