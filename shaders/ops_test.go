package shaders

import (
	"math"
	"math/rand/v2"
	"testing"
)

// uniform returns n values uniform in [-scale, scale).
func uniform(r *rand.Rand, n int, scale float32) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = (2*r.Float32() - 1) * scale
	}
	return s
}

// naiveFused is MatMulFused in float64, straight from the definition.
func naiveFused(a, b, bias []float32, m, k, n int, o MatMulOpts) []float64 {
	out := make([]float64, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for p := 0; p < k; p++ {
				av := a[i*k+p]
				if o.TransA {
					av = a[p*m+i]
				}
				bv := b[p*n+j]
				if o.TransB {
					bv = b[j*k+p]
				}
				if o.ReLUIn && av < 0 {
					av = 0
				}
				s += float64(av) * float64(bv)
			}
			if bias != nil {
				s += float64(bias[j])
			}
			switch o.Act {
			case ActReLU:
				s = math.Max(s, 0)
			case ActGELU:
				s = 0.5 * s * (1 + math.Tanh(geluC*(s+geluA*s*s*s)))
			}
			out[i*n+j] = s
		}
	}
	return out
}

// halfBound checks that a CPU result is within half of the |GPU − CPU|
// bound of the exact result: each backend gets half.
func halfBound(t *testing.T, what string, got []float32, exact []float64, bound []float64) {
	t.Helper()
	worst := 0.0
	for i := range exact {
		r := math.Abs(float64(got[i])-exact[i]) / (bound[i] / 2)
		if math.IsNaN(r) || r > 1 {
			t.Errorf("%s: element %d = %v, exact %v, over half the bound %v", what, i, got[i], exact[i], bound[i])
			return
		}
		worst = max(worst, r)
	}
	t.Logf("%s: CPU error / half bound ≤ %.3g", what, worst)
}

func TestMatMulFused(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	shapes := [][3]int{{1, 1, 1}, {3, 5, 7}, {17, 2048, 5}, {33, 31, 29}}
	opts := []MatMulOpts{{}, {TransA: true}, {TransB: true}, {TransA: true, TransB: true, ReLUIn: true, Act: ActReLU}, {ReLUIn: true, Act: ActGELU}, {Act: ActGELU}}
	for _, s := range shapes {
		m, k, n := s[0], s[1], s[2]
		for oi, o := range opts {
			a, b := uniform(r, m*k, 1), uniform(r, k*n, 1)
			var bias []float32
			if oi%2 == 1 {
				bias = uniform(r, n, 1)
			}
			c := make([]float32, m*n)
			MatMulFused(c, a, b, bias, m, k, n, o)
			halfBound(t, "matmul", c, naiveFused(a, b, bias, m, k, n, o), BoundMatMul(a, b, bias, m, k, n, o))
		}
	}
}

func TestGELU(t *testing.T) {
	for _, x := range []float32{-20, -10.5, -3, -1, -1e-3, 0, 1e-3, 0.5, 1, 3, 10.5, 20, 1e20} {
		v := float64(x)
		want := 0.5 * v * (1 + math.Tanh(geluC*(v+geluA*v*v*v)))
		if math.IsNaN(want) { // x³ overflow in the textbook formula
			want = v
		}
		if got := float64(GELU(x)); math.Abs(got-want) > 2*Unit*math.Abs(want)+1e-30 {
			t.Errorf("GELU(%v) = %v, want %v", x, got, want)
		}
		h := 1e-3 * max(1, math.Abs(v))
		if math.Abs(v) < 9 {
			num := (float64(GELU(float32(v+h))) - float64(GELU(float32(v-h)))) / (float64(float32(v+h)) - float64(float32(v-h)))
			if math.Abs(float64(GELUGrad(x))-num) > 1e-3 {
				t.Errorf("GELUGrad(%v) = %v, finite difference %v", x, GELUGrad(x), num)
			}
		}
	}
	if GELUGrad(11) != 1 || GELUGrad(-11) != 0 || GELU(-11) != 0 || GELU(11) != 11 {
		t.Error("GELU does not saturate beyond ±10")
	}
	// The Lipschitz constant used by the bounds.
	peak := 0.0
	for x := -10.0; x <= 10; x += 1e-3 {
		peak = max(peak, math.Abs(float64(GELUGrad(float32(x)))))
	}
	if peak > GELULipschitz || peak < GELULipschitz-0.01 {
		t.Errorf("max |gelu'| = %v, GELULipschitz = %v", peak, GELULipschitz)
	}
}

