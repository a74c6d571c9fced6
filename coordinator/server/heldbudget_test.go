package server_test

import (
	"context"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/neurolov/neurolov/coordinator/server"
	"github.com/neurolov/neurolov/protocol"
	"github.com/neurolov/neurolov/tensor"
)

// TestHeldLimitGivesBackOnlyWhatItTook: after a worker trips MaxHeldOutputBytes and is closed, the outputs
// budget must be back at zero, not below it.
func TestHeldLimitGivesBackOnlyWhatItTook(t *testing.T) {
	c := startCoordinator(t, func(cfg *server.Config) { cfg.MaxHeldOutputBytes = 1 << 20 })
	for round := range 3 {
		raw := dialRaw(t, c)
		big := tensor.New(1 << 16) // 256 KiB
		for i := range 5 {
			big.Data[0] = float32(i + 10*round)
			chunks, _ := protocol.ChunkTensor(big.Hash(), big.Shape, big.Data, 0)
			frame, _ := protocol.Encode(&chunks[0])
			if err := raw.ws.Write(context.Background(), websocket.MessageBinary, frame); err != nil {
				break
			}
		}
		code, reason := raw.closeStatus()
		if code != websocket.StatusPolicyViolation || !strings.Contains(reason, "chunked outputs") {
			t.Fatalf("close %v %q", code, reason)
		}
	}
	var outputs int64
	waitFor(t, "connections to end", func() bool {
		_, outputs, _ = server.BudgetUsed(c.srv)
		return outputs <= 0
	})
	if outputs != 0 {
		t.Fatalf("outputs budget after 3 closed connections: %d bytes (negative: over-released; the global cap is loosened by that much)", outputs)
	}
}
