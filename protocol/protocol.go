package protocol

import (
	"errors"
	"fmt"

	"github.com/neurolov/neurolov/tensor"
)

// Version is the protocol version this build speaks. It is the fourth byte of
// every frame; a peer speaking another version is refused with ErrVersion.
const Version uint8 = 1

// Frame and field limits. Decoding enforces every one of them; encoding
// refuses a message that would break one, so a peer never has to reject what
// this package produced.
const (
	// MaxFrameSize is the largest frame, header included, in bytes.
	MaxFrameSize = 16 << 20
	// HeaderSize is the size of the frame header: magic, version, count.
	HeaderSize = 6
	// MsgHeaderSize is the size of each message's header: type and length.
	MsgHeaderSize = 5
	// MaxMessages is the most messages one frame holds (the count is a uint16).
	MaxMessages = 1<<16 - 1
	// MaxString is the longest string field, in bytes.
	MaxString = 4 << 10
	// MaxParams is the longest Assign.Params, in bytes.
	MaxParams = 64 << 10
	// MaxRank is the highest tensor rank on the wire (tensor.MaxDims).
	MaxRank = tensor.MaxDims
	// MaxTensors is the most tensor references one Assign or Result holds.
	MaxTensors = 1<<16 - 1
	// MaxHashes is the most hashes one Fetch holds.
	MaxHashes = 1<<16 - 1
	// MaxChunkElems is the most float32 elements one TensorData chunk may
	// carry so that it fits a frame on its own, with room to spare.
	MaxChunkElems = (MaxFrameSize - 4096) / 4
	// DefaultChunkElems is the chunk size ChunkTensor uses when asked for 0:
	// 1 MiB of data, small enough to interleave with other traffic.
	DefaultChunkElems = 1 << 18
)

// MaxInlineBytes bounds the tensor data one Assign or Result carries
// inline: the frame limit less 128 KiB of room for the message's other
// fields (a sender past it sends the rest as TensorData chunks, by hash).
const MaxInlineBytes = MaxFrameSize - 128<<10

// RefBytes is what a TensorRef of the given shape costs in a message
// besides its data: hash (32 bytes), flags (1), rank (1) and 4 bytes a
// dimension, rounded up.
func RefBytes(shape []int) int { return 48 + 4*len(shape) }

// magic opens every frame.
const magic = "NLV"

// Errors. Decoding errors wrap one of these with context (which message,
// which field), so test them with errors.Is.
var (
	// ErrShortFrame reports a frame that ends before its header, a message
	// header or a message body does: a truncated frame.
	ErrShortFrame = errors.New("protocol: short frame")
	// ErrBadMagic reports a frame that does not start with "NLV".
	ErrBadMagic = errors.New("protocol: bad magic")
	// ErrVersion reports a frame of another protocol version.
	ErrVersion = errors.New("protocol: unsupported version")
	// ErrUnknownType reports a message type this build does not know.
	ErrUnknownType = errors.New("protocol: unknown message type")
	// ErrFrameTooLarge reports a frame over MaxFrameSize (decoding), or a
	// message that would take a frame over MaxFrameSize or MaxMessages
	// (Encoder.Append).
	ErrFrameTooLarge = errors.New("protocol: frame too large")
	// ErrMalformed reports a message body that does not parse: a field runs
	// past the body, bytes are left over, a flag has unknown bits.
	ErrMalformed = errors.New("protocol: malformed message")
	// ErrLimit reports a field over its limit (MaxString, MaxParams, MaxRank,
	// MaxTensors, MaxHashes, MaxChunkElems).
	ErrLimit = errors.New("protocol: field over limit")
	// ErrShape reports a tensor whose shape does not match its data, or a
	// chunk that falls outside its tensor.
	ErrShape = errors.New("protocol: tensor shape mismatch")
	// ErrChunk reports a TensorData chunk the Assembler cannot take: it
	// overlaps one already received or disagrees on the tensor's shape.
	ErrChunk = errors.New("protocol: bad tensor chunk")
	// ErrTooBig reports a tensor the Assembler has no room for.
	ErrTooBig = errors.New("protocol: tensor over the assembler's budget")
	// ErrHashMismatch reports an assembled tensor whose content hash is not
	// the hash its chunks named.
	ErrHashMismatch = errors.New("protocol: tensor hash mismatch")
)

