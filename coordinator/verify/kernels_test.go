package verify

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// The kernels the checks call (gemv, agreeRow, …: assembly where the
// build and CPU have it, with their Go handling of the last few columns)
// against the portable Go versions, on awkward lengths.

// kernelLengths are row lengths around the assembly's groups of 4, 8
// and 16 elements.
var kernelLengths = []int{0, 1, 3, 4, 7, 8, 9, 15, 16, 17, 31, 33, 1023}

// kernelRows are row counts around the gemv kernels' blocks of 4 rows.
var kernelRows = []int{0, 1, 3, 4, 5, 8, 9}

func logKernels(t *testing.T) {
	t.Helper()
	if useAVX2 {
		t.Log("comparing the AVX2 assembly kernels with the Go ones")
	} else {
		t.Log("no assembly kernels in this build or on this CPU: the checks run the Go kernels, compared here with themselves")
	}
}

// specials are values that must go through every kernel the same way:
// signed zeros, subnormals, infinities and NaNs of both signs.
var specials = []float32{
	0, float32(math.Copysign(0, -1)), 1e-45, -1e-45, 1e-40, -1e-40,
	float32(math.Inf(1)), float32(math.Inf(-1)),
	math.Float32frombits(0x7fc00000), math.Float32frombits(0xffc00000),
	math.Float32frombits(0x7f800001), 3.4e38, -3.4e38,
}

// kernelData draws n float32: normal, of mixed scales, with zeros.
func kernelData(rng *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		switch rng.IntN(8) {
		case 0:
			x[i] = 0
		case 1:
			x[i] = float32(rng.NormFloat64() * math.Exp2(float64(rng.IntN(60)-30)))
		default:
			x[i] = float32(rng.NormFloat64())
		}
	}
	return x
}

// positive draws n float64 in [0.5, 1), like Freivalds' vectors.
func positive(rng *rand.Rand, n int) []float64 {
	y := make([]float64, n)
	for i := range y {
		y[i] = 0.5 + 0.5*rng.Float64()
	}
	return y
}

// closeSums reports whether two float64 sums of terms whose magnitudes
// add up to mag agree within any two summation orders' rounding: both
// NaN, the same infinity, or within 2·slack64(terms)·mag.
func closeSums(a, b float64, terms int, mag float64) bool {
	switch {
	case math.IsNaN(a) || math.IsNaN(b):
		return math.IsNaN(a) && math.IsNaN(b)
	case math.IsInf(a, 0) || math.IsInf(b, 0):
		return a == b
	}
	return math.Abs(a-b) <= 2*slack64(terms)*mag
}

func TestReluSemantics(t *testing.T) {
	nan := math.Float32frombits(0x7fc00000)
	for _, tc := range []struct {
		x    float32
		want float64
	}{
		{1.5, 1.5}, {-1.5, 0}, {0, 0}, {float32(math.Copysign(0, -1)), 0},
		{1e-45, float64(float32(1e-45))}, {-1e-45, 0},
		{float32(math.Inf(1)), math.Inf(1)}, {float32(math.Inf(-1)), 0},
		{nan, 0}, {-nan, 0}, {math.Float32frombits(0x7f800001), 0},
	} {
		got := relu(tc.x)
		if math.Float64bits(got) != math.Float64bits(tc.want) {
			t.Errorf("relu(%v [%#08x]) = %v, want %v", tc.x, math.Float32bits(tc.x), got, tc.want)
		}
		// The assembly's relu, through gemvRelu on one element.
		var s, sa, sq [1]float64
		gemvRelu([]float32{tc.x, 0, 0, 0}, 4, []float64{1, 0, 0, 0}, []float64{1, 0, 0, 0}, s[:], sa[:], sq[:])
		if math.Float64bits(s[0]) != math.Float64bits(tc.want) {
			t.Errorf("gemvRelu of %v = %v, want %v", tc.x, s[0], tc.want)
		}
	}
}

