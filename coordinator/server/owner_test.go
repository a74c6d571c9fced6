package server_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/neurolov/neurolov/client"
)

// jobIDs returns the IDs of jobs.
func jobIDs(jobs []client.JobStatus) []string {
	ids := make([]string, len(jobs))
	for i, j := range jobs {
		ids[i] = j.ID
	}
	return ids
}

// A job is its submitter's: another key gets 404 for its status, its result
// and its cancellation (as for a job that does not exist), a request without
// a key gets 401, and neither sees it listed.
func TestJobsBelongToTheirOwner(t *testing.T) {
	c := startCoordinator(t, nil)
	ctx := context.Background()
	alice := c.client()
	bob := client.New(c.HTTP.URL, client.WithAPIKey(c.AddKey(t, "bob")))
	anonymous := client.New(c.HTTP.URL)

	// No worker yet: the job waits, and a cancellation by another key
	// must leave it waiting.
	job := submitSmall(t, c, 2)
	for _, cl := range []*client.Client{bob, anonymous} {
		_, _ = cl.Cancel(ctx, job.ID)
	}
	startWorkers(t, c, 2, nil)
	if st, err := alice.Wait(ctx, job.ID, 10*time.Millisecond, nil); err != nil || st.Status != client.StateDone {
		t.Fatalf("alice's job after others tried to cancel it: %+v %v", st, err)
	}

	for _, tc := range []struct {
		who  string
		cl   *client.Client
		want error
	}{{"bob", bob, client.ErrNotFound}, {"anonymous", anonymous, client.ErrUnauthorized}} {
		if st, err := tc.cl.Job(ctx, job.ID); !errors.Is(err, tc.want) {
			t.Errorf("%s: GET /v1/jobs/%s = %+v, %v; want %v", tc.who, job.ID, st, err, tc.want)
		}
		if _, err := tc.cl.Result(ctx, job.ID); !errors.Is(err, tc.want) {
			t.Errorf("%s: GET /v1/jobs/%s/result: %v; want %v", tc.who, job.ID, err, tc.want)
		}
		if st, err := tc.cl.Cancel(ctx, job.ID); !errors.Is(err, tc.want) {
			t.Errorf("%s: DELETE /v1/jobs/%s = %+v, %v; want %v", tc.who, job.ID, st, err, tc.want)
		}
		jobs, err := tc.cl.Jobs(ctx)
		if tc.cl == anonymous {
			if !errors.Is(err, client.ErrUnauthorized) {
				t.Errorf("anonymous: GET /v1/jobs = %v, %v; want 401", jobIDs(jobs), err)
			}
		} else if err != nil || slices.Contains(jobIDs(jobs), job.ID) {
			t.Errorf("%s: GET /v1/jobs = %v, %v; want a list without alice's %s", tc.who, jobIDs(jobs), err, job.ID)
		}
	}
	// The owner still reads everything.
	if _, err := alice.Result(ctx, job.ID); err != nil {
		t.Errorf("alice's result: %v", err)
	}
	if jobs, err := alice.Jobs(ctx); err != nil || !slices.Contains(jobIDs(jobs), job.ID) {
		t.Errorf("alice's list = %v, %v; want it to hold %s", jobIDs(jobs), err, job.ID)
	}
	// An admin key reads, lists and cancels every job.
	admin := client.New(c.HTTP.URL, client.WithAPIKey(c.AddAdminKey(t, "root")))
	if _, err := admin.Result(ctx, job.ID); err != nil {
		t.Errorf("admin reading alice's result: %v", err)
	}
	if jobs, err := admin.Jobs(ctx); err != nil || !slices.Contains(jobIDs(jobs), job.ID) {
		t.Errorf("admin's list = %v, %v; want it to hold %s", jobIDs(jobs), err, job.ID)
	}
	if jobs, err := bob.Jobs(ctx); err != nil || len(jobs) != 0 {
		t.Errorf("bob's list = %v, %v; want none", jobIDs(jobs), err)
	}
	waiting := submitSmall(t, c, 3) // 3 replicas: two workers never finish it
	if st, err := admin.Cancel(ctx, waiting.ID); err != nil {
		t.Errorf("admin cancelling alice's job: %+v, %v", st, err)
	}
	if st, err := alice.Wait(ctx, waiting.ID, 10*time.Millisecond, nil); !errors.Is(err, client.ErrJobCancelled) {
		t.Errorf("alice's job after the admin cancelled it: %+v, %v", st, err)
	}
	// The network's figures stay public.
	for _, path := range []string{"/v1/workers", "/v1/ledger", "/metrics"} {
		resp, err := http.Get(c.HTTP.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("anonymous GET %s = %d, want 200", path, resp.StatusCode)
		}
	}
}
