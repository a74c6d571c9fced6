package browser

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/neurolov/neurolov/identity"
	"github.com/neurolov/neurolov/worker"
)

// supervisor runs one started client: it keeps a worker.Worker connected
// while the gate is open, disconnects after a long pause, reconnects on the
// CPU when the GPU is lost, posts status and polls the ledger.
type supervisor struct {
	c         *Client
	url       string
	ledgerURL string
	signer    worker.Signer
	sw        *switching
	gflops    float64 // reported in the handshake
	cpuGFLOPS float64
	lost      chan error
	note      string // how the backend was chosen, repeated on connecting
	connected atomic.Bool

	cancel context.CancelFunc // the running worker, or nil
	done   chan error
}

func (s *supervisor) run(ctx context.Context) {
	c := s.c
	defer s.stopWorker(ctx, false)
	status := time.NewTicker(statusEvery)
	defer status.Stop()
	ledger := time.NewTicker(ledgerEvery)
	defer ledger.Stop()
	var pauseTimer *time.Timer
	var pauseExpired <-chan time.Time
	stopPauseTimer := func() {
		if pauseTimer != nil {
			pauseTimer.Stop()
			pauseTimer, pauseExpired = nil, nil
		}
	}
	defer stopPauseTimer()
	// apply brings the worker in line with the gate: paused (and, after
	// pauseDisconnect, disconnected) or connected.
	apply := func() {
		if c.holding() {
			c.update(true, func(st *Status) {
				st.State = StatePaused
				if c.gate.Share() <= 0 && !c.gate.Paused() {
					st.Message = "share is 0%: no shard starts"
				} else {
					st.Message = "paused"
				}
			})
			if s.cancel != nil && pauseTimer == nil {
				pauseTimer = time.NewTimer(pauseDisconnect)
				pauseExpired = pauseTimer.C
			}
			return
		}
		stopPauseTimer()
		if s.cancel == nil {
			s.startWorker(ctx)
			return
		}
		c.update(true, func(st *Status) {
			if st.State == StatePaused {
				st.State, st.Message = StateConnecting, "resumed; reconnecting"
				if s.connected.Load() {
					st.State, st.Message = StateWorking, "resumed"
				}
			}
		})
	}
	apply()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.cmds:
			apply()
		case <-pauseExpired:
			pauseTimer, pauseExpired = nil, nil
			if c.holding() {
				s.stopWorker(ctx, true)
				c.update(true, func(st *Status) {
					st.Message = "paused: disconnected, so that the coordinator hands this tab's shards to others"
				})
			}
		case err := <-s.lost:
			c.log.Warn("GPU lost; reconnecting as cpu-wasm", "err", err)
			s.stopWorker(ctx, true)
			s.gflops = s.cpuGFLOPS
			s.note = "WebGPU device lost (" + err.Error() + "); the shard in flight was finished on the CPU; now cpu-wasm"
			c.update(true, func(st *Status) {
				st.State, st.Backend, st.Device = StateConnecting, s.sw.Name(), s.sw.Device()
				st.Message = s.note + "; reconnecting"
			})
			if !c.holding() {
				s.startWorker(ctx)
			}
		case err := <-s.done:
			s.cancel, s.done = nil, nil
			if err == nil {
				err = errors.New("browser: the worker stopped")
			}
			if errors.Is(err, worker.ErrVersion) {
				c.outdated(err)
				return
			}
			if errors.Is(err, worker.ErrBanned) {
				err = fmt.Errorf("%w: this address is banned by the coordinator; use another identity", err)
			}
			c.fail(err)
			return
		case <-status.C:
			c.flush()
		case <-ledger.C:
			if s.cancel != nil && c.p.Ledger != nil {
				go s.pollLedger(ctx)
			}
		}
	}
}

// startWorker connects a worker with the backend in use.
func (s *supervisor) startWorker(ctx context.Context) {
	c := s.c
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	s.cancel, s.done = cancel, done
	var maxBuf uint64
	if b, ok := s.sw.current().(interface{ MaxBufferBytes() uint64 }); ok {
		maxBuf = b.MaxBufferBytes()
	}
	w := worker.New(worker.Config{
		URL: s.url, Signer: s.signer, Backend: s.sw, GFLOPS: s.gflops, MaxBufferBytes: maxBuf,
		Agent: "neurolov-browser/1", Logger: c.log, OnEvent: s.event,
	})
	c.update(true, func(st *Status) {
		st.State, st.Backend, st.Device = StateConnecting, s.sw.Name(), s.sw.Device()
	})
	go func() { done <- w.Run(wctx) }()
}

// stopWorker disconnects the worker. A graceful stop first holds the gate,
// waits for the shard in flight to finish and for its result to be
// written (settle), so that no finished work is lost.
func (s *supervisor) stopWorker(ctx context.Context, graceful bool) {
	if s.cancel == nil {
		return
	}
	if graceful {
		release := s.c.gate.Hold()
		defer release()
		if s.c.gate.Idle(ctx) == nil {
			t := time.NewTimer(settle)
			select {
			case <-t.C:
			case <-ctx.Done():
			}
			t.Stop()
		}
	}
	s.cancel()
	<-s.done
	s.cancel, s.done = nil, nil
	s.connected.Store(false)
}

// event turns worker events into status.
func (s *supervisor) event(e worker.Event) {
	c := s.c
	switch e.Kind {
	case "connected":
		s.connected.Store(true)
		c.update(true, func(st *Status) {
			if c.holding() {
				st.State = StatePaused
			} else {
				st.State, st.Message = StateWorking, "connected; "+s.note
			}
		})
	case "disconnected":
		s.connected.Store(false)
		c.update(true, func(st *Status) {
			if !c.holding() {
				st.State = StateConnecting
			}
			st.Message = "disconnected (" + e.Detail + "); reconnecting"
		})
	case "shard-done":
		c.update(false, func(st *Status) { st.ShardsDone++ })
	case "rejected":
		c.update(false, func(st *Status) { st.Rejected++ })
	}
}

// pollLedger reads the coordinator's ledger and reports this address's
// verified shards and earned FLOPs.
func (s *supervisor) pollLedger(ctx context.Context) {
	entries, err := s.c.p.Ledger(ctx, s.ledgerURL)
	if err != nil {
		s.c.log.Debug("ledger", "err", err)
		return
	}
	addr := identity.FormatAddress(s.signer.Address())
	for _, e := range entries {
		if strings.EqualFold(e.Address, addr) {
			s.c.update(false, func(st *Status) { st.Verified, st.EarnedFLOPs = e.Shards, e.FLOPs })
			return
		}
	}
}
