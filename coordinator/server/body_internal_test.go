package server

import (
	"errors"
	"testing"
)

// TestAccountClosedChargesNothing: an upload's account, once its request
// has ended, refuses to hold more and charges the bodies budget nothing (a
// request body read after its Close charged blocks that nothing gave
// back).
func TestAccountClosedChargesNothing(t *testing.T) {
	b := &budget{name: "uploads being read", limit: 1 << 20}
	a := &account{b: b, holder: "k-1"}
	if err := a.add(1000); err != nil {
		t.Fatal(err)
	}
	a.close()
	if err := a.add(100); !errors.Is(err, errAccountClosed) {
		t.Errorf("add after close: %v, want errAccountClosed", err)
	}
	if used := b.Used(); used != 0 {
		t.Errorf("the budget holds %d bytes after the account's close and a late add, want 0", used)
	}
}
