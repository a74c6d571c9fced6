// Package identity gives workers an Ethereum identity and lets the
// coordinator check it.
//
// A worker's identity is a secp256k1 key; its name is the key's Ethereum
// address. The coordinator proves that a connecting worker holds the key
// behind the address it claims with a sign-in challenge:
//
//  1. the worker sends its address (protocol.Hello);
//  2. the coordinator's Verifier issues an EIP-4361 "Sign-In with Ethereum"
//     text naming the coordinator's domain, the address, a fresh single-use
//     nonce and an expiry (protocol.Challenge);
//  3. the worker signs it with personal_sign semantics (EIP-191: Keccak-256
//     of "\x19Ethereum Signed Message:\n" + length + text), exactly what a
//     browser wallet's personal_sign produces, so a visitor's wallet can sign
//     in place of a key the worker keeps (protocol.Auth);
//  4. the Verifier recovers the signer's address from the signature and
//     accepts the worker only if the text is one it issued, for its domain,
//     unexpired, unused, and signed by the claimed address.
//
// The package uses go-ethereum's crypto package (cgo secp256k1 natively,
// pure Go elsewhere). It hashes with its own four-line TextHash, identical
// to go-ethereum's accounts.TextHash (a test checks it), because the accounts
// package drags in go-ethereum's core types and would bloat a browser build.
// Package protocol must not import this package: the wire format stays free
// of go-ethereum.
package identity
