package server_test

import (
	"context"
	"sync"
	"testing"

	"github.com/coder/websocket"

	"github.com/neurolov/neurolov/protocol"
)

// TestLoopCloseDoesNotRaceTheReader (run it with -race): closes started by the loop (shutdown here; a ban likewise) read the
// close handshake through peerConn while the connection's reader calls
// startMessage/endMessage outside coder/websocket's read lock.
func TestLoopCloseDoesNotRaceTheReader(t *testing.T) {
	c := startCoordinator(t, nil)
	frame, _ := protocol.Encode(&protocol.Heartbeat{Seq: 1})
	var wg sync.WaitGroup
	for range 8 {
		raw := dialRaw(t, c)
		_ = readUntilClosed(raw)
		wg.Go(func() {
			for {
				if err := raw.ws.Write(context.Background(), websocket.MessageBinary, frame); err != nil {
					return
				}
			}
		})
	}
	for range 2000 { // let the heartbeats flow
		if _, err := c.client().Workers(context.Background()); err != nil {
			break
		}
		break
	}
	c.Stop()
	wg.Wait()
}
