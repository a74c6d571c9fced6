package server_test

import (
	"context"
	"math/rand/v2"
	"sync"
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

// TestHeavyShardsWaitForADataCenterGPU: volunteers never take a heavy
// shard. That nothing ran is checked once a light job submitted after it
// is done: the volunteers, idle, had the heavy shard first in line and
// took only the light one.
func TestHeavyShardsWaitForADataCenterGPU(t *testing.T) {
	var mu sync.Mutex
	assigned := map[scheduler.JobID]int{}
	c := startCoordinator(t, func(cfg *server.Config) {
		heavyConfig(false)(cfg)
		cfg.Observe = func(a scheduler.Action) {
			if a.Kind == scheduler.Assign {
				mu.Lock()
				assigned[a.Job]++
				mu.Unlock()
			}
		}
	})
	startWorkers(t, c, 2, nil) // volunteers only
	rng := rand.New(rand.NewPCG(1, 1))
	ctx := context.Background()
	job, err := c.client().SubmitMatmul(ctx, randomTensor(rng, 64, 32), randomTensor(rng, 32, 64), client.SubmitOptions{Replication: 1})
	if err != nil {
		t.Fatal(err)
	}
	light := submitSmall(t, c, 0)
	if _, err := c.client().Wait(ctx, light.ID, 10*time.Millisecond, nil); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	heavy := assigned[scheduler.JobID(job.ID)]
	mu.Unlock()
	if st, _ := c.client().Job(ctx, job.ID); st.Replicas != 0 || heavy != 0 {
		t.Fatalf("a heavy shard went to a volunteer (%d assigns): %+v", heavy, st)
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
