#!/usr/bin/env bash
# Installs the Debian packages the build, the tests and the demo need, only
# those missing, with apt-get (as root, or through sudo).
set -euo pipefail

packages=(
  gcc libc6-dev            # cgo: OpenBLAS and wgpu-native bindings
  libopenblas-dev          # BLAS backend of native CPU workers
  libvulkan1 mesa-vulkan-drivers  # WebGPU natively: Mesa's lavapipe when no GPU
  chromium                 # e2e tests and bench browser: headless Chromium (WebGPU via SwiftShader)
  clang lld                # the browser client's WASM SIMD kernel (wasm/simd/gemm.c → gemm.wasm)
  nodejs                   # runs gemm.wasm and the GOOS=js tests of wasm/simdgemm
)
if [[ "${NEUROLOV_DEPS_EXTRA:-}" != "" ]]; then
  # shellcheck disable=SC2206
  packages+=(${NEUROLOV_DEPS_EXTRA})
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
echo "deps: installing ${missing[*]}"
sudo=""
if [[ $(id -u) -ne 0 ]]; then
  if ! command -v sudo >/dev/null; then
    echo "deps: need root or sudo to install: ${missing[*]}" >&2
    exit 1
  fi
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
