package shaders

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
)

// unitRoundoff is u = 2^-24, the unit roundoff of float32.
const unitRoundoff = 1.0 / (1 << 24)

// gamma returns γ_n = n·u/(1-n·u), the bound on the relative error of a sum
// of n rounded products (Higham, Accuracy and Stability, §3.1).
func gamma(n int) float64 {
	nu := float64(n) * unitRoundoff
	return nu / (1 - nu)
}

// exactProduct returns, in float64, z = f(a)·b + bias and the magnitude
// Σ|f(a)||b| + |bias| for each element (bias may be nil).
func exactProduct(a, b, bias []float32, m, k, n int, relu bool) (z, mag []float64) {
	z = make([]float64, m*n)
	mag = make([]float64, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s, t float64
			if bias != nil {
				s, t = float64(bias[j]), math.Abs(float64(bias[j]))
			}
			for p := 0; p < k; p++ {
				av := float64(a[i*k+p])
				if relu && av < 0 {
					av = 0
				}
				bv := float64(b[p*n+j])
				s += av * bv
				t += math.Abs(av * bv)
			}
			z[i*n+j], mag[i*n+j] = s, t
		}
	}
	return z, mag
}

// naiveRounded is the textbook loop with every product rounded to float32
// before it is added (the explicit conversion forbids a fused multiply-add).
func naiveRounded(c, a, b, bias []float32, m, k, n int, relu bool) {
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float32
			if bias != nil {
				s = bias[j]
			}
			for p := 0; p < k; p++ {
				av := a[i*k+p]
				if relu && av < 0 {
					av = 0
				}
				s += float32(av * b[p*n+j])
			}
			c[i*n+j] = s
		}
	}
}

func randSlice(r *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(r.NormFloat64())
	}
	return s
}

// awkwardShapes are m, k, n triples around the block sizes, primes, ones,
// and one deep inner dimension. Some are big enough to run in parallel and
// some (few rows, many columns) split by columns.
var awkwardShapes = [][3]int{
	{1, 1, 1}, {1, 7, 1}, {7, 1, 13}, {13, 7, 1}, {1, 97, 13},
	{2, 3, 5}, {4, 4, 4}, {5, 9, 3}, {97, 13, 7}, {13, 97, 97},
	{64, 256, 256}, {65, 257, 255}, {63, 255, 257}, {129, 97, 300},
	{97, 2048, 13}, {7, 2048, 97}, {97, 2048, 65}, {3, 1000, 1009},
	{1, 2048, 2500}, {300, 300, 1}, {256, 784, 97},
}

var kernels = []struct {
	name string
	kern kernel
}{{"auto", kernelAuto}, {"ger", kernelGer}, {"go", kernelGo}}

