package simdgemm

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/neurolov/neurolov/shaders"
	"github.com/neurolov/neurolov/tensor"
)

func TestBackendParityFake(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	b := New(newFake(1000, 1), Options{})
	for _, s := range matmulShapes {
		in := matmulInputs(rng, s[0], s[1], s[2])
		outs, err := b.Run(context.Background(), shaders.Matmul, in)
		if err != nil {
			t.Fatalf("matmul %v: %v", s, err)
		}
		t.Run(fmt.Sprintf("matmul%v", s), func(t *testing.T) { checkParity(t, shaders.Matmul, in, outs) })
	}
	for _, s := range emptyMatmulShapes {
		if _, err := b.Run(context.Background(), shaders.Matmul, matmulInputs(rng, s[0], s[1], s[2])); !errors.Is(err, shaders.ErrInputs) {
			t.Errorf("matmul %v: %v, want shaders.ErrInputs", s, err)
		}
	}
	for _, d := range mlpShapes[:4] {
		in := mlpInputs(rng, d)
		outs, err := b.Run(context.Background(), shaders.MLPInfer, in)
		if err != nil {
			t.Fatalf("mlp-infer %v: %v", d, err)
		}
		t.Run(fmt.Sprintf("mlp%v", d), func(t *testing.T) { checkParity(t, shaders.MLPInfer, in, outs) })
	}
	if b.heap.inUse() != uint32(b.cache.bytes) {
		t.Fatalf("after the runs %d bytes are allocated but the cache holds %d: a scratch block leaked", b.heap.inUse(), b.cache.bytes)
	}
}

func TestBackendRejectsBadInputs(t *testing.T) {
	b := New(newFake(64, 1), Options{})
	_, err := b.Run(context.Background(), shaders.Matmul, []*tensor.Tensor{tensor.New(2, 3), tensor.New(4, 5)})
	if !errors.Is(err, shaders.ErrInputs) {
		t.Fatalf("mismatched shapes: err %v, want shaders.ErrInputs", err)
	}
	_, err = b.Run(context.Background(), "conv", nil)
	if !errors.Is(err, shaders.ErrUnknownKernel) {
		t.Fatalf("unknown kernel: err %v, want shaders.ErrUnknownKernel", err)
	}
}

func TestBackendWeightCache(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	f := newFake(64, 1)
	b := New(f, Options{})
	in := mlpInputs(rng, []int{9, 20, 12, 3}) // 2 layers: 4 prepared tensors
	ctx := context.Background()
	if _, err := b.Run(ctx, shaders.MLPInfer, in); err != nil {
		t.Fatal(err)
	}
	if hits, misses, _ := b.CacheStats(); hits != 0 || misses != 4 || f.packs != 2 {
		t.Fatalf("first run: %d hits, %d misses, %d packs; want 0, 4, 2", hits, misses, f.packs)
	}
	// The same tensor objects (as the worker's cache hands them out): hits
	// without packing again.
	in[0] = randTensor(rng, 1, 9, 20)
	if _, err := b.Run(ctx, shaders.MLPInfer, in); err != nil {
		t.Fatal(err)
	}
	if hits, _, _ := b.CacheStats(); hits != 4 || f.packs != 2 {
		t.Fatalf("second run: %d hits, %d packs; want 4, 2", hits, f.packs)
	}
	// Equal content in new objects (weights sent inline again): found by
	// content hash.
	copyIn := []*tensor.Tensor{in[0]}
	for _, w := range in[1:] {
		copyIn = append(copyIn, w.Clone())
	}
	if _, err := b.Run(ctx, shaders.MLPInfer, copyIn); err != nil {
		t.Fatal(err)
	}
	if hits, misses, _ := b.CacheStats(); hits != 8 || misses != 4 || f.packs != 2 {
		t.Fatalf("cloned weights: %d hits, %d misses, %d packs; want 8, 4, 2", hits, misses, f.packs)
	}
	// A tensor whose data was replaced is hashed again, not trusted by
	// identity.
	w := in[1]
	w.Data = randTensor(rng, 1, 20, 12).Data
	outs, err := b.Run(ctx, shaders.MLPInfer, in)
	if err != nil {
		t.Fatal(err)
	}
	if f.packs != 3 {
		t.Fatalf("replaced data: %d packs, want 3", f.packs)
	}
	checkParity(t, shaders.MLPInfer, in, outs)
}

