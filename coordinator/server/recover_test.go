package server_test

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/neurolov/neurolov/client"
	"github.com/neurolov/neurolov/coordinator/scheduler"
	"github.com/neurolov/neurolov/coordinator/server"
	"github.com/neurolov/neurolov/shaders"
	"github.com/neurolov/neurolov/tensor"
)

// poisoned picks the job the tests make panic: its A has 7 columns (and so
// has every shard's A).
func poisoned(_ string, inputs []*tensor.Tensor) bool { return inputs[0].Cols() == 7 }

// TestPanicFailsOnlyItsJob: a panic in verification, planning or assembly
// (injected for one job) fails that job loudly — its status failed, its
// submission or its result request a 500, with a reason saying an internal
// error happened, and an Error log with the stack — blames no worker, and
// the coordinator goes on: another job, submitted after it, completes with
// the right result.
func TestPanicFailsOnlyItsJob(t *testing.T) {
	for _, stage := range []string{"check", "plan", "assemble"} {
		t.Run(stage, func(t *testing.T) {
			logs := &syncBuffer{}
			c := startCoordinator(t, func(cfg *server.Config) {
				cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
			})
			server.InjectPanic(c.srv, stage, poisoned)
			startWorkers(t, c, 2, nil)
			ctx := context.Background()
			cl := c.client()
			waitFor(t, "two workers", func() bool {
				ws, err := cl.Workers(ctx)
				return err == nil && len(ws) == 2
			})
			rng := rand.New(rand.NewPCG(5, 6))
			bad, err := cl.SubmitMatmul(ctx, randomTensor(rng, 16, 7), randomTensor(rng, 7, 16), client.SubmitOptions{})
			if stage == "plan" {
				wantInternal(t, "submitting the poisoned job", err)
			} else if err != nil {
				t.Fatal(err)
			}
			a, b := randomTensor(rng, 16, 5), randomTensor(rng, 5, 16)
			good, err := cl.SubmitMatmul(ctx, a, b, client.SubmitOptions{})
			if err != nil {
				t.Fatal(err)
			}
			switch stage {
			case "check":
				st, err := cl.Wait(ctx, bad.ID, 5*time.Millisecond, nil)
				if !errors.Is(err, client.ErrJobFailed) || !strings.Contains(st.Error, "internal error") {
					t.Fatalf("poisoned job: %+v, %v; want failed with an internal error", st, err)
				}
			case "assemble":
				if _, err := cl.Wait(ctx, bad.ID, 5*time.Millisecond, nil); err != nil {
					t.Fatal(err)
				}
				_, err := cl.Result(ctx, bad.ID)
				wantInternal(t, "reading the poisoned job's result", err)
				// Its status stays done (terminal, in every store) and
				// says what happened; its verified results stay stored.
				st, err := cl.Job(ctx, bad.ID)
				if err != nil || st.Status != client.StateDone || !strings.Contains(st.Error, "internal error") {
					t.Fatalf("poisoned job after its result failed: %+v, %v; want done with an internal error", st, err)
				}
				_, err = cl.Result(ctx, bad.ID)
				wantInternal(t, "reading the poisoned job's result again", err)
			}
			if _, err := cl.Wait(ctx, good.ID, 5*time.Millisecond, nil); err != nil {
				t.Fatalf("the other job: %v", err)
			}
			res, err := cl.Result(ctx, good.ID)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := shaders.Reference(shaders.Matmul, []*tensor.Tensor{a, b})
			for i, v := range want[0].Data {
				if d := res["C"].Data[i] - v; d > 1e-4 || d < -1e-4 {
					t.Fatalf("the other job's C[%d] = %v, want %v", i, res["C"].Data[i], v)
				}
			}
			if st, _, err := c.srv.Stats(ctx); err != nil || st.Caught != 0 {
				t.Fatalf("caught %d addresses (%v): a coordinator bug is no worker's fault", st.Caught, err)
			}
			log := logs.String()
			if !strings.Contains(log, "level=ERROR") || !strings.Contains(log, "injected fault in "+stage) || !strings.Contains(log, "goroutine ") {
				t.Fatalf("no Error log with the panic and its stack:\n%s", log)
			}
		})
	}
}

