package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"slices"
	"time"

	"github.com/neurolov/neurolov/coordinator/server"
	"github.com/neurolov/neurolov/coordinator/verify"
	"github.com/neurolov/neurolov/internal/backends"
	"github.com/neurolov/neurolov/internal/rusage"
	"github.com/neurolov/neurolov/internal/sim"
	"github.com/neurolov/neurolov/shaders"
	"github.com/neurolov/neurolov/shaders/blas"
	"github.com/neurolov/neurolov/shaders/gpu"
	"github.com/neurolov/neurolov/tensor"
)

// benchVerify runs the real scheduler and verifier against 100 simulated
// workers with the cheater mix of the adversarial test, and prints the
// replication overhead, the wrong results left and the verification cost.
func benchVerify(_ context.Context, args []string, stdout, stderr io.Writer) (err error) {
	fs := flag.NewFlagSet("bench verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	workers := fs.Int("workers", 100, "simulated workers")
	shards := fs.Int("shards", 20000, "shards (half matmul 512×512 tiles, half mlp-infer batch 256)")
	seed := fs.Uint64("seed", 1, "random seed of the fleet")
	k := fs.Int("k", 256, "inner dimension of the matmul jobs")
	verbose := fs.Bool("v", false, "print each catch")
	rejoins := fs.Int("rejoins", 1, "times a caught cheater comes back under a new address (-1: forever)")
	ringShards := fs.Int("ring-shards", 2000, "shards of each Sybil ring attack run after the fleet (0: none)")
	burst := fs.Int("burst", server.BurstEvents, "results handed to the scheduler (and checked) together, as a loaded coordinator's burst of result frames; 1: one at a time")
	profiles := addProfileFlags(fs, "the run")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	stopProfiles, err := profiles.start()
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, stopProfiles()) }()
	compute, backend := fastestCPU()
	recompute := newRecomputeSampler(compute, *k)
	cfg := sim.FleetConfig{
		Workers: *workers, Shards: *shards, Cheaters: 0.3, Rate: 0.3, Disconnect: 0.002,
		MatmulK: *k, Seed: *seed, Rejoins: *rejoins, Burst: *burst, Compute: compute, Checker: server.NewChecker(2),
		Baseline: recompute.sample,
	}
	if *verbose {
		cfg.Log = func(f string, a ...any) { fmt.Fprintf(stdout, "  "+f+"\n", a...) }
	}
	fmt.Fprintf(stdout, "bench verify: %d workers (30%% cheat on 30%% of their shards: perturb ×%d tol / 1%% bias / colluding; a caught cheater rejoins %d time(s) under a new address), %d shards, results checked in bursts of %d, honest backend %s\n",
		*workers, sim.PerturbFactor, *rejoins, *shards, max(*burst, 1), backend)
	runtime.LockOSThread()
	start := time.Now()
	rep, err := sim.RunFleet(cfg)
	runtime.UnlockOSThread()
	if err != nil {
		return err
	}
	recomputeCost, lo, hi, err := recompute.result()
	if err != nil {
		return err
	}
	overall := float64(rep.Replicas) / float64(rep.Shards)
	last := float64(rep.ReplicasLast) / float64(max(1, rep.ShardsLast))
	verifyPerShard := rep.VerifyCPU / time.Duration(rep.Shards)
	fmt.Fprintf(stdout, "shards %d, results computed %d (canaries %d, audits %d), jobs failed %d, wall %.1fs\n",
		rep.Shards, rep.Replicas, rep.CanaryResults, rep.Audits, rep.JobsFailed, time.Since(start).Seconds())
	for _, r := range rep.FailReasons {
		fmt.Fprintf(stdout, "  job failed: %s\n", r)
	}
	fmt.Fprintf(stdout, "cheaters caught %d (rejoined under new addresses %d); median shard count at catch %d\n",
		rep.Caught, rep.Rejoins, median(rep.CaughtAt))
	a, b := rep.StatsAtHalf, rep.Stats
	fmt.Fprintf(stdout, "last %d shards: %d results = %d shards accepted + %d replicated at first assignment, %d canaries, %d audits, %d tie-breakers, %d re-issued\n",
		rep.ShardsLast, b.Results-a.Results, b.Accepted-a.Accepted, b.Replicated-a.Replicated, b.Canaries-a.Canaries, b.Audits-a.Audits, b.TieBreakers-a.TieBreakers, b.Reissued-a.Reissued)
	fmt.Fprintf(stdout, "replicas per shard: %.3fx over the whole run (goal <= 1.25x), %.3fx over the last %d shards (goal <= 1.05x)\n",
		overall, last, rep.ShardsLast)
	fmt.Fprintf(stdout, "corrections %d; accepted results above the Freivalds floor %d (must be 0); wrong results left in final outputs %d (goal 0)\n",
		rep.Corrections, rep.AboveFloor, rep.WrongLeft)
	fmt.Fprintf(stdout, "verification CPU per shard %v vs recomputing it on %s (1 thread) %v (median of %d samples through the run, %v–%v): %.1f%% (goal <= 10%%) on %s\n",
		verifyPerShard.Round(time.Microsecond), backend, recomputeCost.Round(time.Microsecond), len(recompute.samples),
		lo.Round(time.Microsecond), hi.Round(time.Microsecond), 100*float64(verifyPerShard)/float64(recomputeCost), cpuModel())
	floors, err := recompute.floors()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Freivalds floor: a single wrong element is always caught above %.1fx its replica tolerance (goal <= 16x; largest over sampled rows: %s)\n",
		slices.Max(floors), floorList(floors))
	if *ringShards > 0 {
		if err := benchRings(stdout, compute, *k, *ringShards, *seed); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "verify: %.2fx replicas/shard, %d wrong accepted\n", last, rep.WrongLeft)
	return nil
}

