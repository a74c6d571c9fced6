package server

import (
	"context"

	"github.com/neurolov/neurolov/tensor"
)

// SubmitUnstored plans and submits a job straight to the loop, without the
// store record the HTTP API creates first (its checks are quadratic in the
// number of tensors, too slow for a test that needs 65 536 of them). Its
// status updates fail and are logged.
func SubmitUnstored(s *Server, kernel string, inputs []*tensor.Tensor, replication int) (string, error) {
	shards, plan, err := s.planFor(context.Background(), kernel, inputs)
	if err != nil {
		return "", err
	}
	id := newJobID()
	sub := &submission{id: id, kernel: kernel, inputs: inputs, shards: shards, replication: replication, plan: plan}
	return string(id), s.request(event{kind: evSubmit, job: sub})
}

// Held returns the jobs and the hash-addressed tensors the loop keeps.
func Held(s *Server) (jobs, blobs int, err error) {
	err = s.call(context.Background(), func() { jobs, blobs = len(s.jobs), len(s.blobs) })
	return jobs, blobs, err
}
