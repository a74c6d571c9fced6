package rusage_test

import (
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/neurolov/neurolov/internal/rusage"
)

var sink float64

// spin does a fixed amount of arithmetic, about a millisecond's worth.
func spin() {
	x := sink
	for i := range 1_000_000 {
		x += float64(i) * 1.0000001
	}
	sink = x
}

// TestThreadMeasuresShortIntervals checks that Thread times a millisecond
// of fixed work consistently: getrusage's thread times, which lag and
// catch up in jumps, read such intervals anywhere from a few microseconds
// to most of a millisecond.
func TestThreadMeasuresShortIntervals(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	spin() // warm up
	var d []time.Duration
	for range 25 {
		t0 := rusage.Thread()
		spin()
		d = append(d, rusage.Thread()-t0)
	}
	slices.Sort(d)
	median := d[len(d)/2]
	if median <= 0 || d[0] < median/3 || d[len(d)-1] > 3*median {
		t.Errorf("the same work measured %v (sorted): Thread does not time short intervals", d)
	}
}

// TestProcessCountsThreads checks that Process grows by at least the
// work of the calling thread.
func TestProcessCountsThreads(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	p0, t0 := rusage.Process(), rusage.Thread()
	for range 50 { // about 50 ms: long beside getrusage's lag of a tick or two
		spin()
	}
	if dt, dp := rusage.Thread()-t0, rusage.Process()-p0; dt <= 0 || dp < dt/2 {
		t.Errorf("thread %v, process %v: Process missed the thread's work", dt, dp)
	}
}
