package identity

import (
	"path/filepath"
	"testing"
)

// TestClaimKeyGivesEachHolderItsOwnIdentity: two holders at once get two
// key files and two addresses; once the first lets go, the next claim gets
// its key file — and its address — again.
func TestClaimKeyGivesEachHolderItsOwnIdentity(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	k1, p1, release1, err := ClaimKey(dir, "worker")
	if err != nil {
		t.Fatal(err)
	}
	k2, p2, release2, err := ClaimKey(dir, "worker")
	if err != nil {
		t.Fatal(err)
	}
	defer release2()
	if p1 != filepath.Join(dir, "worker.key") || p2 != filepath.Join(dir, "worker-2.key") {
		t.Fatalf("claimed %s and %s, want worker.key then worker-2.key", p1, p2)
	}
	if Address(k1) == Address(k2) {
		t.Fatal("two holders share one address")
	}
	release1()
	k3, p3, release3, err := ClaimKey(dir, "worker")
	if err != nil {
		t.Fatal(err)
	}
	defer release3()
	if p3 != p1 || Address(k3) != Address(k1) {
		t.Fatalf("after release, claimed %s (%v), want %s (%v) again", p3, Address(k3), p1, Address(k1))
	}
}
