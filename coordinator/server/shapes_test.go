package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/neurolov/neurolov/tensor"
)

// postTensors submits tensors as a job of kernel straight over HTTP (the SDK
// checks shapes itself, so it would never send these) and returns the
// status and the JSON error.
func postTensors(t *testing.T, c *coordinator, kernel string, ts map[string]*tensor.Tensor) (int, string) {
	t.Helper()
	var body bytes.Buffer
	if err := tensor.WriteSafetensors(&body, ts, nil); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", c.HTTP.URL+"/v1/jobs?kernel="+kernel, &body)
	req.Header.Set("Authorization", "Bearer "+c.Key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e struct{ Error string }
	_ = json.NewDecoder(resp.Body).Decode(&e)
	return resp.StatusCode, e.Error
}

// TestEmptyAndDegenerateShapesAre400: a job with a dimension of 0 anywhere
// (issue 12: A 32768×0 by B 0×32768 was accepted with 201 and its first
// result panicked the coordinator's loop), or whose tensors do not fit
// together, is refused at submission with a 400 naming the tensor at
// fault, and nothing is stored.
func TestEmptyAndDegenerateShapesAre400(t *testing.T) {
	c := startCoordinator(t, nil)
	mlp := func(x, w1, b1, w2, b2 *tensor.Tensor) map[string]*tensor.Tensor {
		return map[string]*tensor.Tensor{"X": x, "W1": w1, "b1": b1, "W2": w2, "b2": b2}
	}
	mm := func(a, b *tensor.Tensor) map[string]*tensor.Tensor { return map[string]*tensor.Tensor{"A": a, "B": b} }
	n := tensor.New
	tests := []struct {
		name, kernel string
		tensors      map[string]*tensor.Tensor
		contains     []string
	}{
		{"matmul inner dimension 0", "matmul", mm(n(32768, 0), n(0, 32768)), []string{"A is 32768×0", "at least 1"}},
		{"matmul no rows", "matmul", mm(n(0, 3), n(3, 2)), []string{"A is 0×3", "at least 1"}},
		{"matmul no columns", "matmul", mm(n(2, 3), n(3, 0)), []string{"B is 3×0", "at least 1"}},
		{"matmul inner mismatch", "matmul", mm(n(2, 3), n(4, 2)), []string{"A is 2×3 but B is 4×2", "3 rows"}},
		{"matmul A of rank 3", "matmul", mm(n(2, 3, 1), n(3, 2)), []string{"A is 2×3×1", "2-D"}},
		{"matmul B a vector", "matmul", mm(n(2, 3), n(3)), []string{"B is 3", "2-D"}},
		{"mlp layer of width 0", "mlp-infer", mlp(n(4, 3), n(3, 0), n(0), n(0, 2), n(2)), []string{"W1 is 3×0", "at least 1"}},
		{"mlp empty batch", "mlp-infer", mlp(n(0, 3), n(3, 5), n(5), n(5, 2), n(2)), []string{"X is 0×3", "at least 1"}},
		{"mlp input width 0", "mlp-infer", mlp(n(4, 0), n(0, 5), n(5), n(5, 2), n(2)), []string{"X is 4×0", "at least 1"}},
		{"mlp bias of the wrong length", "mlp-infer", mlp(n(4, 3), n(3, 5), n(4), n(5, 2), n(2)), []string{"b1 has 4 elements", "5"}},
		{"mlp bias a matrix", "mlp-infer", mlp(n(4, 3), n(3, 5), n(1, 5), n(5, 2), n(2)), []string{"b1 is 1×5", "1-D"}},
		{"mlp layers do not chain", "mlp-infer", mlp(n(4, 3), n(3, 5), n(5), n(6, 2), n(2)), []string{"W2 is 6×2", "5 rows"}},
		{"mlp X a vector", "mlp-infer", mlp(n(3), n(3, 5), n(5), n(5, 2), n(2)), []string{"X is 3", "2-D"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, msg := postTensors(t, c, tc.kernel, tc.tensors)
			if status != http.StatusBadRequest {
				t.Fatalf("got %d %q, want 400", status, msg)
			}
			for _, want := range tc.contains {
				if !strings.Contains(msg, want) {
					t.Fatalf("error %q does not say %q", msg, want)
				}
			}
		})
	}
	jobs, err := c.Store.Jobs(context.Background(), 100)
	if err != nil || len(jobs) != 0 {
		t.Fatalf("stored jobs %v (%v), want none", jobs, err)
	}
}
