package protocol_test

import (
	"fmt"

	"github.com/neurolov/neurolov/protocol"
	"github.com/neurolov/neurolov/tensor"
)

// A coordinator batches several messages into one frame; the worker decodes
// them with a Decoder it keeps for the connection.
func ExampleEncoder() {
	var enc protocol.Encoder
	_ = enc.Append(&protocol.Window{Size: 2})
	for shard := range uint32(2) {
		err := enc.Append(&protocol.Assign{
			Lease: uint64(100 + shard), Job: "job-1", Shard: shard, Kernel: "matmul",
			Inputs: []protocol.TensorRef{
				{Shape: []int{1, 2}, Inline: true, Data: []float32{1, 2}},
				{Hash: [32]byte{0xab}, Shape: []int{2, 2}}, // cached by the worker
			},
		})
		if err != nil {
			panic(err)
		}
	}
	frame := enc.Bytes() // one WebSocket binary message

	var dec protocol.Decoder
	err := dec.Decode(frame, func(m protocol.Message) error {
		switch m := m.(type) {
		case *protocol.Window:
			fmt.Println("window", m.Size)
		case *protocol.Assign:
			fmt.Println("assign", m.Lease, m.Kernel, m.Inputs[0].Data, m.Inputs[1].Inline)
		}
		return nil
	})
	fmt.Println(len(frame), "bytes,", enc.Count(), "messages, error:", err)
	// Output:
	// window 2
	// assign 100 matmul [1 2] false
	// assign 101 matmul [1 2] false
	// 275 bytes, 3 messages, error: <nil>
}

// A tensor too large for one frame travels as TensorData chunks, which an
// Assembler puts back together and checks against the content hash.
func ExampleChunkTensor() {
	w := tensor.New(300, 100)
	for i := range w.Data {
		w.Data[i] = float32(i)
	}
	chunks, err := protocol.ChunkTensor(w.Hash(), w.Shape, w.Data, 8192)
	if err != nil {
		panic(err)
	}
	asm := protocol.NewAssembler(64 << 20)
	for i := range chunks {
		frame, err := protocol.Encode(&chunks[i])
		if err != nil {
			panic(err)
		}
		err = protocol.Decode(frame, func(m protocol.Message) error {
			t, err := asm.Add(m.(*protocol.TensorData))
			if t != nil {
				fmt.Println("assembled", t.Shape, "from", len(chunks), "chunks; last element", t.Data[len(t.Data)-1])
			}
			return err
		})
		if err != nil {
			panic(err)
		}
	}
	// Output:
	// assembled [300 100] from 4 chunks; last element 29999
}
