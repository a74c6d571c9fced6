package store_test

import (
	"crypto/sha256"
	"strings"
	"testing"

	"github.com/neurolov/neurolov/coordinator/store"
)

func TestNewAPIKey(t *testing.T) {
	seen := make(map[string]bool)
	for range 100 {
		key, hash := store.NewAPIKey()
		if !strings.HasPrefix(key, store.APIKeyPrefix) {
			t.Fatalf("key %q lacks the prefix %q", key, store.APIKeyPrefix)
		}
		if n := len(key) - len(store.APIKeyPrefix); n < 26 { // 26 base32 characters = 128 bits
			t.Fatalf("key %q has %d random characters, want at least 26", key, n)
		}
		if hash != sha256.Sum256([]byte(key)) || hash != store.HashAPIKey(key) {
			t.Fatalf("NewAPIKey's hash of %q is not its SHA-256", key)
		}
		if seen[key] {
			t.Fatalf("key %q made twice", key)
		}
		seen[key] = true
	}
}

func TestHashAPIKey(t *testing.T) {
	// Known SHA-256 value, so that the hash stored today still matches
	// after a refactor.
	const key = "nlv_test"
	got := store.HashAPIKey(key)
	want := sha256.Sum256([]byte("nlv_test"))
	if got != want || store.HashAPIKey("nlv_tesT") == got {
		t.Errorf("HashAPIKey(%q) = %x, want %x", key, got, want)
	}
}
