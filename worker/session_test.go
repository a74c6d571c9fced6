package worker_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/neurolov/neurolov/identity"
	"github.com/neurolov/neurolov/internal/wsio"
	"github.com/neurolov/neurolov/protocol"
	"github.com/neurolov/neurolov/shaders"
	"github.com/neurolov/neurolov/tensor"
	"github.com/neurolov/neurolov/worker"
)

// fakeCoordinator accepts one worker at a time over a real WebSocket, runs
// the handshake without checking the signature, and hands the connection
// to the test.
type fakeCoordinator struct {
	t     *testing.T
	url   string
	conns chan *websocket.Conn
}

func startFake(t *testing.T) *fakeCoordinator {
	t.Helper()
	f := &fakeCoordinator{t: t, conns: make(chan *websocket.Conn, 4)}
	done := make(chan struct{})
	var wg sync.WaitGroup
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		wg.Add(1)
		defer wg.Done()
		defer ws.CloseNow()
		ws.SetReadLimit(protocol.MaxFrameSize)
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		if _, _, err := ws.Read(ctx); err != nil { // Hello
			return
		}
		frame, _ := protocol.Encode(&protocol.Challenge{Message: "sign me"})
		if ws.Write(ctx, websocket.MessageBinary, frame) != nil {
			return
		}
		if _, _, err := ws.Read(ctx); err != nil { // Auth, Capabilities
			return
		}
		f.conns <- ws
		<-done
	}))
	f.url = "ws" + strings.TrimPrefix(srv.URL, "http")
	t.Cleanup(func() {
		close(done)
		srv.CloseClientConnections()
		srv.Close()
		wg.Wait()
	})
	return f
}

// run starts a worker against f until the test ends and returns the
// coordinator's side of its connection.
func (f *fakeCoordinator) run(b worker.Backend) *websocket.Conn {
	f.t.Helper()
	ws, _ := f.start(b)
	return ws
}

