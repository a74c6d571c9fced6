// Package protocol defines the binary messages a coordinator and its workers
// exchange over one WebSocket per worker, and their encoding. It does no I/O:
// the transport (github.com/coder/websocket) carries each frame as one binary
// WebSocket message. It imports only the standard library and tensor, has no
// cgo, and builds for GOOS=js GOARCH=wasm; it must never import go-ethereum
// (signatures live in package identity) so that the browser client stays
// small.
//
// # Frames
//
// A frame is a header followed by one or more messages. Several messages
// share a frame whenever the sender has them ready (an Encoder batches them):
// a WebSocket write costs a syscall and a flush, so batching is what lets the
// coordinator dispatch 100,000 shards a second. All integers are
// little-endian; tensor data is raw little-endian IEEE-754 float32, never
// text. The header's first four bytes will never change meaning, so that a
// peer of any version can tell which version it is talking to.
//
//	frame header (HeaderSize = 6 bytes)
//	  0  3  magic       "NLV" (4e 4c 56)
//	  3  1  version     Version (1)
//	  4  2  count       u16, number of messages that follow (0..65535)
//	  6  …  messages    back to back; nothing may follow the last one
//
//	message (MsgHeaderSize = 5 bytes, then the body)
//	  0  1  type        MsgType
//	  1  4  length      u32, body length in bytes
//	  5  …  body        exactly length bytes, laid out per type below
//
// A frame is at most MaxFrameSize (16 MiB) long, header included.
//
// # Field encodings
//
//	u8 u16 u32 u64   unsigned little-endian integers
//	i64              two's complement, as u64
//	f64              IEEE-754 binary64 bits, as u64
//	[n]              n raw bytes (hashes, addresses, signatures)
//	str              u16 byte length (≤ MaxString = 4096), then the bytes
//	                 (UTF-8 by convention; not checked)
//	shape            u8 rank (≤ MaxRank = 8), then rank × u32 dimensions;
//	                 the element count (their product) is at most 2³¹-1
//	tensor           [32] hash, u8 flags (bit 0 = inline; others must be 0),
//	                 shape, then, if inline, count × f32 (count = product of
//	                 the shape: there is no separate data length, so data
//	                 and shape cannot disagree)
//	tensors          u16 count, then count × tensor
//
// # Message bodies
//
//	type  name          body
//	 1    Hello         u8 version, [20] address, str agent
//	 2    Challenge     str message (EIP-4361 text)
//	 3    Auth          [65] signature (r ‖ s ‖ v, v = 27 or 28)
//	 4    Capabilities  str backend, str device, u64 max buffer bytes,
//	                    u64 max shard bytes, f64 GFLOPS, u16 threads
//	 5    Window        u32 size
//	 6    Assign        u64 lease, str job, u32 shard, str kernel,
//	                    u32 params length (≤ MaxParams = 65536), params bytes,
//	                    tensors inputs
//	 7    Result        u64 lease, tensors outputs
//	 8    Fetch         u16 count, count × [32] hash
//	 9    TensorData    [32] hash, shape (of the whole tensor), u64 offset
//	                    (in elements), u32 count (≤ MaxChunkElems), count × f32;
//	                    offset + count ≤ the shape's element count
//	10    Heartbeat     u64 seq, i64 unix milliseconds
//	11    Error         u64 lease (0: the connection), u16 code, str message
//	12    Goodbye       str reason
//	13    Cancel        u64 lease
//
// For example, a frame holding one Window{Size: 8} is 15 bytes:
//
//	4e 4c 56 01 01 00  05  04 00 00 00  08 00 00 00
//	magic    v  count  ty  length       size
//
// The files in testdata/ hold the exact bytes of every message type (run
// `go test ./protocol -run Golden -update` after a deliberate format change,
// and bump Version).
//
// # Sequence
//
// A worker connects and the two sides exchange, in this order:
//
//	worker → coordinator   Hello         protocol version, address, agent
//	coordinator → worker   Challenge     EIP-4361 text with domain, nonce, expiry
//	worker → coordinator   Auth          personal_sign signature over it
//	worker → coordinator   Capabilities  backend, device, limits, GFLOP/s
//	coordinator → worker   Window        leases the worker may hold at once
//
// Auth and Capabilities may share a frame. If authentication fails the
// coordinator sends Error{Code: CodeAuth} and Goodbye and closes. After the
// Window the connection carries, in any order and batched freely:
//
//	coordinator → worker   Assign        a lease: kernel, params, inputs
//	                                     (inline, or by hash when the worker
//	                                     has them cached: weights travel once)
//	worker → coordinator   Fetch         hashes of inputs the worker lacks
//	coordinator → worker   TensorData    chunks of those tensors (ChunkTensor;
//	                                     the worker puts them together with an
//	                                     Assembler, which checks the hash)
//	worker → coordinator   Result        the lease's outputs, normally inline;
//	                                     an output too large for a frame is
//	                                     sent first as TensorData and named by
//	                                     hash
//	coordinator → worker   Window        a new grant, whenever it changes
//	coordinator → worker   Cancel        drop a lease (no Result expected)
//	either way             Heartbeat     answered with the same Seq
//	either way             Error         a lease failed (Lease ≠ 0), or the
//	                                     connection did (Lease = 0)
//
// Either side sends Goodbye with a reason before it closes the connection.
// A peer that receives a frame Decode refuses sends Error{Code:
// CodeProtocol} and Goodbye and closes.
//
// # Decoding and aliasing
//
// Decode is written for hostile input and the hot path at once. Every length
// is checked against the bytes that remain before anything is allocated for
// it, ranks, strings, params, counts and chunks are bounded, and shapes are
// checked for overflow. A Decoder reuses one value per message type and its
// slices; tensor data is not copied on little-endian platforms (the decoded
// []float32 views the frame). Therefore a decoded message, and every slice
// in it, is valid only until the callback returns; keep Clone(m) if it must
// live longer. Strings are ordinary Go strings; short ones are interned per
// Decoder so that repeated job ids and kernel names do not allocate.
//
// The encoding is canonical: a frame that decodes re-encodes to the same
// bytes (the fuzz test checks this).
package protocol
