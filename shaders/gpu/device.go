//go:build js || (cgo && (darwin || windows || (linux && (amd64 || arm64))))

package gpu

import (
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/cogentcore/webgpu/wgpu"
	"github.com/neurolov/neurolov/shaders"
	"github.com/neurolov/neurolov/tensor"
)

// Buffer usages of the pool's classes.
const (
	usageStorage = wgpu.BufferUsageStorage | wgpu.BufferUsageCopyDst | wgpu.BufferUsageCopySrc
	usageUniform = wgpu.BufferUsageUniform | wgpu.BufferUsageCopyDst
	usageStaging = wgpu.BufferUsageMapRead | wgpu.BufferUsageCopyDst
)

// Device is an open WebGPU device running the kernels. Its methods are safe
// for concurrent use (they serialize). Work is queued into a batch that is
// submitted, and waited for, when its estimated time reaches
// Options.MaxSubmit or when results are read.
type Device struct {
	mu      sync.Mutex
	dev     *wgpu.Device
	queue   *wgpu.Queue
	plat    platform
	info    AdapterInfo
	limits  wgpu.Limits
	opts    Options
	variant Variant
	rates   map[string]float64 // measured GFLOP/s by variant name
	pipes   map[string]*pipeline
	bufs    *pool[*wgpu.Buffer]
	weights *weightCache[*Tensor]
	batch   *batch
	dummy   *wgpu.Buffer // bound where an optional operand (bias) is absent
	submits int          // submissions so far
	lost    atomic.Pointer[error]
	closed  bool
}

// Tensor is a float32 tensor on a Device. Release it when done (its buffer
// returns to the device's pool). Tensors from Weight are shared, read-only
// copies; Release drops the caller's hold on them.
type Tensor struct {
	d        *Device
	buf      *wgpu.Buffer
	class    uint64
	shape    []int
	n        int
	cached   bool
	key      [32]byte
	released bool
}

// Shape returns the tensor's shape (do not modify it).
func (t *Tensor) Shape() []int { return t.shape }

// Len returns the number of elements.
func (t *Tensor) Len() int { return t.n }

func (t *Tensor) bytes() uint64 { return uint64(t.n) * 4 }

// cols views the tensor as a matrix (a vector is one row).

func (t *Tensor) cols() int { return t.shape[len(t.shape)-1] }

// Release returns the tensor's buffer to the pool (after any queued work
// that uses it), or drops the hold on a cached weight. It is idempotent.
func (t *Tensor) Release() {
	if t == nil {
		return
	}
	d := t.d
	d.mu.Lock()
	defer d.mu.Unlock()
	d.releaseLocked(t)
}

func (d *Device) releaseLocked(t *Tensor) {
	if t == nil || t.released {
		return
	}
	t.released = true
	if t.cached {
		if !d.closed {
			d.weights.release(t.key)
		}
		return // the cache's own Tensor holds the buffer
	}
	if !d.closed {
		d.recycle(usageStorage, t.class, t.buf)
	}
}

// pipeline is a compiled kernel with its explicit layouts (the browser
// build cannot derive layouts from the shader).
type pipeline struct {
	mod   *wgpu.ShaderModule
	bgl   *wgpu.BindGroupLayout
	pl    *wgpu.PipelineLayout
	pipe  *wgpu.ComputePipeline
	kinds []bindKind
}

type bindKind int

const (
	bindUniform bindKind = iota
	bindRead
	bindReadWrite
)

// batch is work recorded but not yet submitted.
type batch struct {
	enc     *wgpu.CommandEncoder
	cost    time.Duration // estimated GPU time
	n       int           // dispatches and copies
	after   []func()      // run once the submission completed
	flops   float64       // of the matmul dispatches
	variant string        // of the last matmul dispatch
}

// Open finds an adapter (see Options.Software), opens a device on it and
// chooses the matmul variant (measured, or from the cache).
func Open(opts Options) (*Device, error) {
	opts = opts.withDefaults()
	d := &Device{opts: opts, pipes: make(map[string]*pipeline), rates: make(map[string]float64)}
	dev, plat, info, limits, err := openPlatform(opts, d.setLost)
	if err != nil {
		return nil, err
	}
	d.dev, d.plat, d.info, d.limits = dev, plat, info, limits
	d.queue = dev.GetQueue()
	d.bufs = newPool(opts.PoolBytes, func(b *wgpu.Buffer) { b.Destroy(); b.Release() })
	d.weights = newWeightCache(opts.WeightCacheBytes, func(t *Tensor) {
		t.released = true
		d.recycle(usageStorage, t.class, t.buf)
	})
	d.dummy, err = d.newBuffer(usageStorage, 256)
	if err != nil {
		d.Close()
		return nil, err
	}
	if err := d.chooseVariant(); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// Info returns the adapter's description, limits and the variant in use.
func (d *Device) Info() AdapterInfo {
	d.mu.Lock()
	defer d.mu.Unlock()
	info := d.info
	info.Tuning = append([]VariantResult(nil), d.info.Tuning...)
	return info
}

// Err returns the error that made the device unusable (ErrDeviceLost), or
// nil.
func (d *Device) Err() error {
	if e := d.lost.Load(); e != nil {
		return *e
	}
	return nil
}

func (d *Device) setLost(err error) {
	d.lost.CompareAndSwap(nil, &err)
}

// usable reports ErrClosed or the loss of the device.
func (d *Device) usable() error {
	if d.closed {
		return ErrClosed
	}
	return d.Err()
}

// Close waits for queued work, then frees every buffer, pipeline and the
// device. Tensors of the device become invalid.
func (d *Device) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	err := d.flush()
	d.weights.clear()
	d.closed = true
	d.bufs.drain()
	if d.dummy != nil {
		d.dummy.Destroy()
		d.dummy.Release()
	}
	for _, p := range d.pipes {
		p.pipe.Release()
		p.pl.Release()
		p.bgl.Release()
		p.mod.Release()
	}
	d.pipes = nil
	d.queue.Release()
	d.dev.Release()
	d.plat.release()
	return err
}

