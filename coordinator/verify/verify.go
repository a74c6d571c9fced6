package verify

import (
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	mrand "math/rand/v2"

	"github.com/neurolov/neurolov/shaders"
	"github.com/neurolov/neurolov/tensor"
)

// Errors. Check reports a worker's wrong result in a Verdict, not as an
// error; these sentinels say what kind of problem an error or
// Verdict.Err is.
var (
	// ErrUnverifiable: the shard itself cannot be verified — an unknown
	// kernel, inputs that do not fit it or hold NaN or ±Inf, or a product
	// large enough that a correct float32 result may overflow. The worker
	// is not at fault; the job's inputs are.
	ErrUnverifiable = errors.New("verify: shard cannot be verified")
	// ErrResult: a result has the wrong number of outputs, or an output
	// the wrong shape or size.
	ErrResult = errors.New("verify: result does not fit the kernel")
	// ErrIndex: an element index outside the output.
	ErrIndex = errors.New("verify: element index out of range")
	// ErrCanary: the shard cannot be disguised as a canary (every
	// permutation of it looks the same, e.g. a batch of one row).
	ErrCanary = errors.New("verify: shard cannot be disguised as a canary")
)

// Methods name the layer of verification a Verdict comes from.
const (
	MethodShapes    = "shapes"         // output count, shapes and sizes
	MethodFinite    = "finite"         // NaN and ±Inf in the outputs
	MethodFreivalds = "freivalds"      // Freivalds' check of each product
	MethodSpot      = "spot"           // elements recomputed exactly
	MethodRecompute = "recompute"      // a row over Freivalds' probabilistic bound, recomputed exactly
	MethodCheck     = "freivalds+spot" // everything Check does, all passed
	MethodInputs    = "inputs"         // the shard cannot be verified (Err set)
)

// Verdict is the judgement of one result.
type Verdict struct {
	// OK is true when the result passed.
	OK bool
	// Reason says, for people, why the result failed ("" when OK).
	Reason string
	// Method is the layer that decided: one of the Method constants.
	Method string
	// Ratio is the largest observed error divided by its threshold over
	// every check that ran: below 1 passes. Useful for calibration.
	Ratio float64
	// Err is non-nil, wrapping ErrUnverifiable, when the shard itself
	// cannot be verified; OK is then false but the worker is not to blame.
	Err error
	// Recomputed counts the rows that went over Freivalds' probabilistic
	// bound (but not its worst-case one) and were recomputed exactly — a
	// secret uniform random sample of them when they outnumber the
	// budget — and Unchecked those the sample left: they passed on the
	// worst-case bound alone, so a result with Unchecked > 0 is judged
	// no better than before the probabilistic bound, and its caller
	// should not accept it without a replica (the scheduler does not). Honest results leave both at 0 except on data whose
	// roundings repeat from element to element (see the package
	// documentation).
	Recomputed, Unchecked int
}

// Verifier checks results against the float32 error analysis of their
// kernel. It keeps scratch buffers between calls, and what it computed
// from the last few input tensors it saw (see ForgetInputs), so that
// checking a result allocates nothing in steady state, except to
// describe a failure or to remember a new input tensor. The zero value is
// ready to use. A Verifier is not safe for concurrent use: give each
// goroutine its own.
type Verifier struct {
	la, lb []layer // the shard's layers (for Agree: replica a, replica b)

	// Freivalds' vectors: r, B·r, and per row of the result A·(B·r),
	// |A|·s, ‖A_i‖₂² and C·r; the rows over the probabilistic bound, and
	// one row recomputed exactly (exactRow).
	r, br, pred, predAbs, predSq, cr []float64
	flagged                          []flaggedRow
	rowVal, rowAbs, rowSumB          []float64
	// Confirm's rows ranked by residual, and a row of f(A) (and its
	// absolute values) for exactRowCols.
	ranked      []flaggedRow
	rowX, rowXA []float64
	// Agree's row and column terms.
	ha, hb, dh, colConst []float64

	inputs statsCache // quantities of input matrices (cache.go)

	// CheckAll's batch (batch.go): the layers of every item, where each
	// item's lie, where each layer's r and B·r lie in rs and brs, and
	// the layers in order of their B.
	batch   []layer
	items   []batchItem
	vecs    []batchVec
	order   []int32
	rs, brs []float64
}

// grow returns (*buf)[:n], growing *buf when it is too short.
func grow(buf *[]float64, n int) []float64 {
	if cap(*buf) < n {
		*buf = make([]float64, n)
	}
	return (*buf)[:n]
}

