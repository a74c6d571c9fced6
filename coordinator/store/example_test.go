package store_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/neurolov/neurolov/coordinator/store"
	"github.com/neurolov/neurolov/tensor"
)

// A job's life in the store, as the coordinator drives it: submit, store
// the verified shard results (one corrected), finish, pay.
func Example() {
	ctx := context.Background()
	s := store.NewMemory()
	defer s.Close()

	_, hash := store.NewAPIKey() // the key goes to its holder; the store keeps its hash
	s.AddAPIKey(ctx, store.APIKey{Name: "alice", Hash: hash})

	a, b := tensor.New(4, 3), tensor.New(3, 2)
	rec := store.JobRecord{
		ID: "j-1", Owner: store.KeyID(hash), Kernel: "matmul", Status: store.StatusQueued, Shards: 2,
		Created: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), InputNames: []string{"A", "B"},
	}
	if err := s.CreateJob(ctx, rec, []*tensor.Tensor{a, b}); err != nil {
		fmt.Println(err)
		return
	}
	tile := []*tensor.Tensor{tensor.New(2, 2)}
	s.PutShardResult(ctx, "j-1", 0, tile, 2)           // scheduler.Accept
	s.PutShardResult(ctx, "j-1", 1, tile, 2)           // scheduler.Accept
	got, _ := s.PutShardResult(ctx, "j-1", 0, tile, 2) // scheduler.Correct
	fmt.Printf("verified %d/%d, corrections %d, replicas %d\n", got.Verified, got.Shards, got.Corrections, got.Replicas)

	done := func(r *store.JobRecord) error { // scheduler.JobDone
		r.Status, r.Finished = store.StatusDone, r.Created.Add(time.Minute)
		return nil
	}
	if err := s.UpdateJob(ctx, "j-1", done); err != nil {
		fmt.Println(err)
	}
	err := s.UpdateJob(ctx, "j-1", func(r *store.JobRecord) error { r.Status = store.StatusCancelled; return nil })
	fmt.Println("cancel after done refused:", errors.Is(err, store.ErrFinished))

	worker := [20]byte{0xab}
	s.Credit(ctx, worker, 6e9) // scheduler.Pay
	s.Credit(ctx, worker, 6e9)
	s.Settle(ctx, worker, 4e9)
	e, _ := s.Forfeit(ctx, worker) // scheduler.Forfeit
	fmt.Printf("shards %d, settled %.0e, forfeited %.0e\n", e.Shards, e.SettledFLOPs, e.ForfeitedFLOPs)
	// Output:
	// verified 2/2, corrections 1, replicas 6
	// cancel after done refused: true
	// shards 2, settled 4e+09, forfeited 8e+09
}
