package client_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/neurolov/neurolov/client"
	"github.com/neurolov/neurolov/client/clienttest"
	"github.com/neurolov/neurolov/tensor"
)

// Submit a matrix product, follow it to the end and read the result. The
// coordinator here is the in-memory fake from clienttest; a real one takes
// its URL from `neurolov serve`.
func Example() {
	srv := clienttest.NewServer(clienttest.Config{Key: "secret", Shards: 2})
	defer srv.Close()
	c := client.New(srv.URL, client.WithAPIKey("secret"))
	ctx := context.Background()

	a, _ := tensor.FromData([]float32{1, 2, 3, 4, 5, 6}, 2, 3)
	b, _ := tensor.FromData([]float32{1, 0, 0, 1, 1, 1}, 3, 2)
	job, err := c.SubmitMatmul(ctx, a, b, client.SubmitOptions{Name: "hello"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("submitted", job.ID, job.Status)

	job, err = c.Wait(ctx, job.ID, 10*time.Millisecond, func(s client.JobStatus) {
		fmt.Printf("%s: %d/%d shards verified\n", s.Status, s.Verified, s.Shards)
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	out, err := c.Result(ctx, job.ID)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("C", out["C"].Shape, out["C"].Data)
	// Output:
	// submitted j-0001 queued
	// running: 1/2 shards verified
	// done: 2/2 shards verified
	// C [2 2] [4 5 10 11]
}

// An MLP's result holds every layer's pre-activations; the last are the
// logits.
func ExampleClient_SubmitMLP() {
	srv := clienttest.NewServer(clienttest.Config{Key: "secret", Step: 4})
	defer srv.Close()
	c := client.New(srv.URL, client.WithAPIKey("secret"))
	ctx := context.Background()

	x, _ := tensor.FromData([]float32{1, -1}, 1, 2)
	w1, _ := tensor.FromData([]float32{1, 0, 0, 1}, 2, 2)
	b1, _ := tensor.FromData([]float32{0, 0}, 2)
	w2, _ := tensor.FromData([]float32{2, 3}, 2, 1)
	b2, _ := tensor.FromData([]float32{0.5}, 1)
	job, err := c.SubmitMLP(ctx, x, []client.Layer{{W: w1, B: b1}, {W: w2, B: b2}}, client.SubmitOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	if _, err := c.Wait(ctx, job.ID, 10*time.Millisecond, nil); err != nil {
		fmt.Println(err)
		return
	}
	out, err := c.Result(ctx, job.ID)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("Z1", out["Z1"].Data) // x·W1 + b1
	fmt.Println("Z2", out["Z2"].Data) // ReLU(Z1)·W2 + b2
	// Output:
	// Z1 [1 -1]
	// Z2 [2.5]
}

// Errors from the coordinator match the package's sentinels.
func ExampleAPIError() {
	srv := clienttest.NewServer(clienttest.Config{Key: "secret"})
	defer srv.Close()
	ctx := context.Background()

	_, err := client.New(srv.URL, client.WithAPIKey("secret")).Job(ctx, "j-missing")
	fmt.Println(errors.Is(err, client.ErrNotFound))

	a, _ := tensor.FromData([]float32{1}, 1, 1)
	_, err = client.New(srv.URL, client.WithAPIKey("wrong")).SubmitMatmul(ctx, a, a, client.SubmitOptions{})
	fmt.Println(errors.Is(err, client.ErrUnauthorized))
	var apiErr *client.APIError
	if errors.As(err, &apiErr) {
		fmt.Println(apiErr.Status, apiErr.Message)
	}
	// Output:
	// true
	// true
	// 401 missing or wrong API key: send "Authorization: Bearer <key>"
}
