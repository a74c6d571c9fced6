package browser

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/neurolov/neurolov/shaders"
	"github.com/neurolov/neurolov/tensor"
)

// fakeBackend is the Go CPU kernel under another name, optionally slowed
// down (to steer the measurement) and failing with a lost device after a
// number of runs.
type fakeBackend struct {
	name     string
	delay    time.Duration
	loseAt   int64 // the run that finds the device lost (0: never)
	runs     atomic.Int64
	closed   atomic.Bool
	inFlight atomic.Int64
}

func (f *fakeBackend) Name() string   { return f.name }
func (f *fakeBackend) Device() string { return "fake " + f.name }
func (f *fakeBackend) Adapter() Adapter {
	return Adapter{Vendor: "fake", Description: "fake GPU", IsFallbackAdapter: true}
}
func (f *fakeBackend) Close() error { f.closed.Store(true); return nil }

func (f *fakeBackend) Run(ctx context.Context, kernel string, in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	f.inFlight.Add(1)
	defer f.inFlight.Add(-1)
	n := f.runs.Add(1)
	if f.loseAt > 0 && n >= f.loseAt {
		return nil, fmt.Errorf("%w: fake device gone", ErrDeviceLost)
	}
	if f.delay > 0 {
		time.Sleep(f.delay) // simulated compute time, not synchronisation
	}
	return shaders.Reference(kernel, in)
}
