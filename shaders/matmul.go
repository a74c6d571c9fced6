package shaders

import (
	"fmt"
	"runtime"
	"sync"

	"gonum.org/v1/gonum/blas/gonum"
)

// The CPU product is blocked for the caches and split over goroutines:
//
//   - The output is cut into stripes, one per worker (runtime.GOMAXPROCS
//     of them; rows first, columns when there are too few rows). Problems
//     under parallelMinFLOPs run on the calling goroutine alone.
//   - Inside a stripe, columns go in blocks of blockCols, the inner
//     dimension in blocks of blockK and rows in blocks of blockRows. Each
//     block of A (after ReLU, when asked) is packed transposed into a pooled
//     scratch buffer, so that column p of the block is contiguous, and the
//     block of C is updated by blockK rank-1 updates C += A[:,p]·B[p,:].
//   - On amd64 each rank-1 update is gonum's Sger, whose SSE assembly keeps
//     four rows of C in flight; elsewhere (wasm, arm64, …) a register-tiled
//     pure-Go kernel does the same work (see rank1Go).
//
// Every element of C is therefore summed in the order p = 0, 1, …, k-1
// from its starting value (zero, or the bias), as the textbook loop does;
// only the order of the memory traffic changes. On amd64 each product is
// rounded before it is added (no fused multiply-add), so MatMul equals the
// naive loop bit for bit there.
//
// Scratch buffers and the per-call bookkeeping come from sync.Pools and the
// helper goroutines are started without closures, so a call allocates
// nothing in steady state.
const (
	blockRows        = 32      // rows of A and C per packed block
	blockK           = 256     // inner-dimension depth per packed block
	blockCols        = 256     // columns of B and C per block
	parallelMinFLOPs = 1 << 22 // smaller products run on one goroutine
	minStripeRows    = 16      // fewer rows per worker: split columns instead
	minStripeCols    = 64      // fewest columns per worker when splitting columns
)

// kernel selects the inner rank-1 update.
type kernel uint8

const (
	kernelAuto kernel = iota // kernelGer on amd64, kernelGo elsewhere
	kernelGer                // gonum's Sger (SSE assembly on amd64)
	kernelGo                 // register-tiled pure Go
)

// MatMul computes c = a·b for row-major a (m×k), b (k×n), c (m×n).
// c is overwritten. It panics if a slice is shorter than its shape (a
// programmer error).
func MatMul(c, a, b []float32, m, k, n int) {
	gemm(gemmArgs{c: c, a: a, b: b, m: m, k: k, n: n})
}

// MatMulBiasReLUIn computes z = f(h)·w + bias, where f is relu when
// reluInput is set and the identity otherwise. h is m×k, w is k×n,
// bias has n elements, z is m×n. z is overwritten. It panics if a slice is
// shorter than its shape (a programmer error). A zero of f(h) is multiplied
// like any other value, so an Inf or NaN weight gives NaN as IEEE
// arithmetic (and every GPU kernel) does.
func MatMulBiasReLUIn(z, h, w, bias []float32, m, k, n int, reluInput bool) {
	if len(bias) < n {
		panic(fmt.Sprintf("shaders: MatMulBiasReLUIn: bias has %d elements, want %d", len(bias), n))
	}
	gemm(gemmArgs{c: z, a: h, b: w, bias: bias[:n], m: m, k: k, n: n, relu: reluInput})
}

// gemmArgs is one product c = f(a)·b + bias (bias nil means zero).
type gemmArgs struct {
	c, a, b, bias []float32
	m, k, n       int
	relu          bool
	kern          kernel
}

// gemmTask is the part of a product one goroutine computes: output rows
// [r0, r1) and columns [c0, c1).
type gemmTask struct {
	job            *gemmJob
	r0, r1, c0, c1 int
}

// gemmJob is the bookkeeping of one parallel call, pooled.
type gemmJob struct {
	args  gemmArgs
	tasks []gemmTask
	wg    sync.WaitGroup
}

var (
	jobPool     = sync.Pool{New: func() any { return new(gemmJob) }}
	scratchPool = sync.Pool{New: func() any {
		s := make([]float32, blockRows*blockK)
		return &s
	}}
	// gemmTasks hands tasks to helper goroutines. Each helper is started
	// (without a closure, so without allocating) right before its task is
	// sent and takes exactly one task, so a send never waits for long.
	gemmTasks = make(chan *gemmTask, 64)
	gerImpl   gonum.Implementation
)

