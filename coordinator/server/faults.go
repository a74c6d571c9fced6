package server

import (
	"sync/atomic"

	"github.com/neurolov/neurolov/tensor"
)

// faultHook, when a test sets one (export_test.go), runs at the start of
// each stage the server recovers from — "check", "plan" and "assemble" —
// with the kernel and inputs at hand, and may panic there. Production
// never sets it.
type faultHook func(stage, kernel string, inputs []*tensor.Tensor)

// faults holds a test's fault hook; the zero value, like a nil *faults,
// runs none.
type faults struct{ hook atomic.Pointer[faultHook] }

// at runs the hook for stage, if one is set.
func (f *faults) at(stage, kernel string, inputs []*tensor.Tensor) {
	if f == nil {
		return
	}
	if h := f.hook.Load(); h != nil {
		(*h)(stage, kernel, inputs)
	}
}
