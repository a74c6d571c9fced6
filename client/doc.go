// Package client is the Go SDK for a Neurolov coordinator's HTTP API (v1):
// submit matrix products and MLP inference, follow a job while volunteers'
// browsers and GPUs compute it, and download the verified result.
//
//	c := client.New("http://localhost:8080", client.WithAPIKey(key))
//	job, err := c.SubmitMatmul(ctx, a, b, client.SubmitOptions{Name: "try"})
//	if err != nil {
//		return err
//	}
//	job, err = c.Wait(ctx, job.ID, time.Second, func(s client.JobStatus) {
//		fmt.Printf("%.0f%%\n", 100*s.Progress)
//	})
//	if err != nil {
//		return err // errors.Is(err, client.ErrJobFailed) carries the reason
//	}
//	out, err := c.Result(ctx, job.ID) // out["C"] is a·b
//
// Jobs travel as safetensors files (F32), streamed while they are encoded.
// The tensors are named as the API says: "A" and "B" for matmul; "X",
// "W1", "b1", "W2", "b2", … for mlp-infer. NamedInputs and KernelInputs
// convert between those names and the kernels' argument order.
//
// Every non-2xx answer is an *APIError carrying the server's message;
// errors.Is matches it against ErrUnauthorized (401), ErrNotFound (404) and
// ErrNotReady (409, a result asked for too early).
//
// The sub-package submitcli is the `neurolov submit` command, and
// clienttest is a fake coordinator for tests of code that uses this SDK.
package client
