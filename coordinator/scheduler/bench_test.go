package scheduler

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/neurolov/neurolov/tensor"
)

// BenchmarkSchedulerReplica measures the scheduler alone (the fake checker:
// no verification, no network) per replica: 1,000 workers, window 16, a
// steady stream of one-element shards with adaptive replication.
func BenchmarkSchedulerReplica(b *testing.B) {
	cfg := DefaultConfig()
	s := New(cfg, rand.New(rand.NewPCG(1, 2)), valueChecker{})
	now := time.Unix(0, 0)
	const workers = 1000
	var open []Action // assigns in issue order, answered FIFO
	record := func(acts []Action) {
		for _, a := range acts {
			if a.Kind == Assign {
				open = append(open, a)
			}
		}
	}
	for i := 1; i <= workers; i++ {
		record(s.WorkerJoined(now, Worker{ID: WorkerID(i), Address: Address{byte(i), byte(i >> 8)}, Backend: BackendCPU, Window: 16}))
	}
	job := 0
	submit := func() {
		tasks := make([]Task, 10_000)
		for i := range tasks {
			tasks[i] = valueTask(float32(i))
		}
		job++
		record(s.SubmitJob(now, Job{ID: JobID(rune(job)), Tasks: tasks}))
	}
	submit()
	outs := make([]tensor.Tensor, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if len(open) == 0 {
			submit()
		}
		a := open[0]
		open = open[1:]
		outs[i] = tensor.Tensor{Shape: []int{1}, Data: []float32{a.Task.Inputs[0].Data[0]}}
		record(s.Result(now, a.Worker, a.Lease, []*tensor.Tensor{&outs[i]}))
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/replica")
}
