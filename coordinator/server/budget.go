package server

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
)

// ErrBudget reports memory refused because the coordinator's budget for
// its kind (Config.MemoryBudget) is spent: the peer should retry later.
var ErrBudget = errors.New("server: memory budget spent")

// defaultMemoryBudget is Config.MemoryBudget's default.
const defaultMemoryBudget = 4 << 30

// budgets are the shares of Config.MemoryBudget: what peers send that the
// coordinator holds at once, by kind.
type budgets struct {
	frames  budget // worker frames being read, finished or not
	outputs budget // chunked outputs, unfinished or awaiting their Result
	bodies  budget // HTTP request bodies (job uploads) being read
}

func newBudgets(total int64) *budgets {
	return &budgets{
		frames:  budget{name: "worker frames being read", limit: total / 8},
		outputs: budget{name: "chunked outputs", limit: total / 4},
		bodies:  budget{name: "uploads being read", limit: total / 4},
	}
}

// budget is a count of bytes shared by every connection and request.
type budget struct {
	name  string
	limit int64
	used  atomic.Int64
}

// take charges n bytes, or refuses them (nothing charged) with a
// *budgetError when they would take the budget over its limit.
func (b *budget) take(n int64) error {
	if n <= 0 {
		return nil
	}
	if used := b.used.Add(n); used > b.limit {
		b.used.Add(-n)
		return &budgetError{b: b, asked: n, used: used - n}
	}
	return nil
}

// give returns n bytes taken.
func (b *budget) give(n int64) {
	if n > 0 {
		b.used.Add(-n)
	}
}

// Used returns the bytes charged.
func (b *budget) Used() int64 { return b.used.Load() }

// budgetError is a refusal by a budget, with its figures.
type budgetError struct {
	b           *budget
	asked, used int64
}

func (e *budgetError) Error() string {
	return fmt.Sprintf("%v: %s hold %d of %d MiB, %d KiB more refused; retry later",
		ErrBudget, e.b.name, e.used>>20, e.b.limit>>20, (e.asked+1023)>>10)
}

func (e *budgetError) Unwrap() error { return ErrBudget }

// budgetReason is the close reason for a connection refused by a budget:
// the budgetError's text, without what wraps it.
func budgetReason(err error) string {
	var be *budgetError
	if errors.As(err, &be) {
		return be.Error()
	}
	return err.Error()
}

// frameBuffer is the size of the pooled buffers worker frames are read
// into; a frame that outgrows one gets a buffer of its own, dropped once
// decoded.
const frameBuffer = 16 << 10

var framePool = sync.Pool{New: func() any { b := make([]byte, 0, frameBuffer); return &b }}

// frameBuf is the buffer one connection reads its frames into, charged to
// the frames budget while it holds a frame and released between frames,
// so that an idle connection holds none.
type frameBuf struct {
	b       *budget
	buf     []byte
	charged int64
}

// grow returns a buffer holding buf's contents with room for need bytes,
// charging the budget for what it adds (wsio.ReadFrameWith's grow).
func (f *frameBuf) grow(buf []byte, need int) ([]byte, error) {
	if cap(buf) == 0 {
		if err := f.b.take(frameBuffer); err != nil {
			return nil, err
		}
		f.charged = frameBuffer
		f.buf = (*framePool.Get().(*[]byte))[:0]
		if need <= frameBuffer {
			return f.buf, nil
		}
		buf = f.buf
	}
	size := max(need, 2*cap(buf))
	if err := f.b.take(int64(size - cap(buf))); err != nil {
		return nil, err
	}
	f.charged += int64(size - cap(buf))
	nb := make([]byte, len(buf), size)
	copy(nb, buf)
	f.putPooled()
	f.buf = nb
	return nb, nil
}

// release gives back the buffer and its charge once its frame is decoded.
func (f *frameBuf) release() {
	f.putPooled()
	f.buf = nil
	f.b.give(f.charged)
	f.charged = 0
}

func (f *frameBuf) putPooled() {
	if cap(f.buf) == frameBuffer {
		b := f.buf[:0]
		framePool.Put(&b)
	}
	f.buf = nil
}

// chargedBody is a request body charged to the bodies budget as it is
// read: at its Content-Length on the first Read (a handler reads only
// bodies it has accepted, so headers alone reserve nothing), in blocks as
// it arrives when it has none. Close gives the charge back.
type chargedBody struct {
	io.ReadCloser
	b       *budget
	length  int64 // Content-Length, or -1
	charged int64
	read    int64
	refused bool // the budget refused it
}

// bodyBlock is the step in which a body without a Content-Length is
// charged.
const bodyBlock = 64 << 10

func (cb *chargedBody) Read(p []byte) (int, error) {
	if cb.charged == 0 && cb.length > 0 {
		if err := cb.b.take(cb.length); err != nil {
			cb.refused = true
			return 0, err
		}
		cb.charged = cb.length
	}
	n, err := cb.ReadCloser.Read(p)
	cb.read += int64(n)
	if over := cb.read - cb.charged; over > 0 {
		step := (over + bodyBlock - 1) / bodyBlock * bodyBlock
		if terr := cb.b.take(step); terr != nil {
			cb.refused = true
			return n, terr
		}
		cb.charged += step
	}
	return n, err
}

func (cb *chargedBody) Close() error {
	cb.b.give(cb.charged)
	cb.charged = 0
	cb.length = 0 // and no new charge on a late Read
	return cb.ReadCloser.Close()
}

// chargeBodies makes every request body h reads count against the bodies
// budget until the request ends. A body the budget refused is read to its
// end (up to MaxJobBytes, uncharged, into a small buffer) before the
// response goes, so that the client, still sending, reads the 503 rather
// than a reset connection.
func (s *Server) chargeBodies(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			h.ServeHTTP(w, r)
			return
		}
		cb := &chargedBody{ReadCloser: r.Body, b: &s.budgets.bodies, length: r.ContentLength}
		r.Body = cb
		defer cb.Close()
		h.ServeHTTP(w, r)
		if cb.refused {
			_, _ = io.Copy(io.Discard, io.LimitReader(cb.ReadCloser, s.cfg.MaxJobBytes))
		}
	})
}
