package simdgemm

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/neurolov/neurolov/shaders"
	"github.com/neurolov/neurolov/tensor"
)

// Errors the Backend returns.
var (
	// ErrMemory reports a shard that does not fit the WebAssembly memory
	// even after the weight cache was emptied.
	ErrMemory = errors.New("simdgemm: out of WebAssembly memory")
	// ErrModule reports a gemm.wasm that cannot be used (missing exports,
	// another ABI version).
	ErrModule = errors.New("simdgemm: unusable gemm.wasm module")
)

// Options configure a Backend. The zero value is a sensible default.
type Options struct {
	// CacheBytes bounds the packed weights kept resident in the module's
	// memory across shards (default 128 MiB). Weights a running shard uses
	// are never evicted.
	CacheBytes int64
	// MaxBytes bounds the module's memory (default 2 GiB; browsers allow up
	// to 4 GiB for wasm32, and refusing to grow is reported as ErrMemory).
	MaxBytes int64
}

// Backend runs the shard kernels of package shaders ("matmul",
// "mlp-infer") on gemm.wasm. It satisfies worker.Backend and reports
// backend "cpu-wasm". Calls are serialised: the module has one memory and
// WebAssembly in a Web Worker runs on one thread.
type Backend struct {
	mu    sync.Mutex
	mod   Module
	opts  Options
	heap  *arena
	cache *prepCache
}

// New returns a Backend driving mod.
func New(mod Module, opts Options) *Backend {
	if opts.CacheBytes <= 0 {
		opts.CacheBytes = 128 << 20
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = 2 << 30
	}
	return &Backend{mod: mod, opts: opts, heap: newArena(mod.HeapBase(), mod.Size()), cache: newPrepCache()}
}

// Name returns "cpu-wasm", the backend reported to the coordinator.
func (*Backend) Name() string { return "cpu-wasm" }

// Device describes the kernel and the threads it runs on.
func (b *Backend) Device() string {
	threads, pool := b.Threads()
	switch {
	case pool == 1:
		return "WASM SIMD f32x4, 4×8 GEMM, 1 thread"
	case threads == 1:
		return fmt.Sprintf("WASM SIMD f32x4, 4×8 GEMM, 1 thread (of a pool of %d)", pool)
	}
	return fmt.Sprintf("WASM SIMD f32x4, 4×8 GEMM, %d threads (shared memory)", threads)
}

// threadPool is a Module whose nl_gemm can run on several threads (the
// pool of web/static/worker.js).
type threadPool interface {
	PoolSize() int
	Threads() int
	SetThreads(n int)
}

// Threads returns the threads the kernel runs on and the most it can
// (1 and 1 without a pool).
func (b *Backend) Threads() (threads, pool int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if p, ok := b.mod.(threadPool); ok {
		return p.Threads(), p.PoolSize()
	}
	return 1, 1
}

// SetThreads makes the kernel run on n threads, 1 up to the pool's size;
// without a pool it does nothing.
func (b *Backend) SetThreads(n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if p, ok := b.mod.(threadPool); ok {
		p.SetThreads(n)
	}
}

// CacheStats reports the resident prepared weights: hits and misses since
// New, and the bytes they hold.
func (b *Backend) CacheStats() (hits, misses, bytes int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cache.hits, b.cache.misses, b.cache.bytes
}

// Run computes kernel on inputs: each input that is not a weight is copied
// into the module once, weights (B of matmul, W and b of mlp-infer) are
// packed on first use and stay resident, keyed by content, and each output
// is copied back once.
func (b *Backend) Run(_ context.Context, kernel string, inputs []*tensor.Tensor) ([]*tensor.Tensor, error) {
	var outs []*tensor.Tensor
	err := b.staged(kernel, inputs, func(r *run, shapes [][]int, calls []gemmCall) error {
		r.compute(calls)
		outs = make([]*tensor.Tensor, len(shapes))
		for i, s := range shapes {
			outs[i] = tensor.New(s...)
			r.output(calls[i].c, outs[i])
		}
		return nil
	})
	return outs, err
}