func TestBackendCacheBound(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	b := New(newFake(64, 1), Options{CacheBytes: 10 << 10})
	ctx := context.Background()
	for range 5 {
		// Each shard's weights (16 KiB packed) exceed the bound alone: a
		// running shard's weights stay pinned, and are evicted after it.
		in := matmulInputs(rng, 3, 64, 64)
		outs, err := b.Run(ctx, shaders.Matmul, in)
		if err != nil {
			t.Fatal(err)
		}
		checkParity(t, shaders.Matmul, in, outs)
		if _, _, bytes := b.CacheStats(); bytes > 10<<10 {
			t.Fatalf("cache holds %d bytes after a run, bound 10 KiB", bytes)
		}
	}
}

func TestBackendMemory(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	ctx := context.Background()
	t.Run("grows", func(t *testing.T) {
		f := newFake(64, 1)
		b := New(f, Options{})
		in := matmulInputs(rng, 100, 300, 200) // ~440 KiB of blocks
		outs, err := b.Run(ctx, shaders.Matmul, in)
		if err != nil {
			t.Fatal(err)
		}
		checkParity(t, shaders.Matmul, in, outs)
		if f.grows == 0 {
			t.Fatal("the memory never grew")
		}
	})
	t.Run("evicts when the engine refuses to grow", func(t *testing.T) {
		f := newFake(64, 16)
		f.maxPages = 16 // 1 MiB, never more
		b := New(f, Options{})
		for range 4 { // each shard's weights: 400 KiB; two do not fit beside a third
			in := matmulInputs(rng, 10, 400, 256)
			outs, err := b.Run(ctx, shaders.Matmul, in)
			if err != nil {
				t.Fatal(err)
			}
			checkParity(t, shaders.Matmul, in, outs)
		}
	})
	t.Run("too large", func(t *testing.T) {
		f := newFake(64, 1)
		b := New(f, Options{MaxBytes: 1 << 20})
		_, err := b.Run(ctx, shaders.Matmul, matmulInputs(rng, 600, 600, 8))
		if !errors.Is(err, ErrMemory) {
			t.Fatalf("err %v, want ErrMemory", err)
		}
		if b.heap.inUse() != uint32(b.cache.bytes) {
			t.Fatal("a failed run leaked its blocks")
		}
	})
}

// TestKernelGFLOPS checks the kernel-only timing: it issues the staged
// shard's gemm calls (two warm-ups, then one set per run), copies nothing
// back, leaks no scratch block, and leaves Run's results unchanged.
func TestKernelGFLOPS(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	f := newFake(64, 1)
	b := New(f, Options{})
	in := mlpInputs(rng, []int{9, 20, 12, 3}) // 2 layers: 2 gemm calls per computation
	ctx := context.Background()
	median, each, err := b.KernelGFLOPS(ctx, shaders.MLPInfer, in, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(each) != 3 || median <= 0 {
		t.Fatalf("median %v, runs %v: want 3 positive runs", median, each)
	}
	if f.gemms != 2*(2+3) {
		t.Fatalf("%d gemm calls, want %d (2 warm-ups and 3 runs of 2 layers)", f.gemms, 2*(2+3))
	}
	if b.heap.inUse() != uint32(b.cache.bytes) {
		t.Fatalf("%d bytes allocated but the cache holds %d: a scratch block leaked", b.heap.inUse(), b.cache.bytes)
	}
	outs, err := b.Run(ctx, shaders.MLPInfer, in)
	if err != nil {
		t.Fatal(err)
	}
	checkParity(t, shaders.MLPInfer, in, outs)
	if _, _, err := b.KernelGFLOPS(ctx, "conv", nil, 1); !errors.Is(err, shaders.ErrUnknownKernel) {
		t.Fatalf("unknown kernel: err %v, want shaders.ErrUnknownKernel", err)
	}
}
