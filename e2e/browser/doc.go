// Package browser launches Debian's headless Chromium for the end-to-end
// tests and the browser benchmark, with the flags WEBGPU-NOTES.md settles
// on: headless, a fresh profile, no background networking, QUIC, component
// updates or sync, --no-sandbox when running as root, and
// --enable-unsafe-webgpu when WebGPU is wanted (SwiftShader on a machine
// without a GPU). Without that flag navigator.gpu exists but requestAdapter
// returns null, the natural way to test the CPU fallback.
// --disable-software-rasterizer is never passed: it breaks WebGPU.
//
// A missing chromium is an error that says how to install it; callers fail
// with it, never skip.
package browser
