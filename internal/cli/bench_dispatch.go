package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"time"

	"github.com/neurolov/neurolov/client"
	"github.com/neurolov/neurolov/coordinator/planner"
	"github.com/neurolov/neurolov/coordinator/scheduler"
	"github.com/neurolov/neurolov/coordinator/server"
	"github.com/neurolov/neurolov/identity"
	"github.com/neurolov/neurolov/internal/rusage"
	"github.com/neurolov/neurolov/worker"
)

// benchDispatch measures the coordinator's CPU per verified replica: the
// coordinator runs in this process, 1,000 simulated workers in a child
// process over loopback WebSockets, and the shards are tiny so that the
// figure is the coordinator's overhead (framing, scheduling, verification,
// store), not compute.
func benchDispatch(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	fs := flag.NewFlagSet("bench dispatch", flag.ContinueOnError)
	fs.SetOutput(stderr)
	workers := fs.Int("workers", 1000, "simulated workers (in a child process)")
	shards := fs.Int("shards", 100_000, "tiny shards per run")
	window := fs.Int("window", 32, "leases granted to each worker")
	runs := fs.Int("runs", 3, "runs; the median is reported")
	profiles := addProfileFlags(fs, "the coordinator")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case *workers < 2:
		return fmt.Errorf("%w: -workers %d: a new identity's shards need replicas from a second one", ErrUsage, *workers)
	case *shards < 1 || *window < 1 || *runs < 1:
		return fmt.Errorf("%w: -shards, -window and -runs must be at least 1", ErrUsage)
	}
	stopProfiles, err := profiles.start()
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, stopProfiles()) }()
	sc := scheduler.DefaultConfig()
	sc.CanaryRate = 0.02
	l, err := startLocal(ctx, server.Config{
		Window: *window, Scheduler: &sc,
		Planner: planner.Options{TileRows: 4, TileCols: 4},
		Logger:  slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, l.close()) }()
	srv := l.srv
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// The fleet, in a child process so its CPU is not the coordinator's.
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	child := exec.CommandContext(ctx, exe, "bench", "dispatch-fleet", "-url", "ws://"+l.addr+"/v1/worker", "-workers", strconv.Itoa(*workers))
	child.Stderr = stderr // its stdout, which nothing reads, is the null device
	if err := child.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	var werr error
	go func() { werr = child.Wait(); close(exited) }()
	defer func() { _ = child.Process.Kill(); <-exited }()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		_, n, err := srv.Stats(ctx)
		if err != nil {
			return err
		}
		if n >= *workers {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bench dispatch: only %d of %d workers connected", n, *workers)
		}
		select {
		case <-exited:
			return fmt.Errorf("bench dispatch: the worker fleet exited before connecting: %v", werr)
		case <-time.After(50 * time.Millisecond):
		}
	}
	fmt.Fprintf(stdout, "bench dispatch: %d workers connected from a child process; %d tiny matmul shards (4×4·4×4) per run, window %d; coordinator GOGC=%s\n",
		*workers, *shards, *window, gcTarget(setCoordinatorGC()))

	cl := client.New("http://"+l.addr, client.WithAPIKey(l.key))
	rng := newRand(1)
	var rates []float64
	for r := 0; r < *runs; r++ {
		a, b := scaledTensor(rng, 1, 4*(*shards), 4), scaledTensor(rng, 1, 4, 4)
		before, _, err := srv.Stats(ctx)
		if err != nil {
			return err
		}
		traffic0 := srv.Traffic()
		cpu0, wall0 := rusage.Process(), time.Now()
		job, err := cl.SubmitMatmul(ctx, a, b, client.SubmitOptions{Name: "bench-dispatch"})
		if err != nil {
			return err
		}
		if err := waitRun(ctx, cl, job.ID); err != nil {
			return fmt.Errorf("bench dispatch: run %d: %w", r+1, err)
		}
		cpu, wall := rusage.Process()-cpu0, time.Since(wall0)
		after, _, err := srv.Stats(ctx)
		if err != nil {
			return err
		}
		traffic := srv.Traffic()
		replicas := after.Results - before.Results
		rate := float64(replicas) / cpu.Seconds()
		rates = append(rates, rate)
		fmt.Fprintf(stdout, "  run %d: %d replicas verified (%d shards, %.2f per shard) in %.2fs wall, %.2fs coordinator CPU: %.0f replicas/s per core (%.1f µs each); messages per frame: %.1f in, %.1f out\n",
			r+1, replicas, *shards, float64(replicas)/float64(*shards), wall.Seconds(), cpu.Seconds(), rate, 1e6/rate,
			perFrame(traffic.MessagesIn-traffic0.MessagesIn, traffic.FramesIn-traffic0.FramesIn),
			perFrame(traffic.MessagesOut-traffic0.MessagesOut, traffic.FramesOut-traffic0.FramesOut))
	}
	med := median(rates)
	fmt.Fprintf(stdout, "dispatch: %.0f replicas/s per core\n", med)
	return nil
}

// runTimeout bounds one run of bench dispatch: a few seconds on a laptop.
const runTimeout = 5 * time.Minute

// waitRun waits for job to be done, for at most runTimeout.
func waitRun(ctx context.Context, cl *client.Client, job string) error {
	ctx, cancel := context.WithTimeout(ctx, runTimeout)
	defer cancel()
	_, err := cl.Wait(ctx, job, 20*time.Millisecond, nil)
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("job %s not done after %v", job, runTimeout)
	}
	return err
}

// gcTarget prints a GC percent as GOGC spells it.
func gcTarget(percent int) string {
	if percent < 0 {
		return "off"
	}
	return strconv.Itoa(percent)
}

// perFrame is the batching factor: messages per frame (0 without frames).
func perFrame(messages, frames uint64) float64 {
	if frames == 0 {
		return 0
	}
	return float64(messages) / float64(frames)
}

// dispatchFleet is the child process of bench dispatch: n workers with the
// CPU backend, each with its own key, until killed.
func dispatchFleet(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench dispatch-fleet", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "", "coordinator worker endpoint")
	n := fs.Int("workers", 1000, "workers")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var wg sync.WaitGroup
	for i := 0; i < *n; i++ {
		key, err := identity.NewKey()
		if err != nil {
			return err
		}
		w := worker.New(worker.Config{
			URL: *url, Signer: identity.NewKeySigner(key), Backend: worker.CPU{}, GFLOPS: 1,
			Agent: "bench-fleet", Logger: slog.New(slog.DiscardHandler),
		})
		wg.Go(func() { _ = w.Run(ctx) })
	}
	fmt.Fprintln(stdout, "fleet started")
	wg.Wait()
	return nil
}
