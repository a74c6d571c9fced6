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
	"github.com/neurolov/neurolov/protocol"
	"github.com/neurolov/neurolov/shaders"
	"github.com/neurolov/neurolov/tensor"
)

// leased is an Assign with its inputs resolved.
type leased struct {
	*protocol.Assign
	inputs []*tensor.Tensor
}

// leases reads frames until n Assigns have arrived, resolving by-hash
// inputs from the TensorData chunks sent ahead of them.
func (r *rawWorker) leases(n int) []leased {
	r.t.Helper()
	asm := protocol.NewAssembler(1 << 30)
	have := map[[32]byte]*tensor.Tensor{}
	var out []leased
	for len(out) < n {
		err := r.read(func(m protocol.Message) {
			switch m := m.(type) {
			case *protocol.TensorData:
				t, err := asm.Add(m)
				if err != nil {
					r.t.Fatal(err)
				}
				if t != nil {
					have[m.Hash] = t
				}
			case *protocol.Assign:
				l := leased{Assign: protocol.Clone(m)}
				for _, ref := range l.Inputs {
					if ref.Inline {
						l.inputs = append(l.inputs, ref.Tensor())
					} else if l.inputs = append(l.inputs, have[ref.Hash]); have[ref.Hash] == nil {
						r.t.Fatalf("assign names tensor %x not sent ahead of it", ref.Hash[:8])
					}
				}
				out = append(out, l)
			}
		})
		if err != nil {
			r.t.Fatalf("reading leases: %v", err)
		}
	}
	return out
}

// answer computes l's outputs and sends them inline.
func (r *rawWorker) answer(l leased) {
	r.t.Helper()
	outs, err := shaders.Reference(l.Kernel, l.inputs)
	if err != nil {
		r.t.Fatal(err)
	}
	res := &protocol.Result{Lease: l.Lease}
	for _, o := range outs {
		res.Outputs = append(res.Outputs, protocol.TensorRef{Shape: o.Shape, Inline: true, Data: o.Data})
	}
	r.send(res)
}

