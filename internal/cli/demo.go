package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/neurolov/neurolov/client"
	"github.com/neurolov/neurolov/coordinator/planner"
	"github.com/neurolov/neurolov/coordinator/scheduler"
	"github.com/neurolov/neurolov/coordinator/server"
	"github.com/neurolov/neurolov/coordinator/verify"
	"github.com/neurolov/neurolov/identity"
	"github.com/neurolov/neurolov/shaders"
	"github.com/neurolov/neurolov/tensor"
	"github.com/neurolov/neurolov/worker"
)

// runDemo starts a coordinator on a loopback port and four CPU workers over
// real WebSockets — one of them cheating — runs a matmul and an mlp-infer
// job, and prints how every shard was verified.
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	logLevel := fs.String("log", "error", "coordinator log level")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log, err := newLogger(stderr, *logLevel)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()

	var mu sync.Mutex
	names := map[scheduler.Address]string{}
	name := func(a scheduler.Address) string {
		mu.Lock()
		defer mu.Unlock()
		if n, ok := names[a]; ok {
			return n
		}
		return a.String()[:10]
	}
	jobNames := map[scheduler.JobID]string{}
	var caught []string
	observe := func(a scheduler.Action) {
		switch a.Kind {
		case scheduler.Accept, scheduler.Correct:
			var who []string
			for _, v := range a.Vouchers {
				who = append(who, name(v))
			}
			verb := "verified"
			if a.Kind == scheduler.Correct {
				verb = "CORRECTED"
			}
			mu.Lock()
			jn := jobNames[a.Job]
			mu.Unlock()
			fmt.Fprintf(stdout, "  %-7s shard %2d %s: %s (%d replicas computed; vouched by %s)\n", jn, a.Shard, verb, a.Method, a.Replicas, strings.Join(who, ", "))
		case scheduler.Ban:
			line := fmt.Sprintf("CAUGHT %s (%s): %s — banned, unsettled pay forfeited, its accepted results re-verified", name(a.Address), a.Address, a.Reason)
			mu.Lock()
			caught = append(caught, line)
			mu.Unlock()
			fmt.Fprintln(stdout, "  "+line)
		}
	}

	l, err := startLocal(ctx, server.Config{
		Planner: planner.Options{TileRows: 128, TileCols: 128, BatchRows: 128},
		Window:  2,
		Logger:  log,
		Observe: observe,
	})
	if err != nil {
		return err
	}
	defer l.close()
	st := l.st
	base := "http://" + l.addr
	fmt.Fprintf(stdout, "coordinator on %s; starting 4 CPU workers over WebSockets (worker-4 cheats: it adds a 1%% bias to every result)\n", base)

	// Workers.
	var wg sync.WaitGroup
	workCtx, stopWorkers := context.WithCancel(ctx)
	defer stopWorkers()
	gflops, _ := worker.Measure(ctx, worker.CPU{})
	var cheaterErr error
	for i := 1; i <= 4; i++ {
		k, err := identity.NewKey()
		if err != nil {
			return err
		}
		signer := identity.NewKeySigner(k)
		mu.Lock()
		names[signer.Address()] = fmt.Sprintf("worker-%d", i)
		mu.Unlock()
		cfg := worker.Config{
			URL: "ws://" + l.addr + "/v1/worker", Signer: signer, Backend: worker.CPU{},
			GFLOPS: gflops, Agent: "neurolov-demo", Logger: slog.New(slog.DiscardHandler),
		}
		if i == 4 {
			cfg.Tamper = biasTamper(0.01)
		}
		w := worker.New(cfg)
		wg.Go(func() {
			err := w.Run(workCtx)
			if i == 4 {
				cheaterErr = err
			}
		})
	}

	// Jobs.
	cl := client.New(base, client.WithAPIKey(l.key))
	rng := rand.New(rand.NewPCG(7, 11))
	a, b := randomTensor(rng, 384, 256), randomTensor(rng, 256, 384)
	x := randomTensor(rng, 512, 784)
	layers := []client.Layer{
		{W: scaledTensor(rng, 0.05, 784, 512), B: scaledTensor(rng, 0.1, 512)},
		{W: scaledTensor(rng, 0.05, 512, 256), B: scaledTensor(rng, 0.1, 256)},
		{W: scaledTensor(rng, 0.05, 256, 10), B: scaledTensor(rng, 0.1, 10)},
	}
	start := time.Now()
	mm, err := cl.SubmitMatmul(ctx, a, b, client.SubmitOptions{Name: "demo-matmul"})
	if err != nil {
		return fmt.Errorf("submitting matmul: %w", err)
	}
	mu.Lock()
	jobNames[scheduler.JobID(mm.ID)] = "matmul"
	mu.Unlock()
	mlp, err := cl.SubmitMLP(ctx, x, layers, client.SubmitOptions{Name: "demo-mlp"})
	if err != nil {
		return fmt.Errorf("submitting mlp-infer: %w", err)
	}
	mu.Lock()
	jobNames[scheduler.JobID(mlp.ID)] = "mlp"
	mu.Unlock()
	fmt.Fprintf(stdout, "submitted matmul %s (%d shards) and mlp-infer %s (%d shards, 784-512-256-10)\n", mm.ID, mm.Shards, mlp.ID, mlp.Shards)

	var failures []string
	for _, j := range []struct {
		id, kernel string
		inputs     []*tensor.Tensor
	}{
		{mm.ID, shaders.Matmul, []*tensor.Tensor{a, b}},
		{mlp.ID, shaders.MLPInfer, []*tensor.Tensor{x, layers[0].W, layers[0].B, layers[1].W, layers[1].B, layers[2].W, layers[2].B}},
	} {
		status, err := cl.Wait(ctx, j.id, 50*time.Millisecond, nil)
		if err != nil {
			return fmt.Errorf("job %s: %w", j.id, err)
		}
		res, err := cl.Result(ctx, j.id)
		if err != nil {
			return fmt.Errorf("result of %s: %w", j.id, err)
		}
		want, err := shaders.Reference(j.kernel, j.inputs)
		if err != nil {
			return err
		}
		got := make([]*tensor.Tensor, len(want))
		for i := range want {
			got[i] = res[client.OutputName(j.kernel, i)]
		}
		ok, ratio := matchesReference(j.kernel, j.inputs, got, want)
		verdict := "matches the CPU reference"
		if !ok {
			verdict = "DOES NOT match the CPU reference"
			failures = append(failures, j.kernel+" result differs from the reference")
		}
		fmt.Fprintf(stdout, "%s job %s: %s, %d shards verified with %d replicas computed (%.2f per shard), %d corrections; %s (max error %.2g of tolerance)\n",
			j.kernel, j.id, status.Status, status.Verified, status.Replicas, float64(status.Replicas)/float64(max(1, status.Shards)), status.Corrections, verdict, ratio)
	}
	stopWorkers()
	wg.Wait()
	// Read the ledger before the coordinator closes its store.
	entries, err := st.Ledger(ctx)
	if err != nil {
		return fmt.Errorf("reading the ledger: %w", err)
	}
	if err := l.close(); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "ledger (verified work, the input to settlement):")
	honestPaid := 0
	for _, e := range entries {
		who := name(e.Address)
		fmt.Fprintf(stdout, "  %-9s %s  %3d shards  %8.3f GFLOP  unsettled %8.3f GFLOP  forfeited %8.3f GFLOP\n",
			who, scheduler.Address(e.Address), e.Shards, e.FLOPs/1e9, e.UnsettledFLOPs/1e9, e.ForfeitedFLOPs/1e9)
		switch {
		case who == "worker-4" && e.UnsettledFLOPs != 0:
			failures = append(failures, "the cheater kept unsettled pay")
		case who != "worker-4" && e.Shards > 0:
			honestPaid++
		}
	}
	if honestPaid == 0 {
		failures = append(failures, "the ledger credits no honest worker")
	}
	mu.Lock()
	nCaught := len(caught)
	mu.Unlock()
	if nCaught == 0 {
		failures = append(failures, "the cheater was not caught")
	}
	if !errors.Is(cheaterErr, worker.ErrBanned) {
		failures = append(failures, fmt.Sprintf("the cheating worker was not told it was banned (%v)", cheaterErr))
	}
	if len(failures) > 0 {
		return fmt.Errorf("demo failed: %s", strings.Join(failures, "; "))
	}
	fmt.Fprintf(stdout, "demo ok in %.1fs: every shard verified, the cheater (worker-4) was caught and banned\n", time.Since(start).Seconds())
	return nil
}

