package server_test

import (
	"context"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/neurolov/neurolov/identity"
	"github.com/neurolov/neurolov/internal/wsio"
	"github.com/neurolov/neurolov/protocol"
)

// statusVersion is the close code a worker of another protocol version
// gets (wsio.StatusVersion), so that a browser tab knows to reload.
const statusVersion = wsio.StatusVersion

// A worker that announces an older protocol version, in its frames'
// header or in its Hello, is closed with the version status and a reason
// that says what to do, not with the 1008 of a bad frame (which a worker
// answers by reconnecting, for ever).
func TestOlderWorkerIsToldToUpdate(t *testing.T) {
	c := startCoordinator(t, nil)
	for _, tc := range []struct {
		name   string
		header bool // stamp the frame header too
	}{{"older frames", true}, {"older Hello", false}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			ws, _, err := websocket.Dial(ctx, c.wsURL(), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer ws.CloseNow()
			key, _ := identity.NewKey()
			frame, err := protocol.Encode(&protocol.Hello{Version: protocol.Version - 1, Address: identity.Address(key), Agent: "neurolov-browser/0"})
			if err != nil {
				t.Fatal(err)
			}
			if tc.header {
				frame[3] = protocol.Version - 1
			}
			if err := ws.Write(ctx, websocket.MessageBinary, frame); err != nil {
				t.Fatal(err)
			}
			code, reason := (&rawWorker{t: t, ws: ws}).closeStatus()
			if code != statusVersion || !strings.Contains(reason, "version") || !strings.Contains(reason, "reload") {
				t.Fatalf("close %d %q; want %d with a reason naming the version and saying to reload", code, reason, statusVersion)
			}
		})
	}
}
