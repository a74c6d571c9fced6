//go:build !js

// Command neurolov-wasm is the browser compute client; it only runs in a
// browser. Build it with scripts/build-wasm.sh (GOOS=js GOARCH=wasm).
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "neurolov-wasm runs in a browser: build it with GOOS=js GOARCH=wasm (scripts/build-wasm.sh) and open the volunteer page")
	os.Exit(2)
}
