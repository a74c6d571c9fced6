// Package e2e holds the end-to-end tests of the browser client: a real
// coordinator (coordinator/server over the memory store, on a random
// loopback port) with the volunteer page mounted, native workers, and tabs
// of Debian's headless Chromium driven through the DevTools protocol
// (github.com/chromedp/chromedp).
//
// The tests need chromium (make deps installs it; a missing one fails the
// tests with the install command, never skips them), the browser client's
// build outputs in web/static/dist (make wasm), and axe-core from npm,
// pinned in package.json and package-lock.json (the tests run npm ci here
// when node_modules lacks it). Screenshots are written to e2e/artifacts.
//
// Subpackages: browser launches Chromium with the flags WEBGPU-NOTES.md
// settles on; browserbench measures the MLP shard in a WebGPU tab, a CPU
// tab and on the native BLAS worker (neurolov bench browser).
package e2e
