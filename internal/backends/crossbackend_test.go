package backends_test

import (
	"context"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/neurolov/neurolov/client"
	"github.com/neurolov/neurolov/coordinator/planner"
	"github.com/neurolov/neurolov/coordinator/server"
	"github.com/neurolov/neurolov/coordinator/verify"
	"github.com/neurolov/neurolov/internal/backends"
	"github.com/neurolov/neurolov/internal/servertest"
	"github.com/neurolov/neurolov/shaders"
	"github.com/neurolov/neurolov/shaders/gpu"
	"github.com/neurolov/neurolov/tensor"
)

func openLavapipe(t *testing.T) *backends.GPU {
	t.Helper()
	if os.Getenv("XDG_RUNTIME_DIR") == "" {
		t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	}
	g, err := backends.OpenGPU(gpu.Options{Software: gpu.SoftwarePrefer, TuneCache: "-"})
	if err != nil {
		t.Fatalf("no WebGPU adapter (%v): install the Vulkan loader and lavapipe: apt-get install libvulkan1 mesa-vulkan-drivers (or make deps)", err)
	}
	t.Cleanup(func() { _ = g.Close() })
	return g
}

// TestReplicasCrossVerifiedAcrossBackends runs jobs with replication forced
// to 2 on one native GPU worker (lavapipe) and one OpenBLAS CPU worker:
// every shard is computed once on each backend and the two results must
// agree within the float32 tolerance.
func TestReplicasCrossVerifiedAcrossBackends(t *testing.T) {
	g := openLavapipe(t)
	c := servertest.Start(t, func(cfg *server.Config) {
		cfg.Planner = planner.Options{TileRows: 64, TileCols: 64, BatchRows: 32}
	})
	servertest.StartWorker(t, c, g, nil)
	servertest.StartWorker(t, c, backends.BLAS{}, nil)
	ctx := context.Background()
	cl := c.Client()
	servertest.WaitFor(t, "two workers", func() bool { ws, _ := cl.Workers(ctx); return len(ws) == 2 })
	ws, _ := cl.Workers(ctx)
	seen := map[string]bool{}
	for _, w := range ws {
		seen[w.Backend] = true
	}
	if !seen["native-gpu"] || !seen["cpu"] {
		t.Fatalf("backends %v, want native-gpu and cpu", seen)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	rnd := func(shape ...int) *tensor.Tensor {
		x := tensor.New(shape...)
		for i := range x.Data {
			x.Data[i] = float32(rng.NormFloat64())
		}
		return x
	}
	jobs := []struct {
		kernel string
		inputs []*tensor.Tensor
	}{
		{shaders.Matmul, []*tensor.Tensor{rnd(97, 131), rnd(131, 83)}},
		{shaders.MLPInfer, []*tensor.Tensor{rnd(70, 50), rnd(50, 40), rnd(40), rnd(40, 10), rnd(10)}},
	}
	for _, j := range jobs {
		named, err := client.NamedInputs(j.kernel, j.inputs)
		if err != nil {
			t.Fatal(err)
		}
		job, err := cl.Submit(ctx, j.kernel, named, client.SubmitOptions{Replication: 2})
		if err != nil {
			t.Fatal(err)
		}
		st, err := cl.Wait(ctx, job.ID, 10*time.Millisecond, nil)
		if err != nil {
			t.Fatalf("%s: %v", j.kernel, err)
		}
		if st.Replicas != 2*st.Shards || st.Verified != st.Shards {
			t.Fatalf("%s: %d replicas for %d shards (verified %d), want exactly 2 each", j.kernel, st.Replicas, st.Shards, st.Verified)
		}
		res, err := cl.Result(ctx, job.ID)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := shaders.Reference(j.kernel, j.inputs)
		got := make([]*tensor.Tensor, len(want))
		for i := range want {
			got[i] = res[client.OutputName(j.kernel, i)]
		}
		var v verify.Verifier
		cmp, err := v.Agree(j.kernel, j.inputs, got, want)
		if err != nil || !cmp.Agree {
			t.Fatalf("%s: result differs from the CPU reference: %v %s", j.kernel, err, cmp.Reason)
		}
		t.Logf("%s: %d shards, each computed on native-gpu (%s) and OpenBLAS; max |Δ|/tolerance vs reference %.3g", j.kernel, st.Shards, g.Info().Name, cmp.MaxRatio)
	}
	for _, e := range must(cl.Ledger(ctx)) {
		if e.Shards == 0 {
			t.Fatalf("a worker was not paid: %+v", e)
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
