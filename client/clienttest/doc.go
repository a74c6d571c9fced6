// Package clienttest runs a fake Neurolov coordinator in memory for tests
// of code that uses package client (and of client itself). It implements
// the HTTP API contract (v1) for jobs, workers and the ledger, computes
// results with the kernels' CPU reference, and moves time and progress
// forward only when a job's status is read, so tests are deterministic and
// need no sleeps.
package clienttest
