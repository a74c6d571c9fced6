package protocol

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/neurolov/neurolov/tensor"
)

// Hello opens a connection: worker → coordinator.
type Hello struct {
	// Version is the protocol version the worker speaks (Version).
	Version uint8
	// Address is the worker's Ethereum address, proven by Auth.
	Address [20]byte
	// Agent names the client and its version, e.g. "neurolov-wasm/0.1".
	Agent string
}

// Challenge is the coordinator's answer to Hello: an EIP-4361 (SIWE) text
// the worker signs with personal_sign semantics and returns in Auth.
type Challenge struct {
	// Message is the text to sign, at most MaxString bytes.
	Message string
}

// Auth carries the worker's signature over Challenge.Message: worker →
// coordinator.
type Auth struct {
	// Signature is r ‖ s ‖ v, v in {27, 28} as wallets produce it.
	Signature [65]byte
}

// Capabilities describes the worker's backend and limits: worker →
// coordinator, right after Auth (they may share a frame).
type Capabilities struct {
	// Backend is one of BackendCPU, BackendNativeGPU, BackendWebGPU,
	// BackendCPUWasm.
	Backend string
	// Device names the adapter or CPU, as the worker sees it.
	Device string
	// MaxBufferBytes is the largest single device buffer the worker can
	// allocate (WebGPU's maxStorageBufferBindingSize; RAM budget on CPU).
	MaxBufferBytes uint64
	// MaxShardBytes is the most input plus output bytes the worker takes in
	// one shard.
	MaxShardBytes uint64
	// GFLOPS is the speed the worker measured on a reference shard:
	// finite and non-negative (a decoder refuses anything else).
	GFLOPS float64
	// Threads is the number of CPU threads the worker computes with.
	Threads uint16
}

// Window grants the worker how many leases it may hold at once (flow
// control): coordinator → worker, after Capabilities and whenever it changes.
type Window struct {
	// Size is the number of leases the worker may hold; 0 pauses it.
	Size uint32
}

// Assign leases one shard to the worker: coordinator → worker.
type Assign struct {
	// Lease identifies this lease; the Result names it. Never 0.
	Lease uint64
	// Job identifies the job the shard belongs to.
	Job string
	// Shard is the shard's index within its job.
	Shard uint32
	// Kernel names the kernel to run (shaders.Matmul, shaders.MLPInfer).
	Kernel string
	// Params holds kernel parameters, at most MaxParams bytes.
	Params []byte
	// Inputs are the kernel's inputs, inline or by content hash.
	Inputs []TensorRef
}

// TensorRef names a tensor by content hash and shape, and carries its data
// when Inline.
//
// On the wire: Hash (32 bytes), flags (1 byte: bit 0 = Inline, the other
// bits zero), rank (1 byte, ≤ MaxRank), the dimensions (u32 each), then, if
// Inline, the product of the dimensions float32 values. The decoder does not
// hash inline data (that costs more than the rest of decoding); the receiver
// does when it caches the tensor.
type TensorRef struct {
	// Hash is the tensor's content hash (tensor.Tensor.Hash). It may be zero
	// for an inline tensor nobody will cache, such as a Result's output.
	Hash [32]byte
	// Shape is the tensor's shape.
	Shape []int
	// Inline reports whether Data travels in this message. When false the
	// receiver looks the tensor up by Hash, or Fetches it.
	Inline bool
	// Data is the tensor's row-major content; its length is the product of
	// Shape when Inline, and it is empty otherwise.
	Data []float32
}

// Result returns a lease's outputs: worker → coordinator.
type Result struct {
	// Lease is the lease this result completes.
	Lease uint64
	// Outputs are the kernel's outputs in kernel order, normally inline; an
	// output sent earlier as TensorData chunks is named by hash.
	Outputs []TensorRef
}

// Fetch asks for tensors the worker lacks: worker → coordinator, which
// answers with TensorData chunks.
type Fetch struct {
	// Hashes names the tensors by content hash.
	Hashes [][32]byte
}

