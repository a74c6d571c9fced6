// Package rusage reads CPU time from getrusage(2), so that benchmarks count
// CPU per core rather than wall time on noisy shared machines.
package rusage

import (
	"syscall"
	"time"
)

// Process returns the CPU time (user + system) this process has used.
func Process() time.Duration { return get(syscall.RUSAGE_SELF) }

// Thread returns the CPU time the calling OS thread has used; lock the
// goroutine to its thread (runtime.LockOSThread) around a measurement.
func Thread() time.Duration { return get(1 /* RUSAGE_THREAD */) }

// Children returns the CPU time of waited-for child processes.
func Children() time.Duration { return get(syscall.RUSAGE_CHILDREN) }

func get(who int) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(who, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