// checkBound fails t if any |got - exact| exceeds γ_terms·mag, plus a
// float64 slack for the reference itself.
func checkBound(t *testing.T, got []float32, exact, mag []float64, terms int) {
	t.Helper()
	g := gamma(terms)
	bad := 0
	for i, v := range got {
		diff := math.Abs(float64(v) - exact[i])
		bound := g*mag[i] + 1e-12*mag[i]
		if !(diff <= bound) { // also catches NaN
			if bad < 5 {
				t.Errorf("element %d: got %g, exact %g, |diff| %g > bound %g", i, v, exact[i], diff, bound)
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d elements out of bound", bad, len(got))
	}
}

func TestMatMulErrorBound(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, sh := range awkwardShapes {
		m, k, n := sh[0], sh[1], sh[2]
		a, b := randSlice(r, m*k), randSlice(r, k*n)
		exact, mag := exactProduct(a, b, nil, m, k, n, false)
		for _, kn := range kernels {
			t.Run(fmt.Sprintf("%dx%dx%d/%s", m, k, n, kn.name), func(t *testing.T) {
				c := randSlice(r, m*n) // garbage: MatMul must overwrite it
				gemm(gemmArgs{c: c, a: a, b: b, m: m, k: k, n: n, kern: kn.kern})
				checkBound(t, c, exact, mag, k)
			})
		}
	}
}

func TestMatMulBiasReLUInErrorBound(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, sh := range awkwardShapes {
		m, k, n := sh[0], sh[1], sh[2]
		h, w, bias := randSlice(r, m*k), randSlice(r, k*n), randSlice(r, n)
		for _, relu := range []bool{false, true} {
			exact, mag := exactProduct(h, w, bias, m, k, n, relu)
			for _, kn := range kernels {
				t.Run(fmt.Sprintf("%dx%dx%d/relu=%v/%s", m, k, n, relu, kn.name), func(t *testing.T) {
					z := randSlice(r, m*n)
					gemm(gemmArgs{c: z, a: h, b: w, bias: bias, m: m, k: k, n: n, relu: relu, kern: kn.kern})
					checkBound(t, z, exact, mag, k+1)
				})
			}
		}
	}
}

// The exported functions are the auto kernel; check them once directly.
func TestExportedMatMul(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	m, k, n := 33, 70, 41
	a, b, bias := randSlice(r, m*k), randSlice(r, k*n), randSlice(r, n)
	c := make([]float32, m*n)
	MatMul(c, a, b, m, k, n)
	exact, mag := exactProduct(a, b, nil, m, k, n, false)
	checkBound(t, c, exact, mag, k)

	MatMulBiasReLUIn(c, a, b, bias, m, k, n, true)
	exact, mag = exactProduct(a, b, bias, m, k, n, true)
	checkBound(t, c, exact, mag, k+1)
}

// On amd64 every element is summed in the textbook order with rounded
// products, so the result is the naive loop's bit for bit.
func TestMatMulBitIdenticalToNaiveOnAMD64(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skipf("bit-identity is claimed for amd64 only (GOARCH=%s may fuse multiply-adds)", runtime.GOARCH)
	}
	r := rand.New(rand.NewPCG(7, 8))
	for _, sh := range awkwardShapes {
		m, k, n := sh[0], sh[1], sh[2]
		h, w, bias := randSlice(r, m*k), randSlice(r, k*n), randSlice(r, n)
		want, got := make([]float32, m*n), make([]float32, m*n)
		naiveRounded(want, h, w, bias, m, k, n, true)
		MatMulBiasReLUIn(got, h, w, bias, m, k, n, true)
		for i := range want {
			if math.Float32bits(want[i]) != math.Float32bits(got[i]) {
				t.Fatalf("%dx%dx%d element %d: got %g, naive %g", m, k, n, i, got[i], want[i])
			}
		}
	}
}

func TestMatMulEmptyAndZeroDepth(t *testing.T) {
	MatMul(nil, nil, make([]float32, 15), 0, 5, 3) // m = 0
	MatMul(nil, make([]float32, 20), nil, 4, 5, 0) // n = 0
	MatMul(nil, nil, nil, 0, 0, 0)                 // all zero
	c := []float32{1, 2, 3, 4, 5, 6}               // k = 0: c = 0
	MatMul(c, nil, nil, 2, 0, 3)
	for i, v := range c {
		if v != 0 {
			t.Fatalf("k=0: c[%d] = %g, want 0", i, v)
		}
	}
	bias := []float32{7, 8, 9}
	MatMulBiasReLUIn(c, nil, nil, bias, 2, 0, 3, true) // k = 0: z = bias
	for i, v := range c {
		if v != bias[i%3] {
			t.Fatalf("k=0: z[%d] = %g, want %g", i, v, bias[i%3])
		}
	}
}

func TestMatMulBiasReLUInClipsNegatives(t *testing.T) {
	// h is all negative: with relu, z is exactly the bias; without, it is not.
	m, k, n := 9, 300, 70
	h := make([]float32, m*k)
	w := make([]float32, k*n)
	for i := range h {
		h[i] = -1
	}
	for i := range w {
		w[i] = 1
	}
	bias := make([]float32, n)
	for j := range bias {
		bias[j] = float32(j)
	}
	z := make([]float32, m*n)
	for _, kn := range kernels {
		gemm(gemmArgs{c: z, a: h, b: w, bias: bias, m: m, k: k, n: n, relu: true, kern: kn.kern})
		for i, v := range z {
			if v != bias[i%n] {
				t.Fatalf("%s relu: z[%d] = %g, want bias %g", kn.name, i, v, bias[i%n])
			}
		}
		gemm(gemmArgs{c: z, a: h, b: w, bias: bias, m: m, k: k, n: n, relu: false, kern: kn.kern})
		for i, v := range z {
			if want := bias[i%n] - float32(k); v != want {
				t.Fatalf("%s no relu: z[%d] = %g, want %g", kn.name, i, v, want)
			}
		}
	}
}

func TestMatMulPanicsOnShortSlices(t *testing.T) {
	ok := make([]float32, 12)
	cases := []struct {
		name    string
		c, a, b []float32
		m, k, n int
	}{
		{"short a", ok, ok[:5], ok, 2, 3, 2},
		{"short b", ok, ok, ok[:5], 2, 3, 2},
		{"short c", ok[:3], ok, ok, 2, 3, 2},
		{"negative", ok, ok, ok, -1, 3, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			MatMul(tc.c, tc.a, tc.b, tc.m, tc.k, tc.n)
		})
	}
	t.Run("short bias", func(t *testing.T) {
		defer func() {
			if recover() == nil {
				t.Fatal("no panic")
			}
		}()
		MatMulBiasReLUIn(ok, ok, ok, ok[:1], 2, 3, 2, false)
	})
}

