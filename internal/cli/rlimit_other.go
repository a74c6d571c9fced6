//go:build !unix

package cli

// raiseFileLimit does nothing where there is no RLIMIT_NOFILE.
func raiseFileLimit() error { return nil }
