package server_test

import (
	"runtime"
	"testing"
	"time"

	"github.com/neurolov/neurolov/protocol"
)

// TestIdleWorkerCostsOneGoroutine: an idle authenticated worker holds one
// goroutine on the coordinator, its reader (it held three — reader,
// writer, pinger — and with the hijacked connection's buffers about 38 KiB;
// `neurolov bench conns` measures the bytes).
func TestIdleWorkerCostsOneGoroutine(t *testing.T) {
	c := startCoordinator(t, nil)
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
	deadline := time.Now().Add(10 * time.Second)
	for {
		extra := runtime.NumGoroutine() - base
		if extra <= n+n/10 {
			t.Logf("%d goroutines for %d idle workers", extra, n)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines for %d idle workers, want about one each", extra, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
