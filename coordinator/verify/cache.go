package verify

import (
	"math"
	"unsafe"
	"weak"

	"github.com/neurolov/neurolov/tensor"
)

// The input cache. Much of the work of a check depends on the shard's
// inputs alone, not on the result or the random vector: the absolute row
// sums of B that bound Freivalds' threshold, the row norms of A and the
// column norms of B that bound Agree's tolerance, and — for a B checked
// again and again — a transposed copy of B from which spot checks read
// columns without a cache miss per element. The scheduler passes
// the same tensors for every replica of a shard, and shards share them
// (the B of a column of matmul tiles, every weight of an mlp-infer job),
// so a Verifier remembers these quantities for the last few input
// matrices it saw.
//
// An entry is keyed by the tensor's identity — a weak pointer, so the
// cache neither keeps a tensor alive nor mistakes a new tensor at a
// reused address for a dead one — and by its data's address, length and
// shape, and a fingerprint of a few sampled elements that is checked on
// every hit. Inputs must not change while a Verifier may have them cached
// (the scheduler never changes them); a change that moves, resizes or
// reshapes the data, or alters a sampled element, is noticed, but any
// other change in place is not: call Verifier.ForgetInputs after one.

// cacheSize bounds the input matrices a Verifier remembers: enough for
// the weights of a deep MLP, or the A and B tensors of many tiles.
const cacheSize = 32

// fingerprintSamples is the number of elements a fingerprint reads,
// spread evenly over the data from the first to the last.
const fingerprintSamples = 16

// Which quantities of a matStats are filled in.
const (
	haveRowAbs = 1 << iota
	haveRowNorm
	haveColNorm
	haveColumns
)

// transposeAfter is how many spot checks read columns of one input matrix
// in strides before the cache keeps a transposed copy of it: transposing
// costs a pass over the matrix, a strided column read costs a cache miss
// per element, so only a matrix checked again and again (the weights of a
// job, the B of a column of tiles) earns its copy.
const transposeAfter = 4

// matStats holds what a check needs to know about one input matrix
// (rows×cols), each quantity computed when first asked for.
type matStats struct {
	// Identity: the tensor (weakly), its address to find it fast, and
	// its data.
	ref        weak.Pointer[tensor.Tensor]
	addr, data uintptr
	n          int
	rows, cols int
	fp         uint64
	used       uint64 // the cache's clock when last used: the oldest goes first
	have       int    // have* bits

	rowAbs    []float64 // Σ_j |x_ij| per row
	rowAbsSum float64   // Σ_i rowAbs_i
	rowNorm   []float64 // ‖x_i‖₂ per row
	colNorm   []float64 // ‖x_·j‖₂ per column
	columns   []float32 // the matrix transposed: column j at [j·rows, (j+1)·rows)
	spotReads int       // spot checks that read its columns in strides
	// Whether each is free of NaN and ±Inf, that is, whether the matrix
	// is (a sum of squares of float32 cannot overflow float64).
	rowAbsFinite, rowNormFinite, colNormFinite bool
}

// statsCache is a Verifier's cache of input matrices, least recently
// used first out.
type statsCache struct {
	entries []*matStats
	clock   uint64
}

// lookup returns the entry of t viewed as a rows×cols matrix, creating it
// (empty) when there is none or t's data no longer matches it.
func (c *statsCache) lookup(t *tensor.Tensor, rows, cols int) *matStats {
	c.clock++
	addr := uintptr(unsafe.Pointer(t))
	data := uintptr(unsafe.Pointer(unsafe.SliceData(t.Data)))
	var victim *matStats
	for _, e := range c.entries {
		if e.addr == addr && e.rows == rows && e.cols == cols && e.ref.Value() == t {
			if e.data == data && e.n == len(t.Data) && e.fp == fingerprint(t.Data) {
				e.used = c.clock
				return e
			}
			victim = e // the same tensor, changed: refill its entry
			break
		}
		if victim == nil || e.used < victim.used {
			victim = e
		}
	}
	if len(c.entries) < cacheSize && (victim == nil || victim.addr != addr) {
		victim = new(matStats)
		c.entries = append(c.entries, victim)
	}
	e := victim
	if e.addr != addr || e.ref.Value() != t {
		e.ref = weak.Make(t)
	}
	e.addr, e.data, e.n, e.rows, e.cols = addr, data, len(t.Data), rows, cols
	e.fp = fingerprint(t.Data)
	e.used = c.clock
	e.have, e.spotReads = 0, 0
	return e
}

// forget empties the cache, keeping its buffers.
func (c *statsCache) forget() {
	for _, e := range c.entries {
		e.ref, e.addr, e.have, e.spotReads = weak.Pointer[tensor.Tensor]{}, 0, 0, 0
	}
}

