package submitcli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/neurolov/neurolov/client"
	"github.com/neurolov/neurolov/shaders"
	"github.com/neurolov/neurolov/tensor"
)

// ErrUsage reports flags that do not make a valid command; the message says
// which and the usage has been printed to stderr.
var ErrUsage = errors.New("submit: usage")

// DefaultCoordinator is the coordinator used when -coordinator is not given.
const DefaultCoordinator = "http://localhost:8080"

// maxInputBytes bounds an -in file.
const maxInputBytes int64 = 2 << 30

// options are the parsed flags.
type options struct {
	coordinator string
	key         string
	kernel      string
	replication int
	name        string
	in, out     string
	random      []int
	seed        uint64
	poll        time.Duration
	quiet       bool
}

// RunSubmit runs `neurolov submit` with args (the flags, without the
// command name), writing the summary line to stdout and the progress bar
// and notes to stderr. -h gives flag.ErrHelp; bad flags an error matching
// ErrUsage; a failed job one matching client.ErrJobFailed.
func RunSubmit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parse(args, stderr)
	if err != nil {
		return err
	}
	named, err := inputs(o)
	if err != nil {
		return err
	}
	c := client.New(o.coordinator, client.WithAPIKey(o.key), client.WithUserAgent("neurolov-submit/1"))

	start := time.Now()
	job, err := c.Submit(ctx, o.kernel, named, client.SubmitOptions{Replication: o.replication, Name: o.name})
	if err != nil {
		return fmt.Errorf("submit: %w", err)
	}
	fmt.Fprintf(stderr, "submitted %s job %s: %d shards\n", job.Kernel, job.ID, job.Shards)

	bar := newBar(job, stderr, o.quiet)
	job, err = c.Wait(ctx, job.ID, o.poll, bar.update)
	bar.end(err == nil)
	if err != nil {
		return fmt.Errorf("submit: %w", err)
	}

	result, err := c.Result(ctx, job.ID)
	if err != nil {
		return fmt.Errorf("submit: downloading the result of %s: %w", job.ID, err)
	}
	if o.out != "" {
		if err := writeFile(o.out, result, map[string]string{"job": job.ID, "kernel": job.Kernel}); err != nil {
			return fmt.Errorf("submit: %w", err)
		}
		fmt.Fprintf(stderr, "wrote %s (%s)\n", o.out, describe(result))
	}
	fmt.Fprintln(stdout, Summary(job, time.Since(start)))
	return nil
}

// Summary is the line printed for a finished job. The elapsed time is the
// coordinator's (created to finished) when it reports both, else wall.
func Summary(s client.JobStatus, wall time.Duration) string {
	elapsed := wall
	if !s.FinishedAt.IsZero() && s.FinishedAt.After(s.CreatedAt) {
		elapsed = s.Elapsed(time.Time{})
	}
	rate := "n/a"
	if elapsed > 0 {
		rate = fmt.Sprintf("%.3g", s.FLOPs/elapsed.Seconds()/1e9)
	}
	return fmt.Sprintf("job %s %s: %d shards, %d replicas, %d corrections, %s elapsed, %s GFLOP/s",
		s.ID, s.Status, s.Shards, s.Replicas, s.Corrections, elapsed.Round(time.Millisecond), rate)
}

func parse(args []string, stderr io.Writer) (options, error) {
	var o options
	var keyFile, random string
	fs := flag.NewFlagSet("submit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.coordinator, "coordinator", DefaultCoordinator, "coordinator base `URL`")
	fs.StringVar(&o.key, "key", "", "API `key` (prefer -key-file: a key on the command line shows in ps)")
	fs.StringVar(&keyFile, "key-file", "", "read the API key from `file`")
	fs.StringVar(&o.kernel, "kernel", shaders.Matmul, "kernel: matmul or mlp-infer")
	fs.IntVar(&o.replication, "replication", 0, fmt.Sprintf("replicas per shard: 1 to %d forced, 0 adaptive (from the workers' reputation)", client.MaxReplication))
	fs.StringVar(&o.name, "name", "", "label shown in job listings")
	fs.StringVar(&o.in, "in", "", "job inputs as a safetensors `file` (matmul: A, B; mlp-infer: X, W1, b1, …)")
	fs.StringVar(&o.out, "out", "", "write the result to this safetensors `file`")
	fs.StringVar(&random, "random", "", "random inputs instead of -in: `m,k,n` for matmul, b,d0,d1,…,dL for mlp-infer")
	fs.Uint64Var(&o.seed, "seed", 1, "seed for -random")
	fs.DurationVar(&o.poll, "poll", 500*time.Millisecond, "how often to ask for progress")
	fs.BoolVar(&o.quiet, "quiet", false, "no progress bar")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, err
		}
		return o, fmt.Errorf("%w: %w", ErrUsage, err)
	}
	usage := func(format string, a ...any) error {
		err := fmt.Errorf("%w: %s", ErrUsage, fmt.Sprintf(format, a...))
		fmt.Fprintln(stderr, err)
		fs.Usage()
		return err
	}
	if fs.NArg() > 0 {
		return o, usage("unexpected arguments %q", fs.Args())
	}
	if (o.in == "") == (random == "") {
		return o, usage("give exactly one of -in and -random")
	}
	if o.key != "" && keyFile != "" {
		return o, usage("give -key or -key-file, not both")
	}
	if keyFile != "" {
		b, err := os.ReadFile(keyFile)
		if err != nil {
			return o, fmt.Errorf("submit: reading the API key: %w", err)
		}
		o.key = strings.TrimSpace(string(b))
	}
	if random != "" {
		dims, err := parseDims(random)
		if err != nil {
			return o, usage("-random %q: %v", random, err)
		}
		o.random = dims
	}
	return o, nil
}

