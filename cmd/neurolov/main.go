// Command neurolov is the one binary of the Neurolov compute network:
// serve (the coordinator), worker (a native worker), submit (a job from the
// command line), demo (everything in one process) and bench (the figures).
// Run `neurolov help` for usage.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/neurolov/neurolov/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "neurolov:", err)
		os.Exit(1)
	}
}
