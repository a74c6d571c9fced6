//go:build !js

package browser

import (
	"strings"
	"testing"

	"github.com/neurolov/neurolov/internal/servertest"
)

// A tab whose client is older than the coordinator's protocol is told to
// reload the page (the coordinator serves the new client), and stops,
// instead of reconnecting for ever.
func TestOlderClientIsToldToReload(t *testing.T) {
	h := newHarness(t, nil)
	url, conns := servertest.OldClientRelay(t, h.coord)
	if err := h.start(StartOptions{Coordinator: url, Backend: BackendCPUWasm, Share: 1}); err != nil {
		t.Fatal(err)
	}
	st := h.waitStatus("the reload status", func(s Status) bool { return s.State == StateReload })
	if !strings.Contains(st.Message, "reload this page") || !strings.Contains(st.Message, "upgraded") {
		t.Errorf("status message %q; want it to say: reload this page, the coordinator was upgraded", st.Message)
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("the client connected %d times, want once", n)
	}
}