func parseDims(s string) ([]int, error) {
	parts := strings.Split(s, ",")
	dims := make([]int, len(parts))
	for i, p := range parts {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%q is not a positive size", p)
		}
		dims[i] = n
	}
	return dims, nil
}

// inputs returns the job's named tensors, read from -in or made by -random.
func inputs(o options) (map[string]*tensor.Tensor, error) {
	if o.in != "" {
		f, err := os.Open(o.in)
		if err != nil {
			return nil, fmt.Errorf("submit: %w", err)
		}
		defer f.Close()
		named, _, err := tensor.ReadSafetensors(f, maxInputBytes)
		if err != nil {
			return nil, fmt.Errorf("submit: reading %s: %w", o.in, err)
		}
		return named, nil
	}
	ts, err := Random(o.kernel, o.random, o.seed)
	if err != nil {
		return nil, err
	}
	return client.NamedInputs(o.kernel, ts)
}

// Random makes inputs for kernel with uniform random values: dims m,k,n
// give matmul's A (m×k) and B (k×n); b,d0,d1,…,dL give mlp-infer's X
// (b×d0) and L layers, weights scaled by 1/√d_in so activations stay near
// unit size. The same seed gives the same tensors.
func Random(kernel string, dims []int, seed uint64) ([]*tensor.Tensor, error) {
	rng := rand.New(rand.NewPCG(seed, 0x6e6575726f6c6f76))
	fill := func(scale float64, shape ...int) *tensor.Tensor {
		t := tensor.New(shape...)
		for i := range t.Data {
			t.Data[i] = float32(scale * (2*rng.Float64() - 1))
		}
		return t
	}
	switch kernel {
	case shaders.Matmul:
		if len(dims) != 3 {
			return nil, fmt.Errorf("%w: matmul takes -random m,k,n, got %d sizes", ErrUsage, len(dims))
		}
		return []*tensor.Tensor{fill(1, dims[0], dims[1]), fill(1, dims[1], dims[2])}, nil
	case shaders.MLPInfer:
		if len(dims) < 3 {
			return nil, fmt.Errorf("%w: mlp-infer takes -random b,d0,d1[,…,dL], got %d sizes", ErrUsage, len(dims))
		}
		ts := []*tensor.Tensor{fill(1, dims[0], dims[1])}
		for l := 2; l < len(dims); l++ {
			din, dout := dims[l-1], dims[l]
			ts = append(ts, fill(1/math.Sqrt(float64(din)), din, dout), fill(0.1, dout))
		}
		return ts, nil
	}
	return nil, fmt.Errorf("%w: -random knows matmul and mlp-infer, not %q", ErrUsage, kernel)
}

// bar shows a job's progress on stderr.
type bar struct {
	pb *progressbar.ProgressBar
	w  io.Writer
	id string
}

func newBar(job client.JobStatus, w io.Writer, quiet bool) *bar {
	if quiet {
		return &bar{}
	}
	return &bar{
		id: job.ID,
		w:  w,
		pb: progressbar.NewOptions(job.Shards,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(job.ID),
			progressbar.OptionSetWidth(30),
			progressbar.OptionShowCount(),
			progressbar.OptionSetElapsedTime(true),
			// The coordinator's ETA goes in the description: it knows
			// the queue and the workers, the bar only our poll rate.
			progressbar.OptionSetPredictTime(false),
			progressbar.OptionThrottle(100*time.Millisecond),
		),
	}
}

func (b *bar) update(s client.JobStatus) {
	if b.pb == nil {
		return
	}
	desc := fmt.Sprintf("%s %s", b.id, s.Status)
	if s.ETASeconds > 0 {
		desc += fmt.Sprintf(" eta %s", (time.Duration(s.ETASeconds * float64(time.Second))).Round(100*time.Millisecond))
	}
	_ = b.pb.Set(s.Verified) // rendering to stderr: nothing to do on error
	b.pb.Describe(desc)
}

func (b *bar) end(ok bool) {
	if b.pb == nil {
		return
	}
	if ok {
		_ = b.pb.Finish()
	} else {
		_ = b.pb.Exit()
	}
	_, _ = io.WriteString(b.w, "\n")
}

// writeFile writes tensors to path as safetensors, removing a partial file
// on error.
func writeFile(path string, ts map[string]*tensor.Tensor, meta map[string]string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	err = tensor.WriteSafetensors(f, ts, meta)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// describe lists tensors' names and shapes in name order, e.g. "C 4×2".
func describe(ts map[string]*tensor.Tensor) string {
	names := slices.Sorted(maps.Keys(ts))
	parts := make([]string, len(names))
	for i, n := range names {
		dims := make([]string, len(ts[n].Shape))
		for j, d := range ts[n].Shape {
			dims[j] = strconv.Itoa(d)
		}
		parts[i] = n + " " + strings.Join(dims, "×")
	}
	return strings.Join(parts, ", ")
}
