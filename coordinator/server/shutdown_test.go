package server_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/neurolov/neurolov/client"
)

// TestRequestsAfterShutdownFail: once the loop has stopped, submissions,
// cancellations and joins are answered at once (503, GoingAway) rather than
// queued for a loop that will never read them.
func TestRequestsAfterShutdownFail(t *testing.T) {
	c := startCoordinator(t, nil)
	job := submitSmall(t, c, 1) // no workers: it stays queued
	c.Stop()
	cl := c.client()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rng := rand.New(rand.NewPCG(7, 7))
	a, b := randomTensor(rng, 4, 4), randomTensor(rng, 4, 4)
	want503 := func(what string, err error) {
		t.Helper()
		var apiErr *client.APIError
		if !errors.As(err, &apiErr) || apiErr.Status != http.StatusServiceUnavailable {
			t.Fatalf("%s after shutdown: %v, want a 503", what, err)
		}
	}
	// The loop's event queue has room, so a request that raced the closed
	// loop into it would wait forever: try often enough to lose that race.
	for range 20 {
		_, err := cl.SubmitMatmul(ctx, a, b, client.SubmitOptions{})
		want503("submit", err)
		_, err = cl.Cancel(ctx, job.ID)
		want503("cancel", err)
	}
	for range 10 {
		raw := dialRaw(t, c)
		if code, reason := raw.closeStatus(); code != websocket.StatusGoingAway {
			t.Fatalf("join after shutdown: close %v %q, want GoingAway", code, reason)
		}
	}
}

// TestCallWithEndedContext: a call whose context has ended returns its
// error without leaving work for the loop to do behind its back (it used to
// return while the loop could still write the caller's variables: a data
// race under -race, and planOf's wrong plan).
func TestCallWithEndedContext(t *testing.T) {
	c := startCoordinator(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for range 200 {
		if _, _, err := c.srv.Stats(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("Stats with an ended context: %v", err)
		}
	}
	if _, _, err := c.srv.Stats(context.Background()); err != nil { // the loop has run anything queued
		t.Fatal(err)
	}
}
