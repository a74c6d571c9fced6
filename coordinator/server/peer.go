package server

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"time"
)

// Buffer sizes of a worker connection's reader and writer (coder/websocket
// reads frame headers and small frames through the first and writes every
// frame through the second; payloads larger than either go straight to the
// connection).
const (
	peerReadBuffer  = 1 << 10
	peerWriteBuffer = 2 << 10
)

// errSlow and errSilent report a worker connection cut for its pace.
var (
	errSlow   = errors.New("too slow")
	errSilent = errors.New("worker sent nothing")
)

// peerConn is a worker's TCP connection as coder/websocket sees it. It
// serves first what net/http read past the upgrade request, and it moves
// the read deadline as bytes arrive: between messages a peer must send
// something (a pong will do) within idle; once a message's first frame has
// arrived, the message must finish within grace plus its size over minRate
// (bytes per second). Each write must finish within grace plus its size
// over minRate too, so a peer that stops reading cannot hold a writer.
//
// Read is called by the connection's reader goroutine, which also calls
// startMessage and endMessage, and by coder/websocket's Close, which reads
// the peer's close frame from whichever goroutine closes: mu guards the
// pacing state between them (never held across the blocking read). Write
// is called only under coder/websocket's write lock.
type peerConn struct {
	net.Conn

	idle, grace time.Duration
	minRate     int64

	mu       sync.Mutex
	pending  []byte    // read by net/http past the upgrade request
	last     time.Time // when bytes last arrived
	msgStart time.Time // zero between messages
	msgBytes int64
	set      time.Time // the read deadline in force
}

func newPeerConn(nc net.Conn, buffered []byte, cfg *Config) *peerConn {
	return &peerConn{
		Conn: nc, pending: buffered,
		idle: cfg.PingEvery + cfg.PingTimeout, grace: cfg.RateGrace, minRate: cfg.MinRate,
		last: time.Now(),
	}
}

// startMessage marks the arrival of a message's first frame header.
func (pc *peerConn) startMessage() {
	pc.mu.Lock()
	pc.msgStart, pc.msgBytes = pc.last, 0
	pc.mu.Unlock()
}

// endMessage marks the message read whole.
func (pc *peerConn) endMessage() {
	pc.mu.Lock()
	pc.msgStart = time.Time{}
	pc.mu.Unlock()
}

// paceBy returns when what is being read must have arrived (mu held).
func (pc *peerConn) paceBy() time.Time {
	if pc.msgStart.IsZero() {
		return pc.last.Add(pc.idle)
	}
	return pc.msgStart.Add(pc.grace + rateTime(pc.msgBytes, pc.minRate))
}

// rateTime is how long n bytes take at rate bytes per second.
func rateTime(n, rate int64) time.Duration {
	return time.Duration(float64(n) / float64(rate) * float64(time.Second))
}

func (pc *peerConn) Read(p []byte) (int, error) {
	pc.mu.Lock()
	if len(pc.pending) > 0 {
		n := copy(p, pc.pending)
		if pc.pending = pc.pending[n:]; len(pc.pending) == 0 {
			pc.pending = nil
		}
		pc.mu.Unlock()
		return n, nil
	}
	if by := pc.paceBy(); !by.Equal(pc.set) {
		if err := pc.Conn.SetReadDeadline(by); err != nil {
			pc.mu.Unlock()
			return 0, err
		}
		pc.set = by
	}
	pc.mu.Unlock()
	n, err := pc.Conn.Read(p)
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if n > 0 {
		pc.last = time.Now()
		pc.msgBytes += int64(n)
	}
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		err = pc.readPaceError()
	}
	return n, err
}

// paceError is a connection cut for its pace: errSlow or errSilent, and
// the figures.
type paceError struct {
	kind error
	msg  string
}

func (e *paceError) Error() string { return e.kind.Error() + ": " + e.msg }
func (e *paceError) Unwrap() error { return e.kind }

// readPaceError says why the read deadline passed (mu held).
func (pc *peerConn) readPaceError() error {
	if pc.msgStart.IsZero() {
		return &paceError{errSilent, fmt.Sprintf("for %v, not even a pong", pc.idle)}
	}
	return &paceError{errSlow, fmt.Sprintf("%d bytes in %v, slower than %d B/s after a %v grace",
		pc.msgBytes, time.Since(pc.msgStart).Round(time.Millisecond), pc.minRate, pc.grace)}
}

func (pc *peerConn) Write(p []byte) (int, error) {
	if err := pc.Conn.SetWriteDeadline(time.Now().Add(pc.grace + rateTime(int64(len(p)), pc.minRate))); err != nil {
		return 0, err
	}
	n, err := pc.Conn.Write(p)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		err = &paceError{errSlow, fmt.Sprintf("the worker read %d of %d bytes, slower than %d B/s after a %v grace", n, len(p), pc.minRate, pc.grace)}
	}
	return n, err
}

// hijackPeer is the http.ResponseWriter websocket.Accept gets: its Hijack
// hands coder/websocket a peerConn and buffers of the sizes above, and
// keeps the peerConn for the caller.
type hijackPeer struct {
	http.ResponseWriter
	cfg *Config
	pc  *peerConn
}

func (h *hijackPeer) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	var buffered []byte
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		buffered = append([]byte(nil), b...) // and net/http's buffers go
	}
	h.pc = newPeerConn(nc, buffered, h.cfg)
	return h.pc, bufio.NewReadWriter(bufio.NewReaderSize(h.pc, peerReadBuffer), bufio.NewWriterSize(h.pc, peerWriteBuffer)), nil
}
