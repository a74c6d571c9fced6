package server_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/neurolov/neurolov/client"
	"github.com/neurolov/neurolov/coordinator/server"
	"github.com/neurolov/neurolov/identity"
	"github.com/neurolov/neurolov/internal/servertest"
	"github.com/neurolov/neurolov/protocol"
	"github.com/neurolov/neurolov/shaders"
	"github.com/neurolov/neurolov/tensor"
	"github.com/neurolov/neurolov/worker"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// coordinator is a real server on a random loopback port.
type coordinator struct {
	*servertest.Coordinator
	srv *server.Server
}

func (c *coordinator) wsURL() string { return c.WorkerURL() }

func (c *coordinator) client() *client.Client { return c.Client() }

func startCoordinator(t *testing.T, mutate func(*server.Config)) *coordinator {
	t.Helper()
	c := servertest.Start(t, mutate)
	return &coordinator{Coordinator: c, srv: c.Server}
}

// startWorkers runs n CPU workers until the test ends.
func startWorkers(t *testing.T, c *coordinator, n int, tamper worker.Tamper) []*worker.Worker {
	t.Helper()
	var ws []*worker.Worker
	for range n {
		ws = append(ws, servertest.StartWorker(t, c.Coordinator, worker.CPU{}, tamper))
	}
	return ws
}

func testLogger(t *testing.T) *slog.Logger { return servertest.Logger(t) }

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	servertest.WaitFor(t, what, cond)
}

func randomTensor(rng *rand.Rand, shape ...int) *tensor.Tensor {
	t := tensor.New(shape...)
	for i := range t.Data {
		t.Data[i] = float32(rng.NormFloat64())
	}
	return t
}

