package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Sentinel errors. An *APIError matches the first three with errors.Is by
// its HTTP status; Wait returns the last two wrapped with the job's id.
var (
	// ErrNotFound matches a 404 response: the job (or route) does not exist.
	ErrNotFound = errors.New("client: not found")
	// ErrUnauthorized matches a 401 response: the API key is missing or wrong.
	ErrUnauthorized = errors.New("client: unauthorized (check the API key)")
	// ErrNotReady matches a 409 response: the job's result is not available
	// (still running, or the job failed; the APIError's message says which).
	ErrNotReady = errors.New("client: result not ready")
	// ErrJobFailed is returned by Wait when the job ends in the failed state.
	ErrJobFailed = errors.New("client: job failed")
	// ErrJobCancelled is returned by Wait when the job was cancelled.
	ErrJobCancelled = errors.New("client: job cancelled")
	// ErrInput reports tensors that cannot be submitted (nil, or shapes that
	// do not fit the kernel); nothing was sent.
	ErrInput = errors.New("client: bad job inputs")
)

// maxErrorBody bounds how much of an error response is read.
const maxErrorBody = 64 << 10

// APIError is a non-2xx response from the coordinator.
type APIError struct {
	// Status is the HTTP status code.
	Status int
	// Message is the server's "error" field, or the start of the body when
	// it was not the JSON error form.
	Message string
}

// Error implements error.
func (e *APIError) Error() string {
	return fmt.Sprintf("coordinator answered %d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
}

// Is reports whether target is the sentinel for e's status, so that
// errors.Is(err, ErrNotFound) holds for a 404.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrUnauthorized:
		return e.Status == http.StatusUnauthorized
	case ErrNotReady:
		return e.Status == http.StatusConflict
	}
	return false
}

// readAPIError turns a non-2xx response into an *APIError. It reads at most
// maxErrorBody bytes of the body and does not close it.
func readAPIError(resp *http.Response) *APIError {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	e := &APIError{Status: resp.StatusCode}
	var j struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &j) == nil && j.Error != "" {
		e.Message = j.Error
	} else if s := strings.TrimSpace(string(body)); s != "" {
		e.Message = s
	} else {
		e.Message = http.StatusText(resp.StatusCode)
	}
	return e
}
