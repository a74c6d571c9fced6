package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/neurolov/neurolov/coordinator/server"
	"github.com/neurolov/neurolov/coordinator/store"
	"github.com/neurolov/neurolov/identity"
	"github.com/neurolov/neurolov/web"
)

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8080", "listen address (host:port)")
	dataDir := fs.String("data-dir", defaultDataDir(), "folder for the API key files, api-key and admin-key (created if missing)")
	domain := fs.String("domain", "", "domain workers sign for (default: the listen address)")
	window := fs.Int("window", 8, "leases granted to each worker (prefetch)")
	logLevel := fs.String("log", "info", "log level: debug, info, warn, error")
	maxJobBytes := fs.Int64("max-job-bytes", 0, "largest job upload accepted, in bytes (default, and at most, an eighth of -memory-budget: what one API key may hold of the uploads share)")
	memoryBudget := fs.Int64("memory-budget", 4<<30, "memory, in bytes, for what peers send at once (frames 1/8, chunked outputs 1/4, uploads 1/4, results 1/4; over it they are refused) and the Go soft memory limit")
	tlsCert := fs.String("tls-cert", "", "PEM certificate (chain) to serve HTTPS and wss with; needs -tls-key. Browsers give WebGPU and cross-origin isolation only to a secure context: HTTPS, or localhost")
	tlsKey := fs.String("tls-key", "", "PEM private key of -tls-cert")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *maxJobBytes < 0 {
		return fmt.Errorf("%w: -max-job-bytes %d: want a positive size (or 0: the default)", ErrUsage, *maxJobBytes)
	}
	if *memoryBudget < 64<<20 {
		return fmt.Errorf("%w: -memory-budget %d: want at least 64 MiB", ErrUsage, *memoryBudget)
	}
	setMemoryLimit(*memoryBudget)
	tlsConfig, err := loadTLS(*tlsCert, *tlsKey)
	if err != nil {
		return err
	}
	log, err := newLogger(stderr, *logLevel)
	if err != nil {
		return err
	}
	st := store.NewMemory()
	defer st.Close()
	if err := addServeKeys(ctx, st, *dataDir, stdout); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	if *domain == "" {
		*domain = ln.Addr().String()
	}
	srv := server.New(server.Config{Domain: *domain, TLS: tlsConfig != nil, Window: *window, MaxJobBytes: *maxJobBytes, MemoryBudget: *memoryBudget, Logger: log, Pages: web.Handler()}, st)
	scheme, wsScheme := "https", "wss"
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
	} else {
		scheme, wsScheme = "http", "ws"
		if !isLoopback(ln.Addr()) {
			fmt.Fprintf(stderr, "warning: serving plain HTTP on %s, which is not a loopback address: browsers give WebGPU and cross-origin isolation only to a secure context, so tabs that open this page by any name but localhost get neither (no GPU, one CPU thread). Serve HTTPS with -tls-cert FILE -tls-key FILE (or put a TLS-terminating proxy in front)\n", ln.Addr())
		}
	}
	a := ln.Addr()
	fmt.Fprintf(stdout, "coordinator on %s://%s (volunteer page: %s://%s/, workers: %s://%s/v1/worker); the memory store starts empty on every restart\n", scheme, a, scheme, a, wsScheme, a)
	return serveUntilDone(ctx, srv, ln)
}

// loadTLS loads the certificate and key serve was given: both or neither
// (nil, plain HTTP). It serves HTTP/1.1 only: the worker WebSocket needs
// it (coder/websocket upgrades HTTP/1.1 connections), and a browser opens
// WebSockets over HTTP/1.1 when the server offers no HTTP/2.
func loadTLS(certFile, keyFile string) (*tls.Config, error) {
	switch {
	case certFile == "" && keyFile == "":
		return nil, nil
	case keyFile == "":
		return nil, fmt.Errorf("%w: -tls-cert %s needs its key: add -tls-key FILE", ErrUsage, certFile)
	case certFile == "":
		return nil, fmt.Errorf("%w: -tls-key %s needs its certificate: add -tls-cert FILE", ErrUsage, keyFile)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("serve: loading the TLS certificate %s and key %s: %w", certFile, keyFile, err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}, MinVersion: tls.VersionTLS12}, nil
}

// isLoopback reports whether addr is a loopback IP address (127.0.0.0/8,
// ::1): the one place a browser treats plain HTTP as a secure context
// (localhost).
func isLoopback(addr net.Addr) bool {
	host, _, err := net.SplitHostPort(addr.String())
	ip := net.ParseIP(host)
	return err == nil && ip != nil && ip.IsLoopback()
}

