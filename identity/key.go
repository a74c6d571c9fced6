package identity

import (
	"crypto/ecdsa"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
)

var (
	// ErrKeyFile reports a key file that cannot be used: unreadable,
	// malformed, or readable by other users.
	ErrKeyFile = errors.New("identity: bad key file")
	// ErrSignature reports a signature that is malformed, does not recover
	// to a public key, or was made by another address than expected.
	ErrSignature = errors.New("identity: bad signature")
	// ErrAddressFormat reports text that is not an Ethereum address.
	ErrAddressFormat = errors.New("identity: bad address")
)

// NewKey returns a fresh secp256k1 private key from crypto/rand.
func NewKey() (*ecdsa.PrivateKey, error) {
	key, err := crypto.GenerateKey()
	if err != nil {
		return nil, fmt.Errorf("identity: generate key: %w", err)
	}
	return key, nil
}

// maxKeyFile bounds what LoadOrCreateKey reads: a key is 64 hex digits.
const maxKeyFile = 1 << 10

// LoadOrCreateKey returns the key stored at path as hexadecimal (64 digits,
// an optional 0x prefix and surrounding white space allowed). If there is no
// file it creates one holding a new key, with mode 0600, creating the
// directory (mode 0700) if needed; two processes racing to create it end up
// with the same key. A key file that other users can read is refused, as ssh
// refuses a private key: fix it with chmod 600.
func LoadOrCreateKey(path string) (*ecdsa.PrivateKey, error) {
	key, err := loadKey(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	key, err = NewKey()
	if err != nil {
		return nil, err
	}
	if err := createKeyFile(path, key); errors.Is(err, fs.ErrExist) {
		return loadKey(path) // another process made one first: use it
	} else if err != nil {
		return nil, err
	}
	return key, nil
}

// OpenToOthers returns the permission bits of the file described by info
// and whether they grant anything to its group or to other users (0o077),
// as ssh checks a private key. It is always false on Windows, where those
// bits do not control access.
func OpenToOthers(info fs.FileInfo) (perm fs.FileMode, open bool) {
	perm = info.Mode().Perm()
	return perm, perm&0o077 != 0 && runtime.GOOS != "windows"
}

func loadKey(path string) (*ecdsa.PrivateKey, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", ErrKeyFile, err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKeyFile, err)
	}
	if perm, open := OpenToOthers(info); open {
		return nil, fmt.Errorf("%w: %s has mode %#o, readable by other users: run chmod 600 %s", ErrKeyFile, path, perm, path)
	}
	buf, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrKeyFile, path, err)
	}
	if len(buf) > maxKeyFile {
		return nil, fmt.Errorf("%w: %s is over %d bytes; want 64 hex digits", ErrKeyFile, path, maxKeyFile)
	}
	text := strings.TrimPrefix(strings.TrimSpace(string(buf)), "0x")
	key, err := crypto.HexToECDSA(text)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v (want 64 hex digits)", ErrKeyFile, path, err)
	}
	return key, nil
}

// createKeyFile writes key to a temporary file and links it into place, so
// that no reader ever sees a partial file and an existing file is never
// replaced (the link fails with fs.ErrExist).
func createKeyFile(path string, key *ecdsa.PrivateKey) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("identity: create key directory: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".key-*") // mode 0600
	if err != nil {
		return fmt.Errorf("identity: create key file: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.WriteString(hex.EncodeToString(crypto.FromECDSA(key)) + "\n")
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("identity: write key file: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return err
		}
		return fmt.Errorf("identity: create key file %s: %w", path, err)
	}
	return nil
}

// Address returns the Ethereum address of key.
func Address(key *ecdsa.PrivateKey) [20]byte {
	return crypto.PubkeyToAddress(key.PublicKey)
}

// FormatAddress returns addr as 0x-prefixed hex with the EIP-55 checksum
// capitalisation.
func FormatAddress(addr [20]byte) string { return common.Address(addr).Hex() }

// ParseAddress parses a 0x-prefixed hexadecimal address. All-lowercase and
// all-uppercase digits are accepted as is; mixed case must carry a correct
// EIP-55 checksum.
func ParseAddress(s string) ([20]byte, error) {
	if !strings.HasPrefix(s, "0x") || !common.IsHexAddress(s) {
		return [20]byte{}, fmt.Errorf("%w: %q is not 0x and 40 hex digits", ErrAddressFormat, s)
	}
	addr := common.HexToAddress(s)
	digits := s[2:]
	if digits != strings.ToLower(digits) && digits != strings.ToUpper(digits) && addr.Hex() != s {
		return [20]byte{}, fmt.Errorf("%w: %q has a wrong EIP-55 checksum (want %s)", ErrAddressFormat, s, addr.Hex())
	}
	return addr, nil
}

// TextHash returns the EIP-191 personal_sign hash of message:
// Keccak-256("\x19Ethereum Signed Message:\n" + len(message) + message). It
// equals go-ethereum's accounts.TextHash.
func TextHash(message []byte) [32]byte {
	prefix := "\x19Ethereum Signed Message:\n" + strconv.Itoa(len(message))
	return crypto.Keccak256Hash([]byte(prefix), message)
}

// Sign signs message with personal_sign semantics, as a wallet does: the
// signature is r ‖ s ‖ v with v = 27 or 28.
func Sign(key *ecdsa.PrivateKey, message string) ([65]byte, error) {
	h := TextHash([]byte(message))
	sig, err := crypto.Sign(h[:], key)
	if err != nil {
		return [65]byte{}, fmt.Errorf("identity: sign: %w", err)
	}
	var out [65]byte
	copy(out[:], sig)
	out[64] += 27
	return out, nil
}

// Recover returns the address that signed message with personal_sign
// semantics. It accepts v in {0, 1, 27, 28} and, as Ethereum does since
// Homestead, only the lower half of s values (so each signature has exactly
// one valid form).
func Recover(message string, sig [65]byte) ([20]byte, error) {
	v := sig[64]
	if v >= 27 {
		v -= 27
	}
	r := new(big.Int).SetBytes(sig[:32])
	s := new(big.Int).SetBytes(sig[32:64])
	if !crypto.ValidateSignatureValues(v, r, s, true) {
		return [20]byte{}, fmt.Errorf("%w: v=%d or r, s out of range", ErrSignature, sig[64])
	}
	sig[64] = v
	h := TextHash([]byte(message))
	pub, err := crypto.SigToPub(h[:], sig[:])
	if err != nil {
		return [20]byte{}, fmt.Errorf("%w: %v", ErrSignature, err)
	}
	return crypto.PubkeyToAddress(*pub), nil
}

// NewNonce returns a fresh 128-bit random nonce from crypto/rand, as 32
// lowercase hex digits (EIP-4361 wants at least 8 alphanumerics).
func NewNonce() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails: Go's crypto/rand crashes the program instead
	return hex.EncodeToString(b[:])
}