// biasTamper returns a Tamper that adds frac·|x| to every output element:
// the kind of systematic error Freivalds' check catches at once.
func biasTamper(frac float32) worker.Tamper {
	return func(_ uint64, _ string, _, outs []*tensor.Tensor) []*tensor.Tensor {
		for _, o := range outs {
			for i, v := range o.Data {
				if v < 0 {
					v = -v
				}
				o.Data[i] += frac*v + 1e-3
			}
		}
		return outs
	}
}

func randomTensor(rng *rand.Rand, shape ...int) *tensor.Tensor { return scaledTensor(rng, 1, shape...) }

func scaledTensor(rng *rand.Rand, scale float64, shape ...int) *tensor.Tensor {
	t := tensor.New(shape...)
	for i := range t.Data {
		t.Data[i] = float32(rng.NormFloat64() * scale)
	}
	return t
}

// matchesReference compares a job's outputs with the CPU reference using
// the verifier's replica tolerance; it returns the max error/tolerance.
func matchesReference(kernel string, inputs, got, want []*tensor.Tensor) (bool, float64) {
	for _, g := range got {
		if g == nil {
			return false, 0
		}
	}
	var v verify.Verifier
	cmp, err := v.Agree(kernel, inputs, got, want)
	if err != nil {
		return false, 0
	}
	return cmp.Agree, cmp.MaxRatio
}