// TestSharedTensorOutlivesTheFirstJob: two live jobs with the same input
// content share one Fetch entry; the first finishing must not take it from
// the second, whose worker may still Fetch it.
func TestSharedTensorOutlivesTheFirstJob(t *testing.T) {
	c := startCoordinator(t, func(cfg *server.Config) { cfg.InlineBytes = 16 }) // every input by hash
	rng := rand.New(rand.NewPCG(8, 8))
	a, b := randomTensor(rng, 8, 5), randomTensor(rng, 5, 8)
	ctx := context.Background()
	cl := c.client()
	var ids []string
	for range 2 {
		job, err := cl.SubmitMatmul(ctx, a, b, client.SubmitOptions{Replication: 1})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, job.ID)
	}
	raw := dialRaw(t, c)
	ls := raw.leases(2) // one of each job: both have hashed their inputs
	raw.answer(ls[0])
	waitFor(t, "a job done", func() bool {
		for _, id := range ids {
			if st, err := cl.Job(ctx, id); err == nil && st.Status == client.StateDone {
				return true
			}
		}
		return false
	})
	h := ls[1].Inputs[1].Hash
	raw.send(&protocol.Fetch{Hashes: [][32]byte{h}})
	for got := false; !got; {
		if err := raw.read(func(m protocol.Message) {
			switch m := m.(type) {
			case *protocol.TensorData:
				got = got || m.Hash == h
			case *protocol.Error:
				if m.Lease == 0 {
					t.Fatalf("fetching the live job's input: %s", m.Message)
				}
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	raw.answer(ls[1])
	if _, err := cl.Wait(ctx, ids[0], 10*time.Millisecond, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Wait(ctx, ids[1], 10*time.Millisecond, nil); err != nil {
		t.Fatal(err)
	}
}

// TestFinishedJobsAreForgotten: once jobs end, the loop keeps neither them
// nor their tensors (the store has what their results need).
func TestFinishedJobsAreForgotten(t *testing.T) {
	c := startCoordinator(t, func(cfg *server.Config) {
		cfg.InlineBytes = 64 // inputs by hash, so that there are tensors to forget
		sc := scheduler.DefaultConfig()
		sc.CanaryRate = 0 // canaries belong to no job, and keep their tensors
		cfg.Scheduler = &sc
	})
	startWorkers(t, c, 2, nil)
	rng := rand.New(rand.NewPCG(12, 12))
	ctx := context.Background()
	cl := c.client()
	var ids []string
	for range 3 {
		job, err := cl.SubmitMatmul(ctx, randomTensor(rng, 16, 9), randomTensor(rng, 9, 16), client.SubmitOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, job.ID)
	}
	cancelled, err := cl.SubmitMatmul(ctx, randomTensor(rng, 4096, 64), randomTensor(rng, 64, 4096), client.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Cancel(ctx, cancelled.ID); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if _, err := cl.Wait(ctx, id, 10*time.Millisecond, nil); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the loop to let go of finished jobs", func() bool {
		jobs, blobs, err := server.Held(c.srv)
		return err == nil && jobs == 0 && blobs == 0
	})
	if _, err := cl.Result(ctx, ids[0]); err != nil {
		t.Fatalf("result of a forgotten job: %v", err)
	}
}

// TestCanaryTensorsAreBounded: tensors sent by hash for no job (canaries)
// do not pile up in the Fetch table: past maxOrphans the oldest go.
func TestCanaryTensorsAreBounded(t *testing.T) {
	c := startCoordinator(t, nil)
	var kept int
	for i := range 300 {
		x := tensor.New(4)
		x.Data[0] = float32(i) // distinct content, distinct hash
		var err error
		if kept, err = server.HashForNoJob(c.srv, x); err != nil {
			t.Fatal(err)
		}
	}
	if _, blobs, err := server.Held(c.srv); err != nil || kept != 256 || blobs != 256 {
		t.Fatalf("after 300 canary tensors: %d kept, %d blobs (%v); want the last 256", kept, blobs, err)
	}
}

// TestOrphanBlobsAreCountedByContent: a newer canary tensor with the same
// content as an evicted one keeps the blob; and a finished job kept for
// its plan that sends a tensor again (re-verification) holds it only as
// an orphan, so it does not stay for ever.
func TestOrphanBlobsAreCountedByContent(t *testing.T) {
	c := startCoordinator(t, nil)
	fill := func(n, seed int) {
		for i := range n {
			x := tensor.New(4)
			x.Data[0], x.Data[1] = float32(i), float32(seed)
			if _, err := server.HashForNoJob(c.srv, x); err != nil {
				t.Fatal(err)
			}
		}
	}
	shared := tensor.New(4)
	shared.Data[3] = 42
	h := shared.Hash()
	first, second := shared.Clone(), shared.Clone() // same content, two canaries
	if _, err := server.HashForNoJob(c.srv, first); err != nil {
		t.Fatal(err)
	}
	fill(100, 1)
	if _, err := server.HashForNoJob(c.srv, second); err != nil {
		t.Fatal(err)
	}
	fill(200, 2) // the first is evicted, the second is still among the last 256
	if held, err := server.HasBlob(c.srv, h); err != nil || !held {
		t.Fatalf("a canary among the last 256 lost its tensor (%v)", err)
	}
	fill(100, 3) // now the second is evicted too
	if held, _ := server.HasBlob(c.srv, h); held {
		t.Fatal("a blob no canary and no job holds is still kept")
	}

	w := tensor.New(4)
	w.Data[2] = 7
	plan := planner.Options{TileRows: 3} // not the configured plan: the job stays in the table
	if err := server.AddJob(c.srv, "j-kept", plan); err != nil {
		t.Fatal(err)
	}
	if err := server.HashForJob(c.srv, "j-kept", w); err != nil {
		t.Fatal(err)
	}
	if err := server.FinishJob(c.srv, "j-kept"); err != nil {
		t.Fatal(err)
	}
	if err := server.HashForJob(c.srv, "j-kept", w); err != nil { // re-verification
		t.Fatal(err)
	}
	fill(300, 4)
	if held, _ := server.HasBlob(c.srv, w.Hash()); held {
		t.Fatal("a finished job's re-sent tensor is kept for ever")
	}
}
