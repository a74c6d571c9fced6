package protocol

import (
	"fmt"
	"slices"
	"sort"

	"github.com/neurolov/neurolov/tensor"
)

// ChunkTensor splits a tensor into TensorData chunks of at most maxElems
// elements each (DefaultChunkElems when maxElems ≤ 0, MaxChunkElems at
// most), in order. The chunks share shape and data with the caller (no
// copy). A tensor with no elements gives one empty chunk, so that the
// receiver still learns its shape. hash is normally tensor.Tensor.Hash of
// the tensor; the receiving Assembler checks it.
func ChunkTensor(hash [32]byte, shape []int, data []float32, maxElems int) ([]TensorData, error) {
	_, n, err := shapeSize("ChunkTensor", shape)
	if err != nil {
		return nil, err
	}
	if n != len(data) {
		return nil, fmt.Errorf("%w: ChunkTensor: shape %v holds %d elements, data has %d", ErrShape, shape, n, len(data))
	}
	if maxElems <= 0 {
		maxElems = DefaultChunkElems
	}
	maxElems = min(maxElems, MaxChunkElems)
	chunks := make([]TensorData, 0, max(1, (n+maxElems-1)/maxElems))
	for off := 0; off < n || len(chunks) == 0; off += maxElems {
		end := min(off+maxElems, n)
		chunks = append(chunks, TensorData{Hash: hash, Shape: shape, Offset: uint64(off), Data: data[off:end:end]})
	}
	return chunks, nil
}

// MaxChunkRuns bounds the separate runs of elements received of one
// tensor: chunks may arrive in any order as long as they leave at most this
// many gaps, so that recording one costs O(MaxChunkRuns) at worst (a
// sorted slice of runs), never O(chunks received) (120,000 one-element
// chunks with gaps, sent in descending order, cost 11.2 s of CPU).
const MaxChunkRuns = 64

// Assembler puts tensors back together from TensorData chunks, which may
// arrive in any order (leaving at most MaxChunkRuns runs received) and
// interleaved between tensors. It holds at most a
// budget of bytes of unfinished tensors, charged at the size each tensor's
// shape claims, so a peer cannot make it hold more by claiming huge
// shapes; and it allocates only for the data that has arrived (the tensor
// itself once complete), so a small frame claiming a huge shape costs what
// it sent. An Assembler is not safe for concurrent use.
type Assembler struct {
	limit   int64
	used    int64
	pending map[[32]byte]*partial
}

type partial struct {
	shape []int
	n     int // elements the shape holds
	// The data received: copies of the chunks (in arrival order) until
	// half the tensor has arrived, then the tensor itself (data), so that
	// what is allocated stays within twice what was sent.
	chunks []piece
	data   []float32
	spans  []span // received ranges: sorted, disjoint, adjacent ones merged
	got    int
}

// piece is one chunk's data, starting at element lo of its tensor.
type piece struct {
	lo   int
	data []float32
}

type span struct{ lo, hi int }

// NewAssembler returns an Assembler that holds at most maxBytes bytes of
// unfinished tensor data.
func NewAssembler(maxBytes int64) *Assembler {
	return &Assembler{limit: maxBytes, pending: make(map[[32]byte]*partial)}
}

