package server_test

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/neurolov/neurolov/client"
	"github.com/neurolov/neurolov/coordinator/server"
)

// budget160 is a 160 MiB memory budget (40 MiB for results, 20 MiB of it
// for one key), a minute's grace for slow peers.
func budget160(cfg *server.Config) {
	cfg.MemoryBudget = 160 << 20
	cfg.RateGrace = time.Minute
}

// doneOuterProduct submits with key a matmul job whose C is rows×2048
// (an outer product: a few KiB of upload, 8 KiB of C a row) and
// waits for it to be done.
func doneOuterProduct(t *testing.T, c *coordinator, key string, rows int) string {
	t.Helper()
	ctx := context.Background()
	cl := client.New(c.HTTP.URL, client.WithAPIKey(key))
	rng := rand.New(rand.NewPCG(uint64(rows), 7))
	job, err := cl.SubmitMatmul(ctx, randomTensor(rng, rows, 1), randomTensor(rng, 1, 2048), client.SubmitOptions{Replication: 1})
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if st, err := cl.Wait(wctx, job.ID, 10*time.Millisecond, nil); err != nil || st.Status != client.StateDone {
		t.Fatalf("job: %+v %v", st, err)
	}
	return job.ID
}

// getResult requests job's result with key through a connection that
// reads at most 16 KiB ahead, and returns the response (its headers
// read, its body not).
func getResult(t *testing.T, c *coordinator, key, job string) *http.Response {
	t.Helper()
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		nc, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if tc, ok := nc.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(16 << 10)
		}
		return nc, err
	}}
	t.Cleanup(tr.CloseIdleConnections)
	req, err := http.NewRequest(http.MethodGet, c.HTTP.URL+"/v1/jobs/"+job+"/result", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// TestResultDownloadsShareABudget: results being assembled and sent are
// bounded across requests (each GET /result assembled the whole output
// in memory, outside every budget): while two keys' slow downloads of a
// 8 MiB result hold most of the budget's share, a third key's gets a 503
// with the budget's figures and a Retry-After.
func TestResultDownloadsShareABudget(t *testing.T) {
	c := startCoordinator(t, budget160)
	startWorkers(t, c, 2, nil)
	// C: 8 MiB, more than the kernel buffers a socket (tcp_wmem's 4 MiB at
	// most), so that a download not read stays in progress.
	job := doneOuterProduct(t, c, c.Key, 1024)
	// Admin keys read every job: three keys download one job.
	keys := []string{c.Key, c.AddAdminKey(t, "ops"), c.AddAdminKey(t, "audit")}
	for i := range 2 {
		if resp := getResult(t, c, keys[i], job); resp.StatusCode != http.StatusOK {
			t.Fatalf("download %d: %s", i+1, resp.Status)
		}
	}
	resp := getResult(t, c, keys[2], job)
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(msg), "memory budget") || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("a third download of an 8 MiB result while two are being sent, under a 160 MiB budget: %s %s (Retry-After %q); want a 503 naming the memory budget, with a Retry-After",
			resp.Status, msg, resp.Header.Get("Retry-After"))
	}
}

// TestUnassemblableJobIsRefused: a job whose result could never be
// assembled within the memory budget is refused at submission, naming the
// limit (a 256 KiB job of A 32768×1 by B 1×32768 has a 4 GiB C: it was
// accepted, and each GET /result would have assembled it whole).
func TestUnassemblableJobIsRefused(t *testing.T) {
	c := startCoordinator(t, budget160)
	rng := rand.New(rand.NewPCG(8, 8))
	_, err := c.client().SubmitMatmul(context.Background(), randomTensor(rng, 2560, 1), randomTensor(rng, 1, 2048), client.SubmitOptions{})
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusBadRequest || !strings.Contains(apiErr.Message, "memory-budget") {
		t.Fatalf("a job with a 20 MiB C under a 160 MiB budget: %v; want a 400 naming the memory budget", err)
	}
}
