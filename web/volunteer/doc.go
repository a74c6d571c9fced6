// Package volunteer is the volunteer page: one click lends this browser's
// GPU (WebGPU) or CPU (WebAssembly SIMD) to the coordinator that serves it.
//
// The page (page.templ, rendered by Handler) holds the controls — start,
// pause and resume, the compute share (a duty cycle), pause when the tab is
// hidden, pause on battery below a threshold, and a backend override — and
// the live figures of this tab's worker. Its script, static/volunteer.js in
// package web, runs the browser client in a dedicated Web Worker
// (static/worker.js) and exchanges the messages of the browser contract with
// it: start, pause, resume, share and wallet signatures one way, status and
// sign requests the other. Pay earned is read from the coordinator's
// GET /v1/ledger, matched on the worker's address.
//
// The handler reads its asset URLs through the small Assets interface, so
// the view is tested with a fake.
//
// page_templ.go is generated from page.templ by templ (go generate); it is
// committed, and make generate checks that it is current.
package volunteer

//go:generate go tool templ generate
