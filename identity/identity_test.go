package identity

import (
	"crypto/ecdsa"
	"encoding/hex"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/accounts"
	"github.com/ethereum/go-ethereum/crypto"
)

// The personal_sign example from the web3.js documentation
// (web3.eth.accounts.sign('Some data', privateKey)): an independent
// implementation's output, which ours must reproduce bit for bit.
const (
	goldenKey     = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
	goldenAddress = "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23"
	goldenMessage = "Some data"
	goldenHash    = "1da44b586eb0729ff70a73c326926f6ed5a25f5b056e7f47fbc6e58d86871655"
	goldenSig     = "b91467e570a6466aa9e9876cbcd013baba02900b8979d43fe208a4a4f339f5fd6007e74cd82e037b800186422fc2da167c747ef045e5d18a5f5d4300f8e1a0291c"
)

func goldenPrivateKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := crypto.HexToECDSA(goldenKey)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func TestGoldenSignature(t *testing.T) {
	key := goldenPrivateKey(t)
	if got := FormatAddress(Address(key)); got != goldenAddress {
		t.Fatalf("Address = %s, want %s", got, goldenAddress)
	}
	if h := TextHash([]byte(goldenMessage)); hex.EncodeToString(h[:]) != goldenHash {
		t.Fatalf("TextHash = %x, want %s", h, goldenHash)
	}
	sig, err := Sign(key, goldenMessage)
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(sig[:]) != goldenSig {
		t.Fatalf("Sign =\n %x\nwant\n %s", sig, goldenSig)
	}
	var fixed [65]byte
	b, _ := hex.DecodeString(goldenSig)
	copy(fixed[:], b)
	addr, err := Recover(goldenMessage, fixed)
	if err != nil || FormatAddress(addr) != goldenAddress {
		t.Fatalf("Recover = %s, %v; want %s", FormatAddress(addr), err, goldenAddress)
	}
}

// TestTextHash checks the local EIP-191 hash against go-ethereum's
// accounts.TextHash (which this package avoids importing).
func TestTextHash(t *testing.T) {
	for _, msg := range []string{"", "a", goldenMessage, strings.Repeat("é\n", 500), ChallengeMessage("d", "u", [20]byte{1}, "abcdefgh", time.Unix(0, 0), time.Unix(60, 0), 1)} {
		got := TextHash([]byte(msg))
		if want := accounts.TextHash([]byte(msg)); string(got[:]) != string(want) {
			t.Errorf("TextHash(%.20q) = %x, accounts.TextHash = %x", msg, got, want)
		}
	}
}

func TestRecoverV(t *testing.T) {
	key := goldenPrivateKey(t)
	sig, err := Sign(key, "hello")
	if err != nil {
		t.Fatal(err)
	}
	if sig[64] != 27 && sig[64] != 28 {
		t.Fatalf("Sign made v = %d, want 27 or 28", sig[64])
	}
	for _, v := range []byte{0, 1, 27, 28} {
		s := sig
		s[64] = v
		addr, err := Recover("hello", s)
		want := v%27 == sig[64]-27 // the same recovery id gives the key; the other gives another
		if err != nil {
			t.Fatalf("v=%d: %v", v, err)
		}
		if (addr == Address(key)) != want {
			t.Errorf("v=%d: recovered %s", v, FormatAddress(addr))
		}
	}
	for _, v := range []byte{2, 26, 29, 255} {
		s := sig
		s[64] = v
		if _, err := Recover("hello", s); !errors.Is(err, ErrSignature) {
			t.Errorf("v=%d: got %v, want ErrSignature", v, err)
		}
	}
	// High s (the malleable twin, n - s) is refused.
	n, _ := new(big.Int).SetString("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141", 16)
	high := sig
	new(big.Int).Sub(n, new(big.Int).SetBytes(sig[32:64])).FillBytes(high[32:64])
	high[64] = 27 + (28 - sig[64])
	if _, err := Recover("hello", high); !errors.Is(err, ErrSignature) {
		t.Errorf("high s: got %v, want ErrSignature", err)
	}
	if _, err := Recover("hello", [65]byte{64: 27}); !errors.Is(err, ErrSignature) {
		t.Errorf("zero signature: got %v, want ErrSignature", err)
	}
	if addr, err := Recover("hellO", sig); err == nil && addr == Address(key) {
		t.Error("a signature over another message recovered the signer")
	}
}

