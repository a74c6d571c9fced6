package protocol

import (
	"fmt"
	"slices"
)

// Decoder decodes frames, reusing one message value per type and its slices
// across calls, so that decoding a frame allocates nothing in the steady
// state. The zero value is ready to use. A Decoder is not safe for
// concurrent use: give each connection its own.
//
// Aliasing: the Message that Decode passes to fn, and every slice it holds
// (Shape, Inputs, Outputs, Hashes, Params, Data), is valid only until fn
// returns. Params and, on little-endian platforms, tensor Data view the
// frame itself; the rest is the Decoder's own storage, overwritten by the
// next message. Strings are ordinary immutable Go strings and may be kept.
// To keep a message, keep Clone(m).
type Decoder struct {
	hello        Hello
	challenge    Challenge
	auth         Auth
	capabilities Capabilities
	window       Window
	assign       Assign
	result       Result
	fetch        Fetch
	tensorData   TensorData
	heartbeat    Heartbeat
	errorMsg     Error
	goodbye      Goodbye
	cancel       Cancel

	dims   []int             // backing store of decoded shapes
	floats []float32         // backing store of tensor data (big-endian only)
	strs   map[string]string // interned short strings (job ids, kernel names)
	recent [4]string         // the last strings interned
	next   int               // where the next one goes in recent
	r      reader            // the body being read
}

// Interning keeps short, repeated strings (job ids, kernel names) from
// allocating on every message; the set is bounded against hostile peers.
const (
	maxInternLen  = 64
	maxInternSize = 256
)

func (d *Decoder) message(t MsgType) Message {
	switch t {
	case TypeHello:
		return &d.hello
	case TypeChallenge:
		return &d.challenge
	case TypeAuth:
		return &d.auth
	case TypeCapabilities:
		return &d.capabilities
	case TypeWindow:
		return &d.window
	case TypeAssign:
		return &d.assign
	case TypeResult:
		return &d.result
	case TypeFetch:
		return &d.fetch
	case TypeTensorData:
		return &d.tensorData
	case TypeHeartbeat:
		return &d.heartbeat
	case TypeError:
		return &d.errorMsg
	case TypeGoodbye:
		return &d.goodbye
	case TypeCancel:
		return &d.cancel
	}
	return nil
}

// Decode checks frame and calls fn with each of its messages in order. A
// frame that is too large, truncated, of another version or whose message
// headers do not add up exactly to its length is refused before fn is
// called at all; a message whose body does not parse stops decoding with an
// error after fn has seen the messages before it. An error returned by fn
// stops decoding and is returned as is.
//
// Every length in the frame is checked against the bytes that remain, so a
// hostile frame can make Decode allocate no more than a small multiple of
// its own size. See the Decoder type for how long decoded values live.
func (d *Decoder) Decode(frame []byte, fn func(Message) error) error {
	count, err := checkFrame(frame)
	if err != nil {
		return err
	}
	rest := frame[HeaderSize:]
	for i := range count {
		t := MsgType(rest[0])
		n := int(le.Uint32(rest[1:]))
		body := rest[MsgHeaderSize : MsgHeaderSize+n : MsgHeaderSize+n]
		rest = rest[MsgHeaderSize+n:]

		m := d.message(t) // checkFrame made sure t is known
		d.dims = d.dims[:0]
		d.floats = d.floats[:0]
		// The reader lives in the Decoder: passed through the Message
		// interface, a local one would escape to the heap.
		r := &d.r
		*r = reader{b: body, d: d, typ: t, index: i, count: count}
		m.decode(r)
		if r.err == nil && len(r.b) != 0 {
			r.fail(ErrMalformed, "%d bytes left over", len(r.b))
		}
		if r.err != nil {
			return r.err
		}
		if err := fn(m); err != nil {
			return err
		}
	}
	return nil
}

// Remaining returns, while fn runs in Decode, how many messages of the
// frame come after the one fn was given (to size a batch at once).
func (d *Decoder) Remaining() int { return max(d.r.count-d.r.index-1, 0) }

// FrameVersion returns the protocol version a frame's header names, and
// whether the frame starts with a header at all ("NLV" and a version byte,
// the four bytes whose meaning never changes). A peer reads it to tell a
// client of another version from a broken one.
func FrameVersion(frame []byte) (uint8, bool) {
	if len(frame) < 4 || string(frame[:3]) != magic {
		return 0, false
	}
	return frame[3], true
}