// addServeKeys registers the two keys serve keeps in dataDir, creating
// them on first start: api-key submits jobs and reads its own, admin-key
// reads, lists and cancels every job.
func addServeKeys(ctx context.Context, st store.Store, dataDir string, stdout io.Writer) error {
	for _, k := range []struct {
		file, name, what string
		admin            bool
	}{
		{"api-key", "default", "an API key", false},
		{"admin-key", "admin", "an admin key (reads and cancels every job)", true},
	} {
		path := filepath.Join(dataDir, k.file)
		key, created, err := loadOrCreateAPIKey(path)
		if err != nil {
			return err
		}
		if err := st.AddAPIKey(ctx, store.APIKey{Name: k.name, Hash: store.HashAPIKey(key), Admin: k.admin}); err != nil {
			return fmt.Errorf("serve: registering %s: %w (api-key and admin-key must differ)", path, err)
		}
		switch {
		case created && !k.admin:
			fmt.Fprintf(stdout, "created an API key in %s (submit with: neurolov submit -key-file %s ...)\n", path, path)
		case created:
			fmt.Fprintf(stdout, "created %s in %s\n", k.what, path)
		default:
			fmt.Fprintf(stdout, "%s: %s\n", k.file, path)
		}
	}
	return nil
}

// serveUntilDone runs srv's loop and HTTP server on ln until ctx ends.
func serveUntilDone(ctx context.Context, srv *server.Server, ln net.Listener) error {
	setCoordinatorGC()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	loopDone := make(chan error, 1)
	go func() { loopDone <- srv.Run(ctx) }()
	hs := srv.HTTPServer()
	httpDone := make(chan error, 1)
	go func() { httpDone <- hs.Serve(ln) }()
	select {
	case <-ctx.Done():
	case err := <-httpDone:
		cancel()
		<-loopDone
		return err
	}
	shut, c := context.WithTimeout(context.Background(), 3*time.Second)
	defer c()
	_ = hs.Shutdown(shut)
	<-loopDone
	if err := <-httpDone; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func defaultDataDir() string {
	if d, err := os.UserConfigDir(); err == nil {
		return filepath.Join(d, "neurolov")
	}
	return ".neurolov"
}

// loadOrCreateAPIKey reads the key at path, or creates one there (0600).
// A key file other users may read is refused, as the worker refuses its
// identity key.
func loadOrCreateAPIKey(path string) (key string, created bool, err error) {
	f, err := os.Open(path)
	if err == nil {
		defer f.Close()
		b, err := io.ReadAll(f)
		if err != nil {
			return "", false, err
		}
		if info, err := f.Stat(); err != nil {
			return "", false, err
		} else if perm, open := identity.OpenToOthers(info); open {
			return "", false, fmt.Errorf("API key file %s has mode %#o, open to other users: chmod 600 %s", path, perm, path)
		}
		key = strings.TrimSpace(string(b))
		if key == "" {
			return "", false, fmt.Errorf("API key file %s is empty: delete it and restart to create a new key", path)
		}
		return key, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", false, err
	}
	key, _ = store.NewAPIKey() // the hash is stored by the caller
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", false, err
	}
	if err := os.WriteFile(path, []byte(key+"\n"), 0o600); err != nil {
		return "", false, err
	}
	return key, true, nil
}

// local is a coordinator on a random loopback port with a memory store
// and a fresh API key, for the demo and the benchmarks.
type local struct {
	srv  *server.Server
	st   *store.Memory
	key  string
	addr string // host:port

	stop    context.CancelFunc
	stopped chan error
	once    sync.Once
	err     error
}

// startLocal starts a coordinator configured by cfg (its Domain is set to
// the address it listens on).
func startLocal(ctx context.Context, cfg server.Config) (*local, error) {
	st := store.NewMemory()
	key, hash := store.NewAPIKey()
	if err := st.AddAPIKey(ctx, store.APIKey{Name: "local", Hash: hash}); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	cfg.Domain = ln.Addr().String()
	l := &local{srv: server.New(cfg, st), st: st, key: key, addr: ln.Addr().String(), stopped: make(chan error, 1)}
	ctx, l.stop = context.WithCancel(ctx)
	go func() { l.stopped <- serveUntilDone(ctx, l.srv, ln) }()
	return l, nil
}

// close stops the coordinator and returns how its server ended; later
// calls return the same.
func (l *local) close() error {
	l.once.Do(func() {
		l.stop()
		l.err = <-l.stopped
		_ = l.st.Close()
	})
	return l.err
}
