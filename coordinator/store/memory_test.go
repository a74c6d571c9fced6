package store_test

import (
	"testing"

	"github.com/neurolov/neurolov/coordinator/store"
	"github.com/neurolov/neurolov/coordinator/store/storetest"
)

func openMemory(testing.TB) store.Store { return store.NewMemory() }

func TestMemory(t *testing.T) { storetest.Run(t, openMemory) }

func BenchmarkMemory(b *testing.B) { storetest.Benchmark(b, openMemory) }
