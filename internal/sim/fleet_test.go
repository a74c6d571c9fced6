package sim_test

import (
	"testing"

	"github.com/neurolov/neurolov/coordinator/server"
	"github.com/neurolov/neurolov/internal/sim"
	"github.com/neurolov/neurolov/shaders"
)

// TestFleetCountsEachCatchOnce runs a small, disconnect-heavy fleet one
// result at a time and in bursts: each caught address is counted once
// (a worker banned by the results handed over just before it would have
// dropped and reconnected must not rejoin under its banned address), and
// every job completes with no wrong result left.
func TestFleetCountsEachCatchOnce(t *testing.T) {
	for _, burst := range []int{1, 64} {
		for seed := uint64(1); seed <= 3; seed++ {
			rep, err := sim.RunFleet(sim.FleetConfig{
				Workers: 20, Shards: 300, Cheaters: 0.5, Rate: 0.5, Disconnect: 0.2,
				MatmulK: 64, Rejoins: 0, Burst: burst, Seed: seed,
				Compute: shaders.Reference, Checker: server.NewChecker(2),
			})
			if err != nil {
				t.Fatalf("burst %d seed %d: %v", burst, seed, err)
			}
			if len(rep.CaughtAt) != rep.Caught {
				t.Errorf("burst %d seed %d: %d catches recorded for %d addresses caught", burst, seed, len(rep.CaughtAt), rep.Caught)
			}
			if rep.JobsFailed != 0 || rep.WrongLeft != 0 {
				t.Errorf("burst %d seed %d: %d jobs failed (%v), %d wrong results left", burst, seed, rep.JobsFailed, rep.FailReasons, rep.WrongLeft)
			}
		}
	}
}
