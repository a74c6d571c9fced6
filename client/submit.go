package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/neurolov/neurolov/shaders"
	"github.com/neurolov/neurolov/tensor"
)

// Tensor names of the HTTP API. An mlp-infer job also carries "W1", "b1",
// "W2", "b2"… and its result "Z1".."ZL" (see LayerNames and OutputName).
const (
	NameA = "A" // matmul's left operand, m×k
	NameB = "B" // matmul's right operand, k×n
	NameC = "C" // matmul's result, m×n
	NameX = "X" // mlp-infer's input batch, b×d0
)

// LayerNames returns the names of the weight and bias of MLP layer l
// (counted from 1): "W<l>" and "b<l>".
func LayerNames(l int) (w, b string) {
	return "W" + strconv.Itoa(l), "b" + strconv.Itoa(l)
}

// OutputName returns the name of output i (counted from 0) of kernel's
// result: "C" for matmul, "Z<i+1>" for mlp-infer (the pre-activations of
// layer i+1; the last are the logits).
func OutputName(kernel string, i int) string {
	if kernel == shaders.Matmul {
		return NameC
	}
	return "Z" + strconv.Itoa(i+1)
}

// NamedInputs names the inputs of a known kernel as the API expects them:
// matmul's [A, B] become "A", "B"; mlp-infer's [X, W1, b1, W2, b2, …]
// become "X", "W1", "b1", …. It checks the shapes fit the kernel.
func NamedInputs(kernel string, inputs []*tensor.Tensor) (map[string]*tensor.Tensor, error) {
	if err := checkInputs(kernel, inputs); err != nil {
		return nil, err
	}
	named := make(map[string]*tensor.Tensor, len(inputs))
	switch kernel {
	case shaders.Matmul:
		named[NameA], named[NameB] = inputs[0], inputs[1]
	case shaders.MLPInfer:
		named[NameX] = inputs[0]
		for l := 1; 2*l < len(inputs); l++ {
			w, b := LayerNames(l)
			named[w], named[b] = inputs[2*l-1], inputs[2*l]
		}
	}
	return named, nil
}

