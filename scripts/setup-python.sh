#!/usr/bin/env bash
# Creates .venv with the Python reference implementations the tests compare against:
# numpy, gguf (GGUFReader, gguf.quants.dequantize) and sentencepiece. Cached; safe to rerun.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
python="${PYTHON:-python3}"
want="numpy==2.4.6 gguf==0.19.0 sentencepiece==0.2.3"
if [[ -x "$venv/bin/python" ]] && [[ "$(cat "$venv/.orcinus-reqs" 2>/dev/null)" == "$want" ]]; then
  echo "python venv: cached ($venv)"
  exit 0
fi
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check $want
echo "$want" > "$venv/.orcinus-reqs"
echo "python venv: $venv"
