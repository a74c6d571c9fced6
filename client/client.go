package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/neurolov/neurolov/tensor"
)

// DefaultUserAgent is the User-Agent header sent unless WithUserAgent says
// otherwise.
const DefaultUserAgent = "neurolov-go-client/1"

// DefaultMaxResultBytes bounds the size of a downloaded result unless
// WithMaxResultBytes says otherwise.
const DefaultMaxResultBytes int64 = 2 << 30

// DefaultPoll is the interval Wait uses when given a non-positive one.
const DefaultPoll = 500 * time.Millisecond

// maxJSONBody bounds a JSON response (job lists grow with the number of jobs).
const maxJSONBody = 32 << 20

// Client talks to one coordinator's HTTP API. It is safe for concurrent use.
type Client struct {
	base      string
	key       string
	hc        *http.Client
	userAgent string
	maxResult int64
}

// Option configures a Client.
type Option func(*Client)

// WithAPIKey sets the API key sent as "Authorization: Bearer <key>".
// Every job call needs it (submit, status, list, result, cancel): a job
// belongs to the key that submitted it, and another key is answered as if
// the job did not exist (ErrNotFound). An admin key reaches every job.
// Workers and Ledger, the network's public figures, need no key.
func WithAPIKey(key string) Option { return func(c *Client) { c.key = key } }

// WithHTTPClient sets the *http.Client used for every request (timeouts,
// transport, proxies). The default is http.DefaultClient. Do not set an
// overall Timeout shorter than your largest upload: use the context instead.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) {
		if hc != nil {
			c.hc = hc
		}
	}
}

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option { return func(c *Client) { c.userAgent = ua } }

// WithMaxResultBytes bounds the size of a result Result will read.
func WithMaxResultBytes(n int64) Option {
	return func(c *Client) {
		if n > 0 {
			c.maxResult = n
		}
	}
}

