package cli

import (
	"context"
	"io"

	"github.com/neurolov/neurolov/client/submitcli"
)

func runSubmit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return submitcli.RunSubmit(ctx, args, stdout, stderr)
}
