package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/neurolov/neurolov/client"
	"github.com/neurolov/neurolov/client/clienttest"
	"github.com/neurolov/neurolov/shaders"
	"github.com/neurolov/neurolov/tensor"
)

func TestMain(m *testing.M) {
	code := m.Run()
	// Examples use http.DefaultClient; its idle connections are not leaks.
	http.DefaultClient.CloseIdleConnections()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "leaked goroutines:", err)
			code = 1
		}
	}
	os.Exit(code)
}

const key = "s3cret"

// newFake starts a fake coordinator and a client for it.
func newFake(t *testing.T, cfg clienttest.Config) (*clienttest.Server, *client.Client) {
	t.Helper()
	if cfg.Key == "" {
		cfg.Key = key
	}
	srv := clienttest.NewServer(cfg)
	t.Cleanup(srv.Close)
	return srv, client.New(srv.URL+"/", client.WithAPIKey(cfg.Key), client.WithHTTPClient(srv.Client()))
}

// seq returns a rows×cols tensor holding 1, 2, 3, … scaled by s.
func seq(s float32, shape ...int) *tensor.Tensor {
	t := tensor.New(shape...)
	for i := range t.Data {
		t.Data[i] = s * float32(i+1)
	}
	return t
}

func equal(t *testing.T, what string, got, want *tensor.Tensor) {
	t.Helper()
	if got == nil {
		t.Fatalf("%s: missing", what)
	}
	if !tensor.SameShape(got, want) {
		t.Fatalf("%s: shape %v, want %v", what, got.Shape, want.Shape)
	}
	for i := range want.Data {
		if got.Data[i] != want.Data[i] {
			t.Fatalf("%s[%d] = %v, want %v", what, i, got.Data[i], want.Data[i])
		}
	}
}

func TestSubmitStreamsSafetensorsWithBearer(t *testing.T) {
	srv, c := newFake(t, clienttest.Config{})
	a, b := seq(1, 3, 4), seq(-0.5, 4, 2)
	job, err := c.SubmitMatmul(context.Background(), a, b, client.SubmitOptions{Replication: 2, Name: "first try"})
	if err != nil {
		t.Fatal(err)
	}
	if job.ID == "" || job.Kernel != shaders.Matmul || job.Status != client.StateQueued ||
		job.Replication != 2 || job.Name != "first try" || job.FLOPs != 2*3*4*2 || job.Shards != 4 {
		t.Errorf("job = %+v", job)
	}

	reqs := srv.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	r := reqs[0]
	checks := []struct{ what, got, want string }{
		{"method", r.Method, http.MethodPost},
		{"path", r.Path, "/v1/jobs"},
		{"query", r.RawQuery, "kernel=matmul&name=first+try&replication=2"},
		{"Authorization", r.Header.Get("Authorization"), "Bearer " + key},
		{"Content-Type", r.Header.Get("Content-Type"), "application/octet-stream"},
		{"User-Agent", r.Header.Get("User-Agent"), client.DefaultUserAgent},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %q, want %q", ch.what, ch.got, ch.want)
		}
	}
	if r.ContentLength != -1 {
		t.Errorf("ContentLength = %d, want -1 (a streamed body)", r.ContentLength)
	}
	in := srv.Inputs(job.ID)
	if len(in) != 2 {
		t.Fatalf("server decoded %d tensors, want 2", len(in))
	}
	equal(t, "A", in["A"], a)
	equal(t, "B", in["B"], b)
}

func TestSubmitLargeJobStreams(t *testing.T) {
	srv, c := newFake(t, clienttest.Config{Step: 4})
	// 2 × 4 MiB: larger than any pipe or socket buffer, so the body must
	// really be streamed while it is encoded.
	a, b := seq(1e-6, 1, 1<<20), seq(1e-6, 1<<20, 1)
	job, err := c.SubmitMatmul(context.Background(), a, b, client.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "A", srv.Inputs(job.ID)["A"], a)
	equal(t, "B", srv.Inputs(job.ID)["B"], b)
}