// start is run, also returning what the worker's Run returns.
func (f *fakeCoordinator) start(b worker.Backend) (*websocket.Conn, <-chan error) {
	f.t.Helper()
	key, err := identity.NewKey()
	if err != nil {
		f.t.Fatal(err)
	}
	w := worker.New(worker.Config{URL: f.url, Signer: identity.NewKeySigner(key), Backend: b, MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Go(func() { ran <- w.Run(ctx) })
	f.t.Cleanup(func() { cancel(); wg.Wait() })
	return f.next(), ran
}

// next waits for the next worker connection.
func (f *fakeCoordinator) next() *websocket.Conn {
	f.t.Helper()
	select {
	case ws := <-f.conns:
		return ws
	case <-time.After(10 * time.Second):
		f.t.Fatal("worker never connected")
		return nil
	}
}

func send(t *testing.T, ws *websocket.Conn, msgs ...protocol.Message) {
	t.Helper()
	frame, err := protocol.Encode(msgs...)
	if err != nil {
		t.Fatal(err)
	}
	if err := ws.Write(context.Background(), websocket.MessageBinary, frame); err != nil {
		t.Fatal(err)
	}
}

// readUntil reads frames (each within the frame limit, or the read fails)
// and passes their messages to fn until it returns true.
func readUntil(t *testing.T, ws *websocket.Conn, fn func(protocol.Message) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		_, b, err := ws.Read(ctx)
		if err != nil {
			t.Fatalf("reading from the worker: %v", err)
		}
		stop := false
		if err := protocol.Decode(b, func(m protocol.Message) error {
			stop = stop || fn(m)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if stop {
			return
		}
	}
}

// TestFetchNotFoundFailsTheLease: a lease whose input the coordinator
// answers NotFound for is reported as an error, not left waiting.
func TestFetchNotFoundFailsTheLease(t *testing.T) {
	f := startFake(t)
	ws := f.run(worker.CPU{})
	a := tensor.New(2, 3)
	missing := tensor.New(3, 2)
	missing.Data[0] = 1
	h := missing.Hash()
	send(t, ws, &protocol.Assign{Lease: 7, Kernel: shaders.Matmul, Inputs: []protocol.TensorRef{
		{Shape: a.Shape, Inline: true, Data: a.Data}, {Hash: h, Shape: missing.Shape},
	}})
	readUntil(t, ws, func(m protocol.Message) bool {
		if fe, ok := m.(*protocol.Fetch); ok && len(fe.Hashes) == 1 && fe.Hashes[0] == h {
			send(t, ws, protocol.NotFound(h))
		}
		e, ok := m.(*protocol.Error)
		if ok && e.Lease != 7 {
			t.Fatalf("error for lease %d", e.Lease)
		}
		return ok
	})
}

// bigOutputs is a backend returning fixed outputs whatever it is given.
type bigOutputs struct{ outs []*tensor.Tensor }

func (bigOutputs) Name() string   { return "cpu" }
func (bigOutputs) Device() string { return "fixed outputs" }
func (b bigOutputs) Run(context.Context, string, []*tensor.Tensor) ([]*tensor.Tensor, error) {
	return b.outs, nil
}

// TestResultFitsAFrame: outputs each under the inline limit but together
// over a frame go partly by hash, and outputs with the same content are
// chunked once.
func TestResultFitsAFrame(t *testing.T) {
	var outs []*tensor.Tensor
	for i := range 5 {
		o := tensor.New(1<<10, 1<<10) // 4 MiB: inline on its own
		for j := range o.Data {
			o.Data[j] = float32(i*7 + j%13)
		}
		outs = append(outs, o)
	}
	outs = append(outs, outs[4], outs[3]) // identical outputs, both by hash
	f := startFake(t)
	ws := f.run(bigOutputs{outs})
	a := tensor.New(1, 1)
	send(t, ws, &protocol.Assign{Lease: 3, Kernel: shaders.Matmul, Inputs: []protocol.TensorRef{
		{Shape: a.Shape, Inline: true, Data: a.Data}, {Shape: a.Shape, Inline: true, Data: a.Data},
	}})
	asm := protocol.NewAssembler(1 << 30)
	completed := map[[32]byte]int{}
	readUntil(t, ws, func(m protocol.Message) bool {
		switch m := m.(type) {
		case *protocol.TensorData:
			got, err := asm.Add(m)
			if err != nil {
				t.Fatal(err)
			}
			if got != nil {
				completed[m.Hash]++
			}
		case *protocol.Error:
			t.Fatalf("worker error: %s", m.Message)
		case *protocol.Result:
			if len(m.Outputs) != len(outs) {
				t.Fatalf("%d outputs, want %d", len(m.Outputs), len(outs))
			}
			for i, ref := range m.Outputs {
				if !ref.Inline && completed[ref.Hash] != 1 {
					t.Fatalf("output %d: its chunks arrived %d times, want once", i, completed[ref.Hash])
				}
				if ref.Inline && i >= 5 {
					t.Fatalf("output %d inline: the Result would not fit a frame", i)
				}
			}
			return true
		}
		return false
	})
}

// TestOnlyTheBanCodeBans: a worker closed with 1008 (a bad frame) — even
// after a Goodbye that reads like a ban — reconnects; only the private ban
// code ends its Run with ErrBanned.
func TestOnlyTheBanCodeBans(t *testing.T) {
	f := startFake(t)
	ws, ran := f.start(worker.CPU{})
	send(t, ws, &protocol.Goodbye{Reason: "banned-looking reason"})
	_ = ws.Close(websocket.StatusPolicyViolation, "protocol: bad frame")
	ws = f.next() // it came back
	_ = ws.Close(websocket.StatusPolicyViolation, "banned: but said with 1008")
	ws = f.next()
	select {
	case err := <-ran:
		t.Fatalf("Run returned %v before the ban", err)
	default:
	}
	send(t, ws, &protocol.Goodbye{Reason: "banned: wrong results"})
	_ = ws.Close(wsio.StatusBanned, "banned: wrong results")
	select {
	case err := <-ran:
		if !errors.Is(err, worker.ErrBanned) {
			t.Fatalf("Run returned %v, want ErrBanned", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a banned worker kept running")
	}
}

// TestCancelOfALeaseNotHeldIsIgnored: a Cancel for a lease the worker has
// already answered, or never held, is not remembered (it was kept for the
// life of the session, and would drop a later lease of that number).
func TestCancelOfALeaseNotHeldIsIgnored(t *testing.T) {
	f := startFake(t)
	ws := f.run(worker.CPU{})
	a, b := tensor.New(2, 3), tensor.New(3, 2)
	assign := func(lease uint64) {
		send(t, ws, &protocol.Assign{Lease: lease, Kernel: shaders.Matmul, Inputs: []protocol.TensorRef{
			{Shape: a.Shape, Inline: true, Data: a.Data}, {Shape: b.Shape, Inline: true, Data: b.Data},
		}})
	}
	result := func(lease uint64) {
		readUntil(t, ws, func(m protocol.Message) bool {
			r, ok := m.(*protocol.Result)
			return ok && r.Lease == lease
		})
	}
	assign(1)
	result(1)
	send(t, ws, &protocol.Cancel{Lease: 1}, &protocol.Cancel{Lease: 2}) // answered; never held
	assign(2)
	result(2) // computed and answered, not dropped by the stale Cancel
}
