package server_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/neurolov/neurolov/coordinator/server"
	"github.com/neurolov/neurolov/identity"
	"github.com/neurolov/neurolov/protocol"
	"github.com/neurolov/neurolov/tensor"
)

// budget16 is a 16 MiB memory budget: 2 MiB for frames being read, 4 MiB
// for chunked outputs, 4 MiB for job uploads.
func budget16(cfg *server.Config) { cfg.MemoryBudget = 16 << 20 }

// budget16Patient is budget16 with a RateGrace of a minute, so that a
// half-sent message holds its budget for the whole of a test however
// loaded the machine.
func budget16Patient(cfg *server.Config) {
	budget16(cfg)
	cfg.RateGrace = time.Minute
}

// sendChunked sends t to the coordinator as chunked output, then a
// Heartbeat, and reports whether the Heartbeat was answered (the
// connection's reader took every chunk) rather than the connection closed.
func sendChunked(t *testing.T, raw *rawWorker, x *tensor.Tensor) (answered bool, code websocket.StatusCode, reason string) {
	t.Helper()
	chunks, err := protocol.ChunkTensor(x.Hash(), x.Shape, x.Data, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range chunks {
		frame, err := protocol.Encode(&chunks[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := raw.ws.Write(context.Background(), websocket.MessageBinary, frame); err != nil {
			break // closed: read why below
		}
	}
	frame, _ := protocol.Encode(&protocol.Heartbeat{Seq: 7})
	_ = raw.ws.Write(context.Background(), websocket.MessageBinary, frame)
	for {
		var hb bool
		err := raw.read(func(m protocol.Message) {
			if h, ok := m.(*protocol.Heartbeat); ok && h.Seq == 7 {
				hb = true
			}
		})
		if hb {
			return true, 0, ""
		}
		if err != nil {
			var ce websocket.CloseError
			if errors.As(err, &ce) {
				return false, ce.Code, ce.Reason
			}
			return false, -1, err.Error()
		}
	}
}

// TestChunkedOutputsShareABudget: chunked outputs held for Results are
// bounded across connections, not only per connection (4 identities held
// 136 MiB each: +1.08 GB); the identity over the budget is told to retry.
func TestChunkedOutputsShareABudget(t *testing.T) {
	c := startCoordinator(t, budget16)
	big := func(seed float32) *tensor.Tensor {
		x := tensor.New(3 << 18) // 3 MiB
		x.Data[0] = seed
		return x
	}
	if ok, code, reason := sendChunked(t, dialRaw(t, c), big(1)); !ok {
		t.Fatalf("the first 3 MiB of outputs were refused: %v %q", code, reason)
	}
	ok, code, reason := sendChunked(t, dialRaw(t, c), big(2))
	if ok || code != websocket.StatusTryAgainLater || !strings.Contains(reason, "memory budget") {
		t.Fatalf("3 MiB more over a 4 MiB budget of outputs: answered %v, close %v %q; want 1013 naming the memory budget", ok, code, reason)
	}
}

// TestHalfSentMessagesShareABudget: the frames being read, finished or
// not, are bounded across connections; the identity whose own message
// does not fit is told to retry, and the others go on.
func TestHalfSentMessagesShareABudget(t *testing.T) {
	c := startCoordinator(t, budget16Patient)
	var first []*rawWorker
	for range 2 { // 700 KiB each, of a 2 MiB budget
		raw := dialRaw(t, c)
		first = append(first, raw)
		halfSend(t, raw, 700<<10)
	}
	code, reason := closeOf(t, halfSend(t, dialRaw(t, c), 700<<10))
	if code != websocket.StatusTryAgainLater || !strings.Contains(reason, "memory budget") || !strings.Contains(reason, "MiB") {
		t.Fatalf("a third half-sent message of 700 KiB over a 2 MiB budget: close %v %q, want 1013 naming the memory budget's figures", code, reason)
	}
	for i, raw := range first {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := raw.ws.Ping(ctx) // answered by the reader still reading the message
		cancel()
		if err != nil {
			t.Fatalf("half-sent message %d, within the budget, was cut: %v", i+1, err)
		}
	}
}

// TestOneAddressHoldsHalfTheFramesBudget: one identity's large frames
// being read, over all its connections, take at most half the frames
// budget, so that it must spend identities to take it all.
func TestOneAddressHoldsHalfTheFramesBudget(t *testing.T) {
	c := startCoordinator(t, budget16Patient)
	key, _ := identity.NewKey()
	halfSend(t, dialRawKey(t, c, key), 700<<10)
	code, reason := closeOf(t, halfSend(t, dialRawKey(t, c, key), 700<<10))
	if code != websocket.StatusTryAgainLater || !strings.Contains(reason, "this address") {
		t.Fatalf("one address half-sending 2 × 700 KiB under a 2 MiB budget: close %v %q, want 1013 naming the address's share", code, reason)
	}
	if err := heartbeat(dialRaw(t, c), 1); err != nil { // another identity still joins
		t.Fatal(err)
	}
}

// TestUploadsShareABudget: job bodies being read are bounded across
// requests: while two keys' uploads hold most of the budget, a third
// key's gets a 503 with the budget's figures and a Retry-After.
func TestUploadsShareABudget(t *testing.T) {
	c := startCoordinator(t, budget16Patient) // the stalled uploads are not cut while the test runs
	for _, key := range []string{c.Key, c.AddKey(t, "carol")} {
		body := matmulBody(t, 480) // 1.9 MiB, sent but its last byte
		stallUpload(t, c, key, body, len(body)-1)
	}
	waitFor(t, "the stalled uploads to be charged", func() bool {
		_, _, bodies := server.BudgetUsed(c.srv)
		return bodies >= 2*(1800<<10)
	})
	code, msg, retry := postBodyRetry(t, c, c.AddKey(t, "bob"), matmulBody(t, 256))
	if code != http.StatusServiceUnavailable || !strings.Contains(msg, "uploads being read hold") || retry == "" {
		t.Fatalf("a 1 MiB upload beside two of 1.9 MiB in progress, over a 4 MiB budget: %d %s (Retry-After %q); want a 503 naming the memory budget, with a Retry-After", code, msg, retry)
	}
}

// TestOneKeyHoldsHalfTheUploadsBudget: one API key's uploads being read
// take at most half the uploads budget, so that another key's still go
// through; the key over its half gets a 503 that says so.
func TestOneKeyHoldsHalfTheUploadsBudget(t *testing.T) {
	c := startCoordinator(t, budget16Patient)
	body := matmulBody(t, 384) // 1.5 MiB, sent but its last byte
	stallUpload(t, c, c.Key, body, len(body)-1)
	waitFor(t, "the stalled upload to be charged", func() bool {
		_, _, bodies := server.BudgetUsed(c.srv)
		return bodies >= 1400<<10
	})
	if code, msg, _ := postBodyRetry(t, c, c.Key, matmulBody(t, 256)); code != http.StatusServiceUnavailable || !strings.Contains(msg, "this API key") {
		t.Fatalf("a key's second upload, 1 MiB beside its 1.5 MiB in progress, over half a 4 MiB budget: %d %s; want a 503 naming the key's share", code, msg)
	}
	if code, msg := postBody(t, c, c.AddKey(t, "bob"), matmulBody(t, 256)); code != http.StatusCreated {
		t.Fatalf("another key's 1 MiB upload meanwhile: %d %s, want 201", code, msg)
	}
}

// heartbeat sends a Heartbeat and reads until it is answered, returning
// the error the connection ended with if it is not.
func heartbeat(raw *rawWorker, seq uint64) error {
	raw.send(&protocol.Heartbeat{Seq: seq})
	for {
		var got bool
		err := raw.read(func(m protocol.Message) {
			if h, ok := m.(*protocol.Heartbeat); ok && h.Seq == seq {
				got = true
			}
		})
		if got {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// halfSend sends size bytes of one message from raw and never finishes
// it; it returns once the coordinator has read them (its pong follows
// them), or the connection has closed, with the channel readUntilClosed
// (which it starts) reports raw's end on.
func halfSend(t *testing.T, raw *rawWorker, size int) <-chan error {
	t.Helper()
	ended := readUntilClosed(raw)
	w, err := raw.ws.Writer(context.Background(), websocket.MessageBinary)
	if err != nil {
		t.Fatal(err)
	}
	part := make([]byte, size)
	copy(part, "NLV\x01")
	if _, err := w.Write(part); err != nil {
		return ended
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = raw.ws.Ping(ctx)
	return ended
}

// TestHalfSentMessageLeavesSmallFrames: one identity half-sending one
// message of 1 MiB + 1 byte under a 2 MiB frames budget neither refuses
// another worker's 20-byte Heartbeat nor a new worker's handshake (the
// buffer doubled, so the message was charged the whole 2 MiB, and every
// frame, handshake ones too, first took 16 KiB of the budget: the honest
// worker was closed 1013 and no worker could join).
func TestHalfSentMessageLeavesSmallFrames(t *testing.T) {
	c := startCoordinator(t, budget16Patient)
	honest := dialRaw(t, c)
	if err := heartbeat(honest, 1); err != nil {
		t.Fatal(err)
	}
	halfSend(t, dialRaw(t, c), 1<<20+1)
	frames, _, _ := server.BudgetUsed(c.srv)
	t.Logf("frames budget charged for one half-sent message of 1 MiB + 1 byte: %d KiB of 2048", frames>>10)
	if err := heartbeat(honest, 2); err != nil {
		t.Fatalf("an honest worker's Heartbeat while another identity half-sends 1 MiB: %v", err)
	}
	if err := heartbeat(dialRaw(t, c), 3); err != nil {
		t.Fatalf("a new worker joining while another identity half-sends 1 MiB: %v", err)
	}
}

// matmulBody returns a matmul job's safetensors body of A rows×1024 and B
// 1024×1 (4 KiB a row of A).
func matmulBody(t *testing.T, rows int) []byte {
	t.Helper()
	rng := rand.New(rand.NewPCG(uint64(rows), 3))
	var body bytes.Buffer
	if err := tensor.WriteSafetensors(&body, map[string]*tensor.Tensor{"A": randomTensor(rng, rows, 1024), "B": randomTensor(rng, 1024, 1)}, nil); err != nil {
		t.Fatal(err)
	}
	return body.Bytes()
}

// stallUpload posts body with key, sends its first sent bytes and stalls
// until the test ends.
func stallUpload(t *testing.T, c *coordinator, key string, body []byte, sent int) {
	t.Helper()
	pr, pw := io.Pipe()
	req, err := http.NewRequest(http.MethodPost, c.HTTP.URL+"/v1/jobs?kernel=matmul", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = int64(len(body))
	req.Header.Set("Authorization", "Bearer "+key)
	answered := make(chan struct{})
	go func() {
		defer close(answered)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	t.Cleanup(func() { pw.CloseWithError(errors.New("test over")); <-answered })
	if _, err := pw.Write(body[:sent]); err != nil {
		t.Fatal(err)
	}
}

// postBody posts a matmul job's body with key and returns the status and
// the error the API answered.
func postBody(t *testing.T, c *coordinator, key string, body []byte) (int, string) {
	t.Helper()
	code, msg, _ := postBodyRetry(t, c, key, body)
	return code, msg
}

// postBodyRetry is postBody that returns the answer's Retry-After too.
func postBodyRetry(t *testing.T, c *coordinator, key string, body []byte) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, c.HTTP.URL+"/v1/jobs?kernel=matmul", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(msg), resp.Header.Get("Retry-After")
}

// TestTrickledUploadsHoldWhatTheySent: uploads that claim large bodies
// and trickle them hold the uploads budget for what they have sent, not
// for what they claim (one key claiming 1 GiB at 64 KiB/s held every
// upload off for 4.5 h).
func TestTrickledUploadsHoldWhatTheySent(t *testing.T) {
	c := startCoordinator(t, budget16Patient)
	for _, key := range []string{c.Key, c.AddKey(t, "carol")} {
		stallUpload(t, c, key, matmulBody(t, 480), 256<<10) // claims 1.9 MiB, sends 256 KiB
	}
	waitFor(t, "the stalled uploads to be charged", func() bool {
		_, _, bodies := server.BudgetUsed(c.srv)
		return bodies >= 2*(192<<10)
	})
	if code, msg := postBody(t, c, c.AddKey(t, "bob"), matmulBody(t, 384)); code != http.StatusCreated {
		t.Fatalf("a 1.5 MiB upload beside two claiming 1.9 MiB that sent 256 KiB each, under a 4 MiB budget: %d %s, want 201", code, msg)
	}
}