// NewSecretRand returns a random source for production checks: ChaCha8
// seeded from crypto/rand. Freivalds draws each shard's vector from it
// after the shard's result has arrived; the vector is used for that
// result only, never reused and never sent, so a worker cannot shape its
// errors to pass. Like the Verifier, the source is not safe for
// concurrent use.
func NewSecretRand() *mrand.Rand {
	var seed [32]byte
	_, _ = rand.Read(seed[:]) // never fails (it crashes the program instead)
	return mrand.New(mrand.NewChaCha8(seed))
}

// CheckShapes reports whether inputs fit kernel (an error wrapping
// ErrUnverifiable) and outputs have the count, shapes and sizes a correct
// result has (an error wrapping ErrResult).
func CheckShapes(kernel string, inputs, outputs []*tensor.Tensor) error {
	var buf [4]layer
	_, err := appendLayers(buf[:0], kernel, inputs, outputs)
	return err
}

// layers checks the shard and fills v.la; a failed check is returned as
// a Verdict.
func (v *Verifier) layers(kernel string, inputs, outputs []*tensor.Tensor) ([]layer, *Verdict) {
	var err error
	clear(v.la) // hold no tensors of an earlier shard
	v.la, err = appendLayers(v.la[:0], kernel, inputs, outputs)
	if err != nil {
		vd := errVerdict(err)
		return nil, &vd
	}
	return v.la, nil
}

// errVerdict turns a shape error into a failed Verdict.
func errVerdict(err error) Verdict {
	if errors.Is(err, ErrUnverifiable) {
		return Verdict{Reason: err.Error(), Method: MethodInputs, Err: err}
	}
	return Verdict{Reason: err.Error(), Method: MethodShapes}
}

// Check runs every self-check on one result of kernel: shapes and sizes,
// then Freivalds' check of each linear product (which also catches NaN and
// ±Inf), then spots elements recomputed exactly (none when spots ≤ 0;
// the Method of a pass is then MethodFreivalds rather than MethodCheck).
// rng must not be nil and must be a secret source (NewSecretRand) in
// production; it is only read after the result has arrived. Check never
// rejects a correct float32 result computed in any summation order.
func (v *Verifier) Check(kernel string, inputs, outputs []*tensor.Tensor, rng *mrand.Rand, spots int) Verdict {
	ls, bad := v.layers(kernel, inputs, outputs)
	if bad != nil {
		return *bad
	}
	return v.withSpots(ls, v.freivalds(ls, rng), rng, spots)
}

// withSpots finishes Check of ls after Freivalds' verdict fv: spots spot
// checks when fv passed, their worst ratio combined with fv's.
func (v *Verifier) withSpots(ls []layer, fv Verdict, rng *mrand.Rand, spots int) Verdict {
	if !fv.OK || spots <= 0 {
		return fv
	}
	sv := v.spotCheck(ls, rng, spots)
	sv.Ratio = max(sv.Ratio, fv.Ratio)
	sv.Recomputed, sv.Unchecked = fv.Recomputed, fv.Unchecked
	if sv.OK {
		sv.Method = MethodCheck
	}
	return sv
}

// diagnose explains a failed check of element (i, j) of l, or of row i
// when j < 0: a non-finite output element is the worker's fault unless a
// correct result may overflow float32 there, and non-finite inputs make
// the shard unverifiable.
func diagnose(l *layer, i, j int) (Verdict, bool) {
	row := l.c[i*l.n : (i+1)*l.n]
	if j < 0 {
		for jj, x := range row {
			if isNonFinite(x) {
				j = jj
				break
			}
		}
	}
	if j < 0 || !isNonFinite(row[j]) {
		return Verdict{}, false
	}
	e := l.exact(i, j)
	if math.IsNaN(e.val) || math.IsInf(e.abs, 0) {
		return errVerdict(inputsError(l.out)), true
	}
	if e.abs*(1+2*Safety*shaders.Gamma(l.terms())) >= math.MaxFloat32 {
		return errVerdict(fmt.Errorf("%w: output %d element (%d, %d) may overflow float32 (Σ|a·b| = %g): scale the job's inputs down", ErrUnverifiable, l.out, i, j, e.abs)), true
	}
	return Verdict{
		Reason: fmt.Sprintf("output %d element (%d, %d) is %v, exact value %g", l.out, i, j, row[j], e.val),
		Method: MethodFinite,
		Ratio:  math.Inf(1),
	}, true
}

func isNonFinite(x float32) bool {
	return math.IsNaN(float64(x)) || math.IsInf(float64(x), 0)
}

// inputsError reports inputs holding NaN or ±Inf, found while checking
// output out.
func inputsError(out int) error {
	return fmt.Errorf("%w: the inputs of output %d hold NaN or ±Inf", ErrUnverifiable, out)
}