// Add takes one chunk, copying its data, and returns the tensor once every
// element of it has arrived and its content hash (tensor.Tensor.Hash) equals
// the chunks' Hash; until then it returns nil, nil.
//
// It fails with ErrTooBig when the tensor does not fit the budget (nothing
// is kept), and with ErrShape, ErrChunk or ErrHashMismatch when the chunk
// falls outside the tensor, overlaps a chunk already received, would leave
// more than MaxChunkRuns runs received, disagrees on
// the shape, or completes a tensor whose content does not match its hash;
// these drop everything received for that hash.
func (a *Assembler) Add(c *TensorData) (*tensor.Tensor, error) {
	p := a.pending[c.Hash]
	if p == nil {
		_, n, err := shapeSize("TensorData", c.Shape)
		if err != nil {
			return nil, err
		}
		if bytes := 4 * int64(n); bytes > a.limit-a.used {
			return nil, fmt.Errorf("%w: tensor %x of shape %v needs %d bytes, %d of %d free", ErrTooBig, c.Hash[:4], c.Shape, bytes, a.limit-a.used, a.limit)
		}
		p = &partial{shape: slices.Clone(c.Shape), n: n}
		a.pending[c.Hash] = p
		a.used += 4 * int64(n)
	} else if !slices.Equal(p.shape, c.Shape) {
		a.Drop(c.Hash)
		return nil, fmt.Errorf("%w: tensor %x: chunk says shape %v, earlier chunks %v", ErrChunk, c.Hash[:4], c.Shape, p.shape)
	}
	n := p.n
	if c.Offset > uint64(n) || uint64(len(c.Data)) > uint64(n)-c.Offset {
		a.Drop(c.Hash)
		return nil, fmt.Errorf("%w: tensor %x: chunk [%d, +%d) outside %d elements", ErrShape, c.Hash[:4], c.Offset, len(c.Data), n)
	}
	if len(c.Data) == 0 && n > 0 {
		a.Drop(c.Hash)
		return nil, fmt.Errorf("%w: tensor %x: an empty chunk of a tensor of %d elements", ErrChunk, c.Hash[:4], n)
	}
	lo, hi := int(c.Offset), int(c.Offset)+len(c.Data)
	if lo < hi {
		if err := p.insert(lo, hi); err != nil {
			a.Drop(c.Hash)
			return nil, fmt.Errorf("%w: tensor %x: %v", ErrChunk, c.Hash[:4], err)
		}
		p.store(lo, c.Data)
		p.got += hi - lo
	}
	if p.got < n {
		return nil, nil
	}
	a.Drop(c.Hash)
	if p.data == nil {
		p.data = []float32{} // a tensor of no elements
	}
	t := &tensor.Tensor{Shape: p.shape, Data: p.data}
	if got := t.Hash(); got != c.Hash {
		return nil, fmt.Errorf("%w: chunks named %x, content hashes to %x", ErrHashMismatch, c.Hash[:8], got[:8])
	}
	return t, nil
}

// store copies data, received for elements [lo, lo+len(data)), into p:
// as a piece of its own while less than half of the tensor has arrived,
// into the tensor — allocated once half has — after that.
func (p *partial) store(lo int, data []float32) {
	switch {
	case p.data != nil:
		copy(p.data[lo:], data)
	case 2*(p.got+len(data)) < p.n:
		p.chunks = append(p.chunks, piece{lo: lo, data: slices.Clone(data)})
	case p.got == 0 && len(data) == p.n: // the whole tensor in one chunk
		p.data = slices.Clone(data)
	default:
		p.data = make([]float32, p.n)
		for _, c := range p.chunks {
			copy(p.data[c.lo:], c.data)
		}
		p.chunks = nil
		copy(p.data[lo:], data)
	}
}

// insert records [lo, hi) as received, refusing an overlap.
func (p *partial) insert(lo, hi int) error {
	i := sort.Search(len(p.spans), func(i int) bool { return p.spans[i].lo >= hi })
	// spans[:i] start below hi; the last of them must end by lo.
	if i > 0 && p.spans[i-1].hi > lo {
		s := p.spans[i-1]
		return fmt.Errorf("chunk [%d, %d) overlaps [%d, %d) already received", lo, hi, s.lo, s.hi)
	}
	joinLeft := i > 0 && p.spans[i-1].hi == lo
	joinRight := i < len(p.spans) && p.spans[i].lo == hi
	switch {
	case joinLeft && joinRight:
		p.spans[i-1].hi = p.spans[i].hi
		p.spans = slices.Delete(p.spans, i, i+1)
	case joinLeft:
		p.spans[i-1].hi = hi
	case joinRight:
		p.spans[i].lo = lo
	default:
		if len(p.spans) >= MaxChunkRuns {
			return fmt.Errorf("chunk [%d, %d) would leave more than %d separate runs received: send a tensor's chunks in order", lo, hi, MaxChunkRuns)
		}
		p.spans = slices.Insert(p.spans, i, span{lo, hi})
	}
	return nil
}

// Drop forgets everything received for hash and frees its budget.
func (a *Assembler) Drop(hash [32]byte) {
	if p := a.pending[hash]; p != nil {
		a.used -= 4 * int64(p.n)
		delete(a.pending, hash)
	}
}

// Pending returns the number of unfinished tensors.
func (a *Assembler) Pending() int { return len(a.pending) }

// Used returns the bytes held by unfinished tensors.
func (a *Assembler) Used() int64 { return a.used }
