// Package storetest is the contract suite of coordinator/store: every Store
// implementation runs the same tests and benchmarks, so that the memory
// store, and the durable stores that follow it, cannot drift apart.
//
// An implementation's test file calls Run with a function that opens a new,
// empty store:
//
//	func TestMemory(t *testing.T) {
//		storetest.Run(t, func(testing.TB) store.Store { return store.NewMemory() })
//	}
//
// Run checks, one fresh store per subtest: round trips of records and
// tensors (bit for bit, NaN and -0 included; times to the nanosecond),
// ErrNotFound, ErrExists, ErrInvalid and ErrFinished where the contract
// names them, the order of Jobs and of one owner's JobsOwnedBy (a job's
// Owner is required and fixed), the fields UpdateJob may not change,
// UpdateJob and PutShardResult under concurrent callers (no lost updates),
// the verified/corrections counting of PutShardResult, the ledger's
// arithmetic (credit, settle, forfeit, balanced books under concurrency),
// API keys and their admin role, isolation (writing to anything passed in or returned never
// changes the store), cancelled contexts and calls after Close.
//
// Benchmark measures Credit, PutShardResult, Job and the moving of a
// 64 MiB job's inputs.
package storetest
