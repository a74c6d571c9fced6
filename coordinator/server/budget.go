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
		frames: budget{name: "worker frames being read", limit: total / 8,
			holder: "this address", perHolder: total / 16},
		outputs: budget{name: "chunked outputs", limit: total / 4},
		bodies:  budget{name: "uploads being read", limit: total / 4},
	}
}

// budget is a count of bytes shared by every connection and request.
// With perHolder set, what one holder (a worker's address, an API key)
// holds of it is bounded too, so that one holder never takes all of it.
type budget struct {
	name  string
	limit int64
	used  atomic.Int64

	// holder names what perHolder bounds ("this address").
	holder    string
	perHolder int64
	mu        sync.Mutex
	held      map[string]int64 // by holder, while above 0
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

// takeFor charges n bytes to holder, refusing them when they would take
// the holder over perHolder or the budget over its limit. A budget without
// perHolder, or an empty holder, is take.
func (b *budget) takeFor(holder string, n int64) error {
	if n <= 0 || b.perHolder <= 0 || holder == "" {
		return b.take(n)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	h := b.held[holder]
	if h+n > b.perHolder {
		return &budgetError{b: b, asked: n, used: h, holder: true}
	}
	if err := b.take(n); err != nil {
		return err
	}
	if b.held == nil {
		b.held = make(map[string]int64)
	}
	b.held[holder] = h + n
	return nil
}

// giveFor returns n bytes holder took.
func (b *budget) giveFor(holder string, n int64) {
	if n <= 0 || b.perHolder <= 0 || holder == "" {
		b.give(n)
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if h := b.held[holder] - n; h > 0 {
		b.held[holder] = h
	} else {
		delete(b.held, holder)
	}
	b.give(n)
}

// Used returns the bytes charged.
func (b *budget) Used() int64 { return b.used.Load() }

// budgetError is a refusal by a budget, with its figures: of the whole
// budget, or (holder) of what one holder may take of it.
type budgetError struct {
	b           *budget
	asked, used int64
	holder      bool
}

func (e *budgetError) Error() string {
	if e.holder {
		return fmt.Sprintf("%v: %s: %s asks %d KiB, its most %d; retry later",
			ErrBudget, e.b.name, e.b.holder, (e.used+e.asked+1023)>>10, e.b.perHolder>>10)
	}
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

// errAccountClosed refuses a charge to an account closed for good (a
// request body read after its Close).
var errAccountClosed = errors.New("server: read after the request ended")

// account is what one connection or request holds of a budget, for its
// holder: it charges what it holds past reserve bytes (which no budget
// charges), and after close refuses to hold more. One goroutine uses it.
type account struct {
	b       *budget
	holder  string
	reserve int64
	held    int64 // bytes held, reserve included
	charged int64 // of them, charged to b
	closed  bool
}

// hold makes the account hold size bytes in all, charging the budget for
// what that adds past the reserve, or giving back what it frees. It
// refuses (holding what it held) when the budget does, or once closed.
func (a *account) hold(size int64) error {
	if a.closed {
		return errAccountClosed
	}
	want := max(0, size-a.reserve)
	if want > a.charged {
		if err := a.b.takeFor(a.holder, want-a.charged); err != nil {
			return err
		}
	} else {
		a.b.giveFor(a.holder, a.charged-want)
	}
	a.held, a.charged = size, want
	return nil
}

// add holds n bytes more.
func (a *account) add(n int64) error { return a.hold(a.held + n) }

// release gives back everything held; the account may hold again.
func (a *account) release() {
	a.b.giveFor(a.holder, a.charged)
	a.held, a.charged = 0, 0
}

// close releases the account for good.
func (a *account) close() {
	a.release()
	a.closed = true
}

// chargedBody is a request body charged to the bodies budget as it is
// read: at its Content-Length on the first Read (a handler reads only
// bodies it has accepted, so headers alone reserve nothing), in blocks as
// it arrives when it has none. Close gives the charge back, and a Read
// after it is refused.
type chargedBody struct {
	io.ReadCloser
	acct    account
	length  int64 // Content-Length, or -1
	read    int64
	refused bool // the budget refused it
}

// bodyBlock is the step in which a body without a Content-Length is
// charged.
const bodyBlock = 64 << 10

func (cb *chargedBody) Read(p []byte) (int, error) {
	if cb.acct.held == 0 && cb.length > 0 {
		if err := cb.acct.hold(cb.length); err != nil {
			cb.refused = !errors.Is(err, errAccountClosed)
			return 0, err
		}
	}
	if cb.acct.closed {
		return 0, errAccountClosed
	}
	n, err := cb.ReadCloser.Read(p)
	cb.read += int64(n)
	if over := cb.read - cb.acct.held; over > 0 {
		step := (over + bodyBlock - 1) / bodyBlock * bodyBlock
		if terr := cb.acct.add(step); terr != nil {
			cb.refused = true
			return n, terr
		}
	}
	return n, err
}

func (cb *chargedBody) Close() error {
	cb.acct.close()
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
		cb := &chargedBody{ReadCloser: r.Body, acct: account{b: &s.budgets.bodies}, length: r.ContentLength}
		r.Body = cb
		defer cb.Close()
		h.ServeHTTP(w, r)
		if cb.refused {
			_, _ = io.Copy(io.Discard, io.LimitReader(cb.ReadCloser, s.cfg.MaxJobBytes))
		}
	})
}
