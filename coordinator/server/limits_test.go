package server_test

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/neurolov/neurolov/client"
	"github.com/neurolov/neurolov/coordinator/server"
	"github.com/neurolov/neurolov/protocol"
	"github.com/neurolov/neurolov/shaders"
	"github.com/neurolov/neurolov/tensor"
)

// submitWeights submits a one-shard MLP whose 256×256 weight goes by hash
// and returns that hash as the raw worker received it.
func submitWeights(t *testing.T, c *coordinator, raw *rawWorker) [32]byte {
	t.Helper()
	rng := rand.New(rand.NewPCG(10, 10))
	layers := []client.Layer{{W: randomTensor(rng, 256, 256), B: randomTensor(rng, 256)}}
	if _, err := c.client().SubmitMLP(context.Background(), randomTensor(rng, 8, 256), layers, client.SubmitOptions{}); err != nil {
		t.Fatal(err)
	}
	ref := raw.leases(1)[0].Inputs[1]
	if ref.Inline {
		t.Fatal("W1 travelled inline")
	}
	return ref.Hash
}

// TestFetchRepeatsAreServedOnce: one Fetch naming a hash many times gets
// its chunks once.
func TestFetchRepeatsAreServedOnce(t *testing.T) {
	c := startCoordinator(t, func(cfg *server.Config) { cfg.InlineBytes = 1024 })
	raw := dialRaw(t, c)
	h := submitWeights(t, c, raw)
	repeated := make([][32]byte, protocol.MaxHashes)
	for i := range repeated {
		repeated[i] = h
	}
	raw.send(&protocol.Fetch{Hashes: repeated}, &protocol.Fetch{Hashes: [][32]byte{{1}}})
	chunks := 0
	for answered := false; !answered; {
		if err := raw.read(func(m protocol.Message) {
			switch m := m.(type) {
			case *protocol.TensorData:
				if m.Hash == h {
					chunks++
				}
			case *protocol.Error:
				answered = m.Lease == 0 // the NotFound after the repeats
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	if chunks != 1 {
		t.Fatalf("%d chunks for a tensor of one chunk fetched %d times in one Fetch, want 1", chunks, len(repeated))
	}
}

// TestFetchFloodCloses: a worker asking for over a GiB of tensors it has
// not read is closed with a reason, not served.
func TestFetchFloodCloses(t *testing.T) {
	c := startCoordinator(t, func(cfg *server.Config) { cfg.InlineBytes = 1024 })
	raw := dialRaw(t, c)
	h := submitWeights(t, c, raw)
	var flood []protocol.Message
	for range 4200 { // 4200 × 256 KiB > 1 GiB
		flood = append(flood, &protocol.Fetch{Hashes: [][32]byte{h}})
	}
	raw.send(flood...)
	code, reason := raw.closeStatus()
	if code != websocket.StatusPolicyViolation || !strings.Contains(reason, "fetch refused") {
		t.Fatalf("close %v %q, want 1008 refusing the fetch", code, reason)
	}
}

// TestHeldOutputsAreBoundedInBytes: chunked outputs sent without a Result
// are bounded in bytes (they were bounded in count: 64 tensors of any size).
func TestHeldOutputsAreBoundedInBytes(t *testing.T) {
	c := startCoordinator(t, func(cfg *server.Config) { cfg.MaxHeldOutputBytes = 1 << 20 })
	raw := dialRaw(t, c)
	big := tensor.New(1 << 16) // 256 KiB
	for i := range 5 {
		big.Data[0] = float32(i) // a new tensor each time
		chunks, err := protocol.ChunkTensor(big.Hash(), big.Shape, big.Data, 0)
		if err != nil || len(chunks) != 1 {
			t.Fatalf("%d chunks, %v", len(chunks), err)
		}
		frame, err := protocol.Encode(&chunks[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := raw.ws.Write(context.Background(), websocket.MessageBinary, frame); err != nil {
			break // closed
		}
	}
	code, reason := raw.closeStatus()
	if code != websocket.StatusPolicyViolation || !strings.Contains(reason, "chunked outputs") {
		t.Fatalf("close %v %q, want 1008 for too many held outputs", code, reason)
	}
}

// TestResultNamingOneTensorTwice: identical outputs over the inline limit
// travel as one chunked tensor named twice; the Result is accepted.
func TestResultNamingOneTensorTwice(t *testing.T) {
	c := startCoordinator(t, nil)
	raw := dialRaw(t, c)
	// Z1 = X·W1 + b1 is positive, and W2 = I, b2 = 0 make Z2 = relu(Z1) = Z1.
	rng := rand.New(rand.NewPCG(11, 11))
	x, w1, b1 := randomTensor(rng, 8, 4), randomTensor(rng, 4, 4), randomTensor(rng, 4)
	for _, t := range []*tensor.Tensor{x, w1, b1} {
		for i, v := range t.Data {
			t.Data[i] = v*v + 0.5
		}
	}
	w2, b2 := tensor.New(4, 4), tensor.New(4)
	for i := range 4 {
		w2.Data[i*4+i] = 1
	}
	ctx := context.Background()
	job, err := c.client().SubmitMLP(ctx, x, []client.Layer{{W: w1, B: b1}, {W: w2, B: b2}}, client.SubmitOptions{Replication: 1})
	if err != nil {
		t.Fatal(err)
	}
	l := raw.leases(1)[0]
	outs, err := shaders.Reference(l.Kernel, l.inputs)
	if err != nil {
		t.Fatal(err)
	}
	h := outs[0].Hash()
	if len(outs) != 2 || outs[1].Hash() != h {
		t.Fatal("the test needs two identical outputs")
	}
	chunks, err := protocol.ChunkTensor(h, outs[0].Shape, outs[0].Data, 0)
	if err != nil {
		t.Fatal(err)
	}
	ref := protocol.TensorRef{Hash: h, Shape: outs[0].Shape}
	raw.send(&chunks[0], &protocol.Result{Lease: l.Lease, Outputs: []protocol.TensorRef{ref, ref}})
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if st, err := c.client().Wait(wctx, job.ID, 10*time.Millisecond, nil); err != nil || st.Status != client.StateDone {
		t.Fatalf("job: %+v %v", st, err)
	}
}
