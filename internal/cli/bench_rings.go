package cli

import (
	"fmt"
	"io"
	"time"

	"github.com/neurolov/neurolov/coordinator/server"
	"github.com/neurolov/neurolov/internal/sim"
	"github.com/neurolov/neurolov/tensor"
)

// ringAttack is one Sybil ring bench verify runs after its fleet.
type ringAttack struct {
	name   string
	honest int
	ring   sim.Ring
	// goal is true when the attack must leave nothing wrong; otherwise
	// bench verify only reports what it leaves.
	goal bool
}

// ringAttacks are the rings of issue 12: a ring that is most of a fresh
// fleet, and a patient ring that earns trust and then lies, each moving 4
// elements of a tile by 60 replica tolerances — under the floor of a
// single secret vector (about half a tile's width in tolerances) — and
// one more ring just under today's floor, whose leftovers are reported.
func ringAttacks() []ringAttack {
	return []ringAttack{
		{"ring of 6 fresh identities beside 2 honest", 2, sim.Ring{Members: 6, Rate: 0.75, Elements: 4, Factor: 60}, true},
		{"patient ring of 4, lying once trusted, beside 2 honest", 2, sim.Ring{Members: 4, Rate: 0.75, Elements: 4, Factor: 60, After: 15}, true},
		{"patient ring of 4 just under the new floor (0.9 of it, a row each), beside 2 honest", 2, sim.Ring{Members: 4, Rate: 0.75, Elements: 4, UnderFloor: 0.9, After: 15}, false},
	}
}

// benchRings runs each ring attack on shards shards with the real scheduler
// and verifier and prints what it left: wrong results in final outputs,
// honest workers banned, members that cheated and were never caught.
func benchRings(stdout io.Writer, compute func(string, []*tensor.Tensor) ([]*tensor.Tensor, error), k, shards int, seed uint64) error {
	for _, a := range ringAttacks() {
		start := time.Now()
		rep, err := sim.RunFleet(sim.FleetConfig{
			Fleet: sim.RingFleet(a.honest, a.ring, seed), Shards: shards, MatmulK: k,
			Rejoins: 1, Burst: server.BurstEvents, Seed: seed, Compute: compute, Checker: server.NewChecker(2),
		})
		if err != nil {
			fmt.Fprintf(stdout, "ring attack, %s: %v (honest workers banned %d)\n", a.name, err, rep.HonestBanned)
			continue
		}
		verdict := "report only"
		if a.goal {
			verdict = "goal: 0, 0, 0"
			if rep.WrongLeft == 0 && rep.HonestBanned == 0 && rep.Uncaught == 0 {
				verdict += ": met"
			} else {
				verdict += ": MISSED"
			}
		}
		how := fmt.Sprintf("×%g tol", a.ring.Factor)
		if a.ring.UnderFloor > 0 {
			how = fmt.Sprintf("%g of the floor", a.ring.UnderFloor)
		}
		fmt.Fprintf(stdout, "ring attack, %s (%d elements %s on %.0f%% of shards, after %d honest answers): wrong results left %d, honest workers banned %d, members that cheated %d of whom never caught %d (%s); %.3fx replicas/shard, %d corrections, wall %.1fs\n",
			a.name, a.ring.Elements, how, 100*a.ring.Rate, a.ring.After,
			rep.WrongLeft, rep.HonestBanned, rep.Cheaters, rep.Uncaught, verdict,
			float64(rep.Replicas)/float64(rep.Shards), rep.Corrections, time.Since(start).Seconds())
	}
	return nil
}
