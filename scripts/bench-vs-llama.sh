#!/usr/bin/env bash
# Orcinus against llama.cpp on the same GGUF file, the same tests and the same threads.
#
#   scripts/bench-vs-llama.sh MODEL [-p 512] [-n 128] [-t 2] [-r 3] [--rounds 3] [--llama-repack best|on|off] [--llama-isa native|avx2|avxvnni]
#
# Builds `orcinus` and benches/llama-cpp-baseline (llama.cpp through the llama-cpp-2 crate, built
# with cmake for this CPU: the first build takes 10-20 minutes on 2 cores) in release, then runs
# `orcinus bench --json` and `llama-cpp-baseline` alternately for --rounds rounds (each run does
# -r timed repetitions after a warm-up) and prints, per test, the median over the rounds of each
# one's mean t/s and the ratio orcinus / llama.cpp. The raw JSON of every run is kept in
# target/bench-vs-llama/.
#
# --llama-repack: llama.cpp's load-time re-layout of Q4_0/Q4_K/IQ4_NL/Q8_0 weights (and AMX buffers),
# use_extra_bufts, llama-bench's --repack. `on` and `off` run llama.cpp with that setting only;
# `best` (the default) runs it with both in every round and compares each test against the faster
# setting's median (the issue's "best setting per test": repacking helps tg and hurts pp on some
# CPUs). A setting whose run fails (llama.cpp's AMX path faults with SIGILL on VMs that advertise
# AMX but do not allow its tiles) is reported and left out. --llama-no-extra-bufts = --llama-repack off.
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
p=512 n=128 t=2 r=3 rounds=3 repack=best llama_isa=native
while [[ $# -gt 0 ]]; do
  case "$1" in
    -p) p="$2"; shift 2 ;;
    -n) n="$2"; shift 2 ;;
    -t) t="$2"; shift 2 ;;
    -r) r="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --llama-no-extra-bufts) repack=off; shift ;;
    --llama-repack) repack="$2"; shift 2 ;;
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
case "$repack" in
  best) settings=(on off) ;;
  on | off) settings=("$repack") ;;
  *) usage ;;
esac

out="$root/target/bench-vs-llama"
mkdir -p "$out"
rm -f "$out"/*.json
for ((i = 1; i <= rounds; i++)); do
  echo "round $i/$rounds: orcinus" >&2
  "$ours" bench -m "$model" -p "$p" -n "$n" -t "$t" -r "$r" --json --no-bandwidth >"$out/orcinus-$i.json"
  for s in "${settings[@]}"; do
    echo "round $i/$rounds: llama.cpp (repack $s)" >&2
    flags=()
    [[ $s == off ]] && flags+=(--no-extra-bufts)
    if ! "$theirs" -m "$model" -p "$p" -n "$n" -t "$t" -r "$r" "${flags[@]}" >"$out/llama-$s-$i.json"; then
      echo "llama.cpp failed with repack $s; that setting is left out" >&2
      rm -f "$out/llama-$s-$i.json"
    fi
  done
done

python3 - "$out" "$rounds" "$t" "$llama_isa" "${ORCINUS_ISA:-best}" "${settings[@]}" <<'EOF'
import json, os, statistics, sys
out, rounds, threads, llama_isa, ours_isa, *settings = sys.argv[1], int(sys.argv[2]), *sys.argv[3:]

def medians(prefix):
    runs = {}
    for i in range(1, rounds + 1):
        path = f"{out}/{prefix}-{i}.json"
        if not os.path.exists(path):
            continue
        with open(path) as f:
            for t in json.load(f):
                runs.setdefault((t["n_prompt"], t["n_gen"]), []).append(t["avg_ts"])
    return {k: statistics.median(v) for k, v in runs.items()}

ours = medians("orcinus")
theirs = {s: medians(f"llama-{s}") for s in settings}
print(f"threads {threads}, {rounds} rounds, orcinus kernels {ours_isa}, llama.cpp built for {llama_isa}; "
      f"median t/s; llama.cpp's best repack setting per test")
cols = "".join(f" llama.cpp repack {s} |" for s in settings)
print(f"| test | orcinus t/s |{cols} orcinus / best llama.cpp |")
print("| ---- | ----------: |" + " ---: |" * len(settings) + " ---: |")
for key in sorted(ours, key=lambda k: (k[0] == 0, k)):
    name = f"pp{key[0]}" if key[0] else f"tg{key[1]}"
    o = ours[key]
    vals = [theirs[s].get(key) for s in settings]
    shown = "".join(f" {v:.2f} |" if v else " - |" for v in vals)
    best = max((v for v in vals if v), default=None)
    ratio = f"**{o / best:.3f}**" if best else "-"
    print(f"| {name} | {o:.2f} |{shown} {ratio} |")
EOF
