// Package web serves Neurolov's pages and their static files: the volunteer
// page at "/" (package web/volunteer, one package per page) and the files
// under "/static/" — the page script and style, the browser client's Web
// Worker script and the build outputs in static/dist (the Go WebAssembly
// client, the WASM SIMD kernel and wasm_exec.js, made by make and never
// committed).
//
// Every static file has a content-hashed URL,
// /static/<dir>/<sha256 prefix>/<name>, served compressed (gzip, or a
// pre-compressed .gz/.br sibling) with a one-year immutable cache policy, and
// its plain URL, served with no-cache. Pages link the hashed URLs.
//
// The coordinator mounts Handler at "/" and "/static/"; the page reaches the
// coordinator's API (/v1/worker, /v1/ledger) on the same origin.
//
// The package builds with an empty static/dist: the page then says that the
// browser client is not built and how to build it.
package web
