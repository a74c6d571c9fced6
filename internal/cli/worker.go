package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"path/filepath"

	"github.com/neurolov/neurolov/identity"
	"github.com/neurolov/neurolov/internal/backends"
	"github.com/neurolov/neurolov/shaders/gpu"
	"github.com/neurolov/neurolov/worker"
)

func runWorker(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("coordinator", "ws://127.0.0.1:8080/v1/worker", "coordinator worker endpoint")
	keyFile := fs.String("key-file", filepath.Join(defaultDataDir(), "worker.key"), "worker identity key (created if missing); its address is paid")
	backendName := fs.String("backend", "auto", "compute backend: auto (OpenBLAS or pure Go), cpu (pure Go), blas (OpenBLAS), gpu (WebGPU via wgpu-native)")
	software := fs.Bool("software-gpu", false, "with -backend gpu: prefer a software adapter (lavapipe) even when a real GPU exists")
	adapter := fs.String("adapter", "", "with -backend gpu: use the adapter whose name contains this")
	parallel := fs.Int("parallel", 1, "shards computed at once")
	logLevel := fs.String("log", "info", "log level")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", ErrUsage, err)
	}
	key, err := identity.LoadOrCreateKey(*keyFile)
	if err != nil {
		return err
	}
	opts := gpu.Options{Adapter: *adapter}
	if *software {
		opts.Software = gpu.SoftwarePrefer
	}
	backend, err := backends.Open(*backendName, opts)
	if err != nil {
		return err
	}
	if c, ok := backend.(io.Closer); ok {
		defer c.Close()
	}
	gflops, err := worker.Measure(ctx, backend)
	if err != nil {
		return fmt.Errorf("measuring backend %s: %w", backend.Name(), err)
	}
	var maxBuffer uint64
	if g, ok := backend.(*backends.GPU); ok {
		maxBuffer = g.Info().MaxStorageBinding
	}
	signer := identity.NewKeySigner(key)
	fmt.Fprintf(stdout, "worker %s: backend %s (%s), %.1f GFLOP/s measured; connecting to %s\n",
		identity.FormatAddress(signer.Address()), backend.Name(), backend.Device(), gflops, *url)
	w := worker.New(worker.Config{
		URL: *url, Signer: signer, Backend: backend, GFLOPS: gflops, Parallel: *parallel, MaxBufferBytes: maxBuffer,
		Logger: newLogger(stderr, *logLevel),
	})
	return w.Run(ctx)
}
