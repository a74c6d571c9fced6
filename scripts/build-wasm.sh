#!/usr/bin/env bash
# Builds the browser client's assets into web/static/dist (or -o DIR):
#   neurolov.wasm  the Go client (GOOS=js GOARCH=wasm, ./wasm/cmd/neurolov-wasm)
#   gemm.wasm      the WASM SIMD GEMM kernel (wasm/simd/gemm.c, Debian's clang + lld)
#   gemm-shared.wasm  the same kernel on an imported shared memory, for the
#                  two-thread pool of a cross-origin isolated page
#   wasm_exec.js   Go's loader, copied unchanged from $(go env GOROOT)/lib/wasm
# and prints each size, gzip -9 compressed too.
# Usage: scripts/build-wasm.sh [-o DIR] [all|go|gemm|exec]...
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/web/static/dist"
if [[ "${1:-}" == "-o" ]]; then
  out=$2
  shift 2
fi
targets=("$@")
((${#targets[@]})) || targets=(all)
GO=${GO:-go}
CLANG=${CLANG:-clang}
mkdir -p "$out"

size() {
  local f=$1
  printf '%-14s %9d bytes, %9d gzip -9\n' "$(basename "$f")" "$(stat -c %s "$f")" "$(gzip -9 -c "$f" | wc -c)"
}

build_gemm() {
  if ! command -v "$CLANG" >/dev/null || ! command -v wasm-ld >/dev/null; then
    echo "build-wasm: clang and wasm-ld are needed for gemm.wasm: apt-get install clang lld (or make deps)" >&2
    exit 1
  fi
  "$CLANG" --target=wasm32 -O3 -msimd128 -nostdlib -Wl,--no-entry -Wl,--export-dynamic \
    -o "$out/gemm.wasm" "$root/wasm/simd/gemm.c"
  size "$out/gemm.wasm"
  # The pool's build: the memory is imported and shared (a SharedArrayBuffer
  # that both threads' instances use) and the stack pointer exported, so
  # that the helper thread can be given its own stack.
  "$CLANG" --target=wasm32 -O3 -msimd128 -matomics -mbulk-memory -mmutable-globals -nostdlib \
    -Wl,--no-entry -Wl,--export-dynamic -Wl,--shared-memory -Wl,--import-memory \
    -Wl,--max-memory=2147483648 -Wl,-z,stack-size=65536 -Wl,--export=__stack_pointer \
    -o "$out/gemm-shared.wasm" "$root/wasm/simd/gemm.c"
  size "$out/gemm-shared.wasm"
}

build_go() {
  (cd "$root" && GOOS=js GOARCH=wasm "$GO" build -trimpath -ldflags=-s -o "$out/neurolov.wasm" ./wasm/cmd/neurolov-wasm)
  size "$out/neurolov.wasm"
}

copy_exec() {
  cp "$("$GO" env GOROOT)/lib/wasm/wasm_exec.js" "$out/wasm_exec.js"
  size "$out/wasm_exec.js"
}

for t in "${targets[@]}"; do
  case $t in
    all) build_go; build_gemm; copy_exec ;;
    go) build_go ;;
    gemm) build_gemm ;;
    exec) copy_exec ;;
    *) echo "build-wasm: unknown target $t (all, go, gemm, exec)" >&2; exit 2 ;;
  esac
done
