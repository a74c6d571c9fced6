package server_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/neurolov/neurolov/coordinator/server"
	"github.com/neurolov/neurolov/protocol"
)

// TestIdleWorkerCostsOneGoroutine: an idle authenticated worker holds one
// goroutine on the coordinator, its reader (it held three — reader,
// writer, pinger — and with the hijacked connection's buffers about 38 KiB;
// `neurolov bench conns` measures the bytes).
func TestIdleWorkerCostsOneGoroutine(t *testing.T) {
	// No pings while it counts: the raw workers never read, so a ping
	// would hold a goroutine (dials take long on a loaded machine).
	c := startCoordinator(t, func(cfg *server.Config) { cfg.PingEvery = time.Hour })
	const n = 50
	base := runtime.NumGoroutine()
	for range n {
		raw := dialRaw(t, c)
		for got := false; !got; { // joined: the Window has come
			if err := raw.read(func(m protocol.Message) { _, got = m.(*protocol.Window) }); err != nil {
				t.Fatal(err)
			}
		}
	}
	extra := 0
	waitFor(t, fmt.Sprintf("about one goroutine for each of %d idle workers", n), func() bool {
		extra = runtime.NumGoroutine() - base
		return extra <= n+n/10
	})
	t.Logf("%d goroutines for %d idle workers", extra, n)
}

// TestEndedWorkerIsFreed: a worker connection that has ended is freed, its
// ping timer stopped (each timer held its connection, buffers and all,
// until PingEvery after the end).
func TestEndedWorkerIsFreed(t *testing.T) {
	c := startCoordinator(t, func(cfg *server.Config) { cfg.PingEvery = time.Hour })
	raw := dialRaw(t, c)
	if err := heartbeat(raw, 1); err != nil { // joined
		t.Fatal(err)
	}
	freed, err := server.ConnsCollected(c.srv)
	if err != nil || len(freed) != 1 {
		t.Fatalf("%d connections, %v; want the one", len(freed), err)
	}
	_ = raw.ws.Close(websocket.StatusNormalClosure, "")
	waitFor(t, "the worker to leave", func() bool {
		_, n, err := c.srv.Stats(context.Background())
		return err == nil && n == 0
	})
	waitFor(t, "the ended worker connection to be freed", freed[0])
}