// TensorData carries one chunk of a tensor too large (or too widely shared)
// to travel inline: either direction. ChunkTensor splits a tensor into
// chunks and an Assembler puts them back together.
type TensorData struct {
	// Hash is the whole tensor's content hash.
	Hash [32]byte
	// Shape is the whole tensor's shape.
	Shape []int
	// Offset is the index of the chunk's first element in the whole tensor.
	Offset uint64
	// Data is the chunk: elements Offset to Offset+len(Data) of the tensor.
	Data []float32
}

// Heartbeat keeps a quiet connection alive and measures its latency: either
// direction. The receiver answers with a Heartbeat carrying the same Seq and
// its own clock.
type Heartbeat struct {
	// Seq numbers the heartbeat; the answer repeats it.
	Seq uint64
	// UnixMilli is the sender's wall clock, in milliseconds since 1970.
	UnixMilli int64
}

// Error reports a failure: either direction.
type Error struct {
	// Lease is the lease that failed, or 0 for the whole connection.
	Lease uint64
	// Code is one of the Code constants.
	Code uint16
	// Message says what went wrong, for people.
	Message string
}

// Goodbye announces that the sender is about to close the connection:
// either direction.
type Goodbye struct {
	// Reason says why, for people (and logs).
	Reason string
}

// Cancel tells the worker to drop a lease it holds; it sends no Result for
// it: coordinator → worker.
type Cancel struct {
	// Lease is the lease to drop.
	Lease uint64
}

// Type returns TypeHello.
func (*Hello) Type() MsgType { return TypeHello }

// Type returns TypeChallenge.
func (*Challenge) Type() MsgType { return TypeChallenge }

// Type returns TypeAuth.
func (*Auth) Type() MsgType { return TypeAuth }

// Type returns TypeCapabilities.
func (*Capabilities) Type() MsgType { return TypeCapabilities }

// Type returns TypeWindow.
func (*Window) Type() MsgType { return TypeWindow }

// Type returns TypeAssign.
func (*Assign) Type() MsgType { return TypeAssign }

// Type returns TypeResult.
func (*Result) Type() MsgType { return TypeResult }

// Type returns TypeFetch.
func (*Fetch) Type() MsgType { return TypeFetch }

// Type returns TypeTensorData.
func (*TensorData) Type() MsgType { return TypeTensorData }

// Type returns TypeHeartbeat.
func (*Heartbeat) Type() MsgType { return TypeHeartbeat }

// Type returns TypeError.
func (*Error) Type() MsgType { return TypeError }

// Type returns TypeGoodbye.
func (*Goodbye) Type() MsgType { return TypeGoodbye }

// Type returns TypeCancel.
func (*Cancel) Type() MsgType { return TypeCancel }

// Tensor returns the referenced tensor as a tensor.Tensor that shares Shape
// and Data with r (no copy).
func (r *TensorRef) Tensor() *tensor.Tensor {
	return &tensor.Tensor{Shape: r.Shape, Data: r.Data}
}

// Clone returns a deep copy of r that shares nothing with it, for keeping a
// decoded reference beyond the Decoder's callback.
func (r TensorRef) Clone() TensorRef {
	r.Shape = slices.Clone(r.Shape)
	r.Data = slices.Clone(r.Data)
	return r
}

// Clone returns a deep copy of m, for keeping a decoded Assign beyond the
// Decoder's callback.
func (m *Assign) Clone() *Assign {
	c := *m
	c.Params = slices.Clone(m.Params)
	c.Inputs = cloneRefs(m.Inputs)
	return &c
}

// Clone returns a deep copy of m, for keeping a decoded Result beyond the
// Decoder's callback.
func (m *Result) Clone() *Result {
	c := *m
	c.Outputs = cloneRefs(m.Outputs)
	return &c
}

func cloneRefs(refs []TensorRef) []TensorRef {
	if refs == nil {
		return nil
	}
	out := make([]TensorRef, len(refs))
	for i := range refs {
		out[i] = refs[i].Clone()
	}
	return out
}

// ---- sizes and limits ----

func stringSize(what, s string) (int, error) {
	if len(s) > MaxString {
		return 0, fmt.Errorf("%w: %s is %d bytes, limit %d", ErrLimit, what, len(s), MaxString)
	}
	return 2 + len(s), nil
}

