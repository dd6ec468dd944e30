#!/usr/bin/env bash
# Orcinus against llama.cpp on the same GGUF file, the same tests and the same threads.
#
#   scripts/bench-vs-llama.sh MODEL [-p 512] [-n 128] [-t 2] [-r 3] [--rounds 3] [--llama-no-extra-bufts] [--llama-isa native|avx2|avxvnni]
#
# Builds `orcinus` and benches/llama-cpp-baseline (llama.cpp through the llama-cpp-2 crate, built
# with cmake for this CPU: the first build takes 10-20 minutes on 2 cores) in release, then runs
# `orcinus bench --json` and `llama-cpp-baseline` alternately for --rounds rounds (each run does
# -r timed repetitions after a warm-up) and prints, per test, the median over the rounds of each
# one's mean t/s and the ratio orcinus / llama.cpp. The raw JSON of every run is kept in
# target/bench-vs-llama/.
#
# --llama-no-extra-bufts loads the model in llama.cpp with use_extra_bufts = false (llama-bench's
# --no-repack): no load-time re-layout of Q4_0/Q4_K/IQ4_NL/Q8_0 weights and no AMX buffers. Needed
# on VMs that advertise AMX but fault on its tile instructions (SIGILL in tinygemm_kernel_amx).
#
# --llama-isa avx2 (or avxvnni) builds llama.cpp for a laptop-class CPU instead of this one
# (-march=x86-64-v3, plus AVX-VNNI for avxvnni; its own target folder), the fair baseline for
# our kernels under ORCINUS_ISA=avx2 / avxvnni. The default, native, is -march=native.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

usage() {
  sed -n '4p' "$0" | sed 's/^#   //' >&2
  exit 2
}
[[ $# -ge 1 ]] || usage
model="$1"
shift
p=512 n=128 t=2 r=3 rounds=3 extra_bufts=on llama_isa=native
while [[ $# -gt 0 ]]; do
  case "$1" in
    -p) p="$2"; shift 2 ;;
    -n) n="$2"; shift 2 ;;
    -t) t="$2"; shift 2 ;;
    -r) r="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --llama-no-extra-bufts) extra_bufts=off; shift ;;
    --llama-isa) llama_isa="$2"; shift 2 ;;
    *) usage ;;
  esac
done
[[ -f "$model" ]] || { echo "no such model file: $model" >&2; exit 1; }
model="$(cd "$(dirname "$model")" && pwd)/$(basename "$model")"

# llama-cpp-sys-2 needs cmake, a C++ compiler and libclang (bindgen).
if ! command -v cmake >/dev/null || ! dpkg -s libclang-dev >/dev/null 2>&1; then
  echo "installing cmake and libclang-dev (needed to build llama.cpp)" >&2
  if [[ $(id -u) -eq 0 ]]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq cmake libclang-dev g++ >/dev/null
fi

echo "building orcinus (release)" >&2
(cd "$root" && cargo build --release --quiet --bin orcinus)
ours="$root/target/release/orcinus"

baseline_dir="$root/benches/llama-cpp-baseline"
echo "building llama-cpp-baseline (release; the first build compiles llama.cpp)" >&2
# Run from its directory so that its .cargo/config.toml (target-cpu=native) applies; RUSTFLAGS
# replaces it for the other ISAs (llama-cpp-sys-2 turns Rust's target features into GGML_*).
case "$llama_isa" in
  native) (cd "$baseline_dir" && cargo build --release --quiet)
    theirs="$baseline_dir/target/release/llama-cpp-baseline" ;;
  avx2 | avxvnni)
    flags="-C target-cpu=x86-64-v3"
    [[ $llama_isa == avxvnni ]] && flags+=" -C target-feature=+avxvnni"
    (cd "$baseline_dir" && RUSTFLAGS="$flags" CARGO_TARGET_DIR="$baseline_dir/target-$llama_isa" \
      cargo build --release --quiet)
    theirs="$baseline_dir/target-$llama_isa/release/llama-cpp-baseline" ;;
  *) usage ;;
esac
llama_flags=()
[[ $extra_bufts == off ]] && llama_flags+=(--no-extra-bufts)

out="$root/target/bench-vs-llama"
mkdir -p "$out"
rm -f "$out"/*.json
for ((i = 1; i <= rounds; i++)); do
  echo "round $i/$rounds: orcinus" >&2
  "$ours" bench -m "$model" -p "$p" -n "$n" -t "$t" -r "$r" --json --no-bandwidth >"$out/orcinus-$i.json"
  echo "round $i/$rounds: llama.cpp" >&2
  "$theirs" -m "$model" -p "$p" -n "$n" -t "$t" -r "$r" "${llama_flags[@]}" >"$out/llama-$i.json"
done

python3 - "$out" "$rounds" "$t" "$extra_bufts" "$llama_isa" "${ORCINUS_ISA:-best}" <<'EOF'
import json, statistics, sys
out, rounds, threads, extra_bufts, llama_isa, ours_isa = sys.argv[1], int(sys.argv[2]), *sys.argv[3:]

def medians(prefix):
    runs = {}
    for i in range(1, rounds + 1):
        with open(f"{out}/{prefix}-{i}.json") as f:
            for t in json.load(f):
                runs.setdefault((t["n_prompt"], t["n_gen"]), []).append(t["avg_ts"])
    return {k: statistics.median(v) for k, v in runs.items()}

ours, theirs = medians("orcinus"), medians("llama")
print(f"threads {threads}, {rounds} rounds, orcinus kernels {ours_isa}, llama.cpp built for {llama_isa} "
      f"(use_extra_bufts {extra_bufts}); median t/s")
print("| test | orcinus t/s | llama.cpp t/s | orcinus / llama.cpp |")
print("| ---- | ----------: | ------------: | ------------------: |")
for key in sorted(ours, key=lambda k: (k[0] == 0, k)):
    name = f"pp{key[0]}" if key[0] else f"tg{key[1]}"
    o, l = ours[key], theirs.get(key)
    ratio = f"{o / l:.3f}" if l else "-"
    print(f"| {name} | {o:.2f} | {l:.2f} | {ratio} |" if l else f"| {name} | {o:.2f} | - | - |")
EOF
