//go:build js || (cgo && (darwin || windows || (linux && (amd64 || arm64))))

package gpu

import (
	"fmt"
	"sort"
	"time"

	"github.com/neurolov/neurolov/shaders"
	"github.com/neurolov/neurolov/tensor"
)

// Tuning: the matmul variant is chosen by measurement. Each candidate that
// fits the device's limits runs a square product, first at 256 (one warm-up
// run, which also compiles it, then repeats until 20 ms or 8 runs, keeping
// the fastest); while the fastest takes under 3 ms the size doubles, up to
// 2048, so that fast GPUs are measured on work that fills them.
const (
	tuneStart   = 256
	tuneMax     = 2048
	tuneMinTime = 3 * time.Millisecond
	tuneSpend   = 20 * time.Millisecond
	tuneReps    = 8
)

// chooseVariant sets the variant: forced, cached (memory, then file) or
// measured.
func (d *Device) chooseVariant() error {
	if d.opts.Variant != "" {
		v, ok := VariantByName(d.opts.Variant)
		if !ok {
			return fmt.Errorf("%w: unknown matmul variant %q", ErrShape, d.opts.Variant)
		}
		if err := d.fits(v); err != nil {
			return err
		}
		d.setVariant(v, tuneEntry{Variant: v.Name()}, "forced")
		return nil
	}
	key := tuneKey(d.info)
	if e, ok := memTune(key); ok {
		d.setVariant(mustVariant(e.Variant), e, "memory")
		return nil
	}
	path := tunePath(d.opts.TuneCache)
	if e, ok := fileTune(path, key); ok {
		if v := mustVariant(e.Variant); d.fits(v) == nil {
			setMemTune(key, e)
			d.setVariant(v, e, "file")
			return nil
		}
	}
	results, err := d.measure()
	if err != nil {
		return err
	}
	e := tuneEntry{Variant: results[0].Variant, GFLOPS: results[0].GFLOPS, Tuning: results, Measured: time.Now().UTC()}
	setMemTune(key, e)
	// A cache file that cannot be written only costs a new measurement
	// next time.
	_ = saveTune(path, key, e)
	d.setVariant(mustVariant(e.Variant), e, "measured")
	return nil
}

func mustVariant(name string) Variant {
	v, ok := VariantByName(name)
	if !ok {
		panic("gpu: cached variant " + name + " is not a candidate") // callers check names first
	}
	return v
}

func (d *Device) setVariant(v Variant, e tuneEntry, from string) {
	d.variant = v
	for _, r := range e.Tuning {
		d.rates[r.Variant] = r.GFLOPS
	}
	if e.GFLOPS > 0 {
		d.rates[v.Name()] = e.GFLOPS
	}
	d.info.Variant = v.Name()
	d.info.VariantGFLOPS = e.GFLOPS
	d.info.TunedFrom = from
	if from == "measured" {
		d.info.Tuning = e.Tuning
	}
}

// measure times every candidate that fits and returns them fastest first.
func (d *Device) measure() ([]VariantResult, error) {
	var cands []Variant
	for _, v := range Variants {
		if d.fits(v) == nil {
			cands = append(cands, v)
		}
	}
	var results []VariantResult
	var lastErr error
	for size := tuneStart; ; size *= 2 {
		results = results[:0]
		best := time.Duration(1<<63 - 1)
		for _, v := range cands {
			dt, err := d.timeVariant(v, size)
			if err != nil {
				lastErr = err
				if d.Err() != nil {
					return nil, err
				}
				continue
			}
			best = min(best, dt)
			results = append(results, VariantResult{Variant: v.Name(), GFLOPS: 2 * float64(size) * float64(size) * float64(size) / dt.Seconds() / 1e9})
		}
		if len(results) == 0 {
			return nil, fmt.Errorf("%w: no matmul variant runs on this device: %v", ErrGPU, lastErr)
		}
		if best >= tuneMinTime || size >= tuneMax {
			break
		}
	}
	sort.SliceStable(results, func(i, j int) bool { return results[i].GFLOPS > results[j].GFLOPS })
	return results, nil
}

// timeVariant returns the fastest of a few runs of a size³ product.
func (d *Device) timeVariant(v Variant, size int) (time.Duration, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	src := tensor.New(size, size)
	for i := range src.Data {
		src.Data[i] = float32(i%7) * 0.25
	}
	a, err := d.upload(src)
	if err != nil {
		return 0, err
	}
	defer d.releaseLocked(a)
	c, err := d.alloc(size, size)
	if err != nil {
		return 0, err
	}
	defer d.releaseLocked(c)
	// One dispatch per submission while measuring (the problems are small
	// enough for any device); the rates learnt meanwhile are discarded.
	saved := d.rates[v.Name()]
	defer func() { d.rates[v.Name()] = saved }()
	run := func() (time.Duration, error) {
		d.rates[v.Name()] = 1e9
		start := time.Now()
		if err := d.matmulInto(v, c, a, a, nil, size, size, size, shaders.MatMulOpts{}); err != nil {
			return 0, err
		}
		if err := d.flush(); err != nil {
			return 0, err
		}
		return time.Since(start), nil
	}
	if _, err := run(); err != nil { // compile and warm up
		return 0, err
	}
	best := time.Duration(1<<63 - 1)
	var spent time.Duration
	for i := 0; i < tuneReps && (i < 2 || spent < tuneSpend); i++ {
		dt, err := run()
		if err != nil {
			return 0, err
		}
		best, spent = min(best, dt), spent+dt
	}
	return best, nil
}
