#!/usr/bin/env bash
# Creates target/llama-ref-venv: a Python venv with llama.cpp, built from PyPI's
# `llama-cpp-python` sdist (which vendors llama.cpp), plus numpy, gguf and sentencepiece.
# It is used only to (re)generate the reference outputs in tests/data/reference/ with
# scripts/reference/make_reference.py; the Rust tests read those JSON files and never need
# this venv. Cached; safe to rerun.
#
# Build: CPU only, CMAKE_ARGS="-DGGML_NATIVE=ON -DLLAVA_BUILD=OFF" (ggml-cpu tuned for this
# host; no multimodal library, which the Python package loads only for image chat handlers),
# with scikit-build-core/cmake/ninja pinned and used without build isolation, at nice 10 and
# 2 parallel jobs. On the project's 2-core machine, shared with a fuzzer and Rust builds, the
# build took 809 s and the whole script 14 minutes (see tests/data/reference/README.md).
# Environment: LLAMA_REF_JOBS (parallel compile jobs, default 2), PYTHON (default python3).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="$root/target/llama-ref-venv"
python="${PYTHON:-python3}"

llama_cpp_python="llama-cpp-python==0.3.36"
build_tools="scikit-build-core==1.1.2 cmake==4.4.5 ninja==1.13.2 packaging==26.4 pathspec==1.1.1"
runtime="numpy==2.4.6 gguf==0.19.0 sentencepiece==0.2.3 typing-extensions==4.16.0 diskcache==5.6.3 jinja2==3.1.6 markupsafe==3.0.4"
cmake_args="-DGGML_NATIVE=ON -DLLAVA_BUILD=OFF"
stamp="$llama_cpp_python | $build_tools | $runtime | $cmake_args"

if [[ -x "$venv/bin/python" ]] && [[ "$(cat "$venv/.orcinus-reqs" 2>/dev/null)" == "$stamp" ]] \
  && "$venv/bin/python" -c "import llama_cpp" 2>/dev/null; then
  echo "llama-ref venv: cached ($venv)"
  exit 0
fi

"$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip --disable-pip-version-check)
"${pip[@]}" install --quiet $build_tools $runtime

# The sdist, from PyPI (pip checks its hash); the llama.cpp commit it vendors is recorded in
# the venv for make_reference.py.
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"${pip[@]}" download --quiet --no-deps --no-build-isolation --no-binary llama-cpp-python \
  -d "$tmp" "$llama_cpp_python"
sdist="$(ls "$tmp"/llama_cpp_python-*.tar.gz)"
"$venv/bin/python" - "$sdist" "$venv/llama.cpp-commit" <<'PY'
import sys, tarfile
sdist, out = sys.argv[1:]
with tarfile.open(sdist) as t:
    head = next(m for m in t if m.name.endswith("/.git/modules/vendor/llama.cpp/HEAD"))
    commit = t.extractfile(head).read().decode().strip()
open(out, "w").write(commit + "\n")
print("llama-ref venv: sdist vendors llama.cpp", commit)
PY

echo "llama-ref venv: building $llama_cpp_python (CMAKE_ARGS=$cmake_args); log in $venv/build.log"
start=$(date +%s)
CMAKE_ARGS="$cmake_args" CMAKE_BUILD_PARALLEL_LEVEL="${LLAMA_REF_JOBS:-2}" \
  nice -n 10 "${pip[@]}" install --no-build-isolation --no-deps --no-cache-dir --verbose \
  "$sdist" >"$venv/build.log" 2>&1 || {
  tail -n 40 "$venv/build.log" >&2
  echo "llama-ref venv: build failed (full log: $venv/build.log)" >&2
  exit 1
}
echo "llama-ref venv: built in $(( $(date +%s) - start )) s"
"$venv/bin/python" -c "import llama_cpp; print('llama-ref venv: llama_cpp', llama_cpp.__version__)"
echo "$stamp" > "$venv/.orcinus-reqs"
echo "llama-ref venv: $venv"
