//go:build !(linux || darwin || freebsd || openbsd)

package rusage

import "time"

// thread falls back to the process's CPU time where there is no thread
// CPU clock: a measurement then counts every thread.
func thread() time.Duration { return Process() }
