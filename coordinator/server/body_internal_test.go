package server

import (
	"io"
	"strings"
	"testing"
)

// TestBodyReadAfterCloseChargesNothing: a request body read after its
// Close (a handler's goroutine left reading) is refused and charges the
// bodies budget nothing (it charged blocks that nothing gave back).
func TestBodyReadAfterCloseChargesNothing(t *testing.T) {
	b := &budget{name: "uploads being read", limit: 1 << 20}
	cb := &chargedBody{ReadCloser: io.NopCloser(strings.NewReader(strings.Repeat("x", 1000))), acct: account{b: b}, length: 1000}
	if _, err := cb.Read(make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	if err := cb.Close(); err != nil {
		t.Fatal(err)
	}
	if n, err := cb.Read(make([]byte, 100)); err == nil || n > 0 {
		t.Errorf("Read after Close: %d bytes, %v; want an error", n, err)
	}
	if used := b.Used(); used != 0 {
		t.Errorf("the budget holds %d bytes after the body's Close and a late Read, want 0", used)
	}
}
