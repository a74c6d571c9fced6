package protocol

import (
	"errors"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/neurolov/neurolov/tensor"
)

func testTensor(shape ...int) (*tensor.Tensor, [32]byte) {
	t := tensor.New(shape...)
	for i := range t.Data {
		t.Data[i] = float32(i%97) - 0.25*float32(i%5)
	}
	return t, t.Hash()
}

func TestChunkTensor(t *testing.T) {
	tt, h := testTensor(10, 7)
	tests := []struct {
		max, chunks int
	}{{0, 1}, {-1, 1}, {1, 70}, {7, 10}, {9, 8}, {70, 1}, {1000, 1}}
	for _, tc := range tests {
		chunks, err := ChunkTensor(h, tt.Shape, tt.Data, tc.max)
		if err != nil {
			t.Fatal(err)
		}
		if len(chunks) != tc.chunks {
			t.Errorf("max %d: %d chunks, want %d", tc.max, len(chunks), tc.chunks)
		}
		var joined []float32
		for i, c := range chunks {
			if c.Offset != uint64(len(joined)) || c.Hash != h || !slices.Equal(c.Shape, tt.Shape) {
				t.Fatalf("max %d chunk %d: offset %d, hash or shape wrong", tc.max, i, c.Offset)
			}
			joined = append(joined, c.Data...)
		}
		if !slices.Equal(joined, tt.Data) {
			t.Errorf("max %d: chunks do not join up to the tensor", tc.max)
		}
	}
	empty, eh := testTensor(0, 3)
	if chunks, err := ChunkTensor(eh, empty.Shape, empty.Data, 4); err != nil || len(chunks) != 1 || len(chunks[0].Data) != 0 {
		t.Errorf("empty tensor: %d chunks, %v; want one empty chunk", len(chunks), err)
	}
	if _, err := ChunkTensor(h, []int{3}, tt.Data, 4); !errors.Is(err, ErrShape) {
		t.Errorf("shape and data disagree: got %v, want ErrShape", err)
	}
	if _, err := ChunkTensor(h, make([]int, 9), nil, 4); !errors.Is(err, ErrLimit) {
		t.Errorf("rank 9: got %v, want ErrLimit", err)
	}
}

