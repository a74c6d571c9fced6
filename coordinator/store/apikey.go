package store

import (
	"crypto/rand"
	"crypto/sha256"
)

// APIKeyPrefix starts every key NewAPIKey makes, so that a leaked key is
// easy to recognise (and to grep for).
const APIKeyPrefix = "nlv_"

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