// checkFrame validates the frame header and the message headers (types and
// lengths) and returns the message count.
func checkFrame(frame []byte) (int, error) {
	if len(frame) > MaxFrameSize {
		return 0, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, len(frame), MaxFrameSize)
	}
	if len(frame) < HeaderSize {
		return 0, fmt.Errorf("%w: %d bytes, header needs %d", ErrShortFrame, len(frame), HeaderSize)
	}
	if string(frame[:3]) != magic {
		return 0, fmt.Errorf("%w: % x", ErrBadMagic, frame[:3])
	}
	if frame[3] != Version {
		return 0, fmt.Errorf("%w: peer speaks version %d, this build speaks %d", ErrVersion, frame[3], Version)
	}
	count := int(le.Uint16(frame[4:]))
	rest := frame[HeaderSize:]
	for i := range count {
		if len(rest) < MsgHeaderSize {
			return 0, fmt.Errorf("%w: message %d of %d: header needs %d bytes, %d left", ErrShortFrame, i+1, count, MsgHeaderSize, len(rest))
		}
		t := MsgType(rest[0])
		if t == 0 || int(t) >= len(typeNames) {
			return 0, fmt.Errorf("%w: message %d of %d has type %d", ErrUnknownType, i+1, count, t)
		}
		n := le.Uint32(rest[1:])
		if uint64(n) > uint64(len(rest)-MsgHeaderSize) {
			return 0, fmt.Errorf("%w: message %d of %d (%s) claims %d bytes, %d left", ErrShortFrame, i+1, count, t, n, len(rest)-MsgHeaderSize)
		}
		rest = rest[MsgHeaderSize+int(n):]
	}
	if len(rest) != 0 {
		return 0, fmt.Errorf("%w: %d bytes after the last of %d messages", ErrMalformed, len(rest), count)
	}
	return count, nil
}

// Decode decodes frame with a fresh Decoder; see Decoder.Decode. Reuse a
// Decoder on hot paths.
func Decode(frame []byte, fn func(Message) error) error {
	var d Decoder
	return d.Decode(frame, fn)
}

// DecodeAll returns deep copies of every message in frame, for code off the
// hot path (the handshake, tests).
func DecodeAll(frame []byte) ([]Message, error) {
	var out []Message
	err := Decode(frame, func(m Message) error {
		out = append(out, Clone(m))
		return nil
	})
	return out, err
}

// Clone returns a deep copy of m that shares no memory with it, for keeping
// a decoded message beyond the Decoder's callback.
func Clone[M Message](m M) M {
	var c Message
	switch m := any(m).(type) {
	case *Hello:
		x := *m
		c = &x
	case *Challenge:
		x := *m
		c = &x
	case *Auth:
		x := *m
		c = &x
	case *Capabilities:
		x := *m
		c = &x
	case *Window:
		x := *m
		c = &x
	case *Assign:
		x := *m
		x.Params = slices.Clone(m.Params)
		x.Inputs = cloneRefs(m.Inputs)
		c = &x
	case *Result:
		x := *m
		x.Outputs = cloneRefs(m.Outputs)
		c = &x
	case *Fetch:
		x := *m
		x.Hashes = slices.Clone(m.Hashes)
		c = &x
	case *TensorData:
		x := *m
		x.Shape = slices.Clone(m.Shape)
		x.Data = slices.Clone(m.Data)
		c = &x
	case *Heartbeat:
		x := *m
		c = &x
	case *Error:
		x := *m
		c = &x
	case *Goodbye:
		x := *m
		c = &x
	case *Cancel:
		x := *m
		c = &x
	default:
		panic(fmt.Sprintf("protocol: Clone of unknown message %T", m))
	}
	return c.(M)
}

// reader walks one message body. The first failure sticks: later reads
// return zero values, and the decoder reports r.err.
type reader struct {
	b     []byte
	err   error
	d     *Decoder
	typ   MsgType
	index int
	count int
}

func (r *reader) fail(sentinel error, format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s (message %d of %d): %s", sentinel, r.typ, r.index+1, r.count, fmt.Sprintf(format, args...))
	}
}

func (r *reader) left() int { return len(r.b) }

