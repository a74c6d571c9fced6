//go:build unix

package cli

import "syscall"

// raiseFileLimit raises this process's open-file limit to its hard limit
// (bench conns: 10,000 connections need as many descriptors on each side).
func raiseFileLimit() error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	lim.Cur = lim.Max
	return syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
}
