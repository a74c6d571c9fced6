package server_test

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/neurolov/neurolov/client"
	"github.com/neurolov/neurolov/coordinator/scheduler"
	"github.com/neurolov/neurolov/coordinator/server"
	"github.com/neurolov/neurolov/shaders"
	"github.com/neurolov/neurolov/tensor"
)

// TestDeepMLPAssignFitsAFrame: 64 layers of 256×256 are each at the default
// inline limit but together over the frame limit; the Assign sends what
// does not fit by hash, and the job completes.
func TestDeepMLPAssignFitsAFrame(t *testing.T) {
	c := startCoordinator(t, nil) // default InlineBytes: 256 KiB
	startWorkers(t, c, 2, nil)
	rng := rand.New(rand.NewPCG(9, 9))
	x := randomTensor(rng, 8, 256)
	layers := make([]client.Layer, 64)
	for l := range layers {
		w := randomTensor(rng, 256, 256)
		for i := range w.Data {
			w.Data[i] /= 16 // keep activations in range over 64 layers
		}
		layers[l] = client.Layer{W: w, B: randomTensor(rng, 256)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cl := c.client()
	job, err := cl.SubmitMLP(ctx, x, layers, client.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if job.Shards != 1 {
		t.Fatalf("%d shards, want 1: the test needs every layer in one Assign", job.Shards)
	}
	if st, err := cl.Wait(ctx, job.ID, 10*time.Millisecond, nil); err != nil || st.Status != client.StateDone {
		t.Fatalf("deep MLP: %+v %v", st, err)
	}
}

// TestUnsendableAssignFailsTheJob: an Assign no frame can carry (more
// inputs than a message may name) fails its lease through the scheduler,
// whose Checker knows such a shard cannot be done (Doable), so the job
// fails at once instead of being leased forever.
func TestUnsendableAssignFailsTheJob(t *testing.T) {
	failed := make(chan string, 1)
	c := startCoordinator(t, func(cfg *server.Config) {
		sc := scheduler.DefaultConfig()
		sc.MaxAttempts = 2
		cfg.Scheduler = &sc
		cfg.Observe = func(a scheduler.Action) {
			if a.Kind == scheduler.JobFailed {
				failed <- a.Reason
			}
		}
	})
	startWorkers(t, c, 1, nil)
	inputs := []*tensor.Tensor{tensor.New(1, 1)}
	for range 1 << 15 { // 2·32768+1 inputs, over protocol.MaxTensors
		inputs = append(inputs, tensor.New(1, 1), tensor.New(1))
	}
	if _, err := server.SubmitUnstored(c.srv, shaders.MLPInfer, inputs, 1); err != nil {
		t.Fatal(err)
	}
	select {
	case reason := <-failed:
		if !strings.Contains(reason, "does not fit a frame") {
			t.Fatalf("job failed for %q", reason)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a job whose Assign cannot be sent never failed")
	}
}