// take returns the next n bytes (aliasing the body), or nil on failure.
func (r *reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n > len(r.b) {
		r.fail(ErrMalformed, "field of %d bytes runs past the body (%d left)", n, len(r.b))
		return nil
	}
	p := r.b[:n:n]
	r.b = r.b[n:]
	return p
}

// bytes fills dst from the next len(dst) bytes.
func (r *reader) bytes(dst []byte) { copy(dst, r.take(len(dst))) }

func (r *reader) u8() uint8 {
	if p := r.take(1); p != nil {
		return p[0]
	}
	return 0
}

func (r *reader) u16() uint16 {
	if p := r.take(2); p != nil {
		return le.Uint16(p)
	}
	return 0
}

func (r *reader) u32() uint32 {
	if p := r.take(4); p != nil {
		return le.Uint32(p)
	}
	return 0
}

func (r *reader) u64() uint64 {
	if p := r.take(8); p != nil {
		return le.Uint64(p)
	}
	return 0
}

func (r *reader) str() string {
	n := int(r.u16())
	if n > MaxString {
		r.fail(ErrLimit, "string of %d bytes, limit %d", n, MaxString)
		return ""
	}
	p := r.take(n)
	if len(p) == 0 {
		return ""
	}
	return r.d.intern(p)
}

func (d *Decoder) intern(p []byte) string {
	if len(p) > maxInternLen {
		return string(p)
	}
	// A frame of Assigns repeats the same job and kernel: compare with the
	// last few strings before hashing.
	for _, s := range d.recent {
		if s == string(p) {
			return s
		}
	}
	s, ok := d.strs[string(p)]
	if !ok {
		if d.strs == nil {
			d.strs = make(map[string]string)
		} else if len(d.strs) >= maxInternSize {
			clear(d.strs)
		}
		s = string(p)
		d.strs[s] = s
	}
	d.recent[d.next%len(d.recent)] = s
	d.next++
	return s
}

// shape reads a rank and its dimensions into the decoder's dims store and
// returns the shape and its element count.
func (r *reader) shape() ([]int, int) {
	rank := int(r.u8())
	if r.err != nil {
		return nil, 0
	}
	if rank > MaxRank {
		r.fail(ErrLimit, "tensor of rank %d, limit %d", rank, MaxRank)
		return nil, 0
	}
	if 4*rank > len(r.b) {
		r.fail(ErrMalformed, "shape of rank %d runs past the body (%d bytes left)", rank, len(r.b))
		return nil, 0
	}
	d := r.d
	start := len(d.dims)
	for range rank {
		d.dims = append(d.dims, int(r.u32()))
	}
	shape := d.dims[start:len(d.dims):len(d.dims)]
	n := numElements(shape)
	if n < 0 {
		r.fail(ErrShape, "shape %v holds too many elements", shape)
		return nil, 0
	}
	return shape, n
}

// floats reads n float32 values.
func (r *reader) floats(n int) []float32 {
	if r.err != nil {
		return nil
	}
	if n > len(r.b)/4 {
		r.fail(ErrMalformed, "%d elements need %d bytes, %d left", n, 4*uint64(n), len(r.b))
		return nil
	}
	return viewFloats(r.take(4*n), &r.d.floats)
}

// minRefSize is the smallest TensorRef on the wire: hash, flags, rank 0.
const minRefSize = 32 + 1 + 1

// refs reads a tensor list into dst's storage.
func (r *reader) refs(dst []TensorRef) []TensorRef {
	n := int(r.u16())
	if r.err != nil {
		return dst[:0]
	}
	if n > len(r.b)/minRefSize {
		r.fail(ErrMalformed, "%d tensors cannot fit %d bytes", n, len(r.b))
		return dst[:0]
	}
	dst = slices.Grow(dst[:0], n)[:n]
	for i := range dst {
		t := &dst[i]
		r.bytes(t.Hash[:])
		flags := r.u8()
		var elems int
		t.Shape, elems = r.shape()
		t.Data = nil
		switch flags {
		case 0:
			t.Inline = false
		case flagInline:
			t.Inline = true
			t.Data = r.floats(elems)
		default:
			r.fail(ErrMalformed, "tensor %d has flags %#x", i, flags)
		}
		if r.err != nil {
			return dst[:0]
		}
	}
	return dst
}
