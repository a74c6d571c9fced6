//go:build linux || darwin || freebsd || openbsd

package rusage

import (
	"time"

	"golang.org/x/sys/unix"
)

// thread reads the calling thread's CPU clock.
func thread() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}
