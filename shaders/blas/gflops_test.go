package blas

import (
	"testing"
	"time"
)

func TestGFLOPS(t *testing.T) {
	tests := []struct {
		flops float64
		d     time.Duration
		want  float64
	}{
		{2e9, time.Second, 2},
		{2 * 1024 * 1024 * 1024, 10 * time.Millisecond, 214.7483648},
		{1e9, 0, 0},
		{1e9, -time.Second, 0},
	}
	for _, tt := range tests {
		if got := GFLOPS(tt.flops, tt.d); got < tt.want*(1-1e-12) || got > tt.want*(1+1e-12) {
			t.Errorf("GFLOPS(%g, %v) = %g, want %g", tt.flops, tt.d, got, tt.want)
		}
	}
}
