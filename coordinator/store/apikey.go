package store

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
)

// APIKeyPrefix starts every key NewAPIKey makes, so that a leaked key is
// easy to recognise (and to grep for).
const APIKeyPrefix = "nlv_"

// APIKey is what the store keeps of an API key: never the key, only its
// hash, the name of its holder and its role.
type APIKey struct {
	// Name is the holder's name (not unique: one holder may have several
	// keys).
	Name string
	// Hash is the SHA-256 of the key (HashAPIKey).
	Hash [32]byte
	// Admin keys may read, list and cancel every job; other keys only the
	// jobs they submitted.
	Admin bool
}

// ID returns the key's owner ID, what JobRecord.Owner holds for the jobs
// the key submits (KeyID of its hash).
func (k APIKey) ID() string { return KeyID(k.Hash) }

// KeyID returns the owner ID of the key whose hash is keyHash: "k-" and the
// hash's first 16 bytes in hex. It names a key without revealing it: the
// hash of 128 random bits cannot be turned back into the key.
func KeyID(keyHash [32]byte) string { return "k-" + hex.EncodeToString(keyHash[:16]) }

// NewAPIKey returns a fresh API key (APIKeyPrefix and 128 random bits from
// crypto/rand, base32) and its hash. Show the key to its holder once and
// store only the hash (Store.AddAPIKey).
func NewAPIKey() (key string, hash [32]byte) {
	key = APIKeyPrefix + rand.Text()
	return key, HashAPIKey(key)
}

// HashAPIKey returns the SHA-256 of key: what the store keeps and what
// Store.CheckAPIKey looks up. Keys carry 128 random bits, so a fast
// unsalted hash is safe: a stolen hash cannot be turned back into a key by
// guessing.
func HashAPIKey(key string) [32]byte { return sha256.Sum256([]byte(key)) }
