package cli

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/neurolov/neurolov/coordinator/server"
	"github.com/neurolov/neurolov/identity"
	"github.com/neurolov/neurolov/internal/rusage"
	"github.com/neurolov/neurolov/protocol"
	"github.com/neurolov/neurolov/tensor"
)

// benchConns measures what connections cost the coordinator: the memory
// of an idle authenticated worker, and the coordinator's RSS against its
// memory budget while a child process attacks it (half-sent messages, big
// chunked outputs from several identities, one-element chunks in
// descending order, idle HTTP keep-alives), the idle fleet still
// connected. The coordinator runs in this process, every peer in child
// processes (bench conns-fleet), so that the figures are the coordinator's.
func benchConns(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	fs := flag.NewFlagSet("bench conns", flag.ContinueOnError)
	fs.SetOutput(stderr)
	idle := fs.Int("idle", 10_000, "idle authenticated workers")
	half := fs.Int("half", 1000, "connections that each send part of a 4 MiB message and stall")
	budget := fs.Int64("memory-budget", 1<<30, "the coordinator's memory budget (Config.MemoryBudget), in bytes")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *idle < 1 || *half < 0 || *budget < 64<<20 {
		return fmt.Errorf("%w: -idle at least 1, -half at least 0, -memory-budget at least 64 MiB", ErrUsage)
	}
	if err := raiseFileLimit(); err != nil {
		return err
	}
	setCoordinatorGC()
	setMemoryLimit(*budget) // as serve does
	l, err := startLocal(ctx, server.Config{MemoryBudget: *budget, IdleTimeout: 5 * time.Second, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, l.close()) }()
	url := "ws://" + l.addr + "/v1/worker"
	base := liveBytes()
	rss0 := rss()

	fleet, err := startFleet(ctx, stderr, url, "idle", *idle)
	if err != nil {
		return err
	}
	defer fleet.stop()
	if err := waitWorkers(ctx, l.srv, *idle); err != nil {
		return err
	}
	time.Sleep(time.Second) // the join's writers end
	per := float64(liveBytes()-base) / float64(*idle)
	fmt.Fprintf(stdout, "bench conns: %d idle authenticated workers from a child process; coordinator GOGC=%s, memory budget %d MiB (GOMEMLIMIT too)\n",
		*idle, gcTarget(coordinatorGCPercent), *budget>>20)
	fmt.Fprintf(stdout, "  idle worker: %.1f KiB each (heap objects + stacks after a collection, less the baseline, over %d); RSS %d MiB -> %d MiB\n",
		per/1024, *idle, rss0>>20, rss()>>20)

	attacks := []struct{ name, what string }{
		{"half", fmt.Sprintf("%d connections each send 4 MiB of a message and stall", *half)},
		{"outputs", "8 identities each send 136 MiB of chunked outputs without a Result"},
		{"descending", "120,000 one-element chunks with gaps, descending"},
		{"keepalive", "1,000 idle HTTP keep-alive connections"},
	}
	worst := int64(0)
	for _, a := range attacks {
		n := 1
		switch a.name {
		case "half":
			n = *half
		case "outputs":
			n = 8
		case "keepalive":
			n = 1000
		}
		if n == 0 {
			continue
		}
		peak, cpu, err := underAttack(ctx, stderr, url, l.addr, a.name, n)
		if err != nil {
			return fmt.Errorf("bench conns: %s: %w", a.name, err)
		}
		worst = max(worst, peak)
		fmt.Fprintf(stdout, "  %s: peak RSS %d MiB of a %d MiB budget, coordinator CPU %.2fs\n", a.what, peak>>20, *budget>>20, cpu.Seconds())
	}
	_, n, _ := l.srv.Stats(ctx)
	verdict := "within"
	if worst > *budget {
		verdict = "OVER"
	}
	fmt.Fprintf(stdout, "conns: %.1f KiB per idle worker (goal <= 20); peak RSS %d MiB, %s the %d MiB budget; %d idle workers still connected\n",
		per/1024, worst>>20, verdict, *budget>>20, n)
	return nil
}

