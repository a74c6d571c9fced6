package storetest

import (
	"fmt"
	"testing"

	"github.com/neurolov/neurolov/coordinator/store"
	"github.com/neurolov/neurolov/tensor"
)

// Benchmark measures the calls on the coordinator's hot paths (Credit and
// PutShardResult run for every verified shard) and the cost of moving a
// large job's inputs, against the stores open returns.
func Benchmark(b *testing.B, open Opener) {
	fresh := func(b *testing.B) store.Store {
		s := open(b)
		b.Cleanup(func() {
			if err := s.Close(); err != nil {
				b.Errorf("Close: %v", err)
			}
		})
		return s
	}
	addrs := make([][20]byte, 1024)
	for i := range addrs {
		addrs[i] = [20]byte{byte(i), byte(i >> 8), 0xee}
	}

	b.Run("Credit", func(b *testing.B) {
		s := fresh(b)
		i := 0
		for b.Loop() {
			if err := s.Credit(b.Context(), addrs[i%len(addrs)], 1e9); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("CreditParallel", func(b *testing.B) {
		s := fresh(b)
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				if err := s.Credit(b.Context(), addrs[i%len(addrs)], 1e9); err != nil {
					b.Error(err)
					return
				}
				i++
			}
		})
	})
	// A 64×64 float32 tile (16 KiB) is a typical matmul shard output.
	for _, side := range []int{1, 64} {
		b.Run(fmt.Sprintf("PutShardResult/%dx%d", side, side), func(b *testing.B) {
			s := fresh(b)
			const shards = 256
			rec := newJob("j-bench", shards)
			if err := s.CreateJob(b.Context(), rec, newInputs()); err != nil {
				b.Fatal(err)
			}
			out := []*tensor.Tensor{tensor.New(side, side)}
			b.SetBytes(int64(4 * side * side))
			i := 0
			for b.Loop() {
				if _, err := s.PutShardResult(b.Context(), rec.ID, i%shards, out, 2); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
	b.Run("Job", func(b *testing.B) {
		s := fresh(b)
		if err := s.CreateJob(b.Context(), newJob("j-bench", 4), newInputs()); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if _, err := s.Job(b.Context(), "j-bench"); err != nil {
				b.Fatal(err)
			}
		}
	})
	// The largest inputs the API takes are about 64 MiB: what storing and
	// reading them back costs.
	big := []*tensor.Tensor{tensor.New(4096, 4096), tensor.New(4096, 1)}
	bigBytes := int64(4 * (big[0].Len() + big[1].Len()))
	b.Run("CreateJob/64MiB", func(b *testing.B) {
		s := fresh(b)
		b.SetBytes(bigBytes)
		i := 0
		for b.Loop() {
			id := fmt.Sprintf("j-%d", i)
			if err := s.CreateJob(b.Context(), newJob(id, 1), big); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if err := s.DeleteJob(b.Context(), id); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			i++
		}
	})
	b.Run("JobInputs/64MiB", func(b *testing.B) {
		s := fresh(b)
		if err := s.CreateJob(b.Context(), newJob("j-big", 1), big); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(bigBytes)
		for b.Loop() {
			if _, err := s.JobInputs(b.Context(), "j-big"); err != nil {
				b.Fatal(err)
			}
		}
	})
}
