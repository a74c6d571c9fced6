package server_test

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/neurolov/neurolov/client"
	"github.com/neurolov/neurolov/coordinator/planner"
	"github.com/neurolov/neurolov/coordinator/scheduler"
	"github.com/neurolov/neurolov/coordinator/server"
	"github.com/neurolov/neurolov/internal/servertest"
	"github.com/neurolov/neurolov/worker"
)

// dataCenter is the CPU backend reporting itself as a native GPU worker,
// to test routing without a GPU.
type dataCenter struct{ worker.CPU }

func (dataCenter) Name() string { return scheduler.BackendNativeGPU }

func heavyConfig(replan bool) func(*server.Config) {
	return func(cfg *server.Config) {
		sc := scheduler.DefaultConfig()
		sc.HeavyFLOPs = 2 * 32 * 32 * 32 // a 32×32×32 tile is the most a volunteer takes
		cfg.Scheduler = &sc
		cfg.Planner = planner.Options{TileRows: 64, TileCols: 64}
		cfg.ReplanHeavy = replan
	}
}

func TestHeavyShardsWaitForADataCenterGPU(t *testing.T) {
	c := startCoordinator(t, heavyConfig(false))
	startWorkers(t, c, 2, nil) // volunteers only
	rng := rand.New(rand.NewPCG(1, 1))
	ctx := context.Background()
	job, err := c.client().SubmitMatmul(ctx, randomTensor(rng, 64, 32), randomTensor(rng, 32, 64), client.SubmitOptions{Replication: 1})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // give volunteers every chance to (wrongly) take it
	if st, _ := c.client().Job(ctx, job.ID); st.Replicas != 0 {
		t.Fatalf("a heavy shard ran on a volunteer: %+v", st)
	}
	servertest.StartWorker(t, c.Coordinator, dataCenter{}, nil)
	if _, err := c.client().Wait(ctx, job.ID, 10*time.Millisecond, nil); err != nil {
		t.Fatal(err)
	}
}

func TestHeavyJobIsReplannedWithoutADataCenterGPU(t *testing.T) {
	c := startCoordinator(t, heavyConfig(true))
	startWorkers(t, c, 2, nil)
	rng := rand.New(rand.NewPCG(2, 2))
	ctx := context.Background()
	job, err := c.client().SubmitMatmul(ctx, randomTensor(rng, 64, 32), randomTensor(rng, 32, 64), client.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if job.Shards < 4 {
		t.Fatalf("job planned into %d shards: want it cut under the heavy budget", job.Shards)
	}
	if _, err := c.client().Wait(ctx, job.ID, 10*time.Millisecond, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.client().Result(ctx, job.ID); err != nil {
		t.Fatalf("assembling a re-planned job: %v", err)
	}
}
