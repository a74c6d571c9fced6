package submitcli_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/neurolov/neurolov/client"
	"github.com/neurolov/neurolov/client/clienttest"
	"github.com/neurolov/neurolov/client/submitcli"
	"github.com/neurolov/neurolov/shaders"
	"github.com/neurolov/neurolov/tensor"
)

const key = "k-123"

// run starts a fake coordinator and runs the command against it with a key
// file, returning the fake and the command's outputs.
func run(t *testing.T, cfg clienttest.Config, args ...string) (*clienttest.Server, string, string, error) {
	t.Helper()
	cfg.Key = key
	srv := clienttest.NewServer(cfg)
	t.Cleanup(srv.Close)
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args = append([]string{"-coordinator", srv.URL, "-key-file", keyFile, "-poll", "1ms"}, args...)
	var stdout, stderr bytes.Buffer
	err := submitcli.RunSubmit(context.Background(), args, &stdout, &stderr)
	return srv, stdout.String(), stderr.String(), err
}

func readFile(t *testing.T, path string) (map[string]*tensor.Tensor, map[string]string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ts, meta, err := tensor.ReadSafetensors(f, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	return ts, meta
}

func sameData(t *testing.T, what string, got, want *tensor.Tensor) {
	t.Helper()
	if got == nil || !tensor.SameShape(got, want) {
		t.Fatalf("%s = %v, want shape %v", what, got, want.Shape)
	}
	for i := range want.Data {
		if got.Data[i] != want.Data[i] {
			t.Fatalf("%s[%d] = %v, want %v", what, i, got.Data[i], want.Data[i])
		}
	}
}

func TestRandomMatmul(t *testing.T) {
	out := filepath.Join(t.TempDir(), "c.safetensors")
	srv, stdout, stderr, err := run(t, clienttest.Config{Shards: 4}, "-random", "4,3,2", "-seed", "7", "-replication", "2", "-name", "cli", "-out", out)
	if err != nil {
		t.Fatalf("RunSubmit: %v\nstderr:\n%s", err, stderr)
	}
	// 4 status reads of 0.5 s on the fake clock; 2·4·3·2 = 48 FLOPs.
	want := "job j-0001 done: 4 shards, 8 replicas, 0 corrections, 2s elapsed, 2.4e-08 GFLOP/s\n"
	if stdout != want {
		t.Errorf("stdout = %q, want %q", stdout, want)
	}
	for _, s := range []string{"submitted matmul job j-0001: 4 shards", "4/4", "wrote " + out + " (C 4×2)"} {
		if !strings.Contains(stderr, s) {
			t.Errorf("stderr lacks %q:\n%s", s, stderr)
		}
	}

	inputs, err := submitcli.Random(shaders.Matmul, []int{4, 3, 2}, 7)
	if err != nil {
		t.Fatal(err)
	}
	sent := srv.Inputs("j-0001")
	sameData(t, "A", sent["A"], inputs[0])
	sameData(t, "B", sent["B"], inputs[1])
	ref, err := shaders.Reference(shaders.Matmul, inputs)
	if err != nil {
		t.Fatal(err)
	}
	got, meta := readFile(t, out)
	sameData(t, "C", got["C"], ref[0])
	if meta["job"] != "j-0001" || meta["kernel"] != "matmul" {
		t.Errorf("metadata = %v", meta)
	}
	r := srv.Requests()[0]
	if r.Header.Get("Authorization") != "Bearer "+key || r.RawQuery != "kernel=matmul&name=cli&replication=2" {
		t.Errorf("submit request: %q %q", r.Header.Get("Authorization"), r.RawQuery)
	}
}

func TestInFileMLP(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.safetensors")
	inputs, err := submitcli.Random(shaders.MLPInfer, []int{3, 5, 4, 2}, 1)
	if err != nil {
		t.Fatal(err)
	}
	named, err := client.NamedInputs(shaders.MLPInfer, inputs)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(in)
	if err != nil {
		t.Fatal(err)
	}
	if err := tensor.WriteSafetensors(f, named, nil); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "z.safetensors")
	_, stdout, stderr, err := run(t, clienttest.Config{Shards: 2, Step: 2}, "-kernel", "mlp-infer", "-in", in, "-out", out, "-quiet")
	if err != nil {
		t.Fatalf("RunSubmit: %v\nstderr:\n%s", err, stderr)
	}
	if !strings.HasPrefix(stdout, "job j-0001 done: 2 shards, 2 replicas, 0 corrections, 500ms elapsed, ") {
		t.Errorf("stdout = %q", stdout)
	}
	if strings.Contains(stderr, "2/2") {
		t.Errorf("-quiet still drew a bar:\n%s", stderr)
	}
	ref, err := shaders.Reference(shaders.MLPInfer, inputs)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := readFile(t, out)
	sameData(t, "Z1", got["Z1"], ref[0])
	sameData(t, "Z2", got["Z2"], ref[1])
}

