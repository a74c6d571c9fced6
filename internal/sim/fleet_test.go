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

// ringAttacks are the Sybil rings of issue 12: identities are free, so a
// ring can be most of a young network, or earn trust and then lie. Each
// member moves 4 elements of a tile by 60 replica tolerances: under the
// Freivalds floor of a single secret vector, which is about half a tile's
// width in tolerances.
var ringAttacks = []struct {
	name   string
	honest int
	ring   sim.Ring
}{
	{"majority of a fresh fleet", 2, sim.Ring{Members: 6, Rate: 0.75, Elements: 4, Factor: 60}},
	{"patient, turns once trusted", 2, sim.Ring{Members: 4, Rate: 0.75, Elements: 4, Factor: 60, After: 15}},
}

// TestRingsLeaveNothingWrong runs each ring against the real scheduler and
// verifier: no wrong element may be left in a final output, no honest
// worker banned, and every member that cheated caught.
func TestRingsLeaveNothingWrong(t *testing.T) {
	for _, attack := range ringAttacks {
		rep := runRing(t, attack.name, attack.honest, attack.ring)
		for seed, r := range rep {
			if r != nil && r.Cheaters == 0 {
				t.Errorf("%s, seed %d: the ring never cheated", attack.name, seed+1)
			}
		}
	}
}

// TestDecoyRingsLeaveNothingWrong: the rings of ringAttacks, and a patient
// ring that lies on a tenth of the shards only, each member also moving
// 64 decoy rows of every tile it lies on by 0.9 of each element's
// worst-case bound, so that the verifier's recompute budget is spent on
// them and the wrong rows are left to the worst-case bound (a Doubtful
// result, which is replicated and audited and earns no trust): nothing
// wrong may be left, no honest worker banned, every cheating member caught.
func TestDecoyRingsLeaveNothingWrong(t *testing.T) {
	attacks := append(ringAttacks[:len(ringAttacks):len(ringAttacks)], struct {
		name   string
		honest int
		ring   sim.Ring
	}{"patient, rarely lying", 2, sim.Ring{Members: 4, Rate: 0.1, Elements: 4, Factor: 60, After: 15}})
	for _, attack := range attacks {
		attack.ring.Decoys = 64
		runRing(t, attack.name+", with decoys", attack.honest, attack.ring)
	}
}

// runRing runs ring beside honest workers on 200 shards for seeds 1 and
// 2, and fails t if a run leaves a wrong result, bans an honest worker,
// leaves a cheating member uncaught or fails a job. It returns each
// seed's report (nil where the run stalled).
func runRing(t *testing.T, name string, honest int, ring sim.Ring) []*sim.FleetReport {
	t.Helper()
	var reps []*sim.FleetReport
	for seed := uint64(1); seed <= 2; seed++ {
		rep, err := sim.RunFleet(sim.FleetConfig{
			Fleet: sim.RingFleet(honest, ring, seed), Shards: 200,
			MatmulK: 64, Rejoins: 0, Burst: 8, Seed: seed,
			Compute: shaders.Reference, Checker: server.NewChecker(2),
		})
		if err != nil {
			t.Errorf("%s, seed %d: %v (%d honest workers banned, %d caught)", name, seed, err, rep.HonestBanned, rep.Caught)
			reps = append(reps, nil)
			continue
		}
		if rep.WrongLeft != 0 || rep.HonestBanned != 0 || rep.Uncaught != 0 || rep.JobsFailed != 0 {
			t.Errorf("%s, seed %d: %d wrong results left, %d honest workers banned, %d of %d cheating members never caught, %d jobs failed %v",
				name, seed, rep.WrongLeft, rep.HonestBanned, rep.Uncaught, rep.Cheaters, rep.JobsFailed, rep.FailReasons)
		}
		reps = append(reps, &rep)
	}
	return reps
}
