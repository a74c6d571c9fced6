package protocol

import (
	"encoding/hex"
	"strings"
)

// notFoundPrefix opens the Message of a NotFound error; the tensor's hash
// follows in hex.
const notFoundPrefix = "tensor not held by this coordinator: "

// NotFound returns the Error a coordinator answers a Fetch with for a
// tensor it does not hold: Lease 0, CodeNotFound, and a Message naming the
// whole hash, which NotFoundHash reads back so that the worker can fail the
// leases waiting for it.
func NotFound(hash [32]byte) *Error {
	return &Error{Code: CodeNotFound, Message: notFoundPrefix + hex.EncodeToString(hash[:])}
}

// NotFoundHash returns the hash a NotFound error names; ok is false for
// any other error.
func NotFoundHash(e *Error) (hash [32]byte, ok bool) {
	if e.Code != CodeNotFound {
		return hash, false
	}
	s, found := strings.CutPrefix(e.Message, notFoundPrefix)
	if !found || hex.DecodedLen(len(s)) != len(hash) {
		return hash, false
	}
	if _, err := hex.Decode(hash[:], []byte(s)); err != nil {
		return [32]byte{}, false
	}
	return hash, true
}