// shapeSize checks shape and returns its wire size and element count.
func shapeSize(what string, shape []int) (size, elems int, err error) {
	if len(shape) > MaxRank {
		return 0, 0, fmt.Errorf("%w: %s has rank %d, limit %d", ErrLimit, what, len(shape), MaxRank)
	}
	for _, d := range shape {
		if d < 0 || uint64(d) > math.MaxUint32 {
			return 0, 0, fmt.Errorf("%w: %s has dimension %d", ErrShape, what, d)
		}
	}
	n := numElements(shape)
	if n < 0 {
		return 0, 0, fmt.Errorf("%w: %s shape %v holds too many elements", ErrShape, what, shape)
	}
	return 1 + 4*len(shape), n, nil
}

// numElements is tensor.NumElements (same result for every shape, which a
// test checks) without its divisions, which cost a tenth of decoding a small
// Assign: a running product under 2³¹ times a dimension under 2³² cannot
// overflow a uint64.
func numElements(shape []int) int {
	if len(shape) > MaxRank {
		return -1
	}
	n := uint64(1)
	for _, d := range shape {
		if d < 0 || uint64(d) > math.MaxUint32 {
			return -1
		}
		if n *= uint64(d); n > math.MaxInt32 {
			return -1
		}
	}
	return int(n)
}

// dataSize returns the wire size of n float32 values, refusing sizes that
// could never fit a frame (and could overflow int on 32-bit platforms).
func dataSize(what string, n int) (int, error) {
	if n > MaxFrameSize/4 {
		return 0, fmt.Errorf("%w: %s holds %d elements (%d bytes), frame limit %d bytes", ErrFrameTooLarge, what, n, 4*uint64(n), MaxFrameSize)
	}
	return 4 * n, nil
}

func (r *TensorRef) size(what string) (int, error) {
	ss, n, err := shapeSize(what, r.Shape)
	if err != nil {
		return 0, err
	}
	size := 32 + 1 + ss
	if !r.Inline {
		if len(r.Data) != 0 {
			return 0, fmt.Errorf("%w: %s is by hash but carries %d elements", ErrShape, what, len(r.Data))
		}
		return size, nil
	}
	if len(r.Data) != n {
		return 0, fmt.Errorf("%w: %s shape %v holds %d elements, data has %d", ErrShape, what, r.Shape, n, len(r.Data))
	}
	ds, err := dataSize(what, n)
	return size + ds, err
}

func refsSize(what string, refs []TensorRef) (int, error) {
	if len(refs) > MaxTensors {
		return 0, fmt.Errorf("%w: %s has %d tensors, limit %d", ErrLimit, what, len(refs), MaxTensors)
	}
	total := 2
	for i := range refs {
		s, err := refs[i].size(what)
		if err != nil {
			return 0, fmt.Errorf("%s[%d]: %w", what, i, err)
		}
		total += s
		if total > MaxFrameSize {
			return 0, fmt.Errorf("%w: %s needs more than %d bytes", ErrFrameTooLarge, what, MaxFrameSize)
		}
	}
	return total, nil
}

// strings2Size returns the wire size of two string fields.
func strings2Size(what1, s1, what2, s2 string) (int, error) {
	n1, err := stringSize(what1, s1)
	if err != nil {
		return 0, err
	}
	n2, err := stringSize(what2, s2)
	return n1 + n2, err
}

func (m *Hello) size() (int, error) {
	n, err := stringSize("Hello.Agent", m.Agent)
	return 1 + 20 + n, err
}

func (m *Challenge) size() (int, error) { return stringSize("Challenge.Message", m.Message) }
func (m *Auth) size() (int, error)      { return 65, nil }

func (m *Capabilities) size() (int, error) {
	n, err := strings2Size("Capabilities.Backend", m.Backend, "Capabilities.Device", m.Device)
	return n + 8 + 8 + 8 + 2, err
}

func (m *Window) size() (int, error) { return 4, nil }

func (m *Assign) size() (int, error) {
	n, err := strings2Size("Assign.Job", m.Job, "Assign.Kernel", m.Kernel)
	if err != nil {
		return 0, err
	}
	if len(m.Params) > MaxParams {
		return 0, fmt.Errorf("%w: Assign.Params is %d bytes, limit %d", ErrLimit, len(m.Params), MaxParams)
	}
	refs, err := refsSize("Assign.Inputs", m.Inputs)
	return 8 + 4 + n + 4 + len(m.Params) + refs, err
}

