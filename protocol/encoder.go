package protocol

import (
	"fmt"
	"slices"
)

// Encoder builds one frame from any number of messages in a reusable
// buffer. The zero value is ready to use. A sender appends the messages it
// has ready, writes Bytes as one WebSocket binary message and calls Reset:
//
//	for _, m := range batch {
//		if err := enc.Append(m); errors.Is(err, protocol.ErrFrameTooLarge) && enc.Count() > 0 {
//			send(enc.Bytes()) // flush, then retry in an empty frame
//			enc.Reset()
//			err = enc.Append(m)
//		}
//		...
//	}
//
// ErrFrameTooLarge from an empty Encoder means the message can never fit a
// frame (send large tensors with ChunkTensor instead). An Encoder is not safe
// for concurrent use.
type Encoder struct {
	buf   []byte
	count int
}

func (e *Encoder) header() {
	if len(e.buf) == 0 {
		e.buf = append(e.buf, magic[0], magic[1], magic[2], Version, 0, 0)
	}
}

// Append adds m to the frame. It fails, leaving the frame as it was, with
// ErrLimit or ErrShape when m breaks a limit or its tensors' data do not
// match their shapes, and with ErrFrameTooLarge when m would take the frame
// over MaxFrameSize bytes or MaxMessages messages.
func (e *Encoder) Append(m Message) error {
	n, err := m.size()
	if err != nil {
		return err
	}
	e.header()
	if e.count >= MaxMessages {
		return fmt.Errorf("%w: frame already holds %d messages", ErrFrameTooLarge, e.count)
	}
	if len(e.buf)+MsgHeaderSize+n > MaxFrameSize {
		return fmt.Errorf("%w: %s of %d bytes after %d bytes, limit %d", ErrFrameTooLarge, m.Type(), n, len(e.buf), MaxFrameSize)
	}
	e.buf = slices.Grow(e.buf, MsgHeaderSize+n)
	e.buf = append(e.buf, byte(m.Type()))
	e.buf = le.AppendUint32(e.buf, uint32(n))
	start := len(e.buf)
	e.buf = m.appendBody(e.buf)
	if len(e.buf)-start != n {
		panic(fmt.Sprintf("protocol: %s encoded %d bytes, size said %d", m.Type(), len(e.buf)-start, n))
	}
	e.count++
	le.PutUint16(e.buf[4:], uint16(e.count))
	return nil
}

// Len returns the size in bytes of the frame Bytes returns.
func (e *Encoder) Len() int { return max(len(e.buf), HeaderSize) }

// Count returns the number of messages in the frame.
func (e *Encoder) Count() int { return e.count }

// Bytes returns the frame, ready to send. It aliases the Encoder's buffer:
// it stays valid until the next Append or Reset.
func (e *Encoder) Bytes() []byte {
	e.header()
	return e.buf
}

// Reset empties the frame and keeps the buffer for reuse.
func (e *Encoder) Reset() {
	e.buf = e.buf[:0]
	e.count = 0
}

// Encode returns a new frame holding msgs, for code off the hot path (the
// handshake, tests). It fails as Encoder.Append does.
func Encode(msgs ...Message) ([]byte, error) {
	var e Encoder
	for i, m := range msgs {
		if err := e.Append(m); err != nil {
			return nil, fmt.Errorf("message %d (%s): %w", i, m.Type(), err)
		}
	}
	return e.Bytes(), nil
}
