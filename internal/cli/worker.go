package cli

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/coder/websocket"

	"github.com/neurolov/neurolov/identity"
	"github.com/neurolov/neurolov/internal/backends"
	"github.com/neurolov/neurolov/shaders/gpu"
	"github.com/neurolov/neurolov/worker"
)

func runWorker(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("coordinator", "ws://127.0.0.1:8080/v1/worker", "coordinator worker endpoint (wss://… for a coordinator serving TLS)")
	caFile := fs.String("ca-file", "", "PEM certificates to trust for a wss:// coordinator, beside the system's (a self-signed -tls-cert, say)")
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
	dial, err := dialTrusting(*caFile)
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
		URL: *url, DialOptions: dial, Signer: signer, Backend: backend, GFLOPS: gflops, Parallel: *parallel, MaxBufferBytes: maxBuffer,
		Logger: log,
	})
	return w.Run(ctx)
}

// dialTrusting returns dial options whose TLS trusts the system's roots
// and the PEM certificates in caFile; nil without a file.
func dialTrusting(caFile string) (*websocket.DialOptions, error) {
	if caFile == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("worker: reading -ca-file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%w: -ca-file %s holds no PEM certificate", ErrUsage, caFile)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	return &websocket.DialOptions{HTTPClient: &http.Client{Transport: tr}}, nil
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