func TestSoftmaxAndCrossEntropy(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, s := range [][2]int{{1, 1}, {3, 10}, {7, 1000}} {
		rows, cols := s[0], s[1]
		x := uniform(r, rows*cols, 30)
		x[0] = 1e4 // stability: a naive exp overflows
		y := make([]float32, rows*cols)
		Softmax(y, x, rows, cols)
		exact := make([]float64, rows*cols)
		for i := 0; i < rows; i++ {
			m, sum := math.Inf(-1), 0.0
			for _, v := range x[i*cols : i*cols+cols] {
				m = max(m, float64(v))
			}
			for _, v := range x[i*cols : i*cols+cols] {
				sum += math.Exp(float64(v) - m)
			}
			for j, v := range x[i*cols : i*cols+cols] {
				exact[i*cols+j] = math.Exp(float64(v)-m) / sum
			}
		}
		halfBound(t, "softmax", y, exact, BoundSoftmax(x, rows, cols))

		// Cross-entropy against one-hot targets: loss = −log softmax[label],
		// and the gradient is the derivative of the mean loss.
		tg := make([]float32, rows*cols)
		for i := 0; i < rows; i++ {
			tg[i*cols+r.IntN(cols)] = 1
		}
		z := uniform(r, rows*cols, 5)
		loss, grad := make([]float32, rows), make([]float32, rows*cols)
		scale := 1 / float32(rows)
		SoftmaxCrossEntropy(loss, grad, z, tg, rows, cols, scale)
		lb, gb := BoundSoftmaxCrossEntropy(z, tg, rows, cols, scale)
		exactLoss := make([]float64, rows)
		exactGrad := make([]float64, rows*cols)
		for i := 0; i < rows; i++ {
			m, sum := math.Inf(-1), 0.0
			for _, v := range z[i*cols : i*cols+cols] {
				m = max(m, float64(v))
			}
			for _, v := range z[i*cols : i*cols+cols] {
				sum += math.Exp(float64(v) - m)
			}
			for j, v := range z[i*cols : i*cols+cols] {
				lp := float64(v) - m - math.Log(sum)
				exactLoss[i] -= float64(tg[i*cols+j]) * lp
				exactGrad[i*cols+j] = float64(scale) * (math.Exp(lp) - float64(tg[i*cols+j]))
			}
		}
		halfBound(t, "xent loss", loss, exactLoss, lb)
		halfBound(t, "xent grad", grad, exactGrad, gb)
		// Finite difference of the mean loss for one logit.
		if cols > 1 {
			i, j := rows-1, 1
			h := float32(1e-2)
			zp, zm := append([]float32(nil), z...), append([]float32(nil), z...)
			zp[i*cols+j] += h
			zm[i*cols+j] -= h
			lp, lm := make([]float32, rows), make([]float32, rows)
			SoftmaxCrossEntropy(lp, make([]float32, rows*cols), zp, tg, rows, cols, scale)
			SoftmaxCrossEntropy(lm, make([]float32, rows*cols), zm, tg, rows, cols, scale)
			num := float64(lp[i]-lm[i]) / float64(2*h) * float64(scale)
			if math.Abs(num-float64(grad[i*cols+j])) > 1e-3 {
				t.Errorf("xent grad %v, finite difference %v", grad[i*cols+j], num)
			}
		}
	}
}

func TestActBackward(t *testing.T) {
	z := []float32{-2, float32(math.Copysign(0, -1)), 0, 1e-6, 3, -11, 11}
	dh := []float32{1, 2, 3, 4, 5, 6, 7}
	dz := make([]float32, len(z))
	ActBackward(dz, z, dh, ActReLU)
	for i, want := range []float32{0, 0, 0, 4, 5, 0, 7} {
		if dz[i] != want {
			t.Errorf("relu backward [%d] = %v, want %v", i, dz[i], want)
		}
	}
	ActBackward(dz, z, dh, ActNone)
	for i := range dz {
		if dz[i] != dh[i] {
			t.Errorf("identity backward [%d] = %v", i, dz[i])
		}
	}
	ActBackward(dz, z, dh, ActGELU)
	for i := range dz {
		if want := dh[i] * GELUGrad(z[i]); dz[i] != want {
			t.Errorf("gelu backward [%d] = %v, want %v", i, dz[i], want)
		}
	}
	if b := BoundActBackward(z, dh, ActReLU); b[3] != 0 {
		t.Error("relu backward must be exact")
	}
}

