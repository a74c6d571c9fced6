package server_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
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

// TestIdleKeepAliveIsClosed: a keep-alive HTTP connection left idle is
// closed after IdleTimeout (it was kept for ever).
func TestIdleKeepAliveIsClosed(t *testing.T) {
	c := startCoordinator(t, func(cfg *server.Config) { cfg.IdleTimeout = 100 * time.Millisecond })
	nc, err := net.Dial("tcp", strings.TrimPrefix(c.HTTP.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := io.WriteString(nc, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := nc.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("idle keep-alive connection: read %d, %v; want EOF (closed by the coordinator)", n, err)
	}
}

// TestStalledBodyIsCut: a request body that stops arriving ends its
// request once it falls below MinRate past RateGrace (it held the handler
// for ever), while the connection may still be answered.
func TestStalledBodyIsCut(t *testing.T) {
	c := startCoordinator(t, func(cfg *server.Config) {
		cfg.RateGrace = 200 * time.Millisecond
		cfg.MinRate = 1 << 20
	})
	pr, pw := io.Pipe()
	defer pw.Close()
	req, err := http.NewRequest(http.MethodPost, c.HTTP.URL+"/v1/jobs?kernel=matmul", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.Key)
	answered := make(chan int, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			answered <- -1
			return
		}
		resp.Body.Close()
		answered <- resp.StatusCode
	}()
	if _, err := pw.Write([]byte{16, 0, 0, 0, 0, 0, 0, 0, '{'}); err != nil { // a header begun, never finished
		t.Fatal(err)
	}
	select {
	case code := <-answered:
		if code != http.StatusRequestTimeout {
			t.Fatalf("stalled body: status %d, want 408", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a stalled body held its request for 10 s")
	}
}