// Sync submits queued work and waits for it.
func (d *Device) Sync() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.usable(); err != nil {
		return err
	}
	return d.flush()
}

// ---- buffers ----

func (d *Device) newBuffer(usage wgpu.BufferUsage, size uint64) (*wgpu.Buffer, error) {
	if size > d.limits.MaxBufferSize {
		return nil, fmt.Errorf("%w: buffer of %d bytes, device maximum %d", ErrTooLarge, size, d.limits.MaxBufferSize)
	}
	b, err := d.dev.CreateBuffer(&wgpu.BufferDescriptor{Usage: usage, Size: size})
	if err != nil {
		return nil, fmt.Errorf("%w: create buffer of %d bytes: %v", ErrGPU, size, err)
	}
	return b, nil
}

// buffer returns a pooled buffer of at least size bytes.
func (d *Device) buffer(usage wgpu.BufferUsage, size uint64) (*wgpu.Buffer, uint64, error) {
	class := sizeClass(size)
	if b, ok := d.bufs.get(uint64(usage), class); ok {
		return b, class, nil
	}
	if class > d.limits.MaxBufferSize && size <= d.limits.MaxBufferSize {
		class = (size + 255) &^ 255 // a buffer near the limit: exact size, not the class
	}
	b, err := d.newBuffer(usage, class)
	return b, class, err
}

// recycle returns a buffer to the pool once queued work no longer needs it.
func (d *Device) recycle(usage wgpu.BufferUsage, class uint64, b *wgpu.Buffer) {
	if d.batch != nil {
		d.batch.after = append(d.batch.after, func() { d.bufs.put(uint64(usage), class, b) })
		return
	}
	d.bufs.put(uint64(usage), class, b)
}

// alloc returns an uninitialized device tensor.
func (d *Device) alloc(shape ...int) (*Tensor, error) {
	n := tensor.NumElements(shape)
	if n < 0 {
		return nil, fmt.Errorf("%w: shape %v", ErrShape, shape)
	}
	size := max(uint64(n)*4, 4)
	if size > d.limits.MaxStorageBufferBindingSize {
		return nil, fmt.Errorf("%w: %v is %d bytes, the device binds at most %d", ErrTooLarge, shape, size, d.limits.MaxStorageBufferBindingSize)
	}
	b, class, err := d.buffer(usageStorage, size)
	if err != nil {
		return nil, err
	}
	return &Tensor{d: d, buf: b, class: class, shape: append([]int(nil), shape...), n: n}, nil
}

func floatBytes(f []float32) []byte {
	if len(f) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&f[0])), len(f)*4)
}

// Upload copies t to a new device tensor.
func (d *Device) Upload(t *tensor.Tensor) (*Tensor, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.upload(t)
}

func (d *Device) upload(t *tensor.Tensor) (*Tensor, error) {
	if err := d.usable(); err != nil {
		return nil, err
	}
	if tensor.NumElements(t.Shape) != len(t.Data) {
		return nil, fmt.Errorf("%w: shape %v with %d elements", ErrShape, t.Shape, len(t.Data))
	}
	out, err := d.alloc(t.Shape...)
	if err != nil {
		return nil, err
	}
	if len(t.Data) > 0 {
		if err := d.queue.WriteBuffer(out.buf, 0, floatBytes(t.Data)); err != nil {
			d.releaseLocked(out)
			return nil, fmt.Errorf("%w: upload %v: %v", ErrGPU, t.Shape, err)
		}
	}
	return out, nil
}

// Zeros returns a new device tensor of zeros.
func (d *Device) Zeros(shape ...int) (*Tensor, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.usable(); err != nil {
		return nil, err
	}
	out, err := d.alloc(shape...)
	if err != nil {
		return nil, err
	}
	if out.n > 0 {
		if err := d.queue.WriteBuffer(out.buf, 0, make([]byte, out.bytes())); err != nil {
			d.releaseLocked(out)
			return nil, fmt.Errorf("%w: zero %v: %v", ErrGPU, shape, err)
		}
	}
	return out, nil
}

