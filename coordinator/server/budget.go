package server

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/neurolov/neurolov/tensor"
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
	results budget // job results being assembled and sent
}

func newBudgets(total int64) *budgets {
	return &budgets{
		frames: budget{name: "worker frames being read", limit: total / 8,
			holder: "this address", perHolder: total / 16},
		outputs: budget{name: "chunked outputs", limit: total / 4},
		bodies: budget{name: "uploads being read", limit: total / 4,
			holder: "this API key", perHolder: total / 8},
		results: budget{name: "results being sent", limit: total / 4,
			holder: "this API key", perHolder: total / 8},
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
// request body read after its request ended).
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

// uploadReserve is what each upload holds without charging the bodies
// budget: its copy buffer, and a small job whole.
const uploadReserve = 64 << 10

// readUpload reads a job's safetensors body, charging what the reader
// allocates, as it allocates it, to the caller's API key on the bodies
// budget (past uploadReserve): an upload holds the budget for what it has
// sent, not for the length it claims, and one key at most half of it.
// release gives the charge back once the request is done with the
// tensors. A body the budget refused is read to its end (up to
// MaxJobBytes, uncharged, through a small buffer) so that the client,
// still sending, reads the 503 rather than a reset connection.
func (s *Server) readUpload(r *http.Request, body io.Reader) (tensors map[string]*tensor.Tensor, release func(), err error) {
	acct := &account{b: &s.budgets.bodies, holder: caller(r).ID(), reserve: uploadReserve}
	tensors, _, err = tensor.ReadSafetensorsCharged(body, s.cfg.MaxJobBytes, acct.add)
	if errors.Is(err, ErrBudget) {
		_, _ = io.Copy(io.Discard, io.LimitReader(body, s.cfg.MaxJobBytes))
	}
	return tensors, acct.close, err
}

// assemblyBytes is what assembling a job's result holds: its inputs and,
// twice, its outputs (the verified shard results as the store returns
// them, and the result put together from them).
func assemblyBytes(inputs []*tensor.Tensor, outputs [][]int) int64 {
	var n int64
	for _, t := range inputs {
		n += 4 * int64(len(t.Data))
	}
	for _, shape := range outputs {
		elems := int64(1)
		for _, d := range shape {
			elems *= int64(d)
		}
		n += 2 * 4 * elems
	}
	return n
}

// retryAfter is the Retry-After, in seconds, of a 503 for a spent budget.
const retryAfter = "10"

// writeBudget answers a request a budget refused: 503, Retry-After, and
// the budget's figures.
func writeBudget(w http.ResponseWriter, err error) {
	w.Header().Set("Retry-After", retryAfter)
	writeError(w, http.StatusServiceUnavailable, "%s", budgetReason(err))
}
