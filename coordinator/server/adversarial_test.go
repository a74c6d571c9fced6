package server_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/neurolov/neurolov/client"
	"github.com/neurolov/neurolov/coordinator/planner"
	"github.com/neurolov/neurolov/coordinator/scheduler"
	"github.com/neurolov/neurolov/coordinator/server"
	"github.com/neurolov/neurolov/coordinator/verify"
	"github.com/neurolov/neurolov/identity"
	"github.com/neurolov/neurolov/internal/sim"
	"github.com/neurolov/neurolov/shaders"
	"github.com/neurolov/neurolov/tensor"
	"github.com/neurolov/neurolov/worker"
)

// TestAdversarialFleet runs ≥100 workers over real WebSockets on loopback:
// 20% disconnect at random, 30% cheat on a random 30% of their shards (a
// third perturb one element by 10× its tolerance, a third add a 1% bias, a
// third collude on the same wrong answer), and a caught cheater rejoins
// under a new address. Every job must complete with outputs equal to the
// CPU reference, and no accepted result may carry an error above the
// Freivalds floor.
func TestAdversarialFleet(t *testing.T) {
	if testing.Short() {
		t.Skip("adversarial fleet: run without -short") // make test runs it
	}
	const (
		nWorkers = 100
		jobsEach = 32
	)
	opts := planner.Options{TileRows: 16, TileCols: 128, BatchRows: 16}

	type jobSpec struct {
		kernel string
		inputs []*tensor.Tensor
		shards []planner.Shard
		want   [][]*tensor.Tensor
	}
	rng := rand.New(rand.NewPCG(42, 43))
	specs := map[string]*jobSpec{}
	var mu sync.Mutex
	var aboveFloor []string
	var caughtLog []string
	var accepted int
	v := &verify.Verifier{}

	type verdict struct {
		job      string
		shard    int
		outs     []*tensor.Tensor
		vouchers []scheduler.Address
		method   string
	}
	kindOf := map[scheduler.Address]sim.Kind{} // for failure reports
	var verdicts []verdict                     // every accepted or corrected result, judged at the end
	var trace []scheduler.Action
	observe := func(a scheduler.Action) {
		if a.Kind == scheduler.Assign || a.Kind == scheduler.Accept || a.Kind == scheduler.Correct || a.Kind == scheduler.Pay {
			mu.Lock()
			trace = append(trace, scheduler.Action{Kind: a.Kind, Job: a.Job, Shard: a.Shard, Address: a.Address, Vouchers: append([]scheduler.Address(nil), a.Vouchers...), Method: a.Method, Lease: a.Lease})
			mu.Unlock()
		}
		switch a.Kind {
		case scheduler.Accept, scheduler.Correct:
			mu.Lock()
			accepted++
			verdicts = append(verdicts, verdict{string(a.Job), a.Shard, a.Outputs, append([]scheduler.Address(nil), a.Vouchers...), a.Kind.String() + " " + a.Method})
			mu.Unlock()
		case scheduler.Ban:
			mu.Lock()
			caughtLog = append(caughtLog, fmt.Sprintf("after %4d accepted shards: %s — %s", accepted, a.Address.String()[:10], a.Reason))
			mu.Unlock()
		}
	}
	c := startCoordinator(t, func(cfg *server.Config) {
		cfg.Planner = opts
		cfg.Window = 2
		cfg.Observe = observe
		sc := scheduler.DefaultConfig()
		sc.LeaseTimeout = 5 * time.Second
		sc.CanaryRate = 0.05
		cfg.Scheduler = &sc
	})

	// The fleet.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	behaviours := sim.Mix(nWorkers, 0.3, 0.3, 7)
	var wg sync.WaitGroup
	var fleetMu sync.Mutex
	live := make([]*worker.Worker, nWorkers)
	rejoins := 0
	for i, cheat := range behaviours {
		var tamper worker.Tamper
		if cheat.Kind != sim.Honest {
			tamper = func(_ uint64, kernel string, in, outs []*tensor.Tensor) []*tensor.Tensor {
				fleetMu.Lock()
				defer fleetMu.Unlock()
				cheat.Tamper(kernel, in, outs)
				return outs
			}
		}
		wg.Go(func() {
			for ctx.Err() == nil {
				key, err := identity.NewKey()
				if err != nil {
					t.Error(err)
					return
				}
				w := worker.New(worker.Config{
					URL: c.wsURL(), Signer: identity.NewKeySigner(key), Backend: worker.CPU{}, GFLOPS: 1,
					Tamper: tamper, Logger: testLogger(t), MinBackoff: 5 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
				})
				fleetMu.Lock()
				live[i] = w
				fleetMu.Unlock()
				mu.Lock()
				kindOf[identity.Address(key)] = cheat.Kind
				mu.Unlock()
				err = w.Run(ctx)
				if !errors.Is(err, worker.ErrBanned) {
					return
				}
				fleetMu.Lock()
				rejoins++ // identities are free: come back under a new address
				fleetMu.Unlock()
			}
		})
	}
	waitFor(t, "100 workers", func() bool { _, n, _ := c.srv.Stats(ctx); return n >= nWorkers })

	// 20% of the workers drop their connection at random moments.
	flaky := rng.Perm(nWorkers)[:nWorkers/5]
	stopFlaky := make(chan struct{})
	var flakyWG sync.WaitGroup
	flakyWG.Go(func() {
		r := rand.New(rand.NewPCG(9, 9))
		for {
			select {
			case <-stopFlaky:
				return
			case <-time.After(time.Duration(5+r.IntN(20)) * time.Millisecond):
			}
			fleetMu.Lock()
			w := live[flaky[r.IntN(len(flaky))]]
			fleetMu.Unlock()
			if w != nil {
				w.Drop()
			}
		}
	})

	// The jobs: matmul and mlp-infer, small tiles so every worker sees many.
	cl := c.client()
	var ids []string
	for n := 0; n < jobsEach; n++ {
		for _, kernel := range []string{shaders.Matmul, shaders.MLPInfer} {
			var in []*tensor.Tensor
			if kernel == shaders.Matmul {
				in = []*tensor.Tensor{randomTensor(rng, 64, 64), randomTensor(rng, 64, 256)}
			} else {
				in = []*tensor.Tensor{randomTensor(rng, 128, 64), randomTensor(rng, 64, 128), randomTensor(rng, 128), randomTensor(rng, 128, 64), randomTensor(rng, 64)}
			}
			shards, err := planner.Plan(kernel, in, opts)
			if err != nil {
				t.Fatal(err)
			}
			sp := &jobSpec{kernel: kernel, inputs: in, shards: shards}
			for _, sh := range shards {
				out, _ := shaders.Reference(kernel, sh.Inputs)
				sp.want = append(sp.want, out)
			}
			named, _ := client.NamedInputs(kernel, in)
			job, err := cl.Submit(ctx, kernel, named, client.SubmitOptions{})
			if err != nil {
				t.Fatal(err)
			}
			specs[job.ID] = sp
			ids = append(ids, job.ID)
		}
	}
	for _, id := range ids {
		if _, err := cl.Wait(ctx, id, 20*time.Millisecond, nil); err != nil {
			t.Fatalf("job %s: %v", id, err)
		}
	}
	// Results accepted on the word of a cheater not yet caught are
	// replaced once it is caught (BOINC-style adaptive replication accepts
	// that risk for a while). Keep the fleet busy with drain jobs until
	// every final output is right, within a deadline, and say how long it
	// took.
	idle := func() { waitFor(t, "re-verifications", func() bool { n, _ := c.srv.Pending(ctx); return n == 0 }) }
	wrongJobs := func() []string {
		var bad []string
		for _, id := range ids {
			sp := specs[id]
			res, err := cl.Result(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := shaders.Reference(sp.kernel, sp.inputs)
			got := make([]*tensor.Tensor, len(want))
			for i := range want {
				got[i] = res[client.OutputName(sp.kernel, i)]
			}
			if cmp, err := v.Agree(sp.kernel, sp.inputs, got, want); err != nil || !cmp.Agree {
				report := fmt.Sprintf("job %s (%s): %v %s", id, sp.kernel, err, cmp.Reason)
				mu.Lock()
				for _, a := range trace {
					if string(a.Job) == id {
						report += fmt.Sprintf("\n  trace: %s shard %d lease %d %s(%s, caught %v) %v %s", a.Kind, a.Shard, a.Lease, a.Address.String()[:8], kindOf[a.Address], c.srv.Caught(a.Address), len(a.Vouchers), a.Method)
					}
				}
				for _, vd := range verdicts {
					if vd.job == id {
						var who []string
						for _, a := range vd.vouchers {
							who = append(who, fmt.Sprintf("%s(%s, caught %v)", a.String()[:8], kindOf[a], c.srv.Caught(a)))
						}
						report += fmt.Sprintf("\n  shard %d: %s by %v", vd.shard, vd.method, who)
					}
				}
				mu.Unlock()
				bad = append(bad, report)
			}
		}
		return bad
	}
	idle()
	drains := 0
	drainDeadline := time.Now().Add(15 * time.Second)
	bad := wrongJobs()
	for len(bad) > 0 && time.Now().Before(drainDeadline) {
		t.Logf("%d jobs still hold a result from an uncaught cheater; running a drain job", len(bad))
		in := []*tensor.Tensor{randomTensor(rng, 256, 64), randomTensor(rng, 64, 256)}
		named, _ := client.NamedInputs(shaders.Matmul, in)
		job, err := cl.Submit(ctx, shaders.Matmul, named, client.SubmitOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cl.Wait(ctx, job.ID, 20*time.Millisecond, nil); err != nil {
			t.Fatalf("drain job: %v", err)
		}
		drains++
		idle()
		bad = wrongJobs()
	}
	close(stopFlaky)
	flakyWG.Wait()
	for _, b := range bad {
		t.Errorf("final output differs from the reference: %s", b)
	}
	totalShards := 0
	for _, id := range ids {
		totalShards += len(specs[id].shards)
	}
	t.Logf("drain jobs needed before every output was right: %d", drains)
	st, _, _ := c.srv.Stats(ctx)
	cancel()
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	for _, vd := range verdicts {
		sp := specs[vd.job]
		if sp == nil {
			continue // a drain job
		}
		j := sim.Judge(v, sp.kernel, sp.shards[vd.shard].Inputs, vd.outs, sp.want[vd.shard])
		if j.AboveFloor {
			aboveFloor = append(aboveFloor, fmt.Sprintf("%s shard %d: %s", vd.job, vd.shard, j.Detail))
		}
	}
	sort.Strings(caughtLog)
	for _, l := range caughtLog {
		t.Logf("caught %s", l)
	}
	t.Logf("%d jobs, %d shards: %d results computed (%.2f replicas per shard, canaries included), %d caught, %d rejoins, %d corrections, %d rejected, %d re-issued",
		len(ids), totalShards, st.Results, float64(st.Results)/float64(totalShards), st.Caught, rejoins, st.Corrections, st.Rejected, st.Reissued)
	if len(aboveFloor) > 0 {
		t.Errorf("%d accepted results above the Freivalds floor:\n%v", len(aboveFloor), aboveFloor)
	}
	if st.Caught == 0 {
		t.Error("no cheater caught")
	}
}