// wantInternal fails unless err is the API's 500 for an internal error.
func wantInternal(t *testing.T, what string, err error) {
	t.Helper()
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusInternalServerError || !strings.Contains(apiErr.Message, "internal error") {
		t.Fatalf("%s: %v, want a 500 saying an internal error happened", what, err)
	}
}

// TestCheckerTurnsAPanicIntoUnverifiable: a panic while checking one
// result, alone or in a batch, is that result's Unverifiable verdict (its
// job fails, its worker is not blamed); the other results of the batch get
// their real verdicts, and the checker goes on working.
func TestCheckerTurnsAPanicIntoUnverifiable(t *testing.T) {
	c := server.NewPanickingChecker(2, poisoned).(scheduler.BatchChecker)
	rng := rand.New(rand.NewPCG(1, 2))
	task := func(k int) (*scheduler.Task, []*tensor.Tensor) {
		in := []*tensor.Tensor{randomTensor(rng, 3, k), randomTensor(rng, k, 4)}
		out, _ := shaders.Reference(shaders.Matmul, in)
		return &scheduler.Task{Kernel: shaders.Matmul, Inputs: in}, out
	}
	good, goodOut := task(5)
	bad, badOut := task(7)
	if v, why := c.Check(bad, badOut, rng); v != scheduler.Unverifiable || !strings.Contains(why, "internal error") {
		t.Fatalf("panicking check: %v (%s), want unverifiable, an internal error", v, why)
	}
	res := c.CheckAll([]*scheduler.Task{good, bad, good}, [][]*tensor.Tensor{goodOut, badOut, goodOut}, rng)
	want := []scheduler.Verdict{scheduler.Valid, scheduler.Unverifiable, scheduler.Valid}
	for i, r := range res {
		if r.Verdict != want[i] {
			t.Fatalf("batch verdict %d: %v (%s), want %v", i, r.Verdict, r.Reason, want[i])
		}
	}
	if !strings.Contains(res[1].Reason, "internal error") {
		t.Fatalf("batch reason %q does not say an internal error happened", res[1].Reason)
	}
	if v, why := c.Check(good, goodOut, rng); v != scheduler.Valid {
		t.Fatalf("check after a panic: %v (%s)", v, why)
	}
}

// TestPanicInTheLoopStopsTheProcess: outside the guarded stages nothing
// recovers — a panic while the loop carries out the scheduler's actions
// (here from Config.Observe, at the first Assign) stops the process, so
// that a half-applied transition is never served. It runs this test
// binary again as the coordinator's process and expects it to die of the
// panic (exit status 2).
func TestPanicInTheLoopStopsTheProcess(t *testing.T) {
	if os.Getenv("NEUROLOV_PANIC_CHILD") == "1" {
		c := startCoordinator(t, func(cfg *server.Config) {
			cfg.Observe = func(a scheduler.Action) {
				if a.Kind == scheduler.Assign {
					panic("injected fault in the loop")
				}
			}
		})
		startWorkers(t, c, 1, nil)
		rng := rand.New(rand.NewPCG(7, 8))
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		job, err := c.client().SubmitMatmul(ctx, randomTensor(rng, 4, 3), randomTensor(rng, 3, 4), client.SubmitOptions{Replication: 1})
		if err != nil {
			t.Fatal(err)
		}
		st, err := c.client().Wait(ctx, job.ID, 5*time.Millisecond, nil)
		t.Fatalf("the coordinator lived on after a panic in its loop: %+v, %v", st, err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestPanicInTheLoopStopsTheProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), "NEUROLOV_PANIC_CHILD=1")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(string(out), "panic: injected fault in the loop") {
		t.Fatalf("child: %v, want it killed by the panic (exit status 2)\n%s", err, out)
	}
}
