package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"path/filepath"

	"github.com/neurolov/neurolov/identity"
	"github.com/neurolov/neurolov/worker"
)

func runWorker(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("coordinator", "ws://127.0.0.1:8080/v1/worker", "coordinator worker endpoint")
	keyFile := fs.String("key-file", filepath.Join(defaultDataDir(), "worker.key"), "worker identity key (created if missing); its address is paid")
	backendName := fs.String("backend", "auto", "compute backend: auto, cpu (pure Go), blas (OpenBLAS)")
	parallel := fs.Int("parallel", 1, "shards computed at once")
	logLevel := fs.String("log", "info", "log level")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", ErrUsage, err)
	}
	key, err := identity.LoadOrCreateKey(*keyFile)
	if err != nil {
		return err
	}
	backend, err := pickBackend(*backendName)
	if err != nil {
		return err
	}
	gflops, err := worker.Measure(ctx, backend)
	if err != nil {
		return fmt.Errorf("measuring backend %s: %w", backend.Name(), err)
	}
	signer := identity.NewKeySigner(key)
	fmt.Fprintf(stdout, "worker %s: backend %s (%s), %.1f GFLOP/s measured; connecting to %s\n",
		identity.FormatAddress(signer.Address()), backend.Name(), backend.Device(), gflops, *url)
	w := worker.New(worker.Config{
		URL: *url, Signer: signer, Backend: backend, GFLOPS: gflops, Parallel: *parallel,
		Logger: newLogger(stderr, *logLevel),
	})
	return w.Run(ctx)
}