// floors returns, for each output of each shard of the mix computed by
// the honest backend, the largest ratio of verify.FreivaldsFloor of a
// row to the replica tolerance of an element of that row, over 8 rows
// spread through the output: the smallest single-element error always
// caught, in multiples of the tolerance.
func (s *recomputeSampler) floors() ([]float64, error) {
	var out []float64
	for _, sh := range s.shards {
		res, err := s.compute(sh.kernel, sh.in)
		if err != nil {
			return nil, err
		}
		for o, t := range res {
			m, n := t.Rows(), t.Cols()
			worst := 0.0
			for r := range 8 {
				i := r * (m - 1) / 7
				floor, err := verify.FreivaldsFloor(sh.kernel, sh.in, res, o, i)
				if err != nil {
					return nil, err
				}
				for j := range n {
					tol, err := verify.ElementTolerance(sh.kernel, sh.in, res, o, i, j)
					if err != nil {
						return nil, err
					}
					worst = max(worst, floor/tol)
				}
			}
			out = append(out, worst)
		}
	}
	return out, nil
}

// floorList formats floors as "matmul 9.9x, mlp layers 5.2x / 4.5x / 1.3x"
// for the mix of newRecomputeSampler.
func floorList(floors []float64) string {
	s := fmt.Sprintf("matmul %.1fx, mlp layers", floors[0])
	for i, f := range floors[1:] {
		sep := " "
		if i > 0 {
			sep = " / "
		}
		s += fmt.Sprintf("%s%.1fx", sep, f)
	}
	return s
}

// fastestCPU returns the fastest CPU kernel path in this build: OpenBLAS
// when cgo is on, else the pure-Go kernels.
func fastestCPU() (func(string, []*tensor.Tensor) ([]*tensor.Tensor, error), string) {
	b, _ := backends.Open("auto", gpu.Options{})
	return func(kernel string, in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		return b.Run(context.Background(), kernel, in)
	}, b.Device()
}

// recomputeSampler times the recomputation of one shard of the bench's mix
// (the mean of a 512×512 matmul tile and an mlp-infer batch of 256) on one
// thread with the fastest CPU backend, again and again through the run, so
// that the verification cost is compared with a recompute measured under
// the same load: on a shared machine either can double from one minute to
// the next.
type recomputeSampler struct {
	compute func(string, []*tensor.Tensor) ([]*tensor.Tensor, error)
	shards  []benchShard
	samples []time.Duration
	err     error
}

func newRecomputeSampler(compute func(string, []*tensor.Tensor) ([]*tensor.Tensor, error), k int) *recomputeSampler {
	rng := newRand(5)
	return &recomputeSampler{compute: compute, shards: []benchShard{
		{shaders.Matmul, []*tensor.Tensor{scaledTensor(rng, 1, 512, k), scaledTensor(rng, 1, k, 512)}},
		{shaders.MLPInfer, []*tensor.Tensor{scaledTensor(rng, 1, 256, 784),
			scaledTensor(rng, 0.05, 784, 512), scaledTensor(rng, 0.1, 512),
			scaledTensor(rng, 0.05, 512, 256), scaledTensor(rng, 0.1, 256),
			scaledTensor(rng, 0.05, 256, 10), scaledTensor(rng, 0.1, 10)}},
	}}
}

// benchShard is one shard of the recompute baseline.
type benchShard struct {
	kernel string
	in     []*tensor.Tensor
}

// sample computes each shard of the mix twice on one thread and records
// the mean thread CPU time of the second computations.
func (s *recomputeSampler) sample() {
	if s.err != nil {
		return
	}
	if blas.Available() {
		prev := blas.Threads()
		_ = blas.SetThreads(1)
		defer func() { _ = blas.SetThreads(prev) }()
	}
	prevProcs := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(prevProcs)
	runtime.LockOSThread() // thread CPU time must be this goroutine's
	defer runtime.UnlockOSThread()
	var total time.Duration
	for _, sh := range s.shards {
		// Untimed first: the timed run finds its inputs in cache, so
		// the baseline is the recompute at its fastest.
		if _, s.err = s.compute(sh.kernel, sh.in); s.err != nil {
			return
		}
		t0 := rusage.Thread()
		if _, s.err = s.compute(sh.kernel, sh.in); s.err != nil {
			return
		}
		total += rusage.Thread() - t0
	}
	s.samples = append(s.samples, total/time.Duration(len(s.shards)))
}

// result returns the median sample, the smallest and the largest.
func (s *recomputeSampler) result() (median, lo, hi time.Duration, err error) {
	if s.err != nil {
		return 0, 0, 0, s.err
	}
	if len(s.samples) == 0 {
		s.sample()
		if s.err != nil {
			return 0, 0, 0, s.err
		}
	}
	sorted := slices.Clone(s.samples)
	slices.Sort(sorted)
	return sorted[len(sorted)/2], sorted[0], sorted[len(sorted)-1], nil
}
