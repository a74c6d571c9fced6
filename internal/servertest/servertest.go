// Package servertest starts a real coordinator (server + memory store) on a
// random loopback port for tests in other packages, and real workers
// against it.
package servertest

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/neurolov/neurolov/client"
	"github.com/neurolov/neurolov/coordinator/planner"
	"github.com/neurolov/neurolov/coordinator/server"
	"github.com/neurolov/neurolov/coordinator/store"
	"github.com/neurolov/neurolov/identity"
	"github.com/neurolov/neurolov/worker"
)

// Coordinator is a running coordinator.
type Coordinator struct {
	Server *server.Server
	HTTP   *httptest.Server
	Store  *store.Memory
	// Key is an API key the coordinator accepts.
	Key string

	stop    context.CancelFunc
	stopped chan struct{}
}

// Stop ends the server's loop and waits for Run to return, leaving the
// HTTP listener up (to test requests that arrive after shutdown). The
// test's cleanup calls it too; later calls do nothing.
func (c *Coordinator) Stop() {
	c.stop()
	<-c.stopped
}

// WorkerURL returns the worker WebSocket endpoint.
func (c *Coordinator) WorkerURL() string {
	return "ws" + strings.TrimPrefix(c.HTTP.URL, "http") + "/v1/worker"
}

// Client returns an SDK client with the API key.
func (c *Coordinator) Client() *client.Client {
	return client.New(c.HTTP.URL, client.WithAPIKey(c.Key))
}

// AddKey registers a fresh API key held by name and returns it: a second
// submitter beside Key, who sees only its own jobs.
func (c *Coordinator) AddKey(t testing.TB, name string) string {
	t.Helper()
	return addKey(t, c.Store, store.APIKey{Name: name})
}

// AddAdminKey registers a fresh admin API key held by name and returns it:
// it reads, lists and cancels every job.
func (c *Coordinator) AddAdminKey(t testing.TB, name string) string {
	t.Helper()
	return addKey(t, c.Store, store.APIKey{Name: name, Admin: true})
}

// addKey stores k with a fresh key's hash and returns the key.
func addKey(t testing.TB, st store.Store, k store.APIKey) string {
	t.Helper()
	key, hash := store.NewAPIKey()
	k.Hash = hash
	if err := st.AddAPIKey(context.Background(), k); err != nil {
		t.Fatal(err)
	}
	return key
}

// Start runs a coordinator until the test ends. mutate, when set, adjusts
// the configuration (small tiles, a short tick and a window of 2 by
// default, so tests see many shards).
func Start(t testing.TB, mutate func(*server.Config)) *Coordinator {
	t.Helper()
	st := store.NewMemory()
	key := addKey(t, st, store.APIKey{Name: "test"})
	cfg := server.Config{
		Planner:    planner.Options{TileRows: 8, TileCols: 8, BatchRows: 8},
		Window:     2,
		TickEvery:  20 * time.Millisecond,
		Logger:     Logger(t),
		SpotChecks: 2,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	srv := server.New(cfg, st)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = srv.Run(ctx); close(done) }()
	c := &Coordinator{Server: srv, Store: st, Key: key, stop: cancel, stopped: done}
	c.HTTP = httptest.NewUnstartedServer(nil)
	c.HTTP.Config = srv.HTTPServer()
	c.HTTP.Start()
	t.Cleanup(func() {
		c.Stop()
		c.HTTP.CloseClientConnections()
		c.HTTP.Close()
		_ = st.Close()
	})
	return c
}

// StartWorker runs one worker with backend b until the test ends and
// returns it.
func StartWorker(t testing.TB, c *Coordinator, b worker.Backend, tamper worker.Tamper) *worker.Worker {
	t.Helper()
	key, err := identity.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	w := worker.New(worker.Config{
		URL: c.WorkerURL(), Signer: identity.NewKeySigner(key), Backend: b, GFLOPS: 1,
		Tamper: tamper, Logger: Logger(t), MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
	})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = w.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	return w
}

// WaitFor polls cond until it holds or 30 s pass.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Logger sends warnings and errors to the test's log until the test ends.
func Logger(t testing.TB) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(func() { w.done.Store(true) })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct {
	t    testing.TB
	done atomic.Bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	if !w.done.Load() {
		w.t.Log(string(p))
	}
	return len(p), nil
}

var _ io.Writer = (*testWriter)(nil)
