//go:build js

// Command neurolov-wasm is the browser compute client: built with
// GOOS=js GOARCH=wasm into web/static/dist/neurolov.wasm, it runs inside the
// dedicated Web Worker web/static/worker.js, registers globalThis.neurolov
// and works for the coordinator (see package wasm/browser).
package main

import "github.com/neurolov/neurolov/wasm/browser"

func main() { browser.Main() }
