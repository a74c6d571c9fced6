// Package cli implements the subcommands of cmd/neurolov, so that the main
// package stays a few lines: it parses flags and calls Run.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// ErrUsage reports a command line that does not parse; the message says
// what to type instead.
var ErrUsage = errors.New("usage")

type command struct {
	name, summary string
	run           func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"serve", "run the coordinator (HTTP API, worker WebSocket, metrics)", runServe},
		{"worker", "run a native worker that computes shards for a coordinator", runWorker},
		{"submit", "submit a job, show progress, download the result", runSubmit},
		{"demo", "coordinator + 4 CPU workers (one cheating) in one process: a matmul and an MLP job, verified", runDemo},
		{"bench", "print the figures: bench dispatch | verify | kernels | conns | browser", runBench},
	}
}

// Run runs the subcommand named by args[0].
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		if len(args) == 0 {
			return fmt.Errorf("%w: name a subcommand", ErrUsage)
		}
		return nil
	}
	for _, c := range commands() {
		if c.name == args[0] {
			err := c.run(ctx, args[1:], stdout, stderr)
			if errors.Is(err, flag.ErrHelp) {
				return nil // -h: the flag package has printed the flags
			}
			return err
		}
	}
	usage(stderr)
	return fmt.Errorf("%w: unknown subcommand %q", ErrUsage, args[0])
}

func usage(w io.Writer) {
	var b strings.Builder
	b.WriteString("neurolov: a verified compute network for AI work\n\nsubcommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(&b, "  %-8s %s\n", c.name, c.summary)
	}
	b.WriteString("\nrun `neurolov SUBCOMMAND -h` for its flags\n")
	_, _ = io.WriteString(w, b.String())
}

// parseFlags parses args into fs: -h is flag.ErrHelp (Run exits 0 on it),
// anything else that does not parse an ErrUsage.
func parseFlags(fs *flag.FlagSet, args []string) error {
	err := fs.Parse(args)
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUsage, err)
}

// newLogger returns a text logger at level (debug, info, warn, error) on
// w, or an ErrUsage for another level.
func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("%w: -log %q: want debug, info, warn or error", ErrUsage, level)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}
