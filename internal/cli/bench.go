package cli

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/neurolov/neurolov/e2e/browserbench"
)

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: neurolov bench dispatch | verify | kernels | conns | browser", ErrUsage)
	}
	switch args[0] {
	case "dispatch":
		return benchDispatch(ctx, args[1:], stdout, stderr)
	case "dispatch-fleet":
		return dispatchFleet(ctx, args[1:], stdout, stderr)
	case "browser":
		fs := flag.NewFlagSet("bench browser", flag.ContinueOnError)
		fs.SetOutput(stderr)
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		if fs.NArg() > 0 {
			return fmt.Errorf("%w: bench browser takes no arguments", ErrUsage)
		}
		return browserbench.Run(ctx, stdout)
	case "kernels":
		return benchKernels(ctx, args[1:], stdout, stderr)
	case "verify":
		return benchVerify(ctx, args[1:], stdout, stderr)
	case "conns":
		return benchConns(ctx, args[1:], stdout, stderr)
	case "conns-fleet":
		return connsFleet(ctx, args[1:], stdout, stderr)
	}
	return fmt.Errorf("%w: unknown benchmark %q (dispatch, verify, kernels, conns, browser)", ErrUsage, args[0])
}