func TestNewNonce(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		n := NewNonce()
		if len(n) != 32 || strings.IndexFunc(n, notAlnum) >= 0 || seen[n] {
			t.Fatalf("nonce %q: wrong form or repeated", n)
		}
		seen[n] = true
	}
}

func TestParseAddress(t *testing.T) {
	want := Address(goldenPrivateKey(t))
	for _, s := range []string{goldenAddress, strings.ToLower(goldenAddress), "0x" + strings.ToUpper(goldenAddress[2:])} {
		if got, err := ParseAddress(s); err != nil || got != want {
			t.Errorf("ParseAddress(%s) = %x, %v", s, got, err)
		}
	}
	bad := strings.Replace(goldenAddress, "E", "e", 1) // breaks the checksum
	for _, s := range []string{bad, goldenAddress[2:], goldenAddress + "00", "0x12", "0xZZ7536E3605D9C16a7a3D7b1898e529396a65c23"} {
		if _, err := ParseAddress(s); !errors.Is(err, ErrAddressFormat) {
			t.Errorf("ParseAddress(%s): got %v, want ErrAddressFormat", s, err)
		}
	}
}

func TestLoadOrCreateKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "worker.key")
	key, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && info.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %#o, want 0600", info.Mode().Perm())
	}
	again, err := LoadOrCreateKey(path)
	if err != nil || Address(again) != Address(key) {
		t.Fatalf("reload: %v, same key %v", err, err == nil && Address(again) == Address(key))
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, "sub", ".key-*")); len(leftovers) != 0 {
		t.Errorf("temporary files left behind: %v", leftovers)
	}

	// Concurrent first runs agree on one key.
	racePath := filepath.Join(dir, "race.key")
	var wg sync.WaitGroup
	addrs := make([][20]byte, 8)
	errs := make([]error, 8)
	for i := range addrs {
		wg.Go(func() {
			k, err := LoadOrCreateKey(racePath)
			errs[i] = err
			if err == nil {
				addrs[i] = Address(k)
			}
		})
	}
	wg.Wait()
	for i := range addrs {
		if errs[i] != nil || addrs[i] != addrs[0] {
			t.Fatalf("racing creators: %v, addresses %x", errs, addrs)
		}
	}

	// A hand-written file in the other accepted forms.
	hand := filepath.Join(dir, "hand.key")
	if err := os.WriteFile(hand, []byte("  0x"+goldenKey+"\r\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if k, err := LoadOrCreateKey(hand); err != nil || FormatAddress(Address(k)) != goldenAddress {
		t.Fatalf("hand-written key: %v", err)
	}
}

func TestLoadKeyErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		content string
		mode    os.FileMode
	}{
		{"not hex", strings.Repeat("zz", 32), 0o600},
		{"short", goldenKey[:60], 0o600},
		{"zero key", strings.Repeat("00", 32), 0o600},
		{"too long", strings.Repeat("a", 2000), 0o600},
		{"empty", "", 0o600},
	}
	if runtime.GOOS != "windows" {
		tests = append(tests, struct {
			name    string
			content string
			mode    os.FileMode
		}{"world readable", goldenKey, 0o644})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
			if err := os.WriteFile(path, []byte(tc.content), tc.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tc.mode); err != nil {
				t.Fatal(err)
			}
			if _, err := LoadOrCreateKey(path); !errors.Is(err, ErrKeyFile) {
				t.Fatalf("got %v, want ErrKeyFile", err)
			}
			if b, _ := os.ReadFile(path); string(b) != tc.content {
				t.Fatal("a bad key file was overwritten")
			}
		})
	}
}
