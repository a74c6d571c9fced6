package e2e_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/neurolov/neurolov/client"
	"github.com/neurolov/neurolov/coordinator/planner"
	"github.com/neurolov/neurolov/coordinator/scheduler"
	"github.com/neurolov/neurolov/coordinator/server"
	"github.com/neurolov/neurolov/coordinator/store"
	"github.com/neurolov/neurolov/e2e/browser"
	"github.com/neurolov/neurolov/identity"
	"github.com/neurolov/neurolov/web"
	"github.com/neurolov/neurolov/web/volunteer"
	"github.com/neurolov/neurolov/worker"
)

// requirements fails the test, saying what to install or build, when
// chromium is missing or the browser client is not built.
func requirements(t *testing.T) {
	t.Helper()
	if _, err := browser.Find(); err != nil {
		t.Fatal(err)
	}
	a, err := web.NewAssets(web.Static(), web.StaticPrefix)
	if err != nil {
		t.Fatal(err)
	}
	var missing []string
	for _, f := range []string{volunteer.WorkerFile, volunteer.WasmExecFile, volunteer.ClientFile, volunteer.KernelFile} {
		if _, ok := a.URL(f); !ok {
			missing = append(missing, "web/static/"+f)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("the browser client is not built (missing %s): run make wasm", strings.Join(missing, ", "))
	}
}

// launch starts a headless Chromium for the test; it fails (never skips)
// when chromium is missing.
func launch(t *testing.T, opts browser.Options) *browser.Browser {
	t.Helper()
	b, err := browser.Launch(context.Background(), opts)
	if errors.Is(err, browser.ErrNoChromium) {
		t.Fatal(err)
	}
	if err != nil {
		t.Fatalf("launching chromium: %v", err)
	}
	t.Cleanup(b.Close)
	return b
}

// action is what the test keeps of a scheduler action.
type action struct {
	kind     scheduler.ActionKind
	worker   scheduler.WorkerID
	address  string
	job      string
	shard    int
	vouchers []string
	at       time.Time
}

// cluster is a coordinator with the pages mounted (server.Config.Pages), on
// a random loopback port, recording the scheduler's actions.
type cluster struct {
	srv    *server.Server
	http   *httptest.Server
	client *client.Client

	mu      sync.Mutex
	actions []action
}

func startCluster(t *testing.T, mutate func(*server.Config)) *cluster {
	t.Helper()
	st := store.NewMemory()
	key, hash := store.NewAPIKey()
	if err := st.AddAPIKey(context.Background(), store.APIKey{Name: "e2e", Hash: hash}); err != nil {
		t.Fatal(err)
	}
	sched := scheduler.DefaultConfig()
	sched.Audit = false // every shard gets exactly its forced replicas
	c := &cluster{}
	cfg := server.Config{
		Scheduler: &sched,
		Planner:   planner.Options{BatchRows: 16, TileRows: 32, TileCols: 32},
		Window:    2,
		TickEvery: 50 * time.Millisecond,
		Logger:    slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Observe:   c.observe,
		Pages:     web.Handler(),
	}
	if mutate != nil {
		mutate(&cfg)
	}
	c.srv = server.New(cfg, st)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = c.srv.Run(ctx); close(done) }()

	c.http = httptest.NewServer(c.srv.Handler())
	c.client = client.New(c.http.URL, client.WithAPIKey(key))
	t.Cleanup(func() {
		cancel()
		<-done
		c.http.CloseClientConnections()
		c.http.Close()
		_ = st.Close()
	})
	return c
}

func (c *cluster) observe(a scheduler.Action) {
	rec := action{kind: a.Kind, worker: a.Worker, address: a.Address.String(), job: string(a.Job), shard: a.Shard, at: time.Now()}
	for _, v := range a.Vouchers {
		rec.vouchers = append(rec.vouchers, v.String())
	}
	c.mu.Lock()
	c.actions = append(c.actions, rec)
	c.mu.Unlock()
}

func (c *cluster) recorded() []action {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.actions)
}

func (c *cluster) workers(t *testing.T) []client.WorkerStatus {
	t.Helper()
	ws, err := c.client.Workers(context.Background())
	if err != nil {
		t.Fatalf("GET /v1/workers: %v", err)
	}
	return ws
}

func (c *cluster) wsURL() string { return "ws" + strings.TrimPrefix(c.http.URL, "http") + "/v1/worker" }

// startNativeWorker runs a native CPU worker until the test ends.
func (c *cluster) startNativeWorker(t *testing.T) {
	t.Helper()
	key, err := identity.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	w := worker.New(worker.Config{
		URL: c.wsURL(), Signer: identity.NewKeySigner(key), Backend: worker.CPU{}, GFLOPS: 1,
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// testWriter sends logs to t.Log while the test runs.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		ok, state := cond()
		if ok {
			return
		}
		if state != "" {
			last = state
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s (last seen: %s)", timeout, what, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// tab is one browser tab showing the volunteer page.
type tab struct {
	name   string
	ctx    context.Context
	close  func()
	closed bool
}

// openTab opens url in a new tab of b, with storage of its own (so an
// identity of its own), after running the setup actions (a viewport, a
// script for every new document); the tab closes when the test ends.
// Console errors and uncaught exceptions are logged.
func openTab(t *testing.T, b *browser.Browser, name, url string, setup ...chromedp.Action[chromedp.Void]) *tab {
	t.Helper()
	ctx, cancel := b.NewIsolatedTab()
	if err := chromedp.Do(ctx, setup...); err != nil {
		cancel()
		t.Fatalf("%s: setting up the tab: %v", name, err)
	}
	messages := chromedp.Console(ctx)
	logged := make(chan struct{})
	go func() {
		defer close(logged)
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.IsException() || m.Type == "error" || m.Type == "warning" {
				t.Logf("%s console: %s", name, m)
			}
		}
	}()
	tb := &tab{name: name, ctx: ctx}
	tb.close = func() {
		if !tb.closed {
			tb.closed = true
			cancel()
			<-logged
		}
	}
	t.Cleanup(tb.close)
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("%s: navigate %s: %v", name, url, err)
	}
	return tb
}

// onNewDocument runs script in every document of the tab before its own
// scripts (to stand in for browser APIs).
func onNewDocument(script string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: script})
		return err
	})
}

