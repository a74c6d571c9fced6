package browser

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/neurolov/neurolov/shaders"
	"github.com/neurolov/neurolov/tensor"
)

func TestIdleAfter(t *testing.T) {
	for _, tc := range []struct {
		d     time.Duration
		share float64
		want  time.Duration
	}{
		{100 * time.Millisecond, 1, 0},
		{100 * time.Millisecond, 0.5, 100 * time.Millisecond},
		{100 * time.Millisecond, 0.25, 300 * time.Millisecond},
		{100 * time.Millisecond, 0.75, 100 * time.Millisecond / 3},
		{100 * time.Millisecond, 0, 0}, // handled as a pause
		{0, 0.5, 0},
	} {
		if got := idleAfter(tc.d, tc.share); got != tc.want {
			t.Errorf("idleAfter(%v, %v) = %v, want %v", tc.d, tc.share, got, tc.want)
		}
	}
	for in, want := range map[float64]float64{-1: 0, 0.3: 0.3, 2: 1} {
		if got := clampShare(in); got != want {
			t.Errorf("clampShare(%v) = %v, want %v", in, got, want)
		}
	}
}

// waitReturns reports whether g.Wait returns within d.
func waitReturns(g *gate, d time.Duration) bool {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return g.Wait(ctx) == nil
}

func TestGateDutyCycle(t *testing.T) {
	g := newGate(0.5)
	if !waitReturns(g, time.Second) {
		t.Fatal("the first shard did not start")
	}
	g.Done(200 * time.Millisecond) // owes 200 ms of idle time at share 0.5
	start := time.Now()
	if !waitReturns(g, 5*time.Second) {
		t.Fatal("the next shard never started")
	}
	if waited := time.Since(start); waited < 180*time.Millisecond {
		t.Fatalf("the next shard started after %v; the duty cycle owes 200 ms", waited)
	}
	g.Done(10 * time.Second) // owes 10 s…
	g.SetShare(1)            // …until the share rises to 100%
	if !waitReturns(g, time.Second) {
		t.Fatal("raising the share did not cut the idle time owed")
	}
	g.Done(0)
}

func TestGatePauseHoldAndIdle(t *testing.T) {
	g := newGate(1)
	g.SetPaused(true)
	if waitReturns(g, 50*time.Millisecond) {
		t.Fatal("a paused gate let a shard start")
	}
	started := make(chan error, 1)
	go func() { started <- g.Wait(context.Background()) }()
	g.SetPaused(false)
	if err := <-started; err != nil {
		t.Fatal(err)
	}
	// One shard in flight: Idle waits for it, Hold keeps others out.
	release := g.Hold()
	idle := make(chan error, 1)
	go func() { idle <- g.Idle(context.Background()) }()
	select {
	case <-idle:
		t.Fatal("Idle returned with a shard in flight")
	case <-time.After(20 * time.Millisecond):
	}
	g.Done(time.Millisecond)
	if err := <-idle; err != nil {
		t.Fatal(err)
	}
	if waitReturns(g, 50*time.Millisecond) {
		t.Fatal("a held gate let a shard start")
	}
	release()
	release() // idempotent
	if !waitReturns(g, time.Second) {
		t.Fatal("the released gate stayed closed")
	}
	g.SetShare(0)
	if waitReturns(g, 50*time.Millisecond) {
		t.Fatal("share 0 let a shard start")
	}
}

func TestSwitchingFinishesFailedShardsOnCPU(t *testing.T) {
	ctx := context.Background()
	in := []*tensor.Tensor{tensor.New(3, 4), tensor.New(4, 2)}
	for _, tc := range []struct {
		err      error
		switches bool
	}{
		{fmt.Errorf("%w: gone", ErrDeviceLost), true},
		{errors.New("gpu: tensor too large for the device"), false},
	} {
		cpu := &fakeBackend{name: BackendCPUWasm}
		gpu := &failing{err: tc.err}
		var lost []error
		sw := &switching{gate: newGate(1), cpu: cpu, gpu: gpu, log: slog.New(slog.NewTextHandler(io.Discard, nil)),
			onLost: func(err error) { lost = append(lost, err) }}
		if sw.Name() != BackendWebGPU {
			t.Fatalf("name %s before the failure", sw.Name())
		}
		outs, err := sw.Run(ctx, shaders.Matmul, in)
		if err != nil || len(outs) != 1 || cpu.runs.Load() != 1 {
			t.Fatalf("%v: the shard was not finished on the CPU: %v", tc.err, err)
		}
		if switched := sw.Name() == BackendCPUWasm; switched != tc.switches || (len(lost) == 1) != tc.switches {
			t.Fatalf("%v: switched %v, onLost called %d times; want switched %v", tc.err, switched, len(lost), tc.switches)
		}
		_, _ = sw.Run(ctx, shaders.Matmul, in)
		if tc.switches && gpu.runs != 1 {
			t.Fatalf("the lost GPU was used again (%d runs)", gpu.runs)
		}
		if len(lost) > 1 {
			t.Fatal("onLost called twice")
		}
	}
}

type failing struct {
	err  error
	runs int
}

func (f *failing) Name() string   { return BackendWebGPU }
func (f *failing) Device() string { return "failing" }
func (f *failing) Run(context.Context, string, []*tensor.Tensor) ([]*tensor.Tensor, error) {
	f.runs++
	return nil, f.err
}