// staged checks a shard, stages it (see run.stage) under the Backend's
// lock and hands f its output shapes and gemm calls; the scratch blocks
// are freed and the weights unpinned when f returns.
func (b *Backend) staged(kernel string, inputs []*tensor.Tensor, f func(r *run, shapes [][]int, calls []gemmCall) error) error {
	shapes, err := shaders.OutputShapes(kernel, inputs)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	r := run{b: b}
	defer r.release()
	calls, err := r.stage(kernel, inputs)
	if err != nil {
		return err
	}
	return f(&r, shapes, calls)
}

// KernelGFLOPS times the kernel alone, the baseline of Run's end-to-end
// speed: it stages the shard once (inputs copied in, weights packed,
// scratch allocated), computes it twice to warm up, then times runs
// computations with no copies and no Go glue. It returns the median and
// each run's GFLOP/s.
func (b *Backend) KernelGFLOPS(ctx context.Context, kernel string, inputs []*tensor.Tensor, runs int) (median float64, each []float64, err error) {
	flops := shaders.FLOPs(kernel, inputs)
	err = b.staged(kernel, inputs, func(r *run, _ [][]int, calls []gemmCall) error {
		r.compute(calls)
		r.compute(calls)
		for range max(runs, 1) {
			if err := ctx.Err(); err != nil {
				return err
			}
			start := time.Now()
			r.compute(calls)
			each = append(each, flops/max(time.Since(start).Seconds(), 1e-9)/1e9)
		}
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	sorted := slices.Clone(each)
	slices.Sort(sorted)
	return sorted[len(sorted)/2], each, nil
}

// gemmCall is one nl_gemm call of a staged shard (see Module.Gemm).
type gemmCall struct {
	a            uint32
	lda          int
	bp, bias     uint32
	c, h         uint32
	ldc, m, k, n int
}

// stage copies a shard's inputs into the module, prepares its weights and
// allocates its outputs, returning the gemm calls that compute it, in
// order: output i is the C of call i. Layer l of mlp-infer reads H_{l−1} =
// relu(Z_{l−1}), written beside Z_{l−1} by the call before.
func (r *run) stage(kernel string, inputs []*tensor.Tensor) ([]gemmCall, error) {
	switch kernel {
	case shaders.Matmul:
		a, w := inputs[0], inputs[1]
		m, k, n := a.Rows(), a.Cols(), w.Cols()
		pa, err := r.input(a)
		if err != nil {
			return nil, err
		}
		pw, err := r.prepared(w, prepPackB)
		if err != nil {
			return nil, err
		}
		c, err := r.scratch(m * n)
		if err != nil {
			return nil, err
		}
		return []gemmCall{{a: pa, lda: k, bp: pw, c: c, ldc: n, m: m, k: k, n: n}}, nil
	case shaders.MLPInfer:
		x := inputs[0]
		m := x.Rows()
		a, err := r.input(x)
		if err != nil {
			return nil, err
		}
		lda := x.Cols()
		layers := (len(inputs) - 1) / 2
		calls := make([]gemmCall, 0, layers)
		for l := range layers {
			w, bias := inputs[1+2*l], inputs[2+2*l]
			k, n := w.Rows(), w.Cols()
			pw, err := r.prepared(w, prepPackB)
			if err != nil {
				return nil, err
			}
			pb, err := r.prepared(bias, prepBias)
			if err != nil {
				return nil, err
			}
			z, err := r.scratch(m * n)
			if err != nil {
				return nil, err
			}
			var h uint32
			if l < layers-1 {
				if h, err = r.scratch(m * n); err != nil {
					return nil, err
				}
			}
			calls = append(calls, gemmCall{a: a, lda: lda, bp: pw, bias: pb, c: z, h: h, ldc: n, m: m, k: k, n: n})
			a, lda = h, n
		}
		return calls, nil
	}
	return nil, fmt.Errorf("%w: %q", shaders.ErrUnknownKernel, kernel)
}

// compute issues the staged calls.
func (r *run) compute(calls []gemmCall) {
	for _, c := range calls {
		r.b.mod.Gemm(c.a, c.lda, c.bp, c.bias, c.c, c.h, c.ldc, c.m, c.k, c.n)
	}
}

// run is the state of one Run: the scratch blocks to free and the cache
// entries to unpin when it ends.
type run struct {
	b      *Backend
	blocks []uint32
	pinned []*prepEntry
}

func (r *run) release() {
	for _, off := range r.blocks {
		r.b.heap.release(off)
	}
	for _, e := range r.pinned {
		e.pins--
	}
	r.b.cache.trim(r.b.opts.CacheBytes, r.b.heap)
}

// alloc returns a block of n bytes, growing the memory, and then evicting
// unpinned cached weights, when it must.
func (r *run) alloc(n int) (uint32, error) {
	b := r.b
	if int64(n) > b.opts.MaxBytes {
		return 0, fmt.Errorf("%w: a block of %d bytes", ErrMemory, n)
	}
	for {
		if off, ok := b.heap.alloc(uint32(n)); ok {
			return off, nil
		}
		need := roundUp(uint32(n), align) - b.heap.tail()
		pages := max((need+PageBytes-1)/PageBytes, 16) // at least 1 MiB at a time
		if int64(b.mod.Size())+int64(pages)*PageBytes <= b.opts.MaxBytes && b.mod.Grow(pages) {
			b.heap.extend(b.mod.Size())
			continue
		}
		if !b.cache.evictOne(b.heap) {
			return 0, fmt.Errorf("%w: %d bytes wanted, %d in use, memory %d bytes (limit %d)",
				ErrMemory, n, b.heap.inUse(), b.mod.Size(), b.opts.MaxBytes)
		}
	}
}

// scratch returns a block of n floats freed when the run ends.
func (r *run) scratch(n int) (uint32, error) {
	off, err := r.alloc(4 * n)
	if err == nil {
		r.blocks = append(r.blocks, off)
	}
	return off, err
}

// input copies t into a scratch block.
func (r *run) input(t *tensor.Tensor) (uint32, error) {
	off, err := r.scratch(len(t.Data))
	if err == nil && len(t.Data) > 0 {
		r.b.mod.Write(off, t.Data)
	}
	return off, err
}

// output copies the block at off into t.
func (r *run) output(off uint32, t *tensor.Tensor) {
	if len(t.Data) > 0 {
		r.b.mod.Read(off, t.Data)
	}
}

// prepared returns t prepared as kind in the module's memory, from the
// cache or made now, pinned until the run ends.
func (r *run) prepared(t *tensor.Tensor, kind prepKind) (uint32, error) {
	b := r.b
	e, hash := b.cache.lookup(t, kind)
	if e == nil {
		var err error
		if e, err = r.prepare(t, kind, hash); err != nil {
			return 0, err
		}
	}
	e.pins++
	r.pinned = append(r.pinned, e)
	return e.off, nil
}

// prepare copies t into the module and transforms it: B packed into
// panels, or a bias padded with zeros to a multiple of PanelWidth.
func (r *run) prepare(t *tensor.Tensor, kind prepKind, hash [32]byte) (*prepEntry, error) {
	b := r.b
	var floats int
	switch kind {
	case prepPackB:
		floats = PackedLen(t.Rows(), t.Cols())
	case prepBias:
		floats = (len(t.Data) + PanelWidth - 1) / PanelWidth * PanelWidth
	}
	off, err := r.alloc(4 * floats)
	if err != nil {
		return nil, err
	}
	switch kind {
	case prepPackB:
		raw, err := r.alloc(4 * len(t.Data))
		if err != nil {
			b.heap.release(off)
			return nil, err
		}
		if len(t.Data) > 0 {
			b.mod.Write(raw, t.Data)
		}
		b.mod.PackB(raw, t.Rows(), t.Cols(), off)
		b.heap.release(raw)
	case prepBias:
		padded := make([]float32, floats)
		copy(padded, t.Data)
		if floats > 0 {
			b.mod.Write(off, padded)
		}
	}
	return b.cache.add(t, prepKey{hash, kind}, off, int64(b.heap.sizes[off])), nil
}

// prepKind is how a cached tensor was transformed.
type prepKind uint8

const (
	prepPackB prepKind = iota + 1 // B packed into panels
	prepBias                      // bias padded to a multiple of PanelWidth
)

type prepKey struct {
	hash [32]byte
	kind prepKind
}

// prepEntry is a prepared tensor resident in the module's memory.
type prepEntry struct {
	key     prepKey
	off     uint32
	bytes   int64
	pins    int           // runs using it now
	aliases []alias       // tensors known to hold this content
	elem    *list.Element // in prepCache.order
}

// alias is a tensor object known to hold an entry's content, as it was
// when hashed: its backing array and length.
type alias struct {
	t    *tensor.Tensor
	data *float32
	n    int
}

func aliasOf(t *tensor.Tensor) alias {
	a := alias{t: t, n: len(t.Data)}
	if len(t.Data) > 0 {
		a.data = &t.Data[0]
	}
	return a
}

// maxAliases bounds the tensors remembered per entry: each is kept alive
// by the cache, so shards that send the same weights inline every time do
// not pin a copy each.
const maxAliases = 2

// prepCache keeps prepared weights by content hash (tensor.Hash) and
// remembers which tensor objects hold that content, so that the weights the
// worker's own cache hands out for every shard (the same *tensor.Tensor)
// are found without hashing them again: a tensor is hashed once, when first
// seen. Remembered tensors are kept alive by the cache, so their addresses
// cannot be reused by other tensors while remembered; tensors are not
// modified once a shard holds them (the worker's contract).
type prepCache struct {
	entries      map[prepKey]*prepEntry
	alias        map[aliasKey]*prepEntry
	order        *list.List // front: most recently used
	bytes        int64
	hits, misses int64
}

type aliasKey struct {
	t    *tensor.Tensor
	kind prepKind
}

func newPrepCache() *prepCache {
	return &prepCache{entries: make(map[prepKey]*prepEntry), alias: make(map[aliasKey]*prepEntry), order: list.New()}
}

// lookup returns t's prepared entry of kind, or nil and t's content hash.
func (c *prepCache) lookup(t *tensor.Tensor, kind prepKind) (*prepEntry, [32]byte) {
	if e, ok := c.alias[aliasKey{t, kind}]; ok && slices.Contains(e.aliases, aliasOf(t)) {
		c.hits++
		c.order.MoveToFront(e.elem)
		return e, e.key.hash
	}
	h := t.Hash()
	e, ok := c.entries[prepKey{h, kind}]
	if !ok {
		c.misses++
		return nil, h
	}
	c.hits++
	c.remember(e, t)
	c.order.MoveToFront(e.elem)
	return e, h
}

// remember records t as holding e's content (a tensor whose Data was
// replaced since is hashed again: its alias no longer matches).
func (c *prepCache) remember(e *prepEntry, t *tensor.Tensor) {
	k := aliasKey{t, e.key.kind}
	if old, ok := c.alias[k]; ok {
		old.aliases = slices.DeleteFunc(old.aliases, func(a alias) bool { return a.t == t })
	}
	if len(e.aliases) == maxAliases {
		delete(c.alias, aliasKey{e.aliases[0].t, e.key.kind})
		e.aliases = slices.Delete(e.aliases, 0, 1)
	}
	e.aliases = append(e.aliases, aliasOf(t))
	c.alias[k] = e
}

// add records a freshly prepared tensor.
func (c *prepCache) add(t *tensor.Tensor, key prepKey, off uint32, bytes int64) *prepEntry {
	e := &prepEntry{key: key, off: off, bytes: bytes}
	e.elem = c.order.PushFront(e)
	c.entries[e.key] = e
	c.remember(e, t)
	c.bytes += bytes
	return e
}

// evictOne frees the least recently used unpinned entry, reporting false
// when every entry is pinned.
func (c *prepCache) evictOne(heap *arena) bool {
	for el := c.order.Back(); el != nil; el = el.Prev() {
		if e := el.Value.(*prepEntry); e.pins == 0 {
			c.remove(e, heap)
			return true
		}
	}
	return false
}

// trim evicts unpinned entries, least recently used first, while the cache
// holds more than max bytes.
func (c *prepCache) trim(max int64, heap *arena) {
	for c.bytes > max && c.evictOne(heap) {
	}
}

func (c *prepCache) remove(e *prepEntry, heap *arena) {
	c.order.Remove(e.elem)
	delete(c.entries, e.key)
	for _, a := range e.aliases {
		delete(c.alias, aliasKey{a.t, e.key.kind})
	}
	c.bytes -= e.bytes
	heap.release(e.off)
}
