package sim

import (
	"crypto/sha256"
	"encoding/binary"
	"math"
	"math/rand/v2"

	"github.com/neurolov/neurolov/coordinator/verify"
	"github.com/neurolov/neurolov/tensor"
)

// Kind is a cheating behaviour.
type Kind int

// The behaviours.
const (
	// Honest never cheats.
	Honest Kind = iota
	// Perturb moves one output element by PerturbFactor times its
	// tolerance: below Freivalds' floor, so only replicas, spot checks and
	// canaries catch it.
	Perturb
	// Bias adds 1% of |x| to every output element: a systematic error
	// Freivalds' check catches at once.
	Bias
	// Collude returns the group's shared wrong answer: the element and the
	// decision to cheat are derived from the shard's inputs, so every
	// colluder given the same shard returns the same wrong result.
	Collude
)

// PerturbFactor is how many tolerances Perturb and Collude move an element.
const PerturbFactor = 10

// String names the behaviour.
func (k Kind) String() string {
	return [...]string{"honest", "perturb", "bias", "collude"}[k]
}

// Cheater decides, shard by shard, whether and how to cheat.
type Cheater struct {
	Kind Kind
	// Rate is the fraction of shards it cheats on.
	Rate float64
	// Elements is how many elements of a tile Perturb and Collude move
	// (default 1), each by Factor tolerances (default PerturbFactor).
	Elements int
	Factor   float64
	// UnderFloor, when above 0, moves each element instead by that
	// fraction of its row's FreivaldsFloor (the smallest single-element
	// error always caught), each in a row of its own: the strongest
	// pattern a single result's self-check may let through.
	UnderFloor float64
	// After is how many shards it answers honestly before it starts to
	// cheat: a patient cheater earns trust first.
	After int
	// Decoys, when above 0, makes a Collude cheater lie on matmul shards
	// only and move that many other rows of each tile it lies on, every
	// element by 0.9 of its worst-case bound, all one sign: rows over the
	// probabilistic bound that spend the verifier's recompute budget, so
	// that the wrong ones may be left to the worst-case bound (a Doubtful
	// result).
	Decoys   int
	answered int
	rng      *rand.Rand
}

