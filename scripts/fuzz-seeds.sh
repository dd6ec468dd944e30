#!/usr/bin/env bash
# Seeds the GGUF fuzz corpus (tests/fuzz/corpus/gguf_parse) with small valid files: the header of
# the real SmolLM2 file with its data cut off, and the small files our tests write.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
corpus="$root/tests/fuzz/corpus/gguf_parse"
mkdir -p "$corpus"
"$root/scripts/fetch-fixtures.sh" >/dev/null
python3 - "$root/target/fixtures/SmolLM2-135M-Instruct.Q4_1.gguf" "$corpus" <<'PY'
import struct, sys
src, out = sys.argv[1:]
data = open(src, "rb").read(2_000_000)
# A header-only prefix, and a tiny hand-made v3 file with one f32 tensor.
open(f"{out}/smollm2-prefix", "wb").write(data[:4096])
def s(b): return struct.pack("<Q", len(b)) + b
hdr = b"GGUF" + struct.pack("<IQQ", 3, 1, 2)
hdr += s(b"general.architecture") + struct.pack("<I", 8) + s(b"llama")
hdr += s(b"a.list") + struct.pack("<IIQ", 9, 4, 2) + struct.pack("<II", 1, 2)
hdr += s(b"w") + struct.pack("<I", 2) + struct.pack("<QQ", 4, 2) + struct.pack("<IQ", 0, 0)
hdr += b"\0" * (-len(hdr) % 32) + b"\0" * 32
open(f"{out}/tiny-f32", "wb").write(hdr)
PY
echo "corpus in $corpus"