func (m *Result) size() (int, error) {
	refs, err := refsSize("Result.Outputs", m.Outputs)
	return 8 + refs, err
}

func (m *Fetch) size() (int, error) {
	if len(m.Hashes) > MaxHashes {
		return 0, fmt.Errorf("%w: Fetch has %d hashes, limit %d", ErrLimit, len(m.Hashes), MaxHashes)
	}
	return 2 + 32*len(m.Hashes), nil
}

func (m *TensorData) size() (int, error) {
	ss, n, err := shapeSize("TensorData", m.Shape)
	if err != nil {
		return 0, err
	}
	if len(m.Data) > MaxChunkElems {
		return 0, fmt.Errorf("%w: TensorData chunk has %d elements, limit %d", ErrLimit, len(m.Data), MaxChunkElems)
	}
	if m.Offset > uint64(n) || uint64(len(m.Data)) > uint64(n)-m.Offset {
		return 0, fmt.Errorf("%w: TensorData chunk [%d, %d) outside shape %v (%d elements)", ErrShape, m.Offset, m.Offset+uint64(len(m.Data)), m.Shape, n)
	}
	return 32 + ss + 8 + 4 + 4*len(m.Data), nil
}

func (m *Heartbeat) size() (int, error) { return 16, nil }
func (m *Error) size() (int, error) {
	n, err := stringSize("Error.Message", m.Message)
	return 8 + 2 + n, err
}

func (m *Goodbye) size() (int, error) { return stringSize("Goodbye.Reason", m.Reason) }
func (m *Cancel) size() (int, error)  { return 8, nil }

// ---- encoding (called only after size succeeded) ----

var le = binary.LittleEndian

