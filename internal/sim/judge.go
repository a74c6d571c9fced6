package sim

import (
	"fmt"
	"math"

	"github.com/neurolov/neurolov/coordinator/verify"
	"github.com/neurolov/neurolov/tensor"
)

// Judgement compares an accepted result with the CPU reference.
type Judgement struct {
	// Wrong is true when the result disagrees with the reference beyond the
	// replica tolerance: a cheat that got through.
	Wrong bool
	// AboveFloor is true when the result carries an error Freivalds' check
	// documents it always catches: a single element, or a same-sign error
	// pattern in one row, larger than that row's FreivaldsFloor.
	AboveFloor bool
	Detail     string
}

// Judge compares outputs (accepted for a shard with inputs) against the
// reference want.
func Judge(v *verify.Verifier, kernel string, inputs, outputs, want []*tensor.Tensor) Judgement {
	cmp, err := v.Agree(kernel, inputs, outputs, want)
	if err != nil {
		return Judgement{Wrong: true, Detail: err.Error()}
	}
	if cmp.Agree {
		return Judgement{}
	}
	j := Judgement{Wrong: true, Detail: cmp.Reason}
	for out := range outputs {
		o, w := outputs[out], want[out]
		n := o.Cols()
		for i := 0; i < o.Rows(); i++ {
			var pos, neg, maxAbs float64
			for c := 0; c < n; c++ {
				e := float64(o.Data[i*n+c]) - float64(w.Data[i*n+c])
				if e > 0 {
					pos += e
				} else {
					neg -= e
				}
				maxAbs = math.Max(maxAbs, math.Abs(e))
			}
			if maxAbs == 0 {
				continue
			}
			floor, err := verify.FreivaldsFloor(kernel, inputs, outputs, out, i)
			if err != nil {
				continue
			}
			// A pattern is same-sign when the other sign carries under 1%
			// of it (honest rounding noise).
			sameSign := math.Min(pos, neg) < 0.01*math.Max(pos, neg)
			if maxAbs > floor || (sameSign && math.Max(pos, neg) > floor) {
				j.AboveFloor = true
				j.Detail = fmt.Sprintf("output %d row %d: error %.3g (max element %.3g) above the Freivalds floor %.3g", out, i, math.Max(pos, neg), maxAbs, floor)
				return j
			}
		}
	}
	return j
}
