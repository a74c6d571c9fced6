package identity

import "crypto/ecdsa"

// KeySigner signs with a local secp256k1 key; it satisfies the worker's
// Signer interface (a browser wallet is the other implementation).
type KeySigner struct {
	key  *ecdsa.PrivateKey
	addr [20]byte
}

// NewKeySigner returns a signer for key.
func NewKeySigner(key *ecdsa.PrivateKey) *KeySigner {
	return &KeySigner{key: key, addr: Address(key)}
}

// Address returns the signer's Ethereum address.
func (s *KeySigner) Address() [20]byte { return s.addr }

// SignText signs message with personal_sign (EIP-191) semantics.
func (s *KeySigner) SignText(message string) ([65]byte, error) { return Sign(s.key, message) }