func TestSubmitMLPWaitResult(t *testing.T) {
	srv, c := newFake(t, clienttest.Config{Shards: 3})
	x, w1, b1, w2, b2 := seq(0.1, 2, 3), seq(-0.2, 3, 4), seq(0.3, 4), seq(0.05, 4, 2), seq(-1, 2)
	ctx := context.Background()
	job, err := c.SubmitMLP(ctx, x, []client.Layer{{W: w1, B: b1}, {W: w2, B: b2}}, client.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := srv.Inputs(job.ID)
	for name, want := range map[string]*tensor.Tensor{"X": x, "W1": w1, "b1": b1, "W2": w2, "b2": b2} {
		equal(t, name, got[name], want)
	}
	if len(got) != 5 {
		t.Errorf("server got %d tensors, want 5", len(got))
	}
	if _, err := c.Wait(ctx, job.ID, time.Millisecond, nil); err != nil {
		t.Fatal(err)
	}
	res, err := c.Result(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	want, err := shaders.Reference(shaders.MLPInfer, []*tensor.Tensor{x, w1, b1, w2, b2})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 {
		t.Fatalf("result has %d tensors, want Z1, Z2", len(res))
	}
	equal(t, "Z1", res["Z1"], want[0])
	equal(t, "Z2", res["Z2"], want[1])
}

func TestErrorsMatchSentinels(t *testing.T) {
	srv, c := newFake(t, clienttest.Config{})
	ctx := context.Background()
	job, err := c.SubmitMatmul(ctx, seq(1, 2, 2), seq(1, 2, 2), client.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	anon := client.New(srv.URL, client.WithHTTPClient(srv.Client()))
	wrong := client.New(srv.URL, client.WithAPIKey("guess"), client.WithHTTPClient(srv.Client()))
	sentinels := []error{client.ErrNotFound, client.ErrUnauthorized, client.ErrNotReady}

	tests := []struct {
		name   string
		call   func() error
		want   error
		status int
		msg    string
	}{
		{"submit without key", func() error {
			_, err := anon.SubmitMatmul(ctx, seq(1, 1, 1), seq(1, 1, 1), client.SubmitOptions{})
			return err
		}, client.ErrUnauthorized, 401, "API key"},
		{"submit with wrong key", func() error {
			_, err := wrong.SubmitMatmul(ctx, seq(1, 1, 1), seq(1, 1, 1), client.SubmitOptions{})
			return err
		}, client.ErrUnauthorized, 401, "API key"},
		{"cancel without key", func() error { _, err := anon.Cancel(ctx, job.ID); return err }, client.ErrUnauthorized, 401, "Bearer"},
		{"status without key", func() error { _, err := anon.Job(ctx, job.ID); return err }, client.ErrUnauthorized, 401, "Bearer"},
		{"result without key", func() error { _, err := anon.Result(ctx, job.ID); return err }, client.ErrUnauthorized, 401, "Bearer"},
		{"unknown job", func() error { _, err := c.Job(ctx, "j-nope"); return err }, client.ErrNotFound, 404, `job "j-nope" not found`},
		{"unknown result", func() error { _, err := c.Result(ctx, "j-nope"); return err }, client.ErrNotFound, 404, "not found"},
		{"cancel unknown", func() error { _, err := c.Cancel(ctx, "j-gone"); return err }, client.ErrNotFound, 404, "not found"},
		{"id is escaped", func() error { _, err := c.Job(ctx, "a b/c?d"); return err }, client.ErrNotFound, 404, `job "a b/c?d" not found`},
		{"result too early", func() error { _, err := c.Result(ctx, job.ID); return err }, client.ErrNotReady, 409, "wait for it"},
		{"unknown kernel", func() error {
			_, err := c.Submit(ctx, "conv9d", map[string]*tensor.Tensor{"A": seq(1, 1)}, client.SubmitOptions{})
			return err
		}, nil, 400, "unknown kernel"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			var apiErr *client.APIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("err = %v, want an *APIError", err)
			}
			if apiErr.Status != tt.status || !strings.Contains(apiErr.Message, tt.msg) {
				t.Errorf("APIError = %d %q, want %d containing %q", apiErr.Status, apiErr.Message, tt.status, tt.msg)
			}
			for _, s := range sentinels {
				if got := errors.Is(err, s); got != (s == tt.want) {
					t.Errorf("errors.Is(%v, %v) = %v", err, s, got)
				}
			}
		})
	}
}

func TestAPIErrorFromPlainBody(t *testing.T) {
	tests := []struct {
		name, body, want string
		status           int
	}{
		{"text", "upstream broke\n", "upstream broke", http.StatusBadGateway},
		{"empty", "", "Not Found", http.StatusNotFound},
		{"json without error field", `{"detail":"x"}`, `{"detail":"x"}`, http.StatusConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.status)
				fmt.Fprint(w, tt.body)
			}))
			defer srv.Close()
			_, err := client.New(srv.URL, client.WithHTTPClient(srv.Client())).Workers(context.Background())
			var apiErr *client.APIError
			if !errors.As(err, &apiErr) || apiErr.Status != tt.status || apiErr.Message != tt.want {
				t.Fatalf("err = %#v, want status %d message %q", err, tt.status, tt.want)
			}
		})
	}
}