// eval runs a script for its effects.
func (tb *tab) eval(t *testing.T, script string) {
	t.Helper()
	if err := chromedp.Do(tb.ctx, chromedp.Evaluate[chromedp.Void](script)); err != nil {
		t.Fatalf("%s: %s: %v", tb.name, script, err)
	}
}

// pageState is what the page shows and what its worker last reported.
type pageState struct {
	Status struct {
		State   string `json:"state"`
		Backend string `json:"backend"`
		Device  string `json:"device"`
		// Address is as the page shows it (EIP-55 mixed case); the
		// coordinator writes addresses in lower case.
		Address      string   `json:"address"`
		ShardsDone   int      `json:"shardsDone"`
		Verified     int      `json:"verified"`
		Rejected     int      `json:"rejected"`
		GflopsWebGPU *float64 `json:"gflopsWebGPU"`
		GflopsCPU    *float64 `json:"gflopsCPU"`
		GflopsLive   float64  `json:"gflopsLive"`
		Message      string   `json:"message"`
	} `json:"status"`
	Pauses   []string `json:"pauses"`
	Failure  string   `json:"failure"`
	Action   string   `json:"action"`   // the toggle button's action: start, pause, resume
	Shown    string   `json:"shown"`    // the state the page shows (#state data-state)
	Backend  string   `json:"backend"`  // #st-backend's data-backend
	Measured string   `json:"measured"` // #st-measured's text
	Done     string   `json:"done"`     // #st-done's text
	Earned   string   `json:"earned"`   // #st-earned's text (from GET /v1/ledger)
	Text     string   `json:"text"`     // #state's text
}

const pageStateJS = `(() => {
	const p = globalThis.neurolovPage;
	const $ = (id) => document.getElementById(id);
	return {
		status: p ? p.status() : {}, pauses: p ? p.pauses() : [], failure: p ? p.failure() : "no page script",
		action: $("toggle").dataset.action || "", shown: $("state").dataset.state || "",
		backend: $("st-backend").dataset.backend || "", measured: $("st-measured").textContent,
		done: $("st-done").textContent, earned: $("st-earned").textContent, text: $("state").textContent,
	};
})()`

func (tb *tab) state(t *testing.T) pageState {
	t.Helper()
	s, err := chromedp.Run(tb.ctx, chromedp.Evaluate[pageState](pageStateJS))
	if err != nil {
		t.Fatalf("%s: reading the page: %v", tb.name, err)
	}
	return s
}

// waitState polls the page until cond holds; a page failure ends the test.
func (tb *tab) waitState(t *testing.T, what string, timeout time.Duration, cond func(pageState) bool) pageState {
	t.Helper()
	var s pageState
	waitFor(t, tb.name+": "+what, timeout, func() (bool, string) {
		s = tb.state(t)
		if s.Failure != "" {
			t.Fatalf("%s: the page failed: %s", tb.name, s.Failure)
		}
		return cond(s), fmt.Sprintf("%s %q (worker %s, %s)", s.Shown, s.Text, s.Status.State, s.Status.Message)
	})
	return s
}

// click presses the start/pause/resume button with the mouse.
func (tb *tab) click(t *testing.T) {
	t.Helper()
	if err := chromedp.Do(tb.ctx, chromedp.Click(chromedp.ID("toggle"))); err != nil {
		t.Fatalf("%s: click: %v", tb.name, err)
	}
}

// key sends one key to the focused element.
func (tb *tab) key(t *testing.T, k string) {
	t.Helper()
	if err := chromedp.Do(tb.ctx, chromedp.KeyEvent(k)); err != nil {
		t.Fatalf("%s: key %q: %v", tb.name, k, err)
	}
}

// focused returns the id of the focused element.
func (tb *tab) focused(t *testing.T) string {
	t.Helper()
	id, err := chromedp.Run(tb.ctx, chromedp.Evaluate[string](`document.activeElement ? document.activeElement.id : ""`))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// tabTo presses Tab until the element with id has the focus.
func (tb *tab) tabTo(t *testing.T, id string) {
	t.Helper()
	var seen []string
	for range 30 {
		tb.key(t, kb.Tab)
		got := tb.focused(t)
		if got == id {
			return
		}
		seen = append(seen, got)
	}
	t.Fatalf("%s: Tab never reached #%s; focus went through %v", tb.name, id, seen)
}

// working: the worker is connected and computing or waiting for work.
func working(s pageState) bool { return s.Status.State == "working" && s.Status.Address != "" }

// npmCI installs e2e/node_modules from the lockfile when axe-core is not
// there yet, and returns axe-core's script.
func axeSource(t *testing.T) string {
	t.Helper()
	path := filepath.Join("node_modules", "axe-core", "axe.min.js")
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		npm, err := exec.LookPath("npm")
		if err != nil {
			t.Fatalf("axe-core is not installed and npm is missing: apt-get install npm, then run npm ci in e2e/ (or make test)")
		}
		cmd := exec.Command(npm, "ci", "--no-audit", "--no-fund")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm ci in e2e/: %v\n%s", err, out)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading axe-core: %v (run npm ci in e2e/)", err)
	}
	return string(b)
}