func gemm(g gemmArgs) {
	if g.m < 0 || g.k < 0 || g.n < 0 {
		panic(fmt.Sprintf("shaders: matmul: negative shape %d×%d·%d×%d", g.m, g.k, g.k, g.n))
	}
	if len(g.a) < g.m*g.k || len(g.b) < g.k*g.n || len(g.c) < g.m*g.n {
		panic(fmt.Sprintf("shaders: matmul: %d×%d·%d×%d needs %d, %d and %d elements, got %d, %d and %d",
			g.m, g.k, g.k, g.n, g.m*g.k, g.k*g.n, g.m*g.n, len(g.a), len(g.b), len(g.c)))
	}
	if g.m == 0 || g.n == 0 {
		return
	}
	if g.kern == kernelAuto {
		g.kern = kernelGo
		if runtime.GOARCH == "amd64" {
			g.kern = kernelGer
		}
	}
	workers := runtime.GOMAXPROCS(0)
	if workers == 1 || 2*float64(g.m)*float64(g.k)*float64(g.n) < parallelMinFLOPs {
		g.stripe(0, g.m, 0, g.n)
		return
	}
	byRows := g.m >= workers*minStripeRows || g.m >= g.n
	unit, extent := 4, g.m // row stripes stay multiples of 4 rows
	if !byRows {
		unit, extent = minStripeCols, g.n
	}
	workers = min(workers, (extent+unit-1)/unit)
	if workers == 1 {
		g.stripe(0, g.m, 0, g.n)
		return
	}

	job := jobPool.Get().(*gemmJob)
	job.args = g
	if cap(job.tasks) < workers {
		job.tasks = make([]gemmTask, workers)
	}
	job.tasks = job.tasks[:workers]
	units := (extent + unit - 1) / unit
	for w := range job.tasks {
		lo := min(extent, w*units/workers*unit)
		hi := min(extent, (w+1)*units/workers*unit)
		t := gemmTask{job: job, r0: 0, r1: g.m, c0: 0, c1: g.n}
		if byRows {
			t.r0, t.r1 = lo, hi
		} else {
			t.c0, t.c1 = lo, hi
		}
		job.tasks[w] = t
	}
	job.wg.Add(workers - 1)
	for w := 1; w < workers; w++ {
		go gemmHelper()
		gemmTasks <- &job.tasks[w]
	}
	job.tasks[0].run()
	job.wg.Wait()
	job.args = gemmArgs{} // do not keep the caller's slices alive in the pool
	jobPool.Put(job)
}

// gemmHelper runs one task from gemmTasks.
func gemmHelper() {
	t := <-gemmTasks
	t.run()
	t.job.wg.Done()
}

func (t *gemmTask) run() { t.job.args.stripe(t.r0, t.r1, t.c0, t.c1) }

// stripe computes output rows [r0, r1) and columns [c0, c1).
func (g *gemmArgs) stripe(r0, r1, c0, c1 int) {
	sp := scratchPool.Get().(*[]float32)
	ap := *sp
	k, n := g.k, g.n
	for jc := c0; jc < c1; jc += blockCols {
		je := min(jc+blockCols, c1)
		w := je - jc
		for ic := r0; ic < r1; ic += blockRows {
			g.initBlock(ic, min(ic+blockRows, r1), jc, je)
		}
		for pc := 0; pc < k; pc += blockK {
			pe := min(pc+blockK, k)
			kc := pe - pc
			bb := g.b[pc*n+jc:]
			for ic := r0; ic < r1; ic += blockRows {
				ie := min(ic+blockRows, r1)
				h := ie - ic
				g.packA(ap[:kc*h], ic, ie, pc, pe)
				cb := g.c[ic*n+jc:]
				if g.kern == kernelGer {
					rank1Ger(h, w, kc, ap, bb, n, cb, n)
				} else {
					rank1Go(h, w, kc, ap, bb, n, cb, n)
				}
			}
		}
	}
	scratchPool.Put(sp)
}