func TestWaitReportsProgress(t *testing.T) {
	_, c := newFake(t, clienttest.Config{Shards: 5, Step: 2})
	ctx := context.Background()
	job, err := c.SubmitMatmul(ctx, seq(1, 2, 3), seq(1, 3, 2), client.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var seen []int
	final, err := c.Wait(ctx, job.ID, time.Millisecond, func(s client.JobStatus) {
		seen = append(seen, s.Verified)
		if s.Progress != float64(s.Verified)/5 {
			t.Errorf("progress %v with %d/5 verified", s.Progress, s.Verified)
		}
		if s.Status != client.StateDone && s.ETASeconds <= 0 {
			t.Errorf("no ETA while %s", s.Status)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(seen) != "[2 4 5]" {
		t.Errorf("progress saw verified %v, want [2 4 5]", seen)
	}
	if final.Status != client.StateDone || final.FinishedAt.IsZero() || final.Elapsed(time.Time{}) != 1500*time.Millisecond {
		t.Errorf("final = %+v", final)
	}
}

func TestWaitReturnsFailureReason(t *testing.T) {
	const reason = "shard 3: no two replicas agree within tolerance"
	_, c := newFake(t, clienttest.Config{FailReason: reason})
	ctx := context.Background()
	job, err := c.SubmitMatmul(ctx, seq(1, 2, 3), seq(1, 3, 2), client.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	final, err := c.Wait(ctx, job.ID, time.Millisecond, func(client.JobStatus) { calls++ })
	if !errors.Is(err, client.ErrJobFailed) || !strings.Contains(err.Error(), reason) || !strings.Contains(err.Error(), job.ID) {
		t.Fatalf("err = %v, want ErrJobFailed naming %s with the reason", err, job.ID)
	}
	if final.Status != client.StateFailed || final.Error != reason || calls != 4 {
		t.Errorf("final = %+v after %d progress calls", final, calls)
	}
	_, err = c.Result(ctx, job.ID)
	if !errors.Is(err, client.ErrNotReady) || !strings.Contains(err.Error(), reason) {
		t.Errorf("result of a failed job: %v, want ErrNotReady with the reason", err)
	}
}

func TestCancelThenWait(t *testing.T) {
	_, c := newFake(t, clienttest.Config{})
	ctx := context.Background()
	job, err := c.SubmitMatmul(ctx, seq(1, 2, 3), seq(1, 3, 2), client.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.Cancel(ctx, job.ID)
	if err != nil || st.Status != client.StateCancelled {
		t.Fatalf("Cancel = %+v, %v", st, err)
	}
	if _, err := c.Wait(ctx, job.ID, time.Millisecond, nil); !errors.Is(err, client.ErrJobCancelled) {
		t.Errorf("Wait on a cancelled job: %v, want ErrJobCancelled", err)
	}
}

func TestWaitStopsWithContext(t *testing.T) {
	_, c := newFake(t, clienttest.Config{Shards: 100})
	job, err := c.SubmitMatmul(context.Background(), seq(1, 2, 3), seq(1, 3, 2), client.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := 0
	st, err := c.Wait(ctx, job.ID, time.Hour, func(client.JobStatus) { calls++; cancel() })
	if !errors.Is(err, context.Canceled) || calls != 1 || st.Status != client.StateRunning {
		t.Errorf("Wait = %v after %d calls, status %s; want context.Canceled after 1", err, calls, st.Status)
	}
}

func TestListings(t *testing.T) {
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	workers := []client.WorkerStatus{{Address: "0xab", Backend: "webgpu", Device: "Apple M2", GFLOPS: 812.5, Window: 4,
		Leases: 2, Trusted: true, Run: 31, Verified: 120, Rejected: 1, ConnectedAt: at}}
	ledger := []client.LedgerEntry{{Address: "0xab", FLOPs: 1.5e12, Shards: 120, UnsettledFLOPs: 5e11, ForfeitedFLOPs: 0}}
	_, c := newFake(t, clienttest.Config{Workers: workers, Ledger: ledger})
	ctx := context.Background()

	gotW, err := c.Workers(ctx)
	if err != nil || len(gotW) != 1 || gotW[0] != workers[0] {
		t.Errorf("Workers = %+v, %v", gotW, err)
	}
	gotL, err := c.Ledger(ctx)
	if err != nil || len(gotL) != 1 || gotL[0] != ledger[0] {
		t.Errorf("Ledger = %+v, %v", gotL, err)
	}
	jobs, err := c.Jobs(ctx)
	if err != nil || len(jobs) != 0 {
		t.Errorf("Jobs before any = %+v, %v", jobs, err)
	}
	first, _ := c.SubmitMatmul(ctx, seq(1, 1, 1), seq(1, 1, 1), client.SubmitOptions{Name: "one"})
	second, _ := c.SubmitMatmul(ctx, seq(1, 1, 1), seq(1, 1, 1), client.SubmitOptions{Name: "two"})
	jobs, err = c.Jobs(ctx)
	if err != nil || len(jobs) != 2 || jobs[0].ID != second.ID || jobs[1].ID != first.ID {
		t.Errorf("Jobs = %+v, %v; want newest first", jobs, err)
	}
}

func TestResultDecodeErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "this is not safetensors")
	}))
	defer srv.Close()
	_, err := client.New(srv.URL, client.WithHTTPClient(srv.Client())).Result(context.Background(), "j-1")
	if err == nil || !strings.Contains(err.Error(), "decoding result") {
		t.Errorf("garbage result: %v, want a decoding error", err)
	}

	_, c := newFake(t, clienttest.Config{Step: 4})
	ctx := context.Background()
	job, err := c.SubmitMatmul(ctx, seq(1, 8, 8), seq(1, 8, 8), client.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Wait(ctx, job.ID, time.Millisecond, nil); err != nil {
		t.Fatal(err)
	}
	small := client.New(c.BaseURL(), client.WithMaxResultBytes(64))
	if _, err := small.Result(ctx, job.ID); err == nil {
		t.Error("a 256-byte result read with a 64-byte limit: no error")
	}
	http.DefaultClient.CloseIdleConnections()
}

func TestSubmitRejectsBadInputsLocally(t *testing.T) {
	srv, c := newFake(t, clienttest.Config{})
	ctx := context.Background()
	ok := seq(1, 2, 2)
	bad := &tensor.Tensor{Shape: []int{2, 2}, Data: make([]float32, 3)}
	tests := []struct {
		name   string
		kernel string
		named  map[string]*tensor.Tensor
		opts   client.SubmitOptions
	}{
		{"no kernel", "", map[string]*tensor.Tensor{"A": ok, "B": ok}, client.SubmitOptions{}},
		{"no tensors", shaders.Matmul, nil, client.SubmitOptions{}},
		{"nil tensor", shaders.Matmul, map[string]*tensor.Tensor{"A": ok, "B": nil}, client.SubmitOptions{}},
		{"data shorter than shape", shaders.Matmul, map[string]*tensor.Tensor{"A": ok, "B": bad}, client.SubmitOptions{}},
		{"missing B", shaders.Matmul, map[string]*tensor.Tensor{"A": ok}, client.SubmitOptions{}},
		{"extra tensor", shaders.Matmul, map[string]*tensor.Tensor{"A": ok, "B": ok, "C": ok}, client.SubmitOptions{}},
		{"inner dims differ", shaders.Matmul, map[string]*tensor.Tensor{"A": ok, "B": seq(1, 3, 2)}, client.SubmitOptions{}},
		{"mlp without bias", shaders.MLPInfer, map[string]*tensor.Tensor{"X": ok, "W1": ok}, client.SubmitOptions{}},
		{"mlp skips a layer", shaders.MLPInfer, map[string]*tensor.Tensor{"X": ok, "W1": ok, "b1": seq(1, 2), "W3": ok, "b3": seq(1, 2)}, client.SubmitOptions{}},
		{"negative replication", shaders.Matmul, map[string]*tensor.Tensor{"A": ok, "B": ok}, client.SubmitOptions{Replication: -1}},
		{"replication over the most", shaders.Matmul, map[string]*tensor.Tensor{"A": ok, "B": ok}, client.SubmitOptions{Replication: client.MaxReplication + 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := c.Submit(ctx, tt.kernel, tt.named, tt.opts); !errors.Is(err, client.ErrInput) {
				t.Errorf("err = %v, want ErrInput", err)
			}
		})
	}
	if _, err := c.SubmitMLP(ctx, ok, nil, client.SubmitOptions{}); !errors.Is(err, client.ErrInput) {
		t.Errorf("SubmitMLP with no layers: %v, want ErrInput", err)
	}
	if n := len(srv.Requests()); n != 0 {
		t.Errorf("%d requests reached the server, want 0", n)
	}
}

func TestSubmitAnsweredBeforeBodyIsRead(t *testing.T) {
	// A server that refuses at once and never reads the 16 MiB body: the
	// encoder must be unblocked (goleak in TestMain checks it ended).
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		fmt.Fprint(w, `{"error":"job body over 1 MiB: split the job"}`)
	}))
	defer srv.Close()
	c := client.New(srv.URL, client.WithHTTPClient(srv.Client()))
	_, err := c.SubmitMatmul(context.Background(), seq(1, 1<<11, 1<<10), seq(1, 1<<10, 1<<11), client.SubmitOptions{})
	var apiErr *client.APIError
	if err != nil && errors.As(err, &apiErr) {
		if apiErr.Status != http.StatusRequestEntityTooLarge || !strings.Contains(apiErr.Message, "split the job") {
			t.Errorf("APIError = %+v", apiErr)
		}
		return
	}
	t.Logf("transport reported the broken upload: %v", err)
	// The transport may also report the broken upload instead of the
	// early answer; either way Submit must fail and return.
	if err == nil {
		t.Fatal("Submit succeeded against a server that refused it")
	}
}

func TestSubmitHonoursContext(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-block
	}))
	defer srv.Close()
	defer close(block)
	ctx, cancel := context.WithCancel(context.Background())
	c := client.New(srv.URL, client.WithHTTPClient(srv.Client()))
	done := make(chan error, 1)
	go func() {
		_, err := c.SubmitMatmul(ctx, seq(1, 512, 512), seq(1, 512, 512), client.SubmitOptions{})
		done <- err
	}()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Submit did not return after its context was cancelled")
	}
}

// BenchmarkSubmit64MiB uploads a 64 MiB matmul job to a server that only
// counts the bytes: B/op shows the body is streamed, not buffered.
func BenchmarkSubmit64MiB(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"id":"j-%d","status":"queued"}`, n)
	}))
	defer srv.Close()
	c := client.New(srv.URL, client.WithHTTPClient(srv.Client()))
	x, y := tensor.New(2048, 4096), tensor.New(4096, 2048) // 2 × 32 MiB
	b.SetBytes(4 * int64(len(x.Data)+len(y.Data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.SubmitMatmul(context.Background(), x, y, client.SubmitOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}
