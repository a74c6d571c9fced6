package verify

import (
	"errors"
	"fmt"
	"math"

	"github.com/neurolov/neurolov/tensor"
)

// Comparison is the outcome of comparing two results of one shard.
type Comparison struct {
	// Agree is true when every element of every output is within its
	// tolerance.
	Agree bool
	// MaxRatio is the largest |a−b| / tol over all elements (+Inf when an
	// element is NaN or ±Inf); below 1 agrees. Useful for calibration.
	MaxRatio float64
	// Output, Row and Col locate the first element that disagrees (in
	// output order, then row-major); all -1 when the results agree or a
	// result has the wrong form.
	Output, Row, Col int
	// Reason says, for people, why the results disagree ("" when they
	// agree).
	Reason string
}

// Agree compares two results a and b of the same shard element by
// element: |a_ij − b_ij| ≤ tol_ij, where tol_ij (see ElementTolerance) is
// twice the float32 bound Safety·γ_K'·Σ_k|a_ik·b_kj| with the sum bounded
// by Cauchy–Schwarz from row and column norms, ‖A_i‖₂·‖B_·j‖₂ (+|bias_j|),
// plus a tiny term for flushed subnormals and, for mlp-infer layers after
// the first, the difference the replicas carried in from the layer before,
// ‖relu(Z^a_{l−1,i}) − relu(Z^b_{l−1,i})‖₂·‖W_l,·j‖₂ (relu is 1-Lipschitz).
// It costs O(mk + kn + mn) per layer.
//
// The error is non-nil (wrapping ErrUnverifiable) only when the shard
// itself cannot be checked; a result of the wrong form just disagrees.
// Canary results are judged by Agree against the canary's expected
// outputs.
func (v *Verifier) Agree(kernel string, inputs, a, b []*tensor.Tensor) (Comparison, error) {
	cmp := Comparison{Agree: true, Output: -1, Row: -1, Col: -1}
	var err error
	if v.la, err = appendLayers(v.la[:0], kernel, inputs, a); err != nil {
		return wrongForm(cmp, "result a", err)
	}
	if v.lb, err = appendLayers(v.lb[:0], kernel, inputs, b); err != nil {
		return wrongForm(cmp, "result b", err)
	}
	for li := range v.la {
		if err := v.agreeLayer(&cmp, &v.la[li], &v.lb[li], li == 0, li+1 < len(v.la)); err != nil {
			return Comparison{}, err
		}
	}
	return cmp, nil
}

// wrongForm reports a result of the wrong form as a disagreement, or an
// unverifiable shard as an error.
func wrongForm(cmp Comparison, which string, err error) (Comparison, error) {
	if errors.Is(err, ErrUnverifiable) {
		return Comparison{}, err
	}
	cmp.Agree, cmp.MaxRatio = false, math.Inf(1)
	cmp.Reason = which + ": " + err.Error()
	return cmp, nil
}

