package browser

import (
	"context"
	"sync"
	"time"
)

// gate decides when the next shard may start: not while the volunteer has
// paused, not while the client holds it (to reconnect), and, for the duty
// cycle, not before the idle time owed by the last shard has passed. It
// counts the shards in flight so that a reconnection can wait for them.
type gate struct {
	mu       sync.Mutex
	paused   bool
	held     int
	share    float64
	lastEnd  time.Time     // when the last shard ended
	lastRun  time.Duration // how long it computed
	inFlight int
	changed  chan struct{} // closed and replaced on every change
	now      func() time.Time
}

func newGate(share float64) *gate {
	return &gate{share: clampShare(share), changed: make(chan struct{}), now: time.Now}
}

func clampShare(s float64) float64 {
	if !(s >= 0) { // NaN too
		return 0
	}
	return min(s, 1)
}

// idleAfter is the idle time that keeps compute/(compute+idle) = share
// after a shard that computed for d. A share of 0 is handled as a pause.
func idleAfter(d time.Duration, share float64) time.Duration {
	if share >= 1 || share <= 0 {
		return 0
	}
	return time.Duration(float64(d) * (1 - share) / share)
}

// signal wakes every waiter; call with mu held.
func (g *gate) signal() {
	close(g.changed)
	g.changed = make(chan struct{})
}

// Wait blocks until a shard may start, then counts it in flight. Every
// successful Wait must be followed by one Done.
func (g *gate) Wait(ctx context.Context) error {
	for {
		g.mu.Lock()
		open := !g.paused && g.held == 0 && g.share > 0
		var wait time.Duration
		if open {
			wait = g.lastEnd.Add(idleAfter(g.lastRun, g.share)).Sub(g.now())
			if wait <= 0 {
				g.inFlight++
				g.mu.Unlock()
				return nil
			}
		}
		changed := g.changed
		g.mu.Unlock()
		var timer *time.Timer
		var expired <-chan time.Time
		if open {
			timer = time.NewTimer(wait)
			expired = timer.C
		}
		select {
		case <-ctx.Done():
		case <-changed:
		case <-expired:
		}
		if timer != nil {
			timer.Stop()
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// Done ends a shard that computed for d and schedules the next start.
func (g *gate) Done(d time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.inFlight--
	g.lastEnd, g.lastRun = g.now(), d
	g.signal()
}

// SetShare sets the duty cycle: the share of wall time spent computing,
// from 0 (no shard starts) to 1 (no idle time).
func (g *gate) SetShare(s float64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.share = clampShare(s) // the idle time owed follows at once
	g.signal()
}

// Share returns the duty cycle.
func (g *gate) Share() float64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.share
}

// SetPaused pauses or resumes: a paused gate starts no shard; the shards in
// flight finish.
func (g *gate) SetPaused(p bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.paused = p
	g.signal()
}

// Paused reports whether the volunteer paused.
func (g *gate) Paused() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.paused
}

// Hold closes the gate until the returned release is called (holds nest).
func (g *gate) Hold() (release func()) {
	g.mu.Lock()
	g.held++
	g.signal()
	g.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			g.held--
			g.signal()
			g.mu.Unlock()
		})
	}
}

// Idle waits until no shard is in flight.
func (g *gate) Idle(ctx context.Context) error {
	for {
		g.mu.Lock()
		n, changed := g.inFlight, g.changed
		g.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
}
