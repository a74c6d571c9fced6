package cli

import (
	"context"
	"crypto/ecdsa"
	"flag"
	"fmt"
	"io"

	"github.com/neurolov/neurolov/identity"
	"github.com/neurolov/neurolov/internal/backends"
	"github.com/neurolov/neurolov/shaders/gpu"
	"github.com/neurolov/neurolov/worker"
)

func runWorker(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("coordinator", "ws://127.0.0.1:8080/v1/worker", "coordinator worker endpoint")
	keyFile := fs.String("key-file", "", "worker identity key (created if missing); its address is paid. Default: the first of worker.key, worker-2.key, … in "+defaultDataDir()+" that no other running worker holds, so that each worker on a machine is an identity of its own")
	backendName := fs.String("backend", "auto", "compute backend: auto (OpenBLAS or pure Go), cpu (pure Go), blas (OpenBLAS), gpu (WebGPU via wgpu-native)")
	software := fs.Bool("software-gpu", false, "with -backend gpu: prefer a software adapter (lavapipe) even when a real GPU exists")
	adapter := fs.String("adapter", "", "with -backend gpu: use the adapter whose name contains this")
	parallel := fs.Int("parallel", 1, "shards computed at once")
	logLevel := fs.String("log", "info", "log level")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log, err := newLogger(stderr, *logLevel)
	if err != nil {
		return err
	}
	key, keyPath, release, err := workerKey(*keyFile)
	if err != nil {
		return err
	}
	defer release() // holds the claim (and keeps its lock file open) while the worker runs
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
	fmt.Fprintf(stdout, "worker %s (key %s): backend %s (%s), %.1f GFLOP/s measured; connecting to %s\n",
		identity.FormatAddress(signer.Address()), keyPath, backend.Name(), backend.Device(), gflops, *url)
	w := worker.New(worker.Config{
		URL: *url, Signer: signer, Backend: backend, GFLOPS: gflops, Parallel: *parallel, MaxBufferBytes: maxBuffer,
		Logger: log,
	})
	return w.Run(ctx)
}

// workerKey loads the key at path, or — with no path — claims a key file
// of its own in the data directory until release (identity.ClaimKey).
func workerKey(path string) (key *ecdsa.PrivateKey, used string, release func(), err error) {
	if path != "" {
		key, err := identity.LoadOrCreateKey(path)
		return key, path, func() {}, err
	}
	return identity.ClaimKey(defaultDataDir(), "worker")
}