func TestGemvKernels(t *testing.T) {
	logKernels(t)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, rows := range kernelRows {
		for _, cols := range kernelLengths {
			a := kernelData(rng, rows*cols)
			if rows*cols > 0 && rng.IntN(2) == 0 {
				a[rng.IntN(len(a))] = specials[rng.IntN(len(specials))]
			}
			x, xa := positive(rng, cols), positive(rng, cols)
			for _, k := range []struct {
				name string
				run  func(out, outAbs, outSq []float64)
				ref  func(out, outAbs, outSq []float64)
				abs  func(v float32) float64 // |a| as the second sum reads it
				val  func(v float32) float64 // a as the first sum reads it
			}{
				{"gemv", func(o, _, _ []float64) { gemv(a, cols, x, o) }, func(o, _, _ []float64) { gemvGo(a, cols, x, o) }, nil, func(v float32) float64 { return float64(v) }},
				{"gemvAbs", func(o, oa, oq []float64) { gemvAbs(a, cols, x, xa, o, oa, oq) }, func(o, oa, oq []float64) { gemvAbsGo(a, cols, x, xa, o, oa, oq) },
					func(v float32) float64 { return math.Abs(float64(v)) }, func(v float32) float64 { return float64(v) }},
				{"gemvRelu", func(o, oa, oq []float64) { gemvRelu(a, cols, x, xa, o, oa, oq) }, func(o, oa, oq []float64) { gemvReluGo(a, cols, x, xa, o, oa, oq) },
					relu, relu},
			} {
				t.Run(fmt.Sprintf("%s/%dx%d", k.name, rows, cols), func(t *testing.T) {
					out, outAbs, outSq := make([]float64, rows+1), make([]float64, rows+1), make([]float64, rows+1)
					ref, refAbs, refSq := make([]float64, rows), make([]float64, rows), make([]float64, rows)
					out[rows], outAbs[rows], outSq[rows] = 42, 42, 42 // must stay
					k.run(out[:rows], outAbs[:rows], outSq[:rows])
					k.ref(ref, refAbs, refSq)
					if out[rows] != 42 || outAbs[rows] != 42 || outSq[rows] != 42 {
						t.Fatal("wrote past the end of out")
					}
					for i := range rows {
						var mag, magAbs, magSq float64
						for j, v := range a[i*cols : (i+1)*cols] {
							mag += math.Abs(k.val(v) * x[j])
							if k.abs != nil {
								magAbs += k.abs(v) * xa[j]
								magSq += k.val(v) * k.val(v)
							}
						}
						if !closeSums(out[i], ref[i], cols, mag) {
							t.Errorf("row %d: %v, Go %v", i, out[i], ref[i])
						}
						if k.abs != nil && !closeSums(outAbs[i], refAbs[i], cols, magAbs) {
							t.Errorf("row %d: abs %v, Go %v", i, outAbs[i], refAbs[i])
						}
						if k.abs != nil && !closeSums(outSq[i], refSq[i], cols, magSq) {
							t.Errorf("row %d: squares %v, Go %v", i, outSq[i], refSq[i])
						}
						if k.abs != nil && !closeSums(outSq[i], magSq, cols, magSq) {
							t.Errorf("row %d: squares %v, want %v", i, outSq[i], magSq)
						}
					}
				})
			}
		}
	}
}

func TestSumKernels(t *testing.T) {
	logKernels(t)
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range kernelLengths {
		x := kernelData(rng, n)
		var mag, mag2 float64
		for _, v := range x {
			mag += math.Abs(float64(v))
			mag2 += float64(v) * float64(v)
		}
		if got, want := sumAbs(x), sumAbsGo(x); !closeSums(got, want, n, mag) {
			t.Errorf("sumAbs, n = %d: %v, Go %v", n, got, want)
		}
		if got, want := sumSquares(x), sumSquaresGo(x); !closeSums(got, want, n, mag2) {
			t.Errorf("sumSquares, n = %d: %v, Go %v", n, got, want)
		}
		if got, want := dot(x, positive(rand.New(rand.NewPCG(5, 6)), n)), dotGo(x, positive(rand.New(rand.NewPCG(5, 6)), n)); !closeSums(got, want, n, mag) {
			t.Errorf("dot, n = %d: %v, Go %v", n, got, want)
		}
		// addSquares must give the very bits of addSquare, element by element.
		w, ref := positive(rng, n+1), make([]float64, n+1)
		copy(ref, w)
		addSquares(w[:n], x)
		for j, v := range x {
			ref[j] = addSquare(ref[j], v)
		}
		for j := range w {
			if math.Float64bits(w[j]) != math.Float64bits(ref[j]) {
				t.Errorf("addSquares, n = %d, element %d: %v, addSquare %v", n, j, w[j], ref[j])
			}
		}
		// Specials, one at a time, at every position class.
		for _, s := range specials {
			if n == 0 {
				break
			}
			y := append([]float32(nil), x...)
			y[rng.IntN(n)] = s
			if got, want := sumAbs(y), sumAbsGo(y); !closeSums(got, want, n, math.Inf(1)) && !(math.IsNaN(got) && math.IsNaN(want)) && got != want {
				t.Errorf("sumAbs with %v: %v, Go %v", s, got, want)
			}
		}
	}
}