func TestOptimizers(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	n := 1000
	w, g, v := uniform(r, n, 1), uniform(r, n, 1), uniform(r, n, 0.1)
	c := SGDConfig{LR: 0.01, Momentum: 0.9, WeightDecay: 1e-4}
	bw, bv := BoundSGD(w, g, v, c)
	ew, ev := make([]float64, n), make([]float64, n)
	for i := range w {
		gp := float64(g[i]) + float64(c.WeightDecay)*float64(w[i])
		ev[i] = float64(c.Momentum)*float64(v[i]) + gp
		ew[i] = float64(w[i]) - float64(c.LR)*ev[i]
	}
	SGDStep(w, g, v, c)
	halfBound(t, "sgd w", w, ew, bw)
	halfBound(t, "sgd v", v, ev, bv)

	w, g = uniform(r, n, 1), uniform(r, n, 1)
	m, v2 := uniform(r, n, 0.1), make([]float32, n)
	for i := range v2 {
		v2[i] = r.Float32() * 0.01
	}
	ac := AdamConfig{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 1e-2}
	step := 7
	bw, bm, bv2 := BoundAdam(w, g, m, v2, ac, step)
	ew, em, ev2 := make([]float64, n), make([]float64, n), make([]float64, n)
	p := ac.Params(n, step)
	for i := range w {
		gp := float64(g[i]) + float64(p.WeightDecay)*float64(w[i])
		em[i] = float64(p.Beta1)*float64(m[i]) + float64(1-p.Beta1)*gp
		ev2[i] = float64(p.Beta2)*float64(v2[i]) + float64(1-p.Beta2)*gp*gp
		ew[i] = float64(w[i]) - float64(p.LR)*(em[i]*float64(p.C1))/(math.Sqrt(ev2[i]*float64(p.C2))+float64(p.Eps))
	}
	AdamStep(w, g, m, v2, ac, step)
	halfBound(t, "adam w", w, ew, bw)
	halfBound(t, "adam m", m, em, bm)
	halfBound(t, "adam v", v2, ev2, bv2)
	if math.Abs(float64(p.C1)-1/(1-math.Pow(0.9, 7))) > 1e-6 {
		t.Errorf("C1 = %v", p.C1)
	}
}

func TestSumsAxpbyLayerNorm(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	rows, cols := 37, 101
	x := uniform(r, rows*cols, 3)
	cs, rs := make([]float32, cols), make([]float32, rows)
	ColSums(cs, x, rows, cols)
	RowSums(rs, x, rows, cols)
	ecs, ers := make([]float64, cols), make([]float64, rows)
	for i := 0; i < rows; i++ {
		for j := 0; j < cols; j++ {
			ecs[j] += float64(x[i*cols+j])
			ers[i] += float64(x[i*cols+j])
		}
	}
	halfBound(t, "col sums", cs, ecs, BoundColSums(x, rows, cols))
	halfBound(t, "row sums", rs, ers, BoundRowSums(x, rows, cols))

	y := uniform(r, rows*cols, 3)
	out := make([]float32, rows*cols)
	Axpby(out, x, y, 0.5, -2)
	eo := make([]float64, rows*cols)
	for i := range eo {
		eo[i] = 0.5*float64(x[i]) - 2*float64(y[i])
	}
	halfBound(t, "axpby", out, eo, BoundAxpby(x, y, 0.5, -2))
	Axpby(out, x, nil, 3, 0) // y unread when beta is 0
	if out[5] != 3*x[5] {
		t.Errorf("scale: %v, want %v", out[5], 3*x[5])
	}

	gamma, beta := uniform(r, cols, 2), uniform(r, cols, 1)
	for i := 0; i < cols; i++ {
		x[i] += 1000 // a large mean: the two-pass variance must cope
	}
	ln := make([]float32, rows*cols)
	eps := float32(1e-5)
	LayerNorm(ln, x, gamma, beta, rows, cols, eps)
	eln := make([]float64, rows*cols)
	for i := 0; i < rows; i++ {
		var mean, q float64
		for _, v := range x[i*cols : i*cols+cols] {
			mean += float64(v)
		}
		mean /= float64(cols)
		for _, v := range x[i*cols : i*cols+cols] {
			q += (float64(v) - mean) * (float64(v) - mean)
		}
		rstd := 1 / math.Sqrt(q/float64(cols)+float64(eps))
		for j, v := range x[i*cols : i*cols+cols] {
			eln[i*cols+j] = (float64(v)-mean)*rstd*float64(gamma[j]) + float64(beta[j])
		}
	}
	halfBound(t, "layer norm", ln, eln, BoundLayerNorm(x, gamma, beta, rows, cols, eps))
}