func TestEndToEndMatmulOverWebSockets(t *testing.T) {
	c := startCoordinator(t, nil)
	startWorkers(t, c, 3, nil)
	rng := rand.New(rand.NewPCG(1, 2))
	a, b := randomTensor(rng, 20, 13), randomTensor(rng, 13, 17)
	ctx := context.Background()
	cl := c.client()
	// Workers connect in the background: submit once all three are known, or
	// the two first may finish the job before the third says hello.
	waitFor(t, "three workers", func() bool {
		ws, err := cl.Workers(ctx)
		return err == nil && len(ws) == 3
	})
	job, err := cl.SubmitMatmul(ctx, a, b, client.SubmitOptions{Replication: 2})
	if err != nil {
		t.Fatal(err)
	}
	if job.Shards != 9 {
		t.Fatalf("shards = %d, want 9 (8×8 tiles of 20×17)", job.Shards)
	}
	st, err := cl.Wait(ctx, job.ID, 10*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Replicas < 2*st.Shards {
		t.Fatalf("replicas = %d for %d shards with replication 2", st.Replicas, st.Shards)
	}
	res, err := cl.Result(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := shaders.Reference(shaders.Matmul, []*tensor.Tensor{a, b})
	got := res["C"]
	if got == nil || !tensor.SameShape(got, want[0]) {
		t.Fatalf("result C: %v", got)
	}
	for i := range got.Data {
		if d := got.Data[i] - want[0].Data[i]; d > 1e-4 || d < -1e-4 {
			t.Fatalf("C[%d] = %v, want %v", i, got.Data[i], want[0].Data[i])
		}
	}
	workers, err := cl.Workers(ctx)
	if err != nil || len(workers) != 3 {
		t.Fatalf("workers: %v %v", workers, err)
	}
	ledger, err := cl.Ledger(ctx)
	if err != nil || len(ledger) == 0 {
		t.Fatalf("ledger: %v %v", ledger, err)
	}
	resp, err := http.Get(c.HTTP.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		"neurolov_shards_verified_total 9",
		`neurolov_worker_frames_total{direction="in"}`, `neurolov_worker_frames_total{direction="out"}`,
		`neurolov_worker_messages_total{direction="in"}`, `neurolov_worker_messages_total{direction="out"}`,
	} {
		if !bytes.Contains(body, []byte(want)) {
			t.Fatalf("metrics lack %s:\n%s", want, body)
		}
	}
	tr := c.srv.Traffic()
	if tr.FramesIn == 0 || tr.MessagesIn < uint64(st.Replicas) || tr.FramesOut == 0 || tr.MessagesOut < uint64(st.Replicas) {
		t.Fatalf("traffic %+v for %d replicas: every result and assign is a message", tr, st.Replicas)
	}
}

func TestMLPInferEndToEnd(t *testing.T) {
	c := startCoordinator(t, nil)
	startWorkers(t, c, 2, nil)
	rng := rand.New(rand.NewPCG(3, 4))
	x := randomTensor(rng, 19, 12)
	layers := []client.Layer{{W: randomTensor(rng, 12, 9), B: randomTensor(rng, 9)}, {W: randomTensor(rng, 9, 4), B: randomTensor(rng, 4)}}
	ctx := context.Background()
	cl := c.client()
	job, err := cl.SubmitMLP(ctx, x, layers, client.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Wait(ctx, job.ID, 10*time.Millisecond, nil); err != nil {
		t.Fatal(err)
	}
	res, err := cl.Result(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := shaders.Reference(shaders.MLPInfer, []*tensor.Tensor{x, layers[0].W, layers[0].B, layers[1].W, layers[1].B})
	for l, name := range []string{"Z1", "Z2"} {
		if res[name] == nil || !tensor.SameShape(res[name], want[l]) {
			t.Fatalf("%s: %v", name, res[name])
		}
	}
}

func TestAPIErrors(t *testing.T) {
	c := startCoordinator(t, nil)
	tests := []struct {
		name, method, path, key string
		body                    []byte
		status                  int
		contains                string
	}{
		{"submit without key", "POST", "/v1/jobs?kernel=matmul", "", nil, 401, "missing API key"},
		{"submit with a wrong key", "POST", "/v1/jobs?kernel=matmul", "nlv_wrong", nil, 401, "invalid API key"},
		{"unknown job", "GET", "/v1/jobs/j-nope", c.Key, nil, 404, `job \"j-nope\" not found`},
		{"unknown job result", "GET", "/v1/jobs/j-nope/result", c.Key, nil, 404, "not found"},
		{"job status without key", "GET", "/v1/jobs/j-nope", "", nil, 401, "missing API key"},
		{"job list without key", "GET", "/v1/jobs", "", nil, 401, "missing API key"},
		{"cancel unknown job", "DELETE", "/v1/jobs/j-nope", c.Key, nil, 404, "not found"},
		{"bad kernel", "POST", "/v1/jobs?kernel=conv9", c.Key, safetensorsBody(t), 400, "unknown kernel"},
		{"garbage body", "POST", "/v1/jobs?kernel=matmul", c.Key, []byte("\x05\x00\x00\x00\x00\x00\x00\x00{bad}"), 400, "safetensors"},
		{"bad replication", "POST", "/v1/jobs?kernel=matmul&replication=x", c.Key, nil, 400, "replication"},
		{"text body", "POST", "/v1/jobs?kernel=matmul", c.Key, []byte("hello world"), 400, "not a safetensors file"},
		{"extra tensor", "POST", "/v1/jobs?kernel=matmul", c.Key, safetensorsBody(t, "Bias"), 400, "unexpected: Bias"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, c.HTTP.URL+tc.path, bytes.NewReader(tc.body))
			if tc.key != "" {
				req.Header.Set("Authorization", "Bearer "+tc.key)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var e struct{ Error string }
			if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
				t.Fatalf("body is not a JSON error: %v", err)
			}
			if resp.StatusCode != tc.status || !strings.Contains(e.Error, strings.ReplaceAll(tc.contains, `\"`, `"`)) {
				t.Fatalf("got %d %q, want %d containing %q", resp.StatusCode, e.Error, tc.status, tc.contains)
			}
		})
	}
}

func TestOversizedJobBodyIs413(t *testing.T) {
	c := startCoordinator(t, func(cfg *server.Config) { cfg.MaxJobBytes = 1024 })
	rng := rand.New(rand.NewPCG(1, 1))
	_, err := c.client().SubmitMatmul(context.Background(), randomTensor(rng, 64, 64), randomTensor(rng, 64, 64), client.SubmitOptions{})
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusRequestEntityTooLarge {
		t.Fatalf("err = %v, want a 413", err)
	}
}

// safetensorsBody is a matmul job of two 2×2 tensors, A and B, and 2×2
// tensors of the extra names.
func safetensorsBody(t *testing.T, extra ...string) []byte {
	var buf bytes.Buffer
	ts := map[string]*tensor.Tensor{"A": tensor.New(2, 2), "B": tensor.New(2, 2)}
	for _, n := range extra {
		ts[n] = tensor.New(2, 2)
	}
	if err := tensor.WriteSafetensors(&buf, ts, nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// rawWorker is a hand-driven worker connection, for fault tests.
type rawWorker struct {
	t  *testing.T
	ws *websocket.Conn
}

func dialRaw(t *testing.T, c *coordinator) *rawWorker {
	t.Helper()
	key, _ := identity.NewKey()
	return dialRawKey(t, c, key)
}

// dialRawKey is dialRaw as the identity of key.
func dialRawKey(t *testing.T, c *coordinator, key *ecdsa.PrivateKey) *rawWorker {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, c.wsURL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ws.SetReadLimit(protocol.MaxFrameSize)
	signer := identity.NewKeySigner(key)
	r := &rawWorker{t: t, ws: ws}
	r.send(&protocol.Hello{Version: protocol.Version, Address: signer.Address(), Agent: "raw"})
	var challenge string
	r.read(func(m protocol.Message) {
		if ch, ok := m.(*protocol.Challenge); ok {
			challenge = ch.Message
		}
	})
	sig, err := signer.SignText(challenge)
	if err != nil {
		t.Fatal(err)
	}
	r.send(&protocol.Auth{Signature: sig}, &protocol.Capabilities{Backend: "cpu", Device: "raw", GFLOPS: 1})
	t.Cleanup(func() { _ = ws.CloseNow() })
	return r
}

func (r *rawWorker) send(msgs ...protocol.Message) {
	r.t.Helper()
	frame, err := protocol.Encode(msgs...)
	if err != nil {
		r.t.Fatal(err)
	}
	if err := r.ws.Write(context.Background(), websocket.MessageBinary, frame); err != nil {
		r.t.Fatal(err)
	}
}

// read reads one frame and passes its messages to fn; it returns the
// read error (a close, say).
func (r *rawWorker) read(fn func(protocol.Message)) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, b, err := r.ws.Read(ctx)
	if err != nil {
		return err
	}
	return protocol.Decode(b, func(m protocol.Message) error { fn(m); return nil })
}

// assigns reads frames until it has seen n Assign messages.
func (r *rawWorker) assigns(n int) []*protocol.Assign {
	r.t.Helper()
	var out []*protocol.Assign
	for len(out) < n {
		err := r.read(func(m protocol.Message) {
			if a, ok := m.(*protocol.Assign); ok {
				out = append(out, protocol.Clone(a))
			}
		})
		if err != nil {
			r.t.Fatalf("reading assigns: %v", err)
		}
	}
	return out
}

// closeStatus reads until the connection closes and returns the status
// and reason.
func (r *rawWorker) closeStatus() (websocket.StatusCode, string) {
	for {
		err := r.read(func(protocol.Message) {})
		if err != nil {
			var ce websocket.CloseError
			if errors.As(err, &ce) {
				return ce.Code, ce.Reason
			}
			return -1, err.Error()
		}
	}
}

func submitSmall(t *testing.T, c *coordinator, replication int) client.JobStatus {
	t.Helper()
	rng := rand.New(rand.NewPCG(5, 6))
	job, err := c.client().SubmitMatmul(context.Background(), randomTensor(rng, 8, 5), randomTensor(rng, 5, 8), client.SubmitOptions{Replication: replication})
	if err != nil {
		t.Fatal(err)
	}
	return job
}

func TestMalformedFrameClosesAndReissues(t *testing.T) {
	c := startCoordinator(t, nil)
	raw := dialRaw(t, c)
	job := submitSmall(t, c, 1)
	raw.assigns(1)
	if err := raw.ws.Write(context.Background(), websocket.MessageBinary, []byte("NLV\x01garbage")); err != nil {
		t.Fatal(err)
	}
	code, reason := raw.closeStatus()
	if code != websocket.StatusPolicyViolation || !strings.Contains(reason, "protocol") {
		t.Fatalf("close = %v %q, want 1008 with a protocol reason", code, reason)
	}
	startWorkers(t, c, 1, nil)
	if _, err := c.client().Wait(context.Background(), job.ID, 10*time.Millisecond, nil); err != nil {
		t.Fatalf("job after the bad worker left: %v", err)
	}
}

func TestOversizedFrameCloses1009(t *testing.T) {
	c := startCoordinator(t, nil)
	raw := dialRaw(t, c)
	big := make([]byte, protocol.MaxFrameSize+1024)
	copy(big, "NLV\x01")
	_ = raw.ws.Write(context.Background(), websocket.MessageBinary, big)
	code, _ := raw.closeStatus()
	if code != websocket.StatusMessageTooBig {
		t.Fatalf("close = %v, want 1009", code)
	}
}

func TestUnleasedAndDuplicateResultsAreRejected(t *testing.T) {
	c := startCoordinator(t, nil)
	raw := dialRaw(t, c)
	submitSmall(t, c, 1)
	a := raw.assigns(1)[0]
	outs, err := shaders.Reference(a.Kernel, []*tensor.Tensor{a.Inputs[0].Tensor(), a.Inputs[1].Tensor()})
	if err != nil {
		t.Fatal(err)
	}
	res := &protocol.Result{Lease: a.Lease, Outputs: []protocol.TensorRef{{Shape: outs[0].Shape, Inline: true, Data: outs[0].Data}}}
	unleased := &protocol.Result{Lease: 999_999, Outputs: res.Outputs}
	raw.send(res, res, unleased) // one good, a duplicate, one never leased
	rejected := map[uint64]int{}
	deadline := time.Now().Add(10 * time.Second)
	for rejected[a.Lease]+rejected[999_999] < 2 && time.Now().Before(deadline) {
		if err := raw.read(func(m protocol.Message) {
			if e, ok := m.(*protocol.Error); ok && e.Lease != 0 {
				rejected[e.Lease]++
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	if rejected[a.Lease] != 1 || rejected[999_999] != 1 {
		t.Fatalf("rejections %v: want the duplicate and the unleased result refused once each", rejected)
	}
	st, _, err := c.srv.Stats(context.Background())
	if err != nil || st.Unleased != 2 {
		t.Fatalf("stats %+v %v", st, err)
	}
}

func TestWorkerVanishingMidShardIsReissued(t *testing.T) {
	c := startCoordinator(t, nil)
	raw := dialRaw(t, c)
	job := submitSmall(t, c, 1)
	raw.assigns(1)
	_ = raw.ws.CloseNow() // vanish with the lease
	startWorkers(t, c, 1, nil)
	st, err := c.client().Wait(context.Background(), job.ID, 10*time.Millisecond, nil)
	if err != nil || st.Verified != st.Shards {
		t.Fatalf("job after a worker vanished: %+v %v", st, err)
	}
}

func TestBadSignatureIsRefused(t *testing.T) {
	c := startCoordinator(t, nil)
	ctx := context.Background()
	ws, _, err := websocket.Dial(ctx, c.wsURL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	r := &rawWorker{t: t, ws: ws}
	key, _ := identity.NewKey()
	r.send(&protocol.Hello{Version: protocol.Version, Address: identity.Address(key)})
	r.read(func(protocol.Message) {})
	other, _ := identity.NewKey()
	sig, _ := identity.Sign(other, "not the challenge")
	r.send(&protocol.Auth{Signature: sig}, &protocol.Capabilities{Backend: "cpu"})
	code, reason := r.closeStatus()
	if code != websocket.StatusPolicyViolation || !strings.Contains(reason, "authentication failed") {
		t.Fatalf("close = %v %q", code, reason)
	}
}

func TestCheaterIsCaughtAndBanned(t *testing.T) {
	c := startCoordinator(t, nil)
	startWorkers(t, c, 2, nil)
	cheat := func(_ uint64, _ string, _, outs []*tensor.Tensor) []*tensor.Tensor {
		for _, o := range outs {
			for i := range o.Data {
				o.Data[i] += 1
			}
		}
		return outs
	}
	key, _ := identity.NewKey()
	cheater := worker.New(worker.Config{URL: c.wsURL(), Signer: identity.NewKeySigner(key), Backend: worker.CPU{}, Tamper: cheat, Logger: testLogger(t)})
	banned := make(chan error, 1)
	go func() { banned <- cheater.Run(context.Background()) }()
	waitFor(t, "3 workers", func() bool { _, n, _ := c.srv.Stats(context.Background()); return n == 3 })
	job := submitSmall(t, c, 3)
	select {
	case err := <-banned:
		if !errors.Is(err, worker.ErrBanned) {
			t.Fatalf("cheater's Run returned %v, want ErrBanned", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("cheater was never banned")
	}
	st, _, _ := c.srv.Stats(context.Background())
	if st.Caught != 1 {
		t.Fatalf("caught = %d", st.Caught)
	}
	// With three replicas forced and one address banned, a third honest
	// worker lets the job finish.
	startWorkers(t, c, 1, nil)
	if _, err := c.client().Wait(context.Background(), job.ID, 10*time.Millisecond, nil); err != nil {
		t.Fatal(err)
	}
	ledger, _ := c.client().Ledger(context.Background())
	for _, e := range ledger {
		if strings.EqualFold(e.Address, identity.FormatAddress(identity.Address(key))) && e.UnsettledFLOPs != 0 {
			t.Fatalf("cheater kept unsettled pay: %+v", e)
		}
	}
}

func TestSilentWorkerIsDroppedByPing(t *testing.T) {
	c := startCoordinator(t, func(cfg *server.Config) {
		cfg.PingEvery = 50 * time.Millisecond
		cfg.PingTimeout = 100 * time.Millisecond
	})
	raw := dialRaw(t, c) // takes a lease, then never reads again: no pongs
	job := submitSmall(t, c, 1)
	raw.assigns(1)
	startWorkers(t, c, 1, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second) // far below the 30 s lease
	defer cancel()
	if _, err := c.client().Wait(ctx, job.ID, 10*time.Millisecond, nil); err != nil {
		t.Fatalf("job with a silent worker: %v", err)
	}
}

// TestJobRunsFromItsFirstLease: a job whose shards are out on workers
// reads running, not queued, before any result is verified.
func TestJobRunsFromItsFirstLease(t *testing.T) {
	c := startCoordinator(t, nil)
	job := submitSmall(t, c, 1)
	if job.Status != client.StateQueued {
		t.Fatalf("with no worker the job is %s, want queued", job.Status)
	}
	raw := dialRaw(t, c)
	raw.assigns(1) // holds the lease, never answers
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := c.client().Job(context.Background(), job.ID)
		if err != nil {
			t.Fatal(err)
		}
		if st.Status == client.StateRunning && st.Verified == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s with a shard leased and none verified, want running", st.Status)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// syncBuffer is a bytes.Buffer safe for the loop's logger and the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestJobWithoutTwoIdentitiesIsExplained: a job submitted while fewer
// than two worker identities are connected says in the log what it waits
// for; with two it does not.
func TestJobWithoutTwoIdentitiesIsExplained(t *testing.T) {
	var logs syncBuffer
	c := startCoordinator(t, func(cfg *server.Config) {
		cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	})
	const hint = "waits for workers of a second identity"
	workers := func(n int) bool { _, got, _ := c.srv.Stats(context.Background()); return got == n }
	startWorkers(t, c, 1, nil)
	waitFor(t, "one worker", func() bool { return workers(1) })
	submitSmall(t, c, 0)
	waitFor(t, "the hint in the log", func() bool { return strings.Contains(logs.String(), hint) })
	before := strings.Count(logs.String(), hint)
	startWorkers(t, c, 1, nil)
	waitFor(t, "two workers", func() bool { return workers(2) })
	job := submitSmall(t, c, 0)
	// The loop logs while handling the submission, before any result of
	// the job: once it is done, the hint would be there.
	if _, err := c.client().Wait(context.Background(), job.ID, 10*time.Millisecond, nil); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(logs.String(), hint); n != before {
		t.Fatalf("two identities connected, the hint was logged again:\n%s", logs.String())
	}
}
