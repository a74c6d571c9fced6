package server

import (
	"io"
	"sync"
)

// How worker frames are read into memory, and what they are charged.
//
// A frame is read into a pooled buffer of frameBuffer bytes; one that
// outgrows it goes on into segments allocated as it arrives (frameStep
// bytes, or a quarter of what has arrived, at most frameSegment), joined
// into one buffer once it has ended. So what a frame holds stays within
// frameSegment (and a quarter) of what its peer has sent, and an honest
// frame is copied once, as a doubling buffer would copy it.
//
// Each connection reads its first frameReserve bytes of a frame without
// charging the frames budget: handshakes, heartbeats and small results
// always go through, however much of the budget others hold. Past it, a
// frame is charged its segments as they are allocated, to its worker's
// address (budgets.frames.perHolder), and refused (the connection closed
// 1013) when its own bytes do not fit.
const (
	frameBuffer  = 16 << 10
	frameReserve = 64 << 10
	frameStep    = 64 << 10
	frameSegment = 1 << 20
)

var framePool = sync.Pool{New: func() any { b := make([]byte, 0, frameBuffer); return &b }}

// frameBuf reads one connection's frames (reader-owned), charged to the
// frames budget while it holds one and released between frames, so that
// an idle connection holds none.
type frameBuf struct {
	// acct charges the frame, to the worker's address once it has
	// authenticated, past frameReserve.
	acct  account
	limit int // the connection's read limit, which bounds a frame

	pooled *[]byte  // the pooled buffer, while held
	segs   [][]byte // the frame's segments, the pooled buffer first
}

// read reads one message from r (the reader of a binary message) and
// returns its bytes, valid until release.
func (f *frameBuf) read(r io.Reader) ([]byte, error) {
	f.pooled = framePool.Get().(*[]byte)
	cur := (*f.pooled)[:0]
	total := 0 // bytes in f.segs, which are full
	for {
		if len(cur) == cap(cur) {
			f.segs = append(f.segs, cur)
			total += len(cur)
			// The read limit plus one byte lets the reader see a frame over it.
			size := max(1, min(max(total/4, frameStep), frameSegment, f.limit+1-total))
			if err := f.acct.hold(int64(total + size)); err != nil {
				return nil, err
			}
			cur = make([]byte, 0, size)
		}
		n, err := r.Read(cur[len(cur):cap(cur)])
		cur = cur[:len(cur)+n]
		if err == io.EOF {
			return f.join(cur, total)
		}
		if err != nil {
			return nil, err
		}
	}
}

// join returns the frame whose last segment is last: the pooled buffer
// itself for a small frame, else one buffer holding every segment (the
// segments go, and the charge becomes the frame's own size).
func (f *frameBuf) join(last []byte, total int) ([]byte, error) {
	if len(f.segs) == 0 {
		return last, nil
	}
	frame := make([]byte, 0, total+len(last))
	for _, s := range f.segs {
		frame = append(frame, s...)
	}
	frame = append(frame, last...)
	f.putPooled()
	f.segs = nil
	return frame, f.acct.hold(int64(len(frame)))
}

// release gives back the buffers and their charge once the frame is
// decoded.
func (f *frameBuf) release() {
	f.putPooled()
	f.segs = nil
	f.acct.release()
}

func (f *frameBuf) putPooled() {
	if f.pooled != nil {
		*f.pooled = (*f.pooled)[:0]
		framePool.Put(f.pooled)
		f.pooled = nil
	}
}

// A handshake frame always fits the reserve (a compile-time check).
var _ [frameReserve - handshakeFrameSize]struct{}
