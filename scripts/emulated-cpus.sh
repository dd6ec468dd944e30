#!/usr/bin/env bash
# One binary, any x86-64 CPU: runs the kernel tests and the CLI on emulated CPUs without the
# instruction sets of this machine (qemu-user, installed if missing), so that the runtime
# dispatch is checked where AVX-512 (and AVX) really are absent, not only switched off by
# ORCINUS_ISA on a CPU that has them (where a stray instruction would not fault).
#
#   Haswell  AVX2, FMA, F16C; no AVX-512, no AVX-VNNI  -> the avx2 kernels
#   Nehalem  SSE4.2; no AVX                            -> the scalar kernels
#
# On each: every test of orcinus-quant (its unit tests and tests/), then `orcinus bench` (which
# must report the expected kernels) and `orcinus logits` on the real SmolLM2 Q4_1 file and a
# `synth --preset tiny` Q4_K_M file, batched (the GEMM) and one token at a time (the decode
# kernels), whose bytes must equal a native run with ORCINUS_ISA forced to the same kernels.
# (QEMU 7.2, Debian 12's, emulates neither AVX-VNNI nor AVX-512: those kernels are checked
# natively only.)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

if ! command -v qemu-x86_64 >/dev/null; then
  echo "installing qemu-user (emulated CPUs)"
  if [[ $(id -u) -eq 0 ]]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq qemu-user >/dev/null
fi
qemu-x86_64 --version | head -1

scripts/fetch-fixtures.sh >/dev/null
fixtures="${ORCINUS_FIXTURES:-$root/target/fixtures}"
cargo build --quiet --bin orcinus
bin="$root/target/debug/orcinus"
mapfile -t tests < <(cargo test --quiet -p orcinus-quant --no-run --message-format=json 2>/dev/null |
  python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(m["executable"])')
[[ ${#tests[@]} -gt 0 ]] || { echo "no orcinus-quant test executables found" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
host_has() { grep -qw "$1" /proc/cpuinfo; }
# Runs a command with its output kept aside, shown only if it fails.
quiet() {
  if ! "$@" >"$work/cmd.txt" 2>&1; then
    cat "$work/cmd.txt" >&2
    echo "FAIL: $*" >&2
    exit 1
  fi
}

quiet "$bin" synth --preset tiny --type Q4_K_M -o "$work/tiny-q4_k_m.gguf"
models=("$fixtures/SmolLM2-135M-Instruct.Q4_1.gguf" "$work/tiny-q4_k_m.gguf")
prompt="The capital city of France is Paris, and the capital city of Italy is"

for spec in Haswell:avx2 Nehalem:scalar; do
  cpu=${spec%%:*} isa=${spec##*:}
  echo "--- emulated $cpu (expects the $isa kernels)"
  if [[ $isa == avx2 ]] && ! (host_has avx2 && host_has fma && host_has f16c); then
    echo "this machine has no AVX2: no native avx2 run to compare with; skipped"
    continue
  fi
  for t in "${tests[@]}"; do
    # The ORCINUS_ISA test runs its child natively (qemu-user does not follow exec).
    (cd quant && quiet qemu-x86_64 -cpu "$cpu" "$t" -q --skip orcinus_isa_env_override \
      --skip isa_in_child)
    grep -E '^test result' "$work/cmd.txt" | sed "s|^|$(basename "$t"): |"
  done
  for m in "${models[@]}"; do
    quiet qemu-x86_64 -cpu "$cpu" "$bin" bench -m "$m" -p 8 -n 2 -r 1 --no-bandwidth
    got=$(sed -n 's/^kernels: //p' "$work/cmd.txt")
    if [[ $got != "$isa" ]]; then
      echo "FAIL: $cpu chose kernels '$got' for $(basename "$m"), expected $isa" >&2
      exit 1
    fi
    for batch in 512 1; do
      ORCINUS_ISA=$isa quiet "$bin" logits -m "$m" -b $batch -p "$prompt" -o "$work/native.npy"
      quiet qemu-x86_64 -cpu "$cpu" "$bin" logits -m "$m" -b $batch -p "$prompt" \
        -o "$work/emulated.npy"
      if ! cmp -s "$work/native.npy" "$work/emulated.npy"; then
        echo "FAIL: $(basename "$m") -b $batch: logits on emulated $cpu differ from ORCINUS_ISA=$isa" >&2
        exit 1
      fi
      echo "$(basename "$m") -b $batch: $isa kernels, logits identical to the native run"
    done
  done
done
echo "emulated CPUs: all passed"