// MsgType identifies a message on the wire. The values are part of the
// protocol: never renumber them.
type MsgType uint8

// Message types.
const (
	TypeHello        MsgType = 1
	TypeChallenge    MsgType = 2
	TypeAuth         MsgType = 3
	TypeCapabilities MsgType = 4
	TypeWindow       MsgType = 5
	TypeAssign       MsgType = 6
	TypeResult       MsgType = 7
	TypeFetch        MsgType = 8
	TypeTensorData   MsgType = 9
	TypeHeartbeat    MsgType = 10
	TypeError        MsgType = 11
	TypeGoodbye      MsgType = 12
	TypeCancel       MsgType = 13
)

var typeNames = [...]string{
	TypeHello:        "Hello",
	TypeChallenge:    "Challenge",
	TypeAuth:         "Auth",
	TypeCapabilities: "Capabilities",
	TypeWindow:       "Window",
	TypeAssign:       "Assign",
	TypeResult:       "Result",
	TypeFetch:        "Fetch",
	TypeTensorData:   "TensorData",
	TypeHeartbeat:    "Heartbeat",
	TypeError:        "Error",
	TypeGoodbye:      "Goodbye",
	TypeCancel:       "Cancel",
}

// String returns the message type's name, or "MsgType(n)" for an unknown one.
func (t MsgType) String() string {
	if int(t) < len(typeNames) && typeNames[t] != "" {
		return typeNames[t]
	}
	return fmt.Sprintf("MsgType(%d)", uint8(t))
}

// Backend names a worker reports in Capabilities.Backend.
const (
	BackendCPU       = "cpu"        // native worker, CPU (BLAS or pure Go)
	BackendNativeGPU = "native-gpu" // native worker, wgpu-native on a real adapter
	BackendWebGPU    = "webgpu"     // browser tab, WebGPU
	BackendCPUWasm   = "cpu-wasm"   // browser tab, WASM CPU kernels
)

// Error codes carried by Error.Code. The values are part of the protocol.
const (
	// CodeInternal: the sender failed for a reason of its own.
	CodeInternal uint16 = 1
	// CodeProtocol: the sender received a frame it could not decode or a
	// message out of sequence; it closes the connection next.
	CodeProtocol uint16 = 2
	// CodeAuth: authentication failed (bad signature, expired or reused
	// challenge, wrong address).
	CodeAuth uint16 = 3
	// CodeVersion: the peer speaks another protocol version.
	CodeVersion uint16 = 4
	// CodeUnsupported: the worker cannot run this kernel or shape.
	CodeUnsupported uint16 = 5
	// CodeBadInput: the lease's inputs or params do not fit its kernel.
	CodeBadInput uint16 = 6
	// CodeResources: the worker ran out of memory or device limits.
	CodeResources uint16 = 7
	// CodeDeviceLost: the worker's GPU was lost; it may retry on CPU.
	CodeDeviceLost uint16 = 8
	// CodeUnknownLease: a Result or Cancel named a lease the receiver does
	// not know (expired, cancelled or never issued).
	CodeUnknownLease uint16 = 9
	// CodeRejected: the coordinator refused a result (wrong, late,
	// duplicate or not leased); Message says why. Nothing is paid for it.
	CodeRejected uint16 = 10
	// CodeNotFound: a Fetch named a tensor the coordinator does not hold.
	CodeNotFound uint16 = 11
)

// Message is one protocol message. Only the pointer types of this package
// (*Hello, *Assign, ...) implement it; a type switch over a decoded Message
// therefore names pointer types.
type Message interface {
	// Type returns the message's wire type.
	Type() MsgType

	// size validates the message against the limits and returns the
	// length of its body on the wire.
	size() (int, error)
	// appendBody appends the body (exactly size bytes) to b.
	appendBody(b []byte) []byte
	// decode parses body into the message, reusing its slices and the
	// decoder's scratch space.
	decode(r *reader)
}