// initBlock sets C[r0:r1, c0:c1] to the bias, or to zero.
func (g *gemmArgs) initBlock(r0, r1, c0, c1 int) {
	for i := r0; i < r1; i++ {
		row := g.c[i*g.n+c0 : i*g.n+c1]
		if g.bias != nil {
			copy(row, g.bias[c0:c1])
		} else {
			clear(row)
		}
	}
}

// packA writes f(A[r0:r1, p0:p1]) transposed into ap: ap[(p-p0)*h + i-r0]
// with h = r1-r0, so that each column of the block is contiguous.
func (g *gemmArgs) packA(ap []float32, r0, r1, p0, p1 int) {
	h := r1 - r0
	for i := r0; i < r1; i++ {
		row := g.a[i*g.k+p0 : i*g.k+p1]
		dst := ap[i-r0:]
		if g.relu {
			// max, not a branch: signs are random, and a mispredicted
			// branch per element costs as much as a narrow product.
			// max keeps NaN; it turns -0 into +0, which adds the same.
			for p, v := range row {
				dst[p*h] = max(v, 0)
			}
			continue
		}
		for p, v := range row {
			dst[p*h] = v
		}
	}
}

// rank1Ger adds Σ_p ap[p*h:(p+1)*h] ⊗ b[p*ldb : p*ldb+w] to the h×w block
// of c (row stride ldc) with one gonum Sger per p.
func rank1Ger(h, w, kc int, ap, b []float32, ldb int, c []float32, ldc int) {
	for p := 0; p < kc; p++ {
		gerImpl.Sger(h, w, 1, ap[p*h:p*h+h], 1, b[p*ldb:p*ldb+w], 1, c, ldc)
	}
}

// rank1Go does what rank1Ger does in pure Go: 2×4 register tiles (Go's
// register allocator spills larger ones), with the ragged edges done one
// row or column at a time. Each element still sums p in increasing order.
func rank1Go(h, w, kc int, ap, b []float32, ldb int, c []float32, ldc int) {
	const mr, nr = 2, 4
	i := 0
	for ; i+mr <= h; i += mr {
		j := 0
		for ; j+nr <= w; j += nr {
			tile2x4(kc, ap[i:], h, b[j:], ldb, c[i*ldc+j:], ldc)
		}
		for ; j < w; j++ {
			rank1Edge(i, i+mr, j, kc, ap, h, b, ldb, c, ldc)
		}
	}
	for ; i < h; i++ {
		for j := 0; j < w; j++ {
			rank1Edge(i, i+1, j, kc, ap, h, b, ldb, c, ldc)
		}
	}
}

// tile2x4 accumulates a 2×4 tile of c over kc steps. a[p*lda+r] is row r of
// step p, b[p*ldb+j] column j of step p.
func tile2x4(kc int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	c0 := c[0:4:4]
	c1 := c[ldc : ldc+4 : ldc+4]
	c00, c01, c02, c03 := c0[0], c0[1], c0[2], c0[3]
	c10, c11, c12, c13 := c1[0], c1[1], c1[2], c1[3]
	pa, pb := 0, 0
	for p := 0; p < kc; p++ {
		av := a[pa : pa+2 : pa+2]
		bv := b[pb : pb+4 : pb+4]
		a0, a1 := av[0], av[1]
		b0, b1, b2, b3 := bv[0], bv[1], bv[2], bv[3]
		c00 += a0 * b0
		c01 += a0 * b1
		c02 += a0 * b2
		c03 += a0 * b3
		c10 += a1 * b0
		c11 += a1 * b1
		c12 += a1 * b2
		c13 += a1 * b3
		pa += lda
		pb += ldb
	}
	c0[0], c0[1], c0[2], c0[3] = c00, c01, c02, c03
	c1[0], c1[1], c1[2], c1[3] = c10, c11, c12, c13
}

// rank1Edge accumulates column j of rows [i0, i1) of c over kc steps.
func rank1Edge(i0, i1, j, kc int, ap []float32, h int, b []float32, ldb int, c []float32, ldc int) {
	for i := i0; i < i1; i++ {
		s := c[i*ldc+j]
		for p := 0; p < kc; p++ {
			s += ap[p*h+i] * b[p*ldb+j]
		}
		c[i*ldc+j] = s
	}
}