func TestIm2ColIsConvolution(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for _, g := range []ConvGeom{
		{Batch: 2, Channels: 3, Height: 7, Width: 5, KernelH: 3, KernelW: 3, PadH: 1, PadW: 1},
		{Batch: 1, Channels: 1, Height: 1, Width: 1, KernelH: 1, KernelW: 1},
		{Batch: 3, Channels: 2, Height: 9, Width: 8, KernelH: 3, KernelW: 2, StrideH: 2, StrideW: 3, PadH: 2},
	} {
		if !g.Valid() {
			t.Fatalf("%+v invalid", g)
		}
		outCh := 4
		x := uniform(r, g.InputLen(), 1)
		w := uniform(r, g.Cols()*outCh, 1)
		cols := make([]float32, g.Rows()*g.Cols())
		Im2Col(cols, x, g)
		y := make([]float32, g.Rows()*outCh)
		MatMulFused(y, cols, w, nil, g.Rows(), g.Cols(), outCh, MatMulOpts{})
		sh, sw := g.strides()
		oh, ow := g.OutH(), g.OutW()
		for b := 0; b < g.Batch; b++ {
			for oy := 0; oy < oh; oy++ {
				for ox := 0; ox < ow; ox++ {
					for o := 0; o < outCh; o++ {
						var s float64
						for c := 0; c < g.Channels; c++ {
							for ky := 0; ky < g.KernelH; ky++ {
								for kx := 0; kx < g.KernelW; kx++ {
									iy, ix := oy*sh+ky-g.PadH, ox*sw+kx-g.PadW
									if iy < 0 || ix < 0 || iy >= g.Height || ix >= g.Width {
										continue
									}
									s += float64(x[((b*g.Channels+c)*g.Height+iy)*g.Width+ix]) * float64(w[((c*g.KernelH+ky)*g.KernelW+kx)*outCh+o])
								}
							}
						}
						got := y[((b*oh+oy)*ow+ox)*outCh+o]
						if math.Abs(float64(got)-s) > 1e-4 {
							t.Fatalf("%+v: conv at b%d y%d x%d o%d = %v, direct %v", g, b, oy, ox, o, got, s)
						}
					}
				}
			}
		}
	}
	if (ConvGeom{Batch: 1, Channels: 1, Height: 2, Width: 2, KernelH: 3, KernelW: 3}).Valid() {
		t.Error("a kernel larger than the padded input must be invalid")
	}
}

func TestCheckBound(t *testing.T) {
	inf, nan := float32(math.Inf(1)), float32(math.NaN())
	tests := []struct {
		name      string
		got, want []float32
		bound     []float64
		ok        bool
		ratio     float64
	}{
		{"equal", []float32{1, 2}, []float32{1, 2}, []float64{0, 0}, true, 0},
		{"within", []float32{1.5, 2}, []float32{1, 2}, []float64{1, 0}, true, 0.5},
		{"at bound", []float32{2, 2}, []float32{1, 2}, []float64{1, 0}, true, 1},
		{"past bound", []float32{2.5, 2}, []float32{1, 2}, []float64{2, 0}, true, 0.75},
		{"zero bound", []float32{1, 2.5}, []float32{1, 2}, []float64{1, 0}, false, math.Inf(1)},
		{"nan vs nan", []float32{nan}, []float32{nan}, []float64{0}, true, 0},
		{"nan vs number", []float32{nan}, []float32{1}, []float64{1e30}, false, math.Inf(1)},
		{"inf vs inf", []float32{inf}, []float32{inf}, []float64{0}, true, 0},
		{"inf vs -inf", []float32{inf}, []float32{-inf}, []float64{1e30}, false, math.Inf(1)},
		{"length", []float32{1}, []float32{1, 2}, []float64{1, 1}, false, math.Inf(1)},
	}
	for _, tt := range tests {
		r := CheckBound(tt.got, tt.want, tt.bound)
		if r.OK != tt.ok || r.MaxRatio != tt.ratio {
			t.Errorf("%s: %+v, want ok %v ratio %v", tt.name, r, tt.ok, tt.ratio)
		}
	}
	if Gamma(1<<24) != math.Inf(1) || math.Abs(Gamma(2)-2*Unit/(1-2*Unit)) > 0 {
		t.Errorf("Gamma wrong: %v %v", Gamma(1<<24), Gamma(2))
	}
}