// TestAssemble sends tensors through the wire in chunks, in order,
// reversed, shuffled and interleaved with each other, and checks that the
// Assembler gives back each tensor exactly once, complete, and frees its
// budget.
func TestAssemble(t *testing.T) {
	a, ha := testTensor(33, 17)
	b, hb := testTensor(5)
	c, hc := testTensor(4, 0, 2)
	var chunks []TensorData
	for _, x := range []struct {
		t    *tensor.Tensor
		h    [32]byte
		elem int
	}{{a, ha, 10}, {b, hb, 2}, {c, hc, 3}} {
		cs, err := ChunkTensor(x.h, x.t.Shape, x.t.Data, x.elem)
		if err != nil {
			t.Fatal(err)
		}
		chunks = append(chunks, cs...)
	}
	orders := map[string]func([]TensorData){
		"in order": func([]TensorData) {},
		"reversed": slices.Reverse[[]TensorData],
		"shuffled": func(cs []TensorData) {
			r := rand.New(rand.NewPCG(1, 2))
			r.Shuffle(len(cs), func(i, j int) { cs[i], cs[j] = cs[j], cs[i] })
		},
	}
	for name, order := range orders {
		t.Run(name, func(t *testing.T) {
			cs := slices.Clone(chunks)
			order(cs)
			// Through the wire, several chunks a frame.
			var enc Encoder
			for i := range cs {
				if err := enc.Append(&cs[i]); err != nil {
					t.Fatal(err)
				}
			}
			asm := NewAssembler(1 << 20)
			done := map[[32]byte]*tensor.Tensor{}
			err := Decode(enc.Bytes(), func(m Message) error {
				got, err := asm.Add(m.(*TensorData))
				if got != nil {
					h := m.(*TensorData).Hash
					if done[h] != nil {
						t.Errorf("tensor %x completed twice", h[:4])
					}
					done[h] = got
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			for _, x := range []*tensor.Tensor{a, b, c} {
				got := done[x.Hash()]
				if got == nil || !tensor.SameShape(got, x) || !slices.Equal(got.Data, x.Data) {
					t.Errorf("tensor of shape %v not assembled intact", x.Shape)
				}
			}
			if asm.Pending() != 0 || asm.Used() != 0 {
				t.Errorf("after completion: %d pending, %d bytes used", asm.Pending(), asm.Used())
			}
		})
	}
}

// TestAssembleLarge sends a tensor larger than a frame, one chunk of the
// largest size a frame, and checks every frame fits.
func TestAssembleLarge(t *testing.T) {
	big, h := testTensor(5, MaxChunkElems/2+1) // about 2.5 frames
	chunks, err := ChunkTensor(h, big.Shape, big.Data, MaxChunkElems)
	if err != nil {
		t.Fatal(err)
	}
	if len(chunks) != 3 {
		t.Fatalf("%d chunks, want 3", len(chunks))
	}
	asm := NewAssembler(int64(4 * len(big.Data)))
	var got *tensor.Tensor
	var enc Encoder
	for i := range chunks {
		enc.Reset()
		if err := enc.Append(&chunks[i]); err != nil {
			t.Fatalf("chunk %d: %v", i, err)
		}
		if enc.Len() > MaxFrameSize {
			t.Fatalf("frame of %d bytes", enc.Len())
		}
		if err := Decode(enc.Bytes(), func(m Message) error {
			var err error
			got, err = asm.Add(m.(*TensorData))
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	if got == nil || !slices.Equal(got.Data, big.Data) {
		t.Fatal("large tensor not assembled intact")
	}
}

func TestAssembleErrors(t *testing.T) {
	x, h := testTensor(4, 5)
	chunk := func(off, n int) *TensorData {
		return &TensorData{Hash: h, Shape: x.Shape, Offset: uint64(off), Data: x.Data[off : off+n]}
	}
	tests := []struct {
		name   string
		budget int64
		first  []*TensorData // accepted
		bad    *TensorData
		want   error
	}{
		{"over budget", 79, nil, chunk(0, 5), ErrTooBig},
		{"claimed huge shape", 1 << 20, nil, &TensorData{Hash: h, Shape: []int{1 << 30}}, ErrTooBig},
		{"overlap same", 1 << 10, []*TensorData{chunk(5, 5)}, chunk(5, 5), ErrChunk},
		{"overlap left", 1 << 10, []*TensorData{chunk(5, 5)}, chunk(2, 4), ErrChunk},
		{"overlap right", 1 << 10, []*TensorData{chunk(5, 5)}, chunk(9, 3), ErrChunk},
		{"overlap inside", 1 << 10, []*TensorData{chunk(0, 3), chunk(10, 5)}, chunk(11, 2), ErrChunk},
		{"overlap across", 1 << 10, []*TensorData{chunk(0, 3), chunk(10, 5)}, chunk(2, 10), ErrChunk},
		{"out of range", 1 << 10, nil, &TensorData{Hash: h, Shape: x.Shape, Offset: 18, Data: make([]float32, 3)}, ErrShape},
		{"offset out of range", 1 << 10, nil, &TensorData{Hash: h, Shape: x.Shape, Offset: 1 << 62}, ErrShape},
		{"shape changes", 1 << 10, []*TensorData{chunk(0, 5)}, &TensorData{Hash: h, Shape: []int{5, 4}, Offset: 5, Data: x.Data[5:10]}, ErrChunk},
		{"rank 9", 1 << 10, nil, &TensorData{Hash: h, Shape: make([]int, 9)}, ErrLimit},
		{"wrong content", 1 << 10, []*TensorData{chunk(0, 10)}, &TensorData{Hash: h, Shape: x.Shape, Offset: 10, Data: make([]float32, 10)}, ErrHashMismatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			asm := NewAssembler(tc.budget)
			for _, c := range tc.first {
				if got, err := asm.Add(c); err != nil || got != nil {
					t.Fatalf("setup chunk at %d: %v, %v", c.Offset, got, err)
				}
			}
			if got, err := asm.Add(tc.bad); !errors.Is(err, tc.want) || got != nil {
				t.Fatalf("got %v, %v; want %v", got, err, tc.want)
			}
			if asm.Pending() != 0 || asm.Used() != 0 {
				t.Errorf("after the error: %d pending, %d bytes held; want the tensor dropped", asm.Pending(), asm.Used())
			}
			// The same tensor still assembles from scratch afterwards.
			asm = NewAssembler(1 << 10)
			if _, err := asm.Add(chunk(0, 12)); err != nil {
				t.Fatal(err)
			}
			if got, err := asm.Add(chunk(12, 8)); err != nil || got == nil {
				t.Fatalf("clean assembly after the error: %v, %v", got, err)
			}
		})
	}
}

func TestAssemblerBudget(t *testing.T) {
	x, hx := testTensor(8)
	y, hy := testTensor(9)
	asm := NewAssembler(4 * 16)
	if _, err := asm.Add(&TensorData{Hash: hx, Shape: x.Shape, Data: x.Data[:1]}); err != nil {
		t.Fatal(err)
	}
	if _, err := asm.Add(&TensorData{Hash: hy, Shape: y.Shape, Data: y.Data[:1]}); !errors.Is(err, ErrTooBig) {
		t.Fatalf("second tensor over the shared budget: got %v, want ErrTooBig", err)
	}
	if asm.Used() != 32 || asm.Pending() != 1 {
		t.Fatalf("used %d, pending %d; want 32, 1", asm.Used(), asm.Pending())
	}
	asm.Drop(hx)
	if _, err := asm.Add(&TensorData{Hash: hy, Shape: y.Shape, Data: y.Data[:1]}); err != nil {
		t.Fatalf("after Drop: %v", err)
	}
}

// TestAssemblerAllocatesWhatArrives: one small chunk that claims a huge
// shape costs about what it carried, and an empty chunk of a non-empty
// tensor is refused rather than held.
func TestAssemblerAllocatesWhatArrives(t *testing.T) {
	asm := NewAssembler(1 << 30)
	claim := TensorData{Hash: [32]byte{1}, Shape: []int{1 << 26}, Offset: 0, Data: []float32{1}}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	got, err := asm.Add(&claim)
	runtime.ReadMemStats(&after)
	if got != nil || err != nil {
		t.Fatalf("first chunk of 2^26 elements: %v, %v; want it held", got, err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Fatalf("one element of a 256 MiB tensor allocated %d bytes", n)
	}
	if asm.Used() != 4<<26 {
		t.Fatalf("budget charged %d bytes, want the claimed 256 MiB", asm.Used())
	}
	empty := TensorData{Hash: [32]byte{2}, Shape: []int{16}, Offset: 3}
	if _, err := asm.Add(&empty); !errors.Is(err, ErrChunk) {
		t.Fatalf("an empty chunk of a 16-element tensor: %v, want ErrChunk", err)
	}
	if asm.Pending() != 1 {
		t.Fatalf("%d tensors pending, want only the first", asm.Pending())
	}
}

// feedOneElementChunks feeds a the even elements of x one chunk each, in
// ascending or descending order, until the Assembler refuses one, and
// returns how long that took.
func feedOneElementChunks(a *Assembler, x *tensor.Tensor, h [32]byte, descending bool) time.Duration {
	n := len(x.Data)
	start := time.Now()
	for k := 0; k < n/2; k++ {
		off := 2 * k
		if descending {
			off = n - 2 - 2*k
		}
		c := &TensorData{Hash: h, Shape: x.Shape, Offset: uint64(off), Data: x.Data[off : off+1]}
		if _, err := a.Add(c); err != nil {
			break
		}
	}
	return time.Since(start)
}

// TestChunkOrderCostsNoMore: 120,000 one-element chunks with gaps between
// them cost about the same in descending order as ascending (descending
// cost 11.2 s against 0.03 s: each span was inserted at the front of a
// sorted slice).
func TestChunkOrderCostsNoMore(t *testing.T) {
	x, h := testTensor(240_000)
	asc := feedOneElementChunks(NewAssembler(1<<30), x, h, false)
	desc := feedOneElementChunks(NewAssembler(1<<30), x, h, true)
	t.Logf("ascending %v, descending %v", asc, desc)
	a := NewAssembler(1 << 30)
	for k := range MaxChunkRuns + 1 {
		off := 2 * k
		_, err := a.Add(&TensorData{Hash: h, Shape: x.Shape, Offset: uint64(off), Data: x.Data[off : off+1]})
		if (err != nil) != (k == MaxChunkRuns) || err != nil && !errors.Is(err, ErrChunk) {
			t.Fatalf("chunk %d of %d leaving gaps: %v, want ErrChunk only past %d runs", k+1, MaxChunkRuns+1, err, MaxChunkRuns)
		}
	}
	// Descending without gaps makes one run: the whole tensor arrives.
	a = NewAssembler(1 << 30)
	var got *tensor.Tensor
	for off := len(x.Data) - 1; off >= 0; off-- {
		var err error
		if got, err = a.Add(&TensorData{Hash: h, Shape: x.Shape, Offset: uint64(off), Data: x.Data[off : off+1]}); err != nil {
			t.Fatal(err)
		}
	}
	if got == nil || !slices.Equal(got.Data, x.Data) {
		t.Fatal("a tensor sent one element at a time in descending order was not assembled")
	}
	if desc > 10*asc+200*time.Millisecond {
		t.Fatalf("descending chunks took %v against %v ascending", desc, asc)
	}
}
