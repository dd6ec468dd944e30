//! Fuzzes the GGUF parser and everything `orcinus inspect` does with what it parses.
//!
//! Run: `RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir tests/fuzz gguf_parse` (from the repo root);
//! seed corpus: `scripts/fuzz-seeds.sh`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../../src/bin/orcinus/inspect.rs"]
mod inspect;

fuzz_target!(|data: &[u8]| {
    let Ok(f) = orcinus::gguf::File::from_bytes(data.to_vec()) else {
        return;
    };
    // The inspect command's text and JSON renderings.
    let _ = inspect::render(&f, "fuzz", false, false);
    let _ = inspect::render(&f, "fuzz", true, false);
    // Dequantize every (small) tensor through the type table.
    for t in f.tensors() {
        if t.info.n_elements() <= 1 << 16 {
            let v = t.to_f32().expect("validated tensor dequantizes");
            assert_eq!(v.len() as u64, t.info.n_elements());
        }
    }
});