// New returns a client for the coordinator at baseURL (for example
// "http://localhost:8080"). A malformed URL is reported by the first call.
func New(baseURL string, opts ...Option) *Client {
	c := &Client{
		base:      strings.TrimRight(baseURL, "/"),
		hc:        http.DefaultClient,
		userAgent: DefaultUserAgent,
		maxResult: DefaultMaxResultBytes,
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// BaseURL returns the coordinator's URL as given to New, without a trailing
// slash.
func (c *Client) BaseURL() string { return c.base }

// request is one HTTP call.
type request struct {
	method string
	path   string // already escaped
	query  url.Values
	body   io.Reader
	accept string
}

// do sends r and returns the response when its status is 2xx; otherwise it
// closes the body and returns an *APIError.
func (c *Client) do(ctx context.Context, r request) (*http.Response, error) {
	u := c.base + r.path
	if len(r.query) > 0 {
		u += "?" + r.query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u, r.body)
	if err != nil {
		return nil, fmt.Errorf("client: %s %s: %w", r.method, r.path, err)
	}
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	if c.userAgent != "" {
		req.Header.Set("User-Agent", c.userAgent)
	}
	if r.accept != "" {
		req.Header.Set("Accept", r.accept)
	}
	if r.body != nil {
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("client: %s %s: %w", r.method, r.path, err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		return nil, fmt.Errorf("client: %s %s: %w", r.method, r.path, readAPIError(resp))
	}
	return resp, nil
}

// doJSON sends r and decodes a 2xx JSON response into out.
func (c *Client) doJSON(ctx context.Context, r request, out any) error {
	r.accept = "application/json"
	resp, err := c.do(ctx, r)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxJSONBody)).Decode(out); err != nil {
		return fmt.Errorf("client: %s %s: decoding response: %w", r.method, r.path, err)
	}
	return nil
}

// jobPath returns the escaped path of job id, with an optional suffix.
func jobPath(id, suffix string) string {
	return "/v1/jobs/" + url.PathEscape(id) + suffix
}

// Job returns the status of job id. An unknown id, or a job submitted with
// another key, gives an error matching ErrNotFound.
func (c *Client) Job(ctx context.Context, id string) (JobStatus, error) {
	var s JobStatus
	err := c.doJSON(ctx, request{method: http.MethodGet, path: jobPath(id, "")}, &s)
	return s, err
}

// Jobs lists the jobs submitted with the client's key (every job, for an
// admin key), newest first.
func (c *Client) Jobs(ctx context.Context) ([]JobStatus, error) {
	var out struct {
		Jobs []JobStatus `json:"jobs"`
	}
	err := c.doJSON(ctx, request{method: http.MethodGet, path: "/v1/jobs"}, &out)
	return out.Jobs, err
}

// Cancel cancels job id (it needs the API key) and returns its status.
func (c *Client) Cancel(ctx context.Context, id string) (JobStatus, error) {
	var s JobStatus
	err := c.doJSON(ctx, request{method: http.MethodDelete, path: jobPath(id, "")}, &s)
	return s, err
}

// Workers lists the connected workers.
func (c *Client) Workers(ctx context.Context) ([]WorkerStatus, error) {
	var out struct {
		Workers []WorkerStatus `json:"workers"`
	}
	err := c.doJSON(ctx, request{method: http.MethodGet, path: "/v1/workers"}, &out)
	return out.Workers, err
}

// Ledger returns the verified work credited to each worker.
func (c *Client) Ledger(ctx context.Context) ([]LedgerEntry, error) {
	var out struct {
		Entries []LedgerEntry `json:"entries"`
	}
	err := c.doJSON(ctx, request{method: http.MethodGet, path: "/v1/ledger"}, &out)
	return out.Entries, err
}

// Result downloads the output tensors of a finished job: "C" for matmul,
// "Z1".."ZL" for mlp-infer (the last are the logits). A job that is not
// done gives an error matching ErrNotReady whose message says why; an
// unknown id one matching ErrNotFound.
func (c *Client) Result(ctx context.Context, id string) (map[string]*tensor.Tensor, error) {
	path := jobPath(id, "/result")
	resp, err := c.do(ctx, request{method: http.MethodGet, path: path, accept: "application/octet-stream"})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	ts, _, err := tensor.ReadSafetensors(resp.Body, c.maxResult)
	if err != nil {
		return nil, fmt.Errorf("client: GET %s: decoding result: %w", path, err)
	}
	return ts, nil
}

// Wait polls job id every poll (DefaultPoll when poll ≤ 0) until it is
// done, failed or cancelled, calling progress (when not nil) with every
// status it reads, the last one included. It returns the final status; for
// a failed job also an error wrapping ErrJobFailed with the server's
// reason, for a cancelled one an error wrapping ErrJobCancelled. It returns
// early with ctx's error, or with the error of a status request.
func (c *Client) Wait(ctx context.Context, id string, poll time.Duration, progress func(JobStatus)) (JobStatus, error) {
	if poll <= 0 {
		poll = DefaultPoll
	}
	var t *time.Timer
	for {
		s, err := c.Job(ctx, id)
		if err != nil {
			return s, err
		}
		if progress != nil {
			progress(s)
		}
		switch s.Status {
		case StateDone:
			return s, nil
		case StateFailed:
			reason := s.Error
			if reason == "" {
				reason = "the coordinator gave no reason"
			}
			return s, fmt.Errorf("%w: job %s: %s", ErrJobFailed, id, reason)
		case StateCancelled:
			return s, fmt.Errorf("%w: job %s", ErrJobCancelled, id)
		}
		if t == nil {
			t = time.NewTimer(poll)
			defer t.Stop()
		} else {
			t.Reset(poll)
		}
		select {
		case <-ctx.Done():
			return s, fmt.Errorf("client: waiting for job %s: %w", id, ctx.Err())
		case <-t.C:
		}
	}
}
