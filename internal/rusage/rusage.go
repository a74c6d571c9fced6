// Package rusage reads CPU time, so that benchmarks count CPU per core
// rather than wall time on noisy shared machines: getrusage(2) for the
// process and its children, and the thread's CPU clock for one thread.
package rusage

import (
	"syscall"
	"time"
)

// Process returns the CPU time (user + system) this process has used.
func Process() time.Duration { return get(syscall.RUSAGE_SELF) }

// Thread returns the CPU time the calling OS thread has used; lock the
// goroutine to its thread (runtime.LockOSThread) around a measurement.
//
// It reads clock_gettime(CLOCK_THREAD_CPUTIME_ID) where there is one,
// not getrusage(RUSAGE_THREAD): Linux splits a thread's runtime into user
// and system time by the ticks it sampled and keeps both monotonic, so
// the sum getrusage reports lags and then catches up in jumps. A
// millisecond of work measured that way read anywhere from 2µs to 922µs,
// which skews a total summed over many short intervals (one per check)
// by whatever the jumps fell into; the thread clock is exact to the
// nanosecond. Over one long interval (Process, Children) the lag is a
// few ticks and does not matter.
func Thread() time.Duration { return thread() }

// Children returns the CPU time of waited-for child processes.
func Children() time.Duration { return get(syscall.RUSAGE_CHILDREN) }

func get(who int) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(who, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
