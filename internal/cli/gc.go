package cli

import (
	"os"
	"runtime/debug"
	"strconv"
)

// coordinatorGCPercent is the coordinator's garbage-collection target when
// the GOGC environment variable does not set one.
//
// A coordinator's heap is mostly long-lived job state — shards, their
// inputs, verified results — while each replica it dispatches leaves a
// couple of kilobytes of short-lived garbage (frames, messages, leases).
// Go's default target (100) re-marks all of that state for every live
// heap's worth of garbage; at 400 the collector does a quarter of that
// work, for a heap that may grow to five times the live state. Measured by
// bench dispatch on a 2-core VM, same session: 91k–99k replicas/s per
// core at 100, 119k–134k at 400 (see the README). Set GOGC to choose otherwise, and
// GOMEMLIMIT to bound memory (the collector then works harder near the
// limit rather than exceed it).
const coordinatorGCPercent = 400

// setCoordinatorGC applies coordinatorGCPercent unless GOGC is set, and
// returns the target in force (-1: collection off).
func setCoordinatorGC() int {
	if v, ok := os.LookupEnv("GOGC"); ok {
		if v == "off" {
			return -1
		}
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
		return 100 // the runtime ignores a GOGC it cannot parse
	}
	debug.SetGCPercent(coordinatorGCPercent)
	return coordinatorGCPercent
}

// setMemoryLimit sets the Go runtime's soft memory limit to seven eighths
// of the coordinator's memory budget (the rest for what the limit does not
// see at once: memory freed but not yet returned, thread stacks) unless
// the GOMEMLIMIT environment variable sets one: the collector then works
// harder near the budget rather than let garbage (refused frames,
// finished uploads) carry the process over it at coordinatorGCPercent.
func setMemoryLimit(budget int64) {
	if _, ok := os.LookupEnv("GOMEMLIMIT"); !ok {
		debug.SetMemoryLimit(budget - budget/8)
	}
}
