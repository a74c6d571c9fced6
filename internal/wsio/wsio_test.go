package wsio

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/neurolov/neurolov/protocol"
)

// pair returns the two ends of a real WebSocket connection over loopback.
func pair(t *testing.T) (server, client *websocket.Conn) {
	t.Helper()
	accepted := make(chan *websocket.Conn, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			t.Error(err)
			return
		}
		accepted <- ws
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.CloseNow() })
	server = <-accepted
	t.Cleanup(func() { _ = server.CloseNow() })
	return server, client
}

// TestStageWaitsForFlush: staged messages are not written until Flush,
// and then all of them share one frame; Enqueue writes at once.
func TestStageWaitsForFlush(t *testing.T) {
	server, client := pair(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	o := NewOutbox()
	frames := make(chan int, 8)
	o.OnFrame = func(n int) { frames <- n }
	go func() { _ = o.Run(ctx, server, func(protocol.Message, error) { t.Error("message too big") }) }()

	o.Enqueue(&protocol.Heartbeat{Seq: 1}) // wakes the writer at once
	if n := <-frames; n != 1 {
		t.Fatalf("Enqueue: a frame of %d messages, want 1", n)
	}
	for seq := range uint64(10) {
		o.Stage(&protocol.Heartbeat{Seq: 100 + seq})
	}
	select {
	case n := <-frames:
		t.Fatalf("a frame of %d messages was written before Flush", n)
	case <-time.After(100 * time.Millisecond):
	}
	o.Flush()
	if n := <-frames; n != 10 {
		t.Fatalf("Flush: a frame of %d messages, want the 10 staged", n)
	}

	var dec protocol.Decoder
	var seqs []uint64
	for range 2 {
		frame, err := ReadFrame(ctx, client, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := dec.Decode(frame, func(m protocol.Message) error {
			seqs = append(seqs, m.(*protocol.Heartbeat).Seq)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if len(seqs) != 11 || seqs[0] != 1 || seqs[1] != 100 || seqs[10] != 109 {
		t.Fatalf("received heartbeats %v, want 1 then 100…109 in order", seqs)
	}
}

// TestClosedOutboxDrops: nothing staged or enqueued after Close is kept.
func TestClosedOutboxDrops(t *testing.T) {
	o := NewOutbox()
	o.Stage(&protocol.Heartbeat{Seq: 1})
	o.Close()
	o.Stage(&protocol.Heartbeat{Seq: 2})
	o.Enqueue(&protocol.Heartbeat{Seq: 3})
	if len(o.out) != 0 {
		t.Fatalf("%d messages queued after Close", len(o.out))
	}
}

// TestQueuedBytes counts the tensor data of chunks staged until they are
// written, and forgets what Close drops.
func TestQueuedBytes(t *testing.T) {
	server, client := pair(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	o := NewOutbox()
	chunk := &protocol.TensorData{Shape: []int{256}, Data: make([]float32, 256)}
	o.Stage(chunk)
	o.Stage(&protocol.Heartbeat{Seq: 1})
	o.Stage(chunk)
	if n := o.QueuedBytes(); n != 2*4*256 {
		t.Fatalf("QueuedBytes = %d staged, want %d", n, 2*4*256)
	}
	frames := make(chan int, 8)
	o.OnFrame = func(n int) { frames <- n }
	go func() { _ = o.Run(ctx, server, func(protocol.Message, error) { t.Error("message too big") }) }()
	o.Flush()
	<-frames
	if n := o.QueuedBytes(); n != 0 {
		t.Fatalf("QueuedBytes = %d after the write, want 0", n)
	}
	if _, err := ReadFrame(ctx, client, nil); err != nil {
		t.Fatal(err)
	}
	dropped := NewOutbox()
	dropped.Stage(chunk)
	dropped.Close()
	if n := dropped.QueuedBytes(); n != 0 {
		t.Fatalf("QueuedBytes = %d after Close, want 0", n)
	}
}
