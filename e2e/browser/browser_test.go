package browser_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/neurolov/neurolov/e2e/browser"
)

// TestFind: $NEUROLOV_CHROMIUM wins when it names a file, and a missing
// one is ErrNoChromium, whose message says how to install chromium.
func TestFind(t *testing.T) {
	exe := filepath.Join(t.TempDir(), "chromium")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		env     string
		want    string
		wantErr error
	}{
		{env: exe, want: exe},
		{env: filepath.Join(t.TempDir(), "nope"), wantErr: browser.ErrNoChromium},
	}
	for _, tt := range tests {
		t.Setenv(browser.EnvPath, tt.env)
		got, err := browser.Find()
		if !errors.Is(err, tt.wantErr) || got != tt.want {
			t.Errorf("%s=%s: Find() = %q, %v; want %q, %v", browser.EnvPath, tt.env, got, err, tt.want, tt.wantErr)
		}
	}
	if msg := browser.ErrNoChromium.Error(); msg != "browser: install chromium: apt-get install chromium (or make deps)" {
		t.Errorf("ErrNoChromium says %q", msg)
	}
}
