package servertest

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/coder/websocket"

	"github.com/neurolov/neurolov/protocol"
)

// OldClientRelay stands between workers and c like a client of the
// protocol version before protocol.Version: it forwards every frame both
// ways, but stamps each frame a worker sends, and the version its Hello
// announces, with protocol.Version-1; when either side closes, it closes
// the other with the same status and reason. It returns the worker URL to
// dial instead of c.WorkerURL() and counts the connections made to it.
func OldClientRelay(t testing.TB, c *Coordinator) (url string, conns *atomic.Int64) {
	t.Helper()
	conns = new(atomic.Int64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		down, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		conns.Add(1)
		defer down.CloseNow()
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		up, _, err := websocket.Dial(ctx, c.WorkerURL(), nil)
		if err != nil {
			_ = down.Close(websocket.StatusInternalError, "relay: "+err.Error())
			return
		}
		defer up.CloseNow()
		down.SetReadLimit(protocol.MaxFrameSize)
		up.SetReadLimit(protocol.MaxFrameSize)
		go relayFrames(ctx, up, down, nil)
		relayFrames(ctx, down, up, olderVersion)
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http"), conns
}

// relayFrames copies messages from src to dst, passing each through
// rewrite when set, until src ends; it then closes dst as src was closed.
func relayFrames(ctx context.Context, src, dst *websocket.Conn, rewrite func([]byte)) {
	for {
		typ, b, err := src.Read(ctx)
		if err != nil {
			var ce websocket.CloseError
			if errors.As(err, &ce) {
				_ = dst.Close(ce.Code, ce.Reason)
			} else {
				_ = dst.Close(websocket.StatusGoingAway, "relay: the other side went away")
			}
			return
		}
		if rewrite != nil {
			rewrite(b)
		}
		if err := dst.Write(ctx, typ, b); err != nil {
			return
		}
	}
}

// olderVersion stamps a worker's frame with the version before this one:
// the frame header's version byte and, in a frame that opens with a
// Hello, the version the Hello announces.
func olderVersion(frame []byte) {
	if len(frame) < protocol.HeaderSize {
		return
	}
	frame[3] = protocol.Version - 1
	if body := protocol.HeaderSize + protocol.MsgHeaderSize; len(frame) > body && protocol.MsgType(frame[protocol.HeaderSize]) == protocol.TypeHello {
		frame[body] = protocol.Version - 1
	}
}
