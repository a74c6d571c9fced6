//go:build !js

package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestImports keeps the browser build small and free of server code: built
// for GOOS=js, the client must not import go-ethereum's node, eth, p2p or
// core packages, a Redis client, or net/http/pprof.
func TestImports(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", ".")
	cmd.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	var offenders []string
	for _, path := range strings.Fields(string(out)) {
		if forbidden(path) {
			offenders = append(offenders, path)
		}
	}
	if len(offenders) > 0 {
		t.Fatalf("the js build of neurolov-wasm imports forbidden packages:\n  %s", strings.Join(offenders, "\n  "))
	}
}

func forbidden(path string) bool {
	for _, p := range []string{
		"github.com/ethereum/go-ethereum/node", "github.com/ethereum/go-ethereum/eth",
		"github.com/ethereum/go-ethereum/p2p", "github.com/ethereum/go-ethereum/core",
	} {
		if path == p || strings.HasPrefix(path, p+"/") {
			return true
		}
	}
	return path == "net/http/pprof" || strings.Contains(path, "redis")
}

func TestForbidden(t *testing.T) {
	for path, want := range map[string]bool{
		"github.com/ethereum/go-ethereum/node":          true,
		"github.com/ethereum/go-ethereum/core/types":    true,
		"github.com/ethereum/go-ethereum/p2p/enode":     true,
		"github.com/ethereum/go-ethereum/eth/ethconfig": true,
		"github.com/redis/go-redis/v9":                  true,
		"net/http/pprof":                                true,
		"github.com/ethereum/go-ethereum/crypto":        false,
		"github.com/ethereum/go-ethereum/common":        false,
		"github.com/ethereum/go-ethereum/ethdb":         false,
		"github.com/ethereum/go-ethereum/consensus":     false,
		"net/http": false,
	} {
		if got := forbidden(path); got != want {
			t.Errorf("forbidden(%q) = %v, want %v", path, got, want)
		}
	}
}
