package cli

import (
	"context"
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
	dataDir := fs.String("data-dir", defaultDataDir(), "folder for the API key file (created if missing)")
	domain := fs.String("domain", "", "domain workers sign for (default: the listen address)")
	window := fs.Int("window", 8, "leases granted to each worker (prefetch)")
	logLevel := fs.String("log", "info", "log level: debug, info, warn, error")
	maxJobBytes := fs.Int64("max-job-bytes", 1<<30, "largest job upload accepted, in bytes (at most a quarter of -memory-budget)")
	memoryBudget := fs.Int64("memory-budget", 4<<30, "memory, in bytes, for what peers send at once (frames 1/8, chunked outputs 1/4, uploads 1/4; over it they are refused) and the Go soft memory limit")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *maxJobBytes < 1 {
		return fmt.Errorf("%w: -max-job-bytes %d: want a positive size", ErrUsage, *maxJobBytes)
	}
	if *memoryBudget < 64<<20 {
		return fmt.Errorf("%w: -memory-budget %d: want at least 64 MiB", ErrUsage, *memoryBudget)
	}
	setMemoryLimit(*memoryBudget)
	log, err := newLogger(stderr, *logLevel)
	if err != nil {
		return err
	}
	st := store.NewMemory()
	defer st.Close()
	keyPath := filepath.Join(*dataDir, "api-key")
	key, created, err := loadOrCreateAPIKey(keyPath)
	if err != nil {
		return err
	}
	if err := st.AddAPIKey(ctx, "default", store.HashAPIKey(key)); err != nil {
		return err
	}
	if created {
		fmt.Fprintf(stdout, "created an API key in %s (submit with: neurolov submit -key-file %s ...)\n", keyPath, keyPath)
	} else {
		fmt.Fprintf(stdout, "API key: %s\n", keyPath)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	if *domain == "" {
		*domain = ln.Addr().String()
	}
	srv := server.New(server.Config{Domain: *domain, Window: *window, MaxJobBytes: *maxJobBytes, MemoryBudget: *memoryBudget, Logger: log, Pages: web.Handler()}, st)
	fmt.Fprintf(stdout, "coordinator on http://%s (volunteer page: http://%s/, workers: ws://%s/v1/worker); the memory store starts empty on every restart\n", ln.Addr(), ln.Addr(), ln.Addr())
	return serveUntilDone(ctx, srv, ln)
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
	if err := st.AddAPIKey(ctx, "local", hash); err != nil {
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