// More workers than cores, and odd counts, exercise the splitting.
func TestMatMulWorkerCounts(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	r := rand.New(rand.NewPCG(9, 10))
	shapes := [][3]int{{97, 2048, 65}, {3, 1000, 1009}, {1, 2048, 2500}, {257, 300, 31}}
	for _, procs := range []int{1, 2, 3, 7, 16} {
		runtime.GOMAXPROCS(procs)
		for _, sh := range shapes {
			m, k, n := sh[0], sh[1], sh[2]
			a, b := randSlice(r, m*k), randSlice(r, k*n)
			exact, mag := exactProduct(a, b, nil, m, k, n, false)
			c := randSlice(r, m*n)
			MatMul(c, a, b, m, k, n)
			t.Run(fmt.Sprintf("procs=%d/%dx%dx%d", procs, m, k, n), func(t *testing.T) {
				checkBound(t, c, exact, mag, k)
			})
		}
	}
}

// Concurrent callers share the helper channel; each must get its own answer.
func TestMatMulConcurrentCallers(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	m, k, n := 128, 256, 192
	const callers = 6
	var as, bs [callers][]float32
	var exact, mag [callers][]float64
	for i := range callers {
		as[i], bs[i] = randSlice(r, m*k), randSlice(r, k*n)
		exact[i], mag[i] = exactProduct(as[i], bs[i], nil, m, k, n, false)
	}
	var wg sync.WaitGroup
	errs := make(chan string, callers)
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := make([]float32, m*n)
			for range 5 {
				MatMul(c, as[i], bs[i], m, k, n)
				for j, v := range c {
					if d := math.Abs(float64(v) - exact[i][j]); !(d <= gamma(k)*mag[i][j]+1e-12) {
						errs <- fmt.Sprintf("caller %d: c[%d] = %g, exact %g", i, j, v, exact[i][j])
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func TestMatMulAllocationFree(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under -race: sync.Pool drops items at random")
	}
	r := rand.New(rand.NewPCG(13, 14))
	for _, sh := range [][3]int{{256, 784, 512}, {9, 13, 7}, {2, 2048, 1024}} {
		m, k, n := sh[0], sh[1], sh[2]
		a, b, bias := randSlice(r, m*k), randSlice(r, k*n), randSlice(r, n)
		c := make([]float32, m*n)
		MatMul(c, a, b, m, k, n) // warm the pools
		allocs := testing.AllocsPerRun(20, func() {
			MatMul(c, a, b, m, k, n)
			MatMulBiasReLUIn(c, a, b, bias, m, k, n, true)
		})
		if allocs > 0 {
			t.Errorf("%dx%dx%d: %.1f allocations per call pair, want 0", m, k, n, allocs)
		}
	}
}
