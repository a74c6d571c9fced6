package protocol

import (
	"fmt"
	"testing"
)

var benchShapes = []struct {
	name  string
	shape []int
}{
	{"64", []int{8, 8}},
	{"256x784", []int{256, 784}},
}

func benchAssign(shape []int) *Assign {
	n := shape[0] * shape[1]
	return &Assign{Lease: 123456, Job: "job-7", Shard: 42, Kernel: "mlp-infer", Params: []byte{1, 0, 0, 0},
		Inputs: []TensorRef{
			{Hash: hash(1), Shape: shape, Inline: true, Data: floats(n)},
			{Hash: hash(2), Shape: []int{784, 512}}, // weights, by hash
		}}
}

func benchResult(shape []int) *Result {
	return &Result{Lease: 123456, Outputs: []TensorRef{{Shape: shape, Inline: true, Data: floats(shape[0] * shape[1])}}}
}

// BenchmarkCodec measures encoding into a reused Encoder, decoding with a
// reused Decoder, and both, for one Assign or Result per frame.
func BenchmarkCodec(b *testing.B) {
	for _, s := range benchShapes {
		for _, m := range []Message{benchAssign(s.shape), benchResult(s.shape)} {
			frame := mustEncode(b, m)
			var enc Encoder
			var dec Decoder
			noop := func(Message) error { return nil }
			name := fmt.Sprintf("%s/%s", m.Type(), s.name)
			b.Run(name+"/encode", func(b *testing.B) {
				b.SetBytes(int64(len(frame)))
				b.ReportAllocs()
				for b.Loop() {
					enc.Reset()
					if err := enc.Append(m); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(name+"/decode", func(b *testing.B) {
				b.SetBytes(int64(len(frame)))
				b.ReportAllocs()
				for b.Loop() {
					if err := dec.Decode(frame, noop); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(name+"/roundtrip", func(b *testing.B) {
				b.SetBytes(int64(len(frame)))
				b.ReportAllocs()
				for b.Loop() {
					enc.Reset()
					if err := enc.Append(m); err != nil {
						b.Fatal(err)
					}
					if err := dec.Decode(enc.Bytes(), noop); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkBatch measures the dispatch path: 64 small Assigns (64-element
// inline input) encoded into one frame and decoded, per message.
func BenchmarkBatch(b *testing.B) {
	const batch = 64
	m := benchAssign([]int{8, 8})
	var enc Encoder
	var dec Decoder
	noop := func(Message) error { return nil }
	b.ReportAllocs()
	for b.Loop() {
		enc.Reset()
		for i := range batch {
			m.Lease = uint64(i)
			if err := enc.Append(m); err != nil {
				b.Fatal(err)
			}
		}
		if err := dec.Decode(enc.Bytes(), noop); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/msg")
}

// BenchmarkFloats compares the unsafe little-endian path (one copy on
// encode, none on decode) with the portable encoding/binary loops, on a
// 256×784 tensor.
func BenchmarkFloats(b *testing.B) {
	data := floats(256 * 784)
	buf := appendFloatsPortable(nil, data)
	var scratch []float32
	b.Run("encode/native", func(b *testing.B) {
		b.SetBytes(int64(len(buf)))
		out := make([]byte, 0, len(buf))
		for b.Loop() {
			out = appendFloats(out[:0], data)
		}
	})
	b.Run("encode/portable", func(b *testing.B) {
		b.SetBytes(int64(len(buf)))
		out := make([]byte, 0, len(buf))
		for b.Loop() {
			out = appendFloatsPortable(out[:0], data)
		}
	})
	b.Run("decode/native", func(b *testing.B) {
		b.SetBytes(int64(len(buf)))
		for b.Loop() {
			scratch = viewFloats(buf, &scratch)
		}
	})
	b.Run("decode/portable", func(b *testing.B) {
		b.SetBytes(int64(len(buf)))
		for b.Loop() {
			scratch = decodeFloatsPortable(scratch, buf)
		}
	})
}