// rowAbs returns Σ_j |x_ij| for every row of t (rows×cols), their sum,
// and whether t is finite.
func (c *statsCache) rowAbs(t *tensor.Tensor, rows, cols int) (s []float64, sum float64, finite bool) {
	e := c.lookup(t, rows, cols)
	if e.have&haveRowAbs == 0 {
		e.rowAbs = grow(&e.rowAbs, rows)
		s := e.rowAbs
		e.rowAbsSum = 0
		for i := range s {
			s[i] = sumAbs(t.Data[i*cols : (i+1)*cols])
			e.rowAbsSum += s[i]
		}
		e.rowAbsFinite = allFinite(s)
		e.have |= haveRowAbs
	}
	return e.rowAbs, e.rowAbsSum, e.rowAbsFinite
}

// rowNorms returns ‖x_i‖₂ for every row of t (rows×cols) and whether t
// is finite. The norms are those rowNorm gives.
func (c *statsCache) rowNorms(t *tensor.Tensor, rows, cols int) (h []float64, finite bool) {
	e := c.lookup(t, rows, cols)
	if e.have&haveRowNorm == 0 {
		e.rowNorm = grow(&e.rowNorm, rows)
		h := e.rowNorm
		for i := range h {
			h[i] = rowNorm(t.Data[i*cols : (i+1)*cols])
		}
		e.rowNormFinite = allFinite(h)
		e.have |= haveRowNorm
	}
	return e.rowNorm, e.rowNormFinite
}

// colNorms returns ‖x_·j‖₂ for every column of t (rows×cols) and whether
// t is finite. The norms are those colNorm gives.
func (c *statsCache) colNorms(t *tensor.Tensor, rows, cols int) (w []float64, finite bool) {
	e := c.lookup(t, rows, cols)
	if e.have&haveColNorm == 0 {
		e.colNorm = grow(&e.colNorm, cols)
		w := e.colNorm
		clear(w)
		for i := range rows {
			addSquares(w, t.Data[i*cols:(i+1)*cols])
		}
		for j := range w {
			w[j] = math.Sqrt(w[j])
		}
		e.colNormFinite = allFinite(w)
		e.have |= haveColNorm
	}
	return e.colNorm, e.colNormFinite
}

// columns returns t (rows×cols) transposed, so that column j is the
// contiguous slice [j·rows, (j+1)·rows), or nil until spot checks have
// read t's columns in strides transposeAfter times.
func (c *statsCache) columns(t *tensor.Tensor, rows, cols int) []float32 {
	e := c.lookup(t, rows, cols)
	if e.have&haveColumns != 0 {
		return e.columns
	}
	if e.spotReads++; e.spotReads <= transposeAfter {
		return nil
	}
	return e.transpose(t)
}

// transposed returns t (rows×cols) transposed, as columns does, but
// transposes it at once: for whole rows recomputed (Confirm, Settle's
// forward passes), each of which reads all of t anyway.
func (c *statsCache) transposed(t *tensor.Tensor, rows, cols int) []float32 {
	e := c.lookup(t, rows, cols)
	if e.have&haveColumns != 0 {
		return e.columns
	}
	return e.transpose(t)
}

// transpose fills e.columns from t and returns it.
func (e *matStats) transpose(t *tensor.Tensor) []float32 {
	rows, cols := e.rows, e.cols
	if cap(e.columns) < rows*cols {
		e.columns = make([]float32, rows*cols)
	}
	e.columns = e.columns[:rows*cols]
	transpose(e.columns, t.Data, rows, cols)
	e.have |= haveColumns
	return e.columns
}

// transpose writes the rows×cols row-major src into dst column-major, in
// tiles that fit the L1 cache.
func transpose(dst, src []float32, rows, cols int) {
	const tile = 32
	for i0 := 0; i0 < rows; i0 += tile {
		i1 := min(i0+tile, rows)
		for j0 := 0; j0 < cols; j0 += tile {
			j1 := min(j0+tile, cols)
			for i := i0; i < i1; i++ {
				row := src[i*cols : (i+1)*cols]
				for j := j0; j < j1; j++ {
					dst[j*rows+i] = row[j]
				}
			}
		}
	}
}

// rowNorm returns ‖x‖₂ for one row.
func rowNorm(x []float32) float64 { return math.Sqrt(sumSquares(x)) }

// colNorm returns ‖x_·j‖₂ for column j of x (rows×cols), with the same
// bits as colNorms: the same unfused sums in the same order.
func colNorm(x []float32, rows, cols, j int) float64 {
	var w float64
	for i := range rows {
		w = addSquare(w, x[i*cols+j])
	}
	return math.Sqrt(w)
}

// fingerprint hashes the length of x and fingerprintSamples of its
// elements (FNV-1a over their bits).
func fingerprint(x []float32) uint64 {
	const prime = 0x100000001b3
	h := (0xcbf29ce484222325 ^ uint64(len(x))) * prime
	if len(x) == 0 {
		return h
	}
	for s := range fingerprintSamples {
		i := s * (len(x) - 1) / (fingerprintSamples - 1)
		h = (h ^ uint64(math.Float32bits(x[i]))) * prime
	}
	return h
}

// ForgetInputs drops everything the Verifier remembers about input
// tensors. Call it after changing an input tensor's data in place; the
// Verifier notices other changes itself (see the package documentation).
func (v *Verifier) ForgetInputs() { v.inputs.forget() }
