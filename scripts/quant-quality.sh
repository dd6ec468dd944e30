#!/usr/bin/env bash
# The quantizer's quality table (issue 5): quantize an F16 model to several types with Orcinus
# and with llama.cpp (PyPI llama-cpp-python's llama_model_quantize, from the venv that
# scripts/reference/setup.sh makes), compare the files byte for byte, and report for each type
# the KL-divergence against the F16 model, top-1 agreement and perplexity (orcinus perplexity
# --kl-divergence, llama.cpp's method).
#
#   scripts/quant-quality.sh [F16.gguf] [TEXT] [OUTDIR]
#
# Defaults: the SmolLM2 F16 file the parity references use (target/parity-models, made by
# scripts/reference/make_all.sh), the GPL-3.0 text, target/quant-quality. Without the
# llama.cpp venv only Orcinus' files are measured. ORCINUS_TYPES overrides the type list,
# ORCINUS_CTX the context (default 512, llama-perplexity's).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
base="${1:-target/parity-models/smollm2-q4_1-to-f16.gguf}"
text="${2:-tests/data/text/gpl-3.0.txt}"
out="${3:-target/quant-quality}"
types=(${ORCINUS_TYPES:-Q8_0 Q6_K Q5_K_M Q4_K_M Q3_K_M Q2_K})
ctx="${ORCINUS_CTX:-512}"
ref="target/llama-ref-venv/bin/python"
mkdir -p "$out"
cargo build --release -q --bin orcinus
orc=target/release/orcinus

# llama.cpp's LLAMA_FTYPE ids.
declare -A ftype=([Q8_0]=7 [Q6_K]=18 [Q5_K_M]=17 [Q5_K_S]=16 [Q4_K_M]=15 [Q4_K_S]=14
  [Q3_K_L]=13 [Q3_K_M]=12 [Q3_K_S]=11 [Q2_K]=10 [Q5_1]=9 [Q5_0]=8 [Q4_1]=3 [Q4_0]=2)

echo "== base $base: KL base over $text (ctx $ctx)" >&2
[[ -f "$out/base.kld" ]] || "$orc" perplexity -m "$base" -f "$text" -c "$ctx" -b "$ctx" \
  --kv-type f32 --kl-divergence-base "$out/base.kld" --json > "$out/base.json"

printf '| type | file | bits/weight (16 x size / F16 size) | same bytes as llama.cpp | PPL | PPL ratio | mean KLD | median KLD | p99 KLD | top-1 agreement |\n'
printf '|---|---|---|---|---|---|---|---|---|---|\n'
for t in "${types[@]}"; do
  ours="$out/ours-$t.gguf"
  [[ -f "$ours" ]] || "$orc" quantize "$base" "$ours" "$t" >&2
  same="not checked"
  if [[ -x "$ref" ]]; then
    theirs="$out/llama-$t.gguf"
    [[ -f "$theirs" ]] || "$ref" - "$base" "$theirs" "${ftype[$t]}" <<'PY' >&2
import ctypes, sys
import llama_cpp
p = llama_cpp.llama_model_quantize_default_params()
p.ftype = int(sys.argv[3])
rc = llama_cpp.llama_model_quantize(sys.argv[1].encode(), sys.argv[2].encode(), ctypes.byref(p))
sys.exit(rc)
PY
    if cmp -s "$ours" "$theirs"; then same="yes"; else same="NO"; fi
  fi
  "$orc" perplexity -m "$ours" -c "$ctx" -b "$ctx" --kv-type f32 \
    --kl-divergence "$out/base.kld" --json > "$out/ours-$t.json"
  python3 - "$out/ours-$t.json" "$ours" "$t" "$same" "$base" <<'PY'
import json, os, sys
r = json.load(open(sys.argv[1]))
def g(*ks):
    for k in ks:
        if k in r: return r[k]
    raise KeyError(ks)
size = os.path.getsize(sys.argv[2])
bpw = 16 * size / os.path.getsize(sys.argv[5])  # against the F16 file (its norms are F32)
print(f"| {sys.argv[3]} | {size/2**20:.1f} MiB | {bpw:.2f} | {sys.argv[4]} | "
      f"{g('ppl'):.4f} | {g('ppl_ratio'):.4f} | {g('kld_mean'):.5f} | {g('kld_median'):.5f} | "
      f"{g('kld_p99'):.4f} | {100*g('top1_agreement'):.2f}% |")
PY
done
