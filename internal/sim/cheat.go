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
	rng  *rand.Rand
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
		perturb(kernel, inputs, outputs, last, c.rng.IntN(rows), c.rng.IntN(cols))
	case Bias:
		if c.rng.Float64() >= c.Rate {
			return false
		}
		for i, v := range out.Data {
			out.Data[i] = v + 0.01*float32(math.Abs(float64(v))) + 1e-4
		}
	case Collude:
		h := inputHash(inputs)
		if float64(h%1000)/1000 >= c.Rate {
			return false
		}
		perturb(kernel, inputs, outputs, last, int((h>>10)%uint64(rows)), int((h>>30)%uint64(cols)))
	}
	return true
}

// perturb moves element (i, j) of output out by PerturbFactor tolerances.
func perturb(kernel string, inputs, outputs []*tensor.Tensor, out, i, j int) {
	tol, err := verify.ElementTolerance(kernel, inputs, outputs, out, i, j)
	if err != nil || tol == 0 || math.IsInf(tol, 0) {
		tol = 1e-3
	}
	o := outputs[out]
	o.Data[i*o.Cols()+j] += float32(PerturbFactor * tol)
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