func appendString(b []byte, s string) []byte {
	b = le.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func appendShape(b []byte, shape []int) []byte {
	b = append(b, byte(len(shape)))
	for _, d := range shape {
		b = le.AppendUint32(b, uint32(d))
	}
	return b
}

func appendRefs(b []byte, refs []TensorRef) []byte {
	b = le.AppendUint16(b, uint16(len(refs)))
	for i := range refs {
		r := &refs[i]
		b = append(b, r.Hash[:]...)
		var flags byte
		if r.Inline {
			flags = flagInline
		}
		b = append(b, flags)
		b = appendShape(b, r.Shape)
		if r.Inline {
			b = appendFloats(b, r.Data)
		}
	}
	return b
}

// flagInline is bit 0 of a TensorRef's flags byte.
const flagInline = 1

func (m *Hello) appendBody(b []byte) []byte {
	b = append(b, m.Version)
	b = append(b, m.Address[:]...)
	return appendString(b, m.Agent)
}

func (m *Challenge) appendBody(b []byte) []byte { return appendString(b, m.Message) }
func (m *Auth) appendBody(b []byte) []byte      { return append(b, m.Signature[:]...) }

func (m *Capabilities) appendBody(b []byte) []byte {
	b = appendString(b, m.Backend)
	b = appendString(b, m.Device)
	b = le.AppendUint64(b, m.MaxBufferBytes)
	b = le.AppendUint64(b, m.MaxShardBytes)
	b = le.AppendUint64(b, math.Float64bits(m.GFLOPS))
	return le.AppendUint16(b, m.Threads)
}

func (m *Window) appendBody(b []byte) []byte { return le.AppendUint32(b, m.Size) }

func (m *Assign) appendBody(b []byte) []byte {
	b = le.AppendUint64(b, m.Lease)
	b = appendString(b, m.Job)
	b = le.AppendUint32(b, m.Shard)
	b = appendString(b, m.Kernel)
	b = le.AppendUint32(b, uint32(len(m.Params)))
	b = append(b, m.Params...)
	return appendRefs(b, m.Inputs)
}

func (m *Result) appendBody(b []byte) []byte {
	b = le.AppendUint64(b, m.Lease)
	return appendRefs(b, m.Outputs)
}

func (m *Fetch) appendBody(b []byte) []byte {
	b = le.AppendUint16(b, uint16(len(m.Hashes)))
	for i := range m.Hashes {
		b = append(b, m.Hashes[i][:]...)
	}
	return b
}

func (m *TensorData) appendBody(b []byte) []byte {
	b = append(b, m.Hash[:]...)
	b = appendShape(b, m.Shape)
	b = le.AppendUint64(b, m.Offset)
	b = le.AppendUint32(b, uint32(len(m.Data)))
	return appendFloats(b, m.Data)
}

func (m *Heartbeat) appendBody(b []byte) []byte {
	b = le.AppendUint64(b, m.Seq)
	return le.AppendUint64(b, uint64(m.UnixMilli))
}

func (m *Error) appendBody(b []byte) []byte {
	b = le.AppendUint64(b, m.Lease)
	b = le.AppendUint16(b, m.Code)
	return appendString(b, m.Message)
}

func (m *Goodbye) appendBody(b []byte) []byte { return appendString(b, m.Reason) }
func (m *Cancel) appendBody(b []byte) []byte  { return le.AppendUint64(b, m.Lease) }

// ---- decoding ----

func (m *Hello) decode(r *reader) {
	m.Version = r.u8()
	r.bytes(m.Address[:])
	m.Agent = r.str()
}

func (m *Challenge) decode(r *reader) { m.Message = r.str() }
func (m *Auth) decode(r *reader)      { r.bytes(m.Signature[:]) }

func (m *Capabilities) decode(r *reader) {
	m.Backend = r.str()
	m.Device = r.str()
	m.MaxBufferBytes = r.u64()
	m.MaxShardBytes = r.u64()
	m.GFLOPS = math.Float64frombits(r.u64())
	m.Threads = r.u16()
	if !(m.GFLOPS >= 0) || math.IsInf(m.GFLOPS, 0) { // NaN fails >= 0
		r.fail(ErrMalformed, "GFLOPS %v is not a finite non-negative speed", m.GFLOPS)
	}
}

func (m *Window) decode(r *reader) { m.Size = r.u32() }

func (m *Assign) decode(r *reader) {
	m.Lease = r.u64()
	m.Job = r.str()
	m.Shard = r.u32()
	m.Kernel = r.str()
	n := r.u32()
	if n > MaxParams {
		r.fail(ErrLimit, "Params of %d bytes, limit %d", n, MaxParams)
		return
	}
	m.Params = r.take(int(n))
	m.Inputs = r.refs(m.Inputs)
}

func (m *Result) decode(r *reader) {
	m.Lease = r.u64()
	m.Outputs = r.refs(m.Outputs)
}

func (m *Fetch) decode(r *reader) {
	n := int(r.u16())
	if n > r.left()/32 {
		r.fail(ErrMalformed, "%d hashes in %d bytes", n, r.left())
		return
	}
	m.Hashes = slices.Grow(m.Hashes[:0], n)[:n]
	for i := range m.Hashes {
		r.bytes(m.Hashes[i][:])
	}
}

func (m *TensorData) decode(r *reader) {
	r.bytes(m.Hash[:])
	var n int
	m.Shape, n = r.shape()
	m.Offset = r.u64()
	count := r.u32()
	if r.err != nil {
		return
	}
	if count > MaxChunkElems {
		r.fail(ErrLimit, "chunk of %d elements, limit %d", count, MaxChunkElems)
		return
	}
	if m.Offset > uint64(n) || uint64(count) > uint64(n)-m.Offset {
		r.fail(ErrShape, "chunk [%d, %d) outside shape %v", m.Offset, m.Offset+uint64(count), m.Shape)
		return
	}
	m.Data = r.floats(int(count))
}

func (m *Heartbeat) decode(r *reader) {
	m.Seq = r.u64()
	m.UnixMilli = int64(r.u64())
}

func (m *Error) decode(r *reader) {
	m.Lease = r.u64()
	m.Code = r.u16()
	m.Message = r.str()
}

func (m *Goodbye) decode(r *reader) { m.Reason = r.str() }
func (m *Cancel) decode(r *reader)  { m.Lease = r.u64() }
