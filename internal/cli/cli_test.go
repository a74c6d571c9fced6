package cli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/neurolov/neurolov/coordinator/store"
	"github.com/neurolov/neurolov/internal/servertest"
	"github.com/neurolov/neurolov/tensor"
	"github.com/neurolov/neurolov/worker"
)

// TestDemo runs what `make demo` runs: it must catch the cheater, verify
// every shard and exit cleanly.
func TestDemo(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := Run(context.Background(), []string{"demo"}, &out, &errOut); err != nil {
		t.Fatalf("demo: %v\n%s\n%s", err, out.String(), errOut.String())
	}
	for _, want := range []string{"CAUGHT worker-4", "matches the CPU reference", "  worker-1 ", "demo ok"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("demo output lacks %q:\n%s", want, out.String())
		}
	}
}

// TestSubmitAgainstARealCoordinator drives `neurolov submit` against a real
// coordinator with real workers and checks the downloaded result.
func TestSubmitAgainstARealCoordinator(t *testing.T) {
	c := servertest.Start(t, nil)
	servertest.StartWorker(t, c, worker.CPU{}, nil)
	servertest.StartWorker(t, c, worker.CPU{}, nil)
	dir := t.TempDir()
	keyFile, outFile := filepath.Join(dir, "key"), filepath.Join(dir, "result.safetensors")
	if err := os.WriteFile(keyFile, []byte(c.Key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	args := []string{"submit", "-coordinator", c.HTTP.URL, "-key-file", keyFile, "-kernel", "matmul",
		"-random", "20,7,19", "-out", outFile, "-poll", "10ms", "-quiet"}
	if err := Run(context.Background(), args, &out, &errOut); err != nil {
		t.Fatalf("submit: %v\n%s", err, errOut.String())
	}
	if !strings.Contains(out.String(), "done") {
		t.Fatalf("summary: %q", out.String())
	}
	f, err := os.Open(outFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, _, err := tensor.ReadSafetensors(f, 1<<20)
	if err != nil || res["C"] == nil || !res["C"].Is2D(20, 19) {
		t.Fatalf("result file: %v %v", res, err)
	}
}

func TestUnknownSubcommandIsAUsageError(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := Run(context.Background(), []string{"frobnicate"}, &out, &errOut); err == nil || !strings.Contains(err.Error(), "unknown subcommand") {
		t.Fatalf("err = %v", err)
	}
}

// TestCommandLines: -h is not an error, and command lines that cannot
// work are usage errors that say why, before anything starts.
func TestCommandLines(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		usage bool
		say   string
	}{
		{[]string{"serve", "-h"}, false, ""},
		{[]string{"bench", "dispatch", "-h"}, false, ""},
		{[]string{"bench", "browser", "-h"}, false, ""},
		{[]string{"serve", "-log", "bogus"}, true, "want debug, info, warn or error"},
		{[]string{"worker", "-log", "loud"}, true, "want debug, info, warn or error"},
		{[]string{"bench", "dispatch", "-workers", "1"}, true, "second one"},
		{[]string{"bench", "dispatch", "-runs", "0"}, true, "at least 1"},
		{[]string{"bench", "browser", "extra"}, true, "no arguments"},
		{[]string{"serve", "-no-such-flag"}, true, "no-such-flag"},
	} {
		var out, errOut bytes.Buffer
		err := Run(context.Background(), tc.args, &out, &errOut)
		if !tc.usage {
			if err != nil {
				t.Errorf("%v: %v, want no error", tc.args, err)
			}
			continue
		}
		if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), tc.say) {
			t.Errorf("%v: %v, want a usage error saying %q", tc.args, err, tc.say)
		}
	}
}

// TestAPIKeyFileMode: serve refuses an API key file other users may read.
func TestAPIKeyFileMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "api-key")
	key, created, err := loadOrCreateAPIKey(path)
	if err != nil || !created || key == "" {
		t.Fatalf("first start: key %q, created %v, %v", key, created, err)
	}
	if again, created, err := loadOrCreateAPIKey(path); err != nil || created || again != key {
		t.Fatalf("second start: key %q, created %v, %v; want the same key", again, created, err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := loadOrCreateAPIKey(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a 0644 key file: %v, want a refusal saying chmod 600", err)
	}
}

// TestServeKeys: serve keeps a submitter key and an admin key in its data
// folder, creates them once, and registers the admin one as an admin.
func TestServeKeys(t *testing.T) {
	dir := t.TempDir()
	var keys [2]store.APIKey
	for start := range 2 {
		st := store.NewMemory()
		var out strings.Builder
		if err := addServeKeys(t.Context(), st, dir, &out); err != nil {
			t.Fatalf("start %d: %v", start, err)
		}
		for i, file := range []string{"api-key", "admin-key"} {
			b, err := os.ReadFile(filepath.Join(dir, file))
			if err != nil {
				t.Fatal(err)
			}
			k, ok, err := st.CheckAPIKey(t.Context(), store.HashAPIKey(strings.TrimSpace(string(b))))
			if err != nil || !ok || k.Admin != (file == "admin-key") {
				t.Fatalf("start %d: %s registered as %+v, %v, %v", start, file, k, ok, err)
			}
			if start == 1 && k != keys[i] {
				t.Errorf("%s changed across restarts: %+v, then %+v", file, keys[i], k)
			}
			keys[i] = k
		}
		if created := strings.Contains(out.String(), "created"); created != (start == 0) {
			t.Errorf("start %d printed %q", start, out.String())
		}
		_ = st.Close()
	}
}