// KernelInputs is the inverse of NamedInputs: it puts named tensors in the
// order the kernel takes them and checks that no name is missing or extra
// and that the shapes fit.
func KernelInputs(kernel string, named map[string]*tensor.Tensor) ([]*tensor.Tensor, error) {
	var order []string
	switch kernel {
	case shaders.Matmul:
		order = []string{NameA, NameB}
	case shaders.MLPInfer:
		order = []string{NameX}
		for l := 1; ; l++ {
			w, b := LayerNames(l)
			if named[w] == nil && named[b] == nil {
				break
			}
			order = append(order, w, b)
		}
	default:
		return nil, fmt.Errorf("%w: %w: %q", ErrInput, shaders.ErrUnknownKernel, kernel)
	}
	inputs := make([]*tensor.Tensor, len(order))
	for i, name := range order {
		t, ok := named[name]
		if !ok || t == nil {
			return nil, fmt.Errorf("%w: %s needs a tensor named %q", ErrInput, kernel, name)
		}
		inputs[i] = t
	}
	if len(named) != len(order) {
		for name := range named {
			if !contains(order, name) {
				return nil, fmt.Errorf("%w: %s takes no tensor named %q (it takes %v)", ErrInput, kernel, name, order)
			}
		}
	}
	if err := checkInputs(kernel, inputs); err != nil {
		return nil, err
	}
	return inputs, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// checkInputs reports nil tensors, tensors whose data does not match their
// shape, and shapes that do not fit kernel.
func checkInputs(kernel string, inputs []*tensor.Tensor) error {
	for i, t := range inputs {
		if err := checkTensor(t); err != nil {
			return fmt.Errorf("%w: input %d: %w", ErrInput, i, err)
		}
	}
	if _, err := shaders.OutputShapes(kernel, inputs); err != nil {
		return fmt.Errorf("%w: %w", ErrInput, err)
	}
	return nil
}

// checkTensor reports a nil tensor or one whose data length disagrees with
// its shape.
func checkTensor(t *tensor.Tensor) error {
	if t == nil {
		return errors.New("nil tensor")
	}
	if n := tensor.NumElements(t.Shape); n < 0 || n != len(t.Data) {
		return fmt.Errorf("%w: shape %v, %d elements of data", tensor.ErrShape, t.Shape, len(t.Data))
	}
	return nil
}

// SubmitMatmul submits the product C = A·B of an m×k matrix a and a k×n
// matrix b.
func (c *Client) SubmitMatmul(ctx context.Context, a, b *tensor.Tensor, opts SubmitOptions) (JobStatus, error) {
	named, err := NamedInputs(shaders.Matmul, []*tensor.Tensor{a, b})
	if err != nil {
		return JobStatus{}, err
	}
	return c.Submit(ctx, shaders.Matmul, named, opts)
}

// SubmitMLP submits the inference of an MLP on the batch x (b×d0): layer l
// computes Z_l = ReLU(Z_{l-1})·W_l + B_l (no ReLU on x). The result holds
// every Z_l; the last are the logits.
func (c *Client) SubmitMLP(ctx context.Context, x *tensor.Tensor, layers []Layer, opts SubmitOptions) (JobStatus, error) {
	inputs := make([]*tensor.Tensor, 0, 1+2*len(layers))
	inputs = append(inputs, x)
	for _, l := range layers {
		inputs = append(inputs, l.W, l.B)
	}
	named, err := NamedInputs(shaders.MLPInfer, inputs)
	if err != nil {
		return JobStatus{}, err
	}
	return c.Submit(ctx, shaders.MLPInfer, named, opts)
}

// errUploadDone unblocks the body writer once the response has come.
var errUploadDone = errors.New("client: upload ended")

// Submit uploads named tensors as a job for kernel and returns the job's
// first status. The body is a safetensors file written while it is sent,
// so a large job is never held twice in memory. Tensors of the kernels this
// SDK knows are checked before anything is sent (errors match ErrInput);
// other kernel names are passed through for the coordinator to judge.
func (c *Client) Submit(ctx context.Context, kernel string, named map[string]*tensor.Tensor, opts SubmitOptions) (JobStatus, error) {
	if kernel == "" {
		return JobStatus{}, fmt.Errorf("%w: no kernel named", ErrInput)
	}
	if opts.Replication < 0 || opts.Replication > MaxReplication {
		return JobStatus{}, fmt.Errorf("%w: replication %d: give 1 to %d replicas per shard, or 0 for adaptive", ErrInput, opts.Replication, MaxReplication)
	}
	if len(named) == 0 {
		return JobStatus{}, fmt.Errorf("%w: no tensors", ErrInput)
	}
	for name, t := range named {
		if err := checkTensor(t); err != nil {
			return JobStatus{}, fmt.Errorf("%w: tensor %q: %w", ErrInput, name, err)
		}
	}
	if shaders.Known(kernel) {
		if _, err := KernelInputs(kernel, named); err != nil {
			return JobStatus{}, err
		}
	}
	q := url.Values{"kernel": {kernel}}
	if opts.Replication > 0 {
		q.Set("replication", strconv.Itoa(opts.Replication))
	}
	if opts.Name != "" {
		q.Set("name", opts.Name)
	}

	pr, pw := io.Pipe()
	written := make(chan error, 1)
	go func() {
		err := tensor.WriteSafetensors(pw, named, nil)
		pw.CloseWithError(err)
		written <- err
	}()
	var s JobStatus
	err := c.doJSON(ctx, request{method: http.MethodPost, path: "/v1/jobs", query: q, body: pr}, &s)
	pr.CloseWithError(errUploadDone)
	werr := <-written
	if err != nil {
		if werr != nil && !errors.Is(werr, io.ErrClosedPipe) && !errors.Is(werr, errUploadDone) {
			return JobStatus{}, fmt.Errorf("client: encoding the job: %w", werr)
		}
		return JobStatus{}, err
	}
	return s, nil
}