// NewCheater returns a cheater of kind cheating on a fraction rate of its
// shards, drawing its choices from seed.
func NewCheater(kind Kind, rate float64, seed uint64) *Cheater {
	return &Cheater{Kind: kind, Rate: rate, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// Tamper applies the behaviour to outputs in place and reports whether it
// cheated.
func (c *Cheater) Tamper(kernel string, inputs, outputs []*tensor.Tensor) bool {
	if c == nil || c.Kind == Honest || len(outputs) == 0 {
		return false
	}
	if c.answered++; c.answered <= c.After {
		return false
	}
	last := len(outputs) - 1
	out := outputs[last]
	rows, cols := out.Rows(), out.Cols()
	if rows == 0 || cols == 0 {
		return false
	}
	switch c.Kind {
	case Perturb:
		if c.rng.Float64() >= c.Rate {
			return false
		}
		c.perturb(kernel, inputs, outputs, last, c.rng)
	case Bias:
		if c.rng.Float64() >= c.Rate {
			return false
		}
		for i, v := range out.Data {
			out.Data[i] = v + 0.01*float32(math.Abs(float64(v))) + 1e-4
		}
	case Collude:
		if c.Decoys > 0 && kernel != "matmul" {
			return false // decoys hide a lie from Freivalds' check of a product only
		}
		h := inputHash(inputs)
		if float64(h%1000)/1000 >= c.Rate {
			return false
		}
		// The elements too come from the inputs, so that every member
		// given the shard returns the same wrong answer.
		moved := c.perturb(kernel, inputs, outputs, last, rand.New(rand.NewPCG(h, h>>17)))
		c.decoy(kernel, inputs, outputs, last, moved)
	}
	return true
}

// decoy moves c.Decoys rows of output out that perturb left alone (moved
// holds the rows it changed), every element by 0.9 of its worst-case
// bound.
func (c *Cheater) decoy(kernel string, inputs, outputs []*tensor.Tensor, out int, moved map[int]bool) {
	o := outputs[out]
	rows, cols := o.Rows(), o.Cols()
	for i, d := 0, 0; i < rows && d < c.Decoys; i++ {
		if moved[i] {
			continue
		}
		d++
		for j := range cols {
			if eb, err := verify.ElementBound(kernel, inputs, outputs, out, i, j); err == nil {
				o.Data[i*cols+j] += float32(0.9 * eb)
			}
		}
	}
}

// perturb moves c.Elements distinct elements of output out, drawn from
// pick, by c.Factor tolerances each, and returns the rows it moved.
func (c *Cheater) perturb(kernel string, inputs, outputs []*tensor.Tensor, out int, pick *rand.Rand) map[int]bool {
	o := outputs[out]
	rows, cols := o.Rows(), o.Cols()
	factor := c.Factor
	if factor == 0 {
		factor = PerturbFactor
	}
	n := min(max(c.Elements, 1), rows*cols)
	if c.UnderFloor > 0 {
		n = min(n, rows) // a row each
	}
	moved := make(map[int]bool, n)
	movedRows := make(map[int]bool, n)
	for len(moved) < n {
		i, j := pick.IntN(rows), pick.IntN(cols)
		if moved[i*cols+j] || (c.UnderFloor > 0 && movedRows[i]) {
			continue
		}
		moved[i*cols+j], movedRows[i] = true, true
		o.Data[i*cols+j] += float32(c.shift(kernel, inputs, outputs, out, i, j, factor))
	}
	return movedRows
}

// shift is how far c moves element (i, j) of output out: factor
// tolerances, or c.UnderFloor of its row's Freivalds floor.
func (c *Cheater) shift(kernel string, inputs, outputs []*tensor.Tensor, out, i, j int, factor float64) float64 {
	if c.UnderFloor > 0 {
		if floor, err := verify.FreivaldsFloor(kernel, inputs, outputs, out, i); err == nil && floor > 0 && !math.IsInf(floor, 0) {
			return c.UnderFloor * floor
		}
	}
	tol, err := verify.ElementTolerance(kernel, inputs, outputs, out, i, j)
	if err != nil || tol == 0 || math.IsInf(tol, 0) {
		tol = 1e-3
	}
	return factor * tol
}

// inputHash is a cheap fingerprint of a shard's inputs (shapes and a sample
// of values), the same for every colluder.
func inputHash(inputs []*tensor.Tensor) uint64 {
	h := sha256.New()
	var b [8]byte
	for _, t := range inputs {
		for _, d := range t.Shape {
			binary.LittleEndian.PutUint64(b[:], uint64(d))
			h.Write(b[:])
		}
		step := max(1, len(t.Data)/64)
		for i := 0; i < len(t.Data); i += step {
			binary.LittleEndian.PutUint32(b[:4], math.Float32bits(t.Data[i]))
			h.Write(b[:4])
		}
	}
	return binary.LittleEndian.Uint64(h.Sum(nil))
}

// Mix assigns behaviours to a fleet of n workers the way the adversarial
// tests and bench verify do: a fraction cheaters of them cheat (split in
// thirds: Perturb, Bias, Collude), each on a fraction rate of its shards.
func Mix(n int, cheaters, rate float64, seed uint64) []*Cheater {
	fleet := make([]*Cheater, n)
	nc := int(math.Round(float64(n) * cheaters))
	for i := range fleet {
		kind := Honest
		if i < nc {
			kind = Kind(1 + i%3)
		}
		fleet[i] = NewCheater(kind, rate, seed+uint64(i)*7919)
	}
	r := rand.New(rand.NewPCG(seed, 1))
	r.Shuffle(len(fleet), func(a, b int) { fleet[a], fleet[b] = fleet[b], fleet[a] })
	return fleet
}

// Ring describes a Sybil ring: identities that collude on the same wrong
// answers (Collude), each moving Elements elements of a tile by Factor
// tolerances (or UnderFloor of the floor) on a fraction Rate of the
// shards, after After honest answers each (a patient ring turns once
// trusted).
type Ring struct {
	Members  int
	Rate     float64
	Elements int
	Factor   float64
	// UnderFloor, when above 0, replaces Factor: each element moves by
	// that fraction of its row's Freivalds floor (Cheater.UnderFloor).
	UnderFloor float64
	After      int
	// Decoys: see Cheater.Decoys.
	Decoys int
}

// RingFleet returns a fleet of honest workers and the members of ring,
// shuffled by seed.
func RingFleet(honest int, ring Ring, seed uint64) []*Cheater {
	fleet := make([]*Cheater, 0, honest+ring.Members)
	for i := range honest {
		fleet = append(fleet, NewCheater(Honest, 0, seed+uint64(i)*7919))
	}
	for i := range ring.Members {
		c := NewCheater(Collude, ring.Rate, seed+uint64(honest+i)*7919)
		c.Elements, c.Factor, c.UnderFloor, c.After, c.Decoys = ring.Elements, ring.Factor, ring.UnderFloor, ring.After, ring.Decoys
		fleet = append(fleet, c)
	}
	r := rand.New(rand.NewPCG(seed, 2))
	r.Shuffle(len(fleet), func(a, b int) { fleet[a], fleet[b] = fleet[b], fleet[a] })
	return fleet
}