// Weight returns the device copy of t, uploading it only if no tensor with
// the same content (tensor.Tensor.Hash) is cached: model weights go to the
// device once and stay across shards. The copy is read-only and shared;
// Release it when done. Cached weights no caller holds are evicted, least
// recently used first, beyond Options.WeightCacheBytes.
func (d *Device) Weight(t *tensor.Tensor) (*Tensor, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.weight(t)
}

func (d *Device) weight(t *tensor.Tensor) (*Tensor, error) {
	if err := d.usable(); err != nil {
		return nil, err
	}
	key := t.Hash()
	if w, ok := d.weights.acquire(key); ok {
		return &Tensor{d: d, buf: w.buf, class: w.class, shape: w.shape, n: w.n, cached: true, key: key}, nil
	}
	w, err := d.upload(t)
	if err != nil {
		return nil, err
	}
	w.cached, w.key = true, key
	d.weights.add(key, w, int64(w.class))
	return &Tensor{d: d, buf: w.buf, class: w.class, shape: w.shape, n: w.n, cached: true, key: key}, nil
}

// WeightCacheStats returns the cache's hits, misses and bytes held.
func (d *Device) WeightCacheStats() (hits, misses, bytes int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.weights.hits, d.weights.misses, d.weights.bytes
}

// Read copies a device tensor back to the host.
func (d *Device) Read(t *Tensor) (*tensor.Tensor, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	out, err := d.readAll([]*Tensor{t})
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// readAll copies tensors back with one submission.
func (d *Device) readAll(ts []*Tensor) ([]*tensor.Tensor, error) {
	if err := d.usable(); err != nil {
		return nil, err
	}
	type staged struct {
		buf   *wgpu.Buffer
		class uint64
	}
	stage := make([]staged, len(ts))
	defer func() {
		for _, s := range stage {
			if s.buf != nil {
				d.recycle(usageStaging, s.class, s.buf)
			}
		}
	}()
	for i, t := range ts {
		if err := d.check(t); err != nil {
			return nil, err
		}
		if t.n == 0 {
			continue
		}
		b, class, err := d.buffer(usageStaging, t.bytes())
		if err != nil {
			return nil, err
		}
		stage[i] = staged{b, class}
		enc, err := d.encoder()
		if err != nil {
			return nil, err
		}
		if err := enc.CopyBufferToBuffer(t.buf, 0, b, 0, t.bytes()); err != nil {
			return nil, fmt.Errorf("%w: copy for read: %v", ErrGPU, err)
		}
		d.batch.n++
	}
	if err := d.flush(); err != nil {
		return nil, err
	}
	outs := make([]*tensor.Tensor, len(ts))
	for i, t := range ts {
		outs[i] = tensor.New(t.shape...)
		if t.n == 0 {
			continue
		}
		if err := d.mapRead(stage[i].buf, t.bytes()); err != nil {
			return nil, err
		}
		if err := readMapped(stage[i].buf, floatBytes(outs[i].Data)); err != nil {
			return nil, err
		}
		if err := stage[i].buf.Unmap(); err != nil {
			return nil, fmt.Errorf("%w: unmap: %v", ErrGPU, err)
		}
	}
	return outs, nil
}

// check validates an operand.
func (d *Device) check(ts ...*Tensor) error {
	for _, t := range ts {
		if t == nil {
			continue
		}
		if t.d != d {
			return fmt.Errorf("%w: tensor of another device", ErrShape)
		}
		if t.released {
			return ErrClosed
		}
	}
	return nil
}

// ---- pipelines and dispatch ----

var bindingDecl = regexp.MustCompile(`@group\(0\) @binding\((\d+)\) var<(uniform|storage, read|storage, read_write)>`)

// pipeline returns the compiled kernel, compiling it on first use. Its
// bind-group layout is read from the shader's binding declarations.
func (d *Device) pipeline(shader string, consts map[string]uint32) (*pipeline, error) {
	key := shader
	names := make([]string, 0, len(consts))
	for k := range consts {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		key += " " + k + "=" + strconv.FormatUint(uint64(consts[k]), 10)
	}
	if p, ok := d.pipes[key]; ok {
		return p, nil
	}
	src, err := shaders.WGSL(shader, consts)
	if err != nil {
		return nil, err
	}
	var kinds []bindKind
	var entries []wgpu.BindGroupLayoutEntry
	for i, m := range bindingDecl.FindAllStringSubmatch(src, -1) {
		if m[1] != strconv.Itoa(i) {
			return nil, fmt.Errorf("%w: shader %s: bindings must be numbered 0, 1, …", ErrGPU, shader)
		}
		k, typ := bindRead, wgpu.BufferBindingTypeReadOnlyStorage
		switch m[2] {
		case "uniform":
			k, typ = bindUniform, wgpu.BufferBindingTypeUniform
		case "storage, read_write":
			k, typ = bindReadWrite, wgpu.BufferBindingTypeStorage
		}
		kinds = append(kinds, k)
		entries = append(entries, wgpu.BindGroupLayoutEntry{
			Binding: uint32(i), Visibility: wgpu.ShaderStageCompute, Buffer: wgpu.BufferBindingLayout{Type: typ},
		})
	}
	if err := d.scopeBegin(); err != nil {
		return nil, err
	}
	p, err := d.compile(shader, src, entries)
	if serr := d.scopeEnd(); err == nil && serr != nil {
		err = fmt.Errorf("%w: compile %s: %v", ErrGPU, key, serr)
	}
	if err != nil {
		return nil, err
	}
	p.kinds = kinds
	d.pipes[key] = p
	return p, nil
}

func (d *Device) compile(shader, src string, entries []wgpu.BindGroupLayoutEntry) (*pipeline, error) {
	p := &pipeline{}
	var err error
	if p.mod, err = d.dev.CreateShaderModule(&wgpu.ShaderModuleDescriptor{
		Label: shader, WGSLDescriptor: &wgpu.ShaderModuleWGSLDescriptor{Code: src},
	}); err != nil {
		return nil, fmt.Errorf("%w: compile %s: %v", ErrGPU, shader, err)
	}
	if p.bgl, err = d.dev.CreateBindGroupLayout(&wgpu.BindGroupLayoutDescriptor{Entries: entries}); err != nil {
		p.mod.Release()
		return nil, fmt.Errorf("%w: bind-group layout of %s: %v", ErrGPU, shader, err)
	}
	if p.pl, err = d.dev.CreatePipelineLayout(&wgpu.PipelineLayoutDescriptor{BindGroupLayouts: []*wgpu.BindGroupLayout{p.bgl}}); err != nil {
		p.bgl.Release()
		p.mod.Release()
		return nil, fmt.Errorf("%w: pipeline layout of %s: %v", ErrGPU, shader, err)
	}
	if p.pipe, err = d.dev.CreateComputePipeline(&wgpu.ComputePipelineDescriptor{
		Layout: p.pl, Compute: wgpu.ProgrammableStageDescriptor{Module: p.mod, EntryPoint: shaders.EntryPoint},
	}); err != nil {
		p.pl.Release()
		p.bgl.Release()
		p.mod.Release()
		return nil, fmt.Errorf("%w: pipeline of %s: %v", ErrGPU, shader, err)
	}
	return p, nil
}

// encoder returns the open batch's command encoder, starting a batch.
func (d *Device) encoder() (*wgpu.CommandEncoder, error) {
	if d.batch != nil {
		return d.batch.enc, nil
	}
	if err := d.scopeBegin(); err != nil {
		return nil, err
	}
	enc, err := d.dev.CreateCommandEncoder(nil)
	if err != nil {
		d.scopeEnd()
		return nil, fmt.Errorf("%w: command encoder: %v", ErrGPU, err)
	}
	d.batch = &batch{enc: enc}
	return enc, nil
}

// flush submits the batch and waits for it; then the buffers its work
// released return to the pool.
func (d *Device) flush() error {
	b := d.batch
	if b == nil {
		return nil
	}
	d.batch = nil
	defer func() {
		for _, f := range b.after {
			f()
		}
	}()
	cb, err := b.enc.Finish(nil)
	b.enc.Release()
	if err != nil {
		d.scopeEnd()
		err = fmt.Errorf("%w: finish: %v", ErrGPU, err)
		d.setLost(fmt.Errorf("%w: %v", ErrDeviceLost, err))
		return err
	}
	start := time.Now()
	d.submits++
	d.queue.Submit(cb)
	cb.Release()
	serr := d.scopeEnd()
	werr := d.waitIdle()
	took := time.Since(start)
	if werr == nil && serr == nil {
		d.learnRate(b, took)
	}
	switch {
	case werr != nil:
		d.setLost(werr)
		return werr
	case serr != nil:
		err := fmt.Errorf("%w: submission failed: %v", ErrDeviceLost, serr)
		d.setLost(err)
		return err
	}
	if err := d.Err(); err != nil {
		return err
	}
	return staleCheck(d.info.Software, took)
}

// staleAfter is how long a submission may run on a software adapter before
// its results are suspect: lavapipe returns stale data past about 5 s.
const staleAfter = 4 * time.Second

// staleCheck reports a submission that ran long enough on a software
// adapter for its results to be stale. The device stays usable (later
// submissions are cut smaller: the rate estimate has already dropped).
func staleCheck(software bool, took time.Duration) error {
	if software && took > staleAfter {
		return fmt.Errorf("%w: a submission ran %v on a software adapter, past the %v after which lavapipe may return stale data; its results are discarded",
			ErrGPU, took.Round(time.Millisecond), staleAfter)
	}
	return nil
}

// operand is one storage binding of a dispatch.
type operand struct {
	buf   *wgpu.Buffer
	bytes uint64
}

func (t *Tensor) operand() operand { return operand{t.buf, max(t.bytes(), 4)} }

// dispatch records one kernel run. cost is its estimated GPU time: the
// batch is submitted first if the dispatch would take it past MaxSubmit,
// and right after if it alone reaches it.
func (d *Device) dispatch(shader string, consts map[string]uint32, params []byte, ops []operand, groups [3]uint32, cost time.Duration, note ...func(*batch)) error {
	if groups[0] == 0 || groups[1] == 0 || groups[2] == 0 {
		return nil
	}
	maxG := d.limits.MaxComputeWorkgroupsPerDimension
	if groups[0] > maxG || groups[1] > maxG || groups[2] > maxG {
		return fmt.Errorf("%w: %s needs %v workgroups, the device allows %d per dimension", ErrTooLarge, shader, groups, maxG)
	}
	p, err := d.pipeline(shader, consts)
	if err != nil {
		return err
	}
	if len(p.kinds) != len(ops)+1 {
		return fmt.Errorf("%w: %s has %d bindings, got %d operands", ErrGPU, shader, len(p.kinds), len(ops)+1)
	}
	if d.batch != nil && d.batch.n > 0 && d.batch.cost+cost > d.opts.MaxSubmit {
		if err := d.flush(); err != nil {
			return err
		}
	}
	u, uclass, err := d.buffer(usageUniform, uint64(len(params)))
	if err != nil {
		return err
	}
	if err := d.queue.WriteBuffer(u, 0, params); err != nil {
		d.recycle(usageUniform, uclass, u)
		return fmt.Errorf("%w: write parameters: %v", ErrGPU, err)
	}
	enc, err := d.encoder()
	if err != nil {
		d.recycle(usageUniform, uclass, u)
		return err
	}
	d.batch.after = append(d.batch.after, func() { d.bufs.put(uint64(usageUniform), uclass, u) })
	entries := []wgpu.BindGroupEntry{{Binding: 0, Buffer: u, Size: uint64(len(params))}}
	for i, o := range ops {
		entries = append(entries, wgpu.BindGroupEntry{Binding: uint32(i + 1), Buffer: o.buf, Size: o.bytes})
	}
	bg, err := d.dev.CreateBindGroup(&wgpu.BindGroupDescriptor{Layout: p.bgl, Entries: entries})
	if err != nil {
		return fmt.Errorf("%w: bind group of %s: %v", ErrGPU, shader, err)
	}
	d.batch.after = append(d.batch.after, bg.Release)
	pass := enc.BeginComputePass(nil)
	pass.SetPipeline(p.pipe)
	pass.SetBindGroup(0, bg, nil)
	pass.DispatchWorkgroups(groups[0], groups[1], groups[2])
	err = endPass(pass)
	pass.Release()
	if err != nil {
		return fmt.Errorf("%w: encode %s: %v", ErrGPU, shader, err)
	}
	d.batch.cost += cost
	d.batch.n++
	for _, f := range note {
		f(d.batch)
	}
	if d.batch.cost >= d.opts.MaxSubmit {
		return d.flush()
	}
	return nil
}

// spread returns workgroup counts covering n groups, wrapping into y when x
// would pass the per-dimension limit (kernels index wid.y·nwg.x + wid.x).
func (d *Device) spread(n int) [3]uint32 {
	if n <= 0 {
		return [3]uint32{}
	}
	maxG := int(d.limits.MaxComputeWorkgroupsPerDimension)
	x := min(n, maxG)
	return [3]uint32{uint32(x), uint32((n + x - 1) / x), 1}
}

// elemCost estimates the time of a memory-bound kernel touching n floats
// (a few operations each, at the matmul rate: pessimistic, never optimistic).
func (d *Device) elemCost(n int) time.Duration {
	return d.flopCost(16 * float64(n))
}

// flopCost estimates the time of flops at the chosen variant's rate.
func (d *Device) flopCost(flops float64) time.Duration {
	return time.Duration(flops / (d.rate(d.variant) * 1e9) * float64(time.Second))
}

// rate is the measured (or assumed) GFLOP/s of a variant.
func (d *Device) rate(v Variant) float64 {
	if r := d.rates[v.Name()]; r > 0 {
		return r
	}
	if d.info.Software {
		return 0.1
	}
	return 10
}

// learnRate updates a variant's rate from a submission that was mostly
// matmul: a slower rate is adopted at once (a loaded machine must not make
// submissions outgrow MaxSubmit), a faster one a quarter of the way.
func (d *Device) learnRate(b *batch, took time.Duration) {
	if b.flops <= 0 || took < time.Millisecond || b.variant == "" {
		return
	}
	seen := b.flops / took.Seconds() / 1e9
	old := d.rates[b.variant]
	switch {
	case old <= 0 || seen < old:
		d.rates[b.variant] = seen
	default:
		d.rates[b.variant] = old + (seen-old)/4
	}
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// ---- matmul ----

// MatMul returns act(f(op(A))·op(B) + bias) with the chosen variant (see
// shaders.MatMulFused for the semantics). bias may be nil.
func (d *Device) MatMul(a, b, bias *Tensor, o shaders.MatMulOpts) (*Tensor, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.matmul(d.variant, a, b, bias, o)
}

// MatMulVariant is MatMul with the named variant (see Variants).
func (d *Device) MatMulVariant(variant string, a, b, bias *Tensor, o shaders.MatMulOpts) (*Tensor, error) {
	v, ok := VariantByName(variant)
	if !ok {
		return nil, fmt.Errorf("%w: unknown matmul variant %q", ErrShape, variant)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.fits(v); err != nil {
		return nil, err
	}
	return d.matmul(v, a, b, bias, o)
}

// matmulDims returns m, k, n of op(A)·op(B).
func matmulDims(a, b *Tensor, o shaders.MatMulOpts) (m, k, n int, err error) {
	if len(a.shape) != 2 || len(b.shape) != 2 {
		return 0, 0, 0, fmt.Errorf("%w: matmul of %v by %v", ErrShape, a.shape, b.shape)
	}
	m, k = a.shape[0], a.shape[1]
	if o.TransA {
		m, k = k, m
	}
	kb, n := b.shape[0], b.shape[1]
	if o.TransB {
		kb, n = n, kb
	}
	if kb != k {
		return 0, 0, 0, fmt.Errorf("%w: matmul of %v by %v (transposes %v, %v)", ErrShape, a.shape, b.shape, o.TransA, o.TransB)
	}
	return m, k, n, nil
}

func (d *Device) matmul(v Variant, a, b, bias *Tensor, o shaders.MatMulOpts) (*Tensor, error) {
	if err := d.usable(); err != nil {
		return nil, err
	}
	if err := d.check(a, b, bias); err != nil {
		return nil, err
	}
	m, k, n, err := matmulDims(a, b, o)
	if err != nil {
		return nil, err
	}
	if bias != nil && (len(bias.shape) != 1 || bias.n != n) {
		return nil, fmt.Errorf("%w: bias %v for %d columns", ErrShape, bias.shape, n)
	}
	out, err := d.alloc(m, n)
	if err != nil {
		return nil, err
	}
	if err := d.matmulInto(v, out, a, b, bias, m, k, n, o); err != nil {
		d.releaseLocked(out)
		return nil, err
	}
	return out, nil
}

// matmulInto records the product in row bands, each within MaxSubmit at
// the variant's measured rate (and within the workgroup-count limit).
func (d *Device) matmulInto(v Variant, out, a, b, bias *Tensor, m, k, n int, o shaders.MatMulOpts) error {
	p := shaders.NewMatMulParams(m, k, n, o, bias != nil)
	biasOp := operand{d.dummy, 16}
	if bias != nil {
		biasOp = bias.operand()
	}
	ops := []operand{a.operand(), b.operand(), biasOp, out.operand()}
	shader := v.Shader
	if shader == shaders.ShaderMatMulReg && v.vec4OK(m, k, n, o) {
		shader = shaders.ShaderMatMulVec4
		for i := range ops {
			ops[i].bytes = (ops[i].bytes + 15) &^ 15 // whole vec4s; pooled buffers have the room
		}
	}
	br, bc := int(v.BlockRows()), int(v.BlockCols())
	rowFlops := 2 * float64(max(k, 1)) * float64(n)
	budget := d.rate(v) * 1e9 * d.opts.MaxSubmit.Seconds()
	band := max(br, int(budget/rowFlops)/br*br)
	band = min(band, int(d.limits.MaxComputeWorkgroupsPerDimension)*br)
	for row0 := 0; row0 < m; row0 += band {
		rows := min(band, m-row0)
		p.Row0, p.Rows = uint32(row0), uint32(rows)
		groups := [3]uint32{uint32(ceilDiv(n, bc)), uint32(ceilDiv(rows, br)), 1}
		cost := time.Duration(float64(rows) * rowFlops / (d.rate(v) * 1e9) * float64(time.Second))
		if err := d.dispatch(shader, v.consts(), shaders.ParamBytes(&p), ops, groups, cost, func(b *batch) {
			b.flops += float64(rows) * rowFlops
			b.variant = v.Name()
		}); err != nil {
			return err
		}
	}
	return nil
}

// fits reports whether the device can run the variant.
func (d *Device) fits(v Variant) error {
	l := d.limits
	if v.Invocations() > l.MaxComputeInvocationsPerWorkgroup || v.WGX > l.MaxComputeWorkgroupSizeX ||
		v.WGY > l.MaxComputeWorkgroupSizeY || v.WorkgroupBytes() > l.MaxComputeWorkgroupStorageSize {
		return fmt.Errorf("%w: variant %s exceeds the device's workgroup limits", ErrTooLarge, v.Name())
	}
	return nil
}

// ---- shard kernels ----

// Run executes a shard kernel (shaders.Matmul or shaders.MLPInfer) and
// returns its outputs, with the semantics of shaders.Reference. The second
// operand of matmul and the weights and biases of mlp-infer go through the
// weight cache; the rest is uploaded per call.
func (d *Device) Run(kernel string, inputs []*tensor.Tensor) ([]*tensor.Tensor, error) {
	if _, err := shaders.OutputShapes(kernel, inputs); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var held []*Tensor
	defer func() {
		for _, t := range held {
			d.releaseLocked(t)
		}
	}()
	get := func(t *tensor.Tensor, cache bool) (*Tensor, error) {
		var g *Tensor
		var err error
		if cache {
			g, err = d.weight(t)
		} else {
			g, err = d.upload(t)
		}
		if err == nil {
			held = append(held, g)
		}
		return g, err
	}
	var outs []*Tensor
	switch kernel {
	case shaders.Matmul:
		a, err := get(inputs[0], false)
		if err != nil {
			return nil, err
		}
		b, err := get(inputs[1], true)
		if err != nil {
			return nil, err
		}
		c, err := d.matmul(d.variant, a, b, nil, shaders.MatMulOpts{})
		if err != nil {
			return nil, err
		}
		held = append(held, c)
		outs = append(outs, c)
	case shaders.MLPInfer:
		h, err := get(inputs[0], false)
		if err != nil {
			return nil, err
		}
		for l := 1; l < len(inputs); l += 2 {
			w, err := get(inputs[l], true)
			if err != nil {
				return nil, err
			}
			bias, err := get(inputs[l+1], true)
			if err != nil {
				return nil, err
			}
			z, err := d.matmul(d.variant, h, w, bias, shaders.MatMulOpts{ReLUIn: l > 1})
			if err != nil {
				return nil, err
			}
			held = append(held, z)
			outs = append(outs, z)
			h = z
		}
	}
	return d.readAll(outs)
}

// ---- other kernels ----

func (d *Device) prepare(ts ...*Tensor) error {
	if err := d.usable(); err != nil {
		return err
	}
	return d.check(ts...)
}

func sameShape(a, b *Tensor) bool {
	if len(a.shape) != len(b.shape) {
		return false
	}
	for i := range a.shape {
		if a.shape[i] != b.shape[i] {
			return false
		}
	}
	return true
}

// rowKernel runs a one-workgroup-per-row kernel.
func (d *Device) rowKernel(shader string, p shaders.RowParams, ops []operand, rows, cols int) error {
	return d.dispatch(shader, nil, shaders.ParamBytes(&p), ops, d.spread(rows), d.elemCost(rows*cols))
}

// elemKernel runs an elementwise kernel over n elements.
func (d *Device) elemKernel(shader string, params []byte, ops []operand, n int) error {
	return d.dispatch(shader, nil, params, ops, d.spread(ceilDiv(n, 64)), d.elemCost(n))
}

// output allocates a result, runs rec on it and releases it on failure.
func (d *Device) output(shape []int, rec func(out *Tensor) error) (*Tensor, error) {
	out, err := d.alloc(shape...)
	if err != nil {
		return nil, err
	}
	if err := rec(out); err != nil {
		d.releaseLocked(out)
		return nil, err
	}
	return out, nil
}

// Softmax returns the row softmax of x (rows = all but the last dimension).
func (d *Device) Softmax(x *Tensor) (*Tensor, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.prepare(x); err != nil {
		return nil, err
	}
	rows, cols := x.n/max(x.cols(), 1), x.cols()
	return d.output(x.shape, func(y *Tensor) error {
		return d.rowKernel(shaders.ShaderSoftmax, shaders.RowParams{Rows: uint32(rows), Cols: uint32(cols)},
			[]operand{x.operand(), y.operand()}, rows, cols)
	})
}

// SoftmaxCrossEntropy returns the per-row loss and the gradient
// scale·(softmax(z) − t) of logits z against target distributions t (same
// shape, rows×classes).
func (d *Device) SoftmaxCrossEntropy(z, t *Tensor, scale float32) (loss, grad *Tensor, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.prepare(z, t); err != nil {
		return nil, nil, err
	}
	if len(z.shape) != 2 || !sameShape(z, t) {
		return nil, nil, fmt.Errorf("%w: cross-entropy of %v against %v", ErrShape, z.shape, t.shape)
	}
	rows, cols := z.shape[0], z.shape[1]
	loss, err = d.alloc(rows)
	if err != nil {
		return nil, nil, err
	}
	grad, err = d.output(z.shape, func(g *Tensor) error {
		return d.rowKernel(shaders.ShaderXent, shaders.RowParams{Rows: uint32(rows), Cols: uint32(cols), Scale: scale},
			[]operand{z.operand(), t.operand(), loss.operand(), g.operand()}, rows, cols)
	})
	if err != nil {
		d.releaseLocked(loss)
		return nil, nil, err
	}
	return loss, grad, nil
}

// LayerNorm normalizes each row of x (rows×cols) and applies gamma and beta
// (cols each).
func (d *Device) LayerNorm(x, gamma, beta *Tensor, eps float32) (*Tensor, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.prepare(x, gamma, beta); err != nil {
		return nil, err
	}
	if len(x.shape) != 2 || gamma.n != x.shape[1] || beta.n != x.shape[1] {
		return nil, fmt.Errorf("%w: layer norm of %v with gamma %v, beta %v", ErrShape, x.shape, gamma.shape, beta.shape)
	}
	rows, cols := x.shape[0], x.shape[1]
	return d.output(x.shape, func(y *Tensor) error {
		return d.rowKernel(shaders.ShaderLayerNorm, shaders.RowParams{Rows: uint32(rows), Cols: uint32(cols), Eps: eps},
			[]operand{x.operand(), gamma.operand(), beta.operand(), y.operand()}, rows, cols)
	})
}

// ColSums returns the sums over the rows of x (rows×cols): the bias
// gradient from dZ.
func (d *Device) ColSums(x *Tensor) (*Tensor, error) { return d.sums(x, 0) }

// RowSums returns the sums over the columns of x (rows×cols).
func (d *Device) RowSums(x *Tensor) (*Tensor, error) { return d.sums(x, 1) }

func (d *Device) sums(x *Tensor, axis uint32) (*Tensor, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.prepare(x); err != nil {
		return nil, err
	}
	if len(x.shape) != 2 {
		return nil, fmt.Errorf("%w: sums of %v", ErrShape, x.shape)
	}
	rows, cols := x.shape[0], x.shape[1]
	n := cols
	if axis == 1 {
		n = rows
	}
	return d.output([]int{n}, func(out *Tensor) error {
		p := shaders.ReduceParams{Rows: uint32(rows), Cols: uint32(cols), Axis: axis}
		return d.dispatch(shaders.ShaderReduce, nil, shaders.ParamBytes(&p), []operand{x.operand(), out.operand()},
			d.spread(ceilDiv(n, 64)), d.elemCost(rows*cols))
	})
}

// ActBackward returns dh·act'(z).
func (d *Device) ActBackward(z, dh *Tensor, a shaders.Act) (*Tensor, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.prepare(z, dh); err != nil {
		return nil, err
	}
	if !sameShape(z, dh) {
		return nil, fmt.Errorf("%w: activation backward of %v with %v", ErrShape, z.shape, dh.shape)
	}
	return d.output(z.shape, func(dz *Tensor) error {
		p := shaders.ElemParams{N: uint32(z.n), Act: uint32(a)}
		return d.elemKernel(shaders.ShaderActBackward, shaders.ParamBytes(&p), []operand{z.operand(), dh.operand(), dz.operand()}, z.n)
	})
}

// Axpby returns alpha·x + beta·y; y may be nil when beta is 0.
func (d *Device) Axpby(x, y *Tensor, alpha, beta float32) (*Tensor, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if y == nil {
		if beta != 0 {
			return nil, fmt.Errorf("%w: axpby without y needs beta = 0", ErrShape)
		}
		y = x
	}
	if err := d.prepare(x, y); err != nil {
		return nil, err
	}
	if !sameShape(x, y) {
		return nil, fmt.Errorf("%w: axpby of %v and %v", ErrShape, x.shape, y.shape)
	}
	return d.output(x.shape, func(out *Tensor) error {
		p := shaders.ElemParams{N: uint32(x.n), Alpha: alpha, Beta: beta}
		return d.elemKernel(shaders.ShaderAxpby, shaders.ParamBytes(&p), []operand{x.operand(), y.operand(), out.operand()}, x.n)
	})
}

// writable checks operands that an in-place kernel updates.
func writable(ts ...*Tensor) error {
	for _, t := range ts {
		if t.cached {
			return ErrReadOnly
		}
	}
	return nil
}

// SGDStep updates w and its momentum v in place from gradient g.
func (d *Device) SGDStep(w, g, v *Tensor, c shaders.SGDConfig) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.prepare(w, g, v); err != nil {
		return err
	}
	if err := writable(w, v); err != nil {
		return err
	}
	if !sameShape(w, g) || !sameShape(w, v) {
		return fmt.Errorf("%w: SGD on %v, %v, %v", ErrShape, w.shape, g.shape, v.shape)
	}
	p := c.Params(w.n)
	return d.elemKernel(shaders.ShaderSGD, shaders.ParamBytes(&p), []operand{w.operand(), g.operand(), v.operand()}, w.n)
}

// AdamStep updates w and its moments m, v in place from gradient g at step
// t (1, 2, …).
func (d *Device) AdamStep(w, g, m, v *Tensor, c shaders.AdamConfig, t int) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.prepare(w, g, m, v); err != nil {
		return err
	}
	if err := writable(w, m, v); err != nil {
		return err
	}
	if !sameShape(w, g) || !sameShape(w, m) || !sameShape(w, v) || t < 1 {
		return fmt.Errorf("%w: Adam on %v, %v, %v, %v at step %d", ErrShape, w.shape, g.shape, m.shape, v.shape, t)
	}
	p := c.Params(w.n, t)
	return d.elemKernel(shaders.ShaderAdam, shaders.ParamBytes(&p), []operand{w.operand(), g.operand(), m.operand(), v.operand()}, w.n)
}

// Im2Col unfolds the NCHW input x for a convolution of geometry g (see
// shaders.Im2Col): a g.Rows()×g.Cols() matrix to multiply by the weights.
func (d *Device) Im2Col(x *Tensor, g shaders.ConvGeom) (*Tensor, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.prepare(x); err != nil {
		return nil, err
	}
	if !g.Valid() || x.n != g.InputLen() {
		return nil, fmt.Errorf("%w: im2col of %v with geometry %+v", ErrShape, x.shape, g)
	}
	if float64(g.Rows())*float64(g.Cols()) > math.MaxInt32 {
		return nil, fmt.Errorf("%w: im2col output of %d×%d", ErrTooLarge, g.Rows(), g.Cols())
	}
	return d.output([]int{g.Rows(), g.Cols()}, func(out *Tensor) error {
		p := g.Params()
		return d.elemKernel(shaders.ShaderIm2Col, shaders.ParamBytes(&p), []operand{x.operand(), out.operand()}, out.n)
	})
}