// liveBytes collects, then returns the heap objects and goroutine stacks
// in use.
func liveBytes() int64 {
	runtime.GC()
	runtime.GC()
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/stacks:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64() + s[1].Value.Uint64())
}

// rss returns this process's resident set size (0 where /proc has none).
func rss() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

// fleet is a bench conns-fleet child process.
type fleet struct {
	cmd    *exec.Cmd
	exited chan struct{}
	lines  *bufio.Scanner
}

func startFleet(ctx context.Context, stderr io.Writer, url, phase string, n int) (*fleet, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, exe, "bench", "conns-fleet", "-url", url, "-phase", phase, "-n", strconv.Itoa(n))
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	f := &fleet{cmd: cmd, exited: make(chan struct{}), lines: bufio.NewScanner(out)}
	return f, nil
}

// ready waits for the child's "ready" line (its attack is under way).
func (f *fleet) ready() error {
	for f.lines.Scan() {
		if f.lines.Text() == "ready" {
			return nil
		}
	}
	return fmt.Errorf("the child process ended before it was ready: %v", f.cmd.Wait())
}

func (f *fleet) stop() {
	_ = f.cmd.Process.Kill()
	_ = f.cmd.Wait()
}

func waitWorkers(ctx context.Context, srv *server.Server, n int) error {
	deadline := time.Now().Add(5 * time.Minute)
	for {
		_, got, err := srv.Stats(ctx)
		if err != nil || got >= n {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bench conns: only %d of %d workers connected", got, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// underAttack runs one attack from a child process and returns the peak
// RSS seen while it ran (and 3 s after it was under way) and the
// coordinator's CPU meanwhile.
func underAttack(ctx context.Context, stderr io.Writer, url, addr, phase string, n int) (int64, time.Duration, error) {
	target := url
	if phase == "keepalive" {
		target = addr
	}
	debug.FreeOSMemory() // what the last attack left goes back to the system
	cpu0 := rusage.Process()
	var peak int64
	var mu sync.Mutex
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			r := rss()
			mu.Lock()
			peak = max(peak, r)
			mu.Unlock()
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	})
	f, err := startFleet(ctx, stderr, target, phase, n)
	if err == nil {
		err = f.ready()
		time.Sleep(3 * time.Second)
		f.stop()
	}
	close(stop)
	wg.Wait()
	return peak, rusage.Process() - cpu0, err
}

// connsFleet is the child process of bench conns: n peers of one kind
// (-phase), until killed. It prints "ready" once they are connected (or
// their attack sent).
func connsFleet(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench conns-fleet", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "", "coordinator worker endpoint (host:port for keepalive)")
	phase := fs.String("phase", "idle", "idle, half, outputs, descending or keepalive")
	n := fs.Int("n", 1, "peers")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := raiseFileLimit(); err != nil {
		return err
	}
	peer, ok := map[string]func(context.Context, string, int) (io.Closer, error){
		"idle": idlePeer, "half": halfPeer, "outputs": outputsPeer, "descending": descendingPeer, "keepalive": keepAlivePeer,
	}[*phase]
	if !ok {
		return fmt.Errorf("%w: unknown -phase %q", ErrUsage, *phase)
	}
	var mu sync.Mutex
	var held []io.Closer
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for i := range *n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			c, err := peer(ctx, *url, i)
			if err != nil {
				return // refused by the coordinator: that is the point
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		})
	}
	wg.Wait()
	fmt.Fprintln(stdout, "ready")
	<-ctx.Done()
	return nil
}