func TestFailedJob(t *testing.T) {
	const reason = "every replica of shard 2 disagreed"
	out := filepath.Join(t.TempDir(), "c.safetensors")
	_, stdout, _, err := run(t, clienttest.Config{FailReason: reason}, "-random", "2,2,2", "-out", out)
	if !errors.Is(err, client.ErrJobFailed) || !strings.Contains(err.Error(), reason) {
		t.Errorf("err = %v, want ErrJobFailed with the reason", err)
	}
	if stdout != "" {
		t.Errorf("stdout = %q, want nothing", stdout)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("-out file exists after a failed job: %v", err)
	}
}

func TestWrongKey(t *testing.T) {
	srv := clienttest.NewServer(clienttest.Config{Key: key})
	defer srv.Close()
	err := submitcli.RunSubmit(context.Background(), []string{"-coordinator", srv.URL, "-key", "nope", "-random", "1,1,1"}, new(bytes.Buffer), new(bytes.Buffer))
	if !errors.Is(err, client.ErrUnauthorized) {
		t.Errorf("err = %v, want ErrUnauthorized", err)
	}
}

func TestUsage(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte(key), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want error
		msg  string
	}{
		{"no input", []string{}, submitcli.ErrUsage, "exactly one of -in and -random"},
		{"both inputs", []string{"-in", "x", "-random", "1,1,1"}, submitcli.ErrUsage, "exactly one"},
		{"both keys", []string{"-random", "1,1,1", "-key", "a", "-key-file", keyFile}, submitcli.ErrUsage, "not both"},
		{"bad size", []string{"-random", "4,x,2"}, submitcli.ErrUsage, `"x" is not a positive size`},
		{"zero size", []string{"-random", "4,0,2"}, submitcli.ErrUsage, "positive"},
		{"matmul wants 3 sizes", []string{"-random", "4,2"}, submitcli.ErrUsage, "m,k,n"},
		{"mlp wants 3 or more", []string{"-kernel", "mlp-infer", "-random", "4,2"}, submitcli.ErrUsage, "b,d0,d1"},
		{"random of unknown kernel", []string{"-kernel", "conv", "-random", "4,2,2"}, submitcli.ErrUsage, "not \"conv\""},
		{"stray argument", []string{"-random", "1,1,1", "extra"}, submitcli.ErrUsage, "unexpected"},
		{"unknown flag", []string{"-colour"}, submitcli.ErrUsage, "colour"},
		{"help", []string{"-h"}, flag.ErrHelp, "help"},
		{"missing key file", []string{"-random", "1,1,1", "-key-file", filepath.Join(t.TempDir(), "none")}, os.ErrNotExist, "API key"},
		{"missing input", []string{"-in", filepath.Join(t.TempDir(), "none")}, os.ErrNotExist, "none"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			// No coordinator listens here: every case must fail before a request.
			args := append([]string{"-coordinator", "http://127.0.0.1:1"}, tt.args...)
			err := submitcli.RunSubmit(context.Background(), args, &stdout, &stderr)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("err = %v, want %v containing %q", err, tt.want, tt.msg)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout = %q", stdout.String())
			}
		})
	}
}

func TestSummary(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		s    client.JobStatus
		wall time.Duration
		want string
	}{
		{"coordinator times", client.JobStatus{ID: "j-1", Status: client.StateDone, Shards: 64, Replicas: 70, Corrections: 2,
			FLOPs: 2 * 1024 * 1024 * 1024, CreatedAt: t0, FinishedAt: t0.Add(1500 * time.Millisecond)}, time.Hour,
			"job j-1 done: 64 shards, 70 replicas, 2 corrections, 1.5s elapsed, 1.43 GFLOP/s"},
		{"wall time without finish", client.JobStatus{ID: "j-2", Status: client.StateDone, Shards: 1, Replicas: 1, FLOPs: 4e9, CreatedAt: t0},
			2 * time.Second, "job j-2 done: 1 shards, 1 replicas, 0 corrections, 2s elapsed, 2 GFLOP/s"},
		{"no time at all", client.JobStatus{ID: "j-3", Status: client.StateDone}, 0,
			"job j-3 done: 0 shards, 0 replicas, 0 corrections, 0s elapsed, n/a GFLOP/s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := submitcli.Summary(tt.s, tt.wall); got != tt.want {
				t.Errorf("Summary = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRandomIsSeeded(t *testing.T) {
	a, _ := submitcli.Random(shaders.MLPInfer, []int{2, 3, 4, 5}, 9)
	b, _ := submitcli.Random(shaders.MLPInfer, []int{2, 3, 4, 5}, 9)
	c, _ := submitcli.Random(shaders.MLPInfer, []int{2, 3, 4, 5}, 10)
	if len(a) != 5 {
		t.Fatalf("%d tensors, want X and 2 layers", len(a))
	}
	shapes := [][]int{{2, 3}, {3, 4}, {4}, {4, 5}, {5}}
	for i := range a {
		if !slices.Equal(a[i].Shape, shapes[i]) {
			t.Errorf("tensor %d shape %v, want %v", i, a[i].Shape, shapes[i])
		}
		sameData(t, "same seed", b[i], a[i])
	}
	if a[0].Data[0] == c[0].Data[0] && a[0].Data[1] == c[0].Data[1] {
		t.Error("seeds 9 and 10 gave the same X")
	}
}
