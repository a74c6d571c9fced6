//go:build js || (cgo && (darwin || windows || (linux && (amd64 || arm64))))

package gpu

import (
	"math/rand/v2"
	"testing"

	"github.com/neurolov/neurolov/shaders"
)

// BenchmarkMatMul1024 times C = A·B at 1024³ with each variant on the
// device, reporting GFLOP/s. Each iteration submits the product (in bands
// if the device is slow) and waits for it; operands stay on the device.
//
//	go test -run '^$' -bench MatMul1024 ./shaders/gpu/
func BenchmarkMatMul1024(b *testing.B) {
	benchMatMul(b, 1024, 1024, 1024)
}

func benchMatMul(b *testing.B, m, k, n int) {
	d := device(b)
	r := rand.New(rand.NewPCG(1, 2))
	aData := make([]float32, m*k)
	for i := range aData {
		aData[i] = r.Float32() - 0.5
	}
	bData := make([]float32, k*n)
	for i := range bData {
		bData[i] = r.Float32() - 0.5
	}
	ga, gb := up(b, d, aData, m, k), up(b, d, bData, k, n)
	flops := 2 * float64(m) * float64(k) * float64(n)
	b.Logf("adapter %s, chosen variant %s", d.Info().Name, d.Info().Variant)
	for _, v := range Variants {
		if d.fits(v) != nil {
			continue
		}
		b.Run(v.Name(), func(b *testing.B) {
			for b.Loop() {
				c, err := d.MatMulVariant(v.Name(), ga, gb, nil, shaders.MatMulOpts{})
				if err == nil {
					err = d.Sync()
				}
				if err != nil {
					b.Fatal(err)
				}
				c.Release()
			}
			b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}