// dialWorker connects and authenticates one worker with a fresh identity,
// and reads (answering pings) in the background until the connection ends.
func dialWorker(ctx context.Context, url string) (*websocket.Conn, error) {
	ws, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		return nil, err
	}
	ws.SetReadLimit(protocol.MaxFrameSize)
	key, err := identity.NewKey()
	if err != nil {
		return nil, err
	}
	signer := identity.NewKeySigner(key)
	send := func(ms ...protocol.Message) error {
		frame, err := protocol.Encode(ms...)
		if err != nil {
			return err
		}
		return ws.Write(ctx, websocket.MessageBinary, frame)
	}
	if err := send(&protocol.Hello{Version: protocol.Version, Address: signer.Address(), Agent: "bench-conns"}); err != nil {
		return nil, err
	}
	_, b, err := ws.Read(ctx)
	if err != nil {
		return nil, err
	}
	var challenge string
	_ = protocol.Decode(b, func(m protocol.Message) error {
		if ch, ok := m.(*protocol.Challenge); ok {
			challenge = ch.Message
		}
		return nil
	})
	sig, err := signer.SignText(challenge)
	if err != nil {
		return nil, err
	}
	if err := send(&protocol.Auth{Signature: sig}, &protocol.Capabilities{Backend: "cpu", Device: "bench", GFLOPS: 1}); err != nil {
		return nil, err
	}
	go func() {
		for {
			if _, _, err := ws.Read(context.Background()); err != nil {
				return
			}
		}
	}()
	return ws, nil
}

type wsCloser struct{ ws *websocket.Conn }

func (c wsCloser) Close() error { return c.ws.CloseNow() }

func idlePeer(ctx context.Context, url string, _ int) (io.Closer, error) {
	ws, err := dialWorker(ctx, url)
	if err != nil {
		return nil, err
	}
	return wsCloser{ws}, nil
}

// halfPeer sends 4 MiB of a message and stalls.
func halfPeer(ctx context.Context, url string, _ int) (io.Closer, error) {
	ws, err := dialWorker(ctx, url)
	if err != nil {
		return nil, err
	}
	w, err := ws.Writer(ctx, websocket.MessageBinary)
	if err != nil {
		return nil, err
	}
	part := make([]byte, 4<<20)
	copy(part, "NLV\x01")
	_, _ = w.Write(part)
	return wsCloser{ws}, nil
}

// sendChunks sends chunks, several to a frame.
func sendChunks(ctx context.Context, ws *websocket.Conn, chunks []protocol.TensorData) error {
	var enc protocol.Encoder
	for i := range chunks {
		if err := enc.Append(&chunks[i]); err != nil {
			if err := ws.Write(ctx, websocket.MessageBinary, enc.Bytes()); err != nil {
				return err
			}
			enc.Reset()
			if err := enc.Append(&chunks[i]); err != nil {
				return err
			}
		}
	}
	if enc.Count() == 0 {
		return nil
	}
	return ws.Write(ctx, websocket.MessageBinary, enc.Bytes())
}

// outputsPeer sends 136 MiB of chunked outputs (17 tensors of 8 MiB) and
// no Result.
func outputsPeer(ctx context.Context, url string, i int) (io.Closer, error) {
	ws, err := dialWorker(ctx, url)
	if err != nil {
		return nil, err
	}
	x := tensor.New(2 << 20)
	for k := range 17 {
		x.Data[0] = float32(i*100 + k)
		chunks, err := protocol.ChunkTensor(x.Hash(), x.Shape, x.Data, 0)
		if err != nil {
			return nil, err
		}
		if err := sendChunks(ctx, ws, chunks); err != nil {
			break // refused
		}
	}
	return wsCloser{ws}, nil
}

// descendingPeer sends 120,000 one-element chunks, every other element of
// a tensor, in descending order.
func descendingPeer(ctx context.Context, url string, _ int) (io.Closer, error) {
	ws, err := dialWorker(ctx, url)
	if err != nil {
		return nil, err
	}
	x := tensor.New(240_000)
	h := x.Hash()
	chunks := make([]protocol.TensorData, 0, 120_000)
	for off := len(x.Data) - 2; off >= 0; off -= 2 {
		chunks = append(chunks, protocol.TensorData{Hash: h, Shape: x.Shape, Offset: uint64(off), Data: x.Data[off : off+1]})
	}
	_ = sendChunks(ctx, ws, chunks)
	return wsCloser{ws}, nil
}

// keepAlivePeer makes one request on a keep-alive connection and leaves
// it idle.
func keepAlivePeer(ctx context.Context, addr string, _ int) (io.Closer, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if _, err := io.WriteString(nc, "GET /healthz HTTP/1.1\r\nHost: bench\r\n\r\n"); err != nil {
		return nil, err
	}
	return nc, nil
}
