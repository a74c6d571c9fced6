package server_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/neurolov/neurolov/coordinator/server"
)

// readUntilClosed reads raw's connection in the background — answering
// pings, as an attacker's WebSocket library does — and returns a channel
// that receives the error it ends with.
func readUntilClosed(raw *rawWorker) <-chan error {
	ended := make(chan error, 1)
	go func() {
		for {
			if _, _, err := raw.ws.Read(context.Background()); err != nil {
				ended <- err
				return
			}
		}
	}()
	return ended
}

// closeOf waits (up to 10 s) for the connection read by readUntilClosed to
// end and returns its close status and reason.
func closeOf(t *testing.T, ended <-chan error) (websocket.StatusCode, string) {
	t.Helper()
	select {
	case err := <-ended:
		var ce websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code, ce.Reason
		}
		return -1, err.Error()
	case <-time.After(10 * time.Second):
		t.Fatal("the connection was still open after 10 s")
		return 0, ""
	}
}

// TestHalfSentMessageIsCut: an authenticated worker that sends part of one
// message and then stalls, answering every ping, is closed once the
// message falls below MinRate past RateGrace (it held its buffer for ever:
// 48 such connections took the coordinator to 1.79 GB).
func TestHalfSentMessageIsCut(t *testing.T) {
	c := startCoordinator(t, func(cfg *server.Config) {
		cfg.PingEvery = 20 * time.Millisecond
		cfg.PingTimeout = 5 * time.Second
		cfg.RateGrace = 200 * time.Millisecond
		cfg.MinRate = 1 << 20
	})
	raw := dialRaw(t, c)
	ended := readUntilClosed(raw)
	w, err := raw.ws.Writer(context.Background(), websocket.MessageBinary)
	if err != nil {
		t.Fatal(err)
	}
	part := make([]byte, 1<<20)
	copy(part, "NLV\x01")
	if _, err := w.Write(part); err != nil { // a fragment: the message stays open
		t.Fatal(err)
	}
	code, reason := closeOf(t, ended)
	if code != websocket.StatusPolicyViolation || !strings.Contains(reason, "slower than") {
		t.Fatalf("close %v %q, want 1008 for a message slower than MinRate", code, reason)
	}
}