// agreeCase builds a row pair and tolerance terms where about one
// element in eight is out of tolerance at worst = 1.
func agreeCase(rng *rand.Rand, n int) (a, b []float32, colConst, w []float64, rowConst, rowFactor float64) {
	a, b = kernelData(rng, n), make([]float32, n)
	colConst, w = make([]float64, n), make([]float64, n)
	rowConst, rowFactor = 1e-30, 1e-6
	for j := range a {
		colConst[j], w[j] = 1e-7*rng.Float64(), 0.5+rng.Float64()
		tol := agreeTol(rowConst, colConst[j], rowFactor, w[j])
		f := 0.9 * rng.Float64()
		if rng.IntN(8) == 0 {
			f = 1.5
		}
		b[j] = a[j] + float32(f*tol)
	}
	return a, b, colConst, w, rowConst, rowFactor
}

func TestAgreeKernels(t *testing.T) {
	logKernels(t)
	rng := rand.New(rand.NewPCG(7, 8))
	nan := math.Float32frombits(0x7fc00000)
	for _, n := range kernelLengths {
		for _, worst := range []float64{0, 0.5, 1, math.Inf(1)} {
			a, b, colConst, w, rowConst, rowFactor := agreeCase(rng, n)
			if n > 0 && worst == math.Inf(1) {
				b[rng.IntN(n)] = nan // only NaN is out of an infinite tolerance
			}
			t.Run(fmt.Sprintf("n%d/worst%g", n, worst), func(t *testing.T) {
				// Every suffix, as Agree resumes after each element it notes.
				for from := 0; from <= n; from++ {
					want := agreeRowGo(a[from:], b[from:], colConst[from:], w[from:], rowConst, rowFactor, worst)
					if got := agreeRow(a[from:], b[from:], colConst[from:], w[from:], rowConst, rowFactor, worst); got != want {
						t.Fatalf("agreeRow from %d: %d, Go %d", from, got, want)
					}
					got, sa, sb, sd := agreeRowNorms(a[from:], b[from:], colConst[from:], w[from:], rowConst, rowFactor, worst)
					if got != want {
						t.Fatalf("agreeRowNorms from %d: %d, Go %d", from, got, want)
					}
					// The norms: the same bits as reluNorms, close to Go's.
					ra, rb, rd := reluNorms(a[from:], b[from:])
					if math.Float64bits(sa) != math.Float64bits(ra) || math.Float64bits(sb) != math.Float64bits(rb) || math.Float64bits(sd) != math.Float64bits(rd) {
						t.Fatalf("from %d: agreeRowNorms' norms %v %v %v, reluNorms' %v %v %v", from, sa, sb, sd, ra, rb, rd)
					}
					_, ga, gb, gd := agreeRowNormsGo(a[from:], b[from:], nil, nil, 0, 0, 0, false)
					m := n - from
					if !closeSums(sa, ga, m, ga) || !closeSums(sb, gb, m, gb) || !closeSums(sd, gd, m, gd) {
						t.Fatalf("from %d: norms %v %v %v, Go %v %v %v", from, sa, sb, sd, ga, gb, gd)
					}
				}
			})
		}
	}
}

// TestGemv4MatchesGemv checks that gemv4 gives each of its four vectors
// the bits gemv gives it, writing nothing past the end of its outputs.
func TestGemv4MatchesGemv(t *testing.T) {
	logKernels(t)
	rng := rand.New(rand.NewPCG(9, 10))
	for _, rows := range append(kernelRows, 12, 13, 67) {
		for _, cols := range kernelLengths {
			a := kernelData(rng, rows*cols)
			if rows*cols > 0 && rng.IntN(2) == 0 {
				a[rng.IntN(len(a))] = specials[rng.IntN(len(specials))]
			}
			var x, out [4][]float64
			for v := range x {
				x[v] = positive(rng, cols)
				out[v] = make([]float64, rows+1)
				out[v][rows] = 42 // must stay
				out[v] = out[v][:rows]
			}
			gemv4(a, cols, &x, &out)
			for v := range x {
				want := make([]float64, rows)
				gemv(a, cols, x[v], want)
				if out[v][:rows+1][rows] != 42 {
					t.Fatalf("%dx%d vector %d: wrote past the end of out", rows, cols, v)
				}
				for i := range rows {
					if math.Float64bits(out[v][i]) != math.Float64bits(want[i]) {
						t.Errorf("%dx%d vector %d row %d: %v, gemv %v", rows, cols, v, i, out[v][i], want[i])
					}
				}
			}
		}
	}
}