// agreeLayer compares layer la of replica a with lb of replica b. On the
// first layer it computes the left operand's row norms itself (both
// replicas share it); on later layers it uses the ones the layer before
// left in v.ha, v.hb and v.dh. When next is set it leaves there the row
// norms of relu of this layer's outputs, for the next layer. It fails
// only when the inputs hold NaN or ±Inf.
func (v *Verifier) agreeLayer(cmp *Comparison, la, lb *layer, first, next bool) error {
	m, k, n := la.m, la.k, la.n
	pt := newPairTerms(k, la.terms(), n)
	w := grow(&v.w, n)
	clear(w)
	for kk := range k {
		for j, x := range la.b[kk*n : (kk+1)*n] {
			f := float64(x)
			w[j] += f * f
		}
	}
	colConst := grow(&v.colConst, n)
	for j := range w {
		w[j] = math.Sqrt(w[j])
		colConst[j] = pt.col(w[j], la.biasAt(j))
	}
	ha, hb, dh := grow(&v.ha, m), grow(&v.hb, m), grow(&v.dh, m)
	if first {
		for i := range m {
			// The first layer's left operand is an input: never relu.
			ha[i] = math.Sqrt(sumSquares(la.a[i*k : (i+1)*k]))
			hb[i], dh[i] = ha[i], 0
		}
		if !allFinite(ha) {
			return inputsError(la.out)
		}
	}
	if !allFinite(colConst) {
		return inputsError(la.out)
	}
	worst := cmp.MaxRatio
	for i := range m {
		rowConst, rowFactor := pt.row(ha[i], hb[i], dh[i])
		ra, rb := la.c[i*n:(i+1)*n], lb.c[i*n:(i+1)*n]
		rb = rb[:len(ra)]
		w, colConst := w[:len(ra)], colConst[:len(ra)]
		for j, xa := range ra {
			tol := rowConst + colConst[j] + rowFactor*w[j]
			// Below worst·tol (worst < 1 while the replicas agree) is
			// the common case; the rest, NaN included, is noted.
			if d := math.Abs(float64(xa) - float64(rb[j])); !(d <= worst*tol) {
				worst = cmp.note(la.out, i, j, xa, rb[j], d, tol, worst)
			}
		}
		if next {
			sa, sb, sd := reluNorms(ra, rb)
			ha[i], hb[i], dh[i] = math.Sqrt(sa), math.Sqrt(sb), math.Sqrt(sd)
		}
	}
	cmp.MaxRatio = worst
	return nil
}

// allFinite reports whether no element of xs is NaN or ±Inf.
func allFinite(xs []float64) bool {
	for _, x := range xs {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return false
		}
	}
	return true
}

// note records an element whose ratio d/tol exceeds worst or that
// disagrees, and returns the new largest ratio (+Inf once anything is
// NaN or ±Inf).
func (cmp *Comparison) note(out, i, j int, a, b float32, d, tol, worst float64) float64 {
	r := d / tol
	finite := !math.IsNaN(r) && !math.IsInf(d, 0)
	if !(d <= tol) && cmp.Agree {
		cmp.Agree, cmp.Output, cmp.Row, cmp.Col = false, out, i, j
		if finite {
			cmp.Reason = fmt.Sprintf("output %d element (%d, %d): %.9g and %.9g differ by %.3g, %.3g× the tolerance %.3g",
				out, i, j, a, b, d, r, tol)
		} else {
			cmp.Reason = fmt.Sprintf("output %d element (%d, %d): %v and %v, not both finite", out, i, j, a, b)
		}
	}
	if !finite {
		return math.Inf(1)
	}
	return max(worst, r)
}

// sumSquares returns Σ x_j².
func sumSquares(x []float32) float64 {
	var s0, s1, s2, s3 float64
	j := 0
	for ; j+4 <= len(x); j += 4 {
		x4 := x[j : j+4 : j+4]
		f0, f1, f2, f3 := float64(x4[0]), float64(x4[1]), float64(x4[2]), float64(x4[3])
		s0 += f0 * f0
		s1 += f1 * f1
		s2 += f2 * f2
		s3 += f3 * f3
	}
	for ; j < len(x); j++ {
		f := float64(x[j])
		s0 += f * f
	}
	return (s0 + s1) + (s2 + s3)
}

// reluNorms returns Σ relu(a_j)², Σ relu(b_j)² and Σ (relu(a_j) −
// relu(b_j))².
func reluNorms(a, b []float32) (sa, sb, sd float64) {
	b = b[:len(a)]
	var sa1, sb1, sd1 float64
	j := 0
	for ; j+2 <= len(a); j += 2 {
		a0, a1, b0, b1 := relu(a[j]), relu(a[j+1]), relu(b[j]), relu(b[j+1])
		sa += a0 * a0
		sa1 += a1 * a1
		sb += b0 * b0
		sb1 += b1 * b1
		sd += (a0 - b0) * (a0 - b0)
		sd1 += (a1 - b1) * (a1 - b1)
	}
	if j < len(a) {
		a0, b0 := relu(a[j]), relu(b[j])
		sa += a0 * a0
		sb += b0 * b0
		sd += (a0 - b0) * (a0 - b0)
	}
	return sa + sa1, sb + sb1, sd + sd1
}
