//! Bit-exact agreement with ggml's reference code, llama.cpp release b2757, compiled from its C
//! source by `ggml-sys-bleedingedge`.
//!
//! For every type ggml b2757 has (all of ours but BF16): the bytes of our
//! [`GgmlType::quantize`] equal those of ggml's `from_float_reference`, and the f32 bits of our
//! [`GgmlType::dequantize`] equal those of ggml's `to_float` (for the types that have one), on
//! many random rows and on hand-made adversarial ones. Dequantization is also checked on random
//! bytes, so every bit pattern of a block is exercised, not only those a quantizer writes.
//!
//! ```text
//! CFLAGS="-D_GNU_SOURCE -ffp-contract=off" \
//!     cargo test -p orcinus-quant --features ggml-oracle --test oracle
//! ```
//! `-ffp-contract=off` keeps the C compiler (given `-mfma` by the build script on this host)
//! from fusing `a*b + c` into an FMA, which Rust never does. `-D_GNU_SOURCE` declares the
//! `CPU_ZERO`/`CPU_ALLOC`/`pthread_setaffinity_np` family that ggml.c uses; without it they are
//! implicit declarations (an error on gcc >= 14, unresolved symbols at link on older ones).
#![cfg(feature = "ggml-oracle")]

mod common;

use std::ffi::c_void;

use common::{adversarial_cases, init_ggml, random_cases, Case, ROW};
use ggml_sys_bleedingedge as ggml;
use orcinus_quant::GgmlType;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

type FromFloat = unsafe extern "C" fn(*const f32, *mut c_void, i64);
type ToFloat = unsafe extern "C" fn(*const c_void, *mut f32, i64);

extern "C" {
    // Q8_K is missing from ggml's type-traits table as a reference quantizer and has no
    // `to_float` there; both functions are exported by ggml-quants.c (ggml-quants.h).
    fn quantize_row_q8_K_reference(x: *const f32, y: *mut c_void, k: i64);
    fn dequantize_row_q8_K(x: *const c_void, y: *mut f32, k: i64);
}

/// ggml's reference functions for one type.
struct Oracle {
    quantize: FromFloat,
    dequantize: Option<ToFloat>,
}

fn oracle(ty: GgmlType) -> Oracle {
    init_ggml();
    if ty == GgmlType::Q8K {
        return Oracle {
            quantize: quantize_row_q8_K_reference,
            dequantize: Some(dequantize_row_q8_K),
        };
    }
    // SAFETY: reads a row of ggml's static type table; every id we pass is a ggml_type.
    let traits = unsafe { ggml::ggml_internal_get_type_traits(ty.id() as ggml::ggml_type) };
    assert_eq!(
        traits.blck_size as usize,
        ty.block_size(),
        "{ty} block size"
    );
    assert_eq!(traits.type_size, ty.type_size(), "{ty} type size");
    Oracle {
        quantize: traits
            .from_float_reference
            .unwrap_or_else(|| panic!("ggml has no reference quantizer for {ty}")),
        dequantize: traits.to_float,
    }
}

/// Hex of one block, for mismatch reports.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Quantizes and dequantizes `c` both ways; returns a description of the first mismatch.
fn check_case(ty: GgmlType, o: &Oracle, c: &Case) -> Option<String> {
    let n = c.x.len();
    let ts = ty.type_size();
    let bs = ty.block_size();
    let nbytes = ty.row_bytes(n).unwrap();

    let mut ours = vec![0u8; nbytes];
    ty.quantize(&c.x, &mut ours).unwrap();
    let mut theirs = vec![0u8; nbytes];
    // SAFETY: `c.x` holds `n` floats and `theirs` the `nbytes` that n elements of `ty` take.
    unsafe { (o.quantize)(c.x.as_ptr(), theirs.as_mut_ptr().cast(), n as i64) };
    if let Some(i) = ours.iter().zip(&theirs).position(|(a, b)| a != b) {
        let blk = i / ts;
        let block = blk * ts..(blk + 1) * ts;
        return Some(format!(
            "{ty} [{}]: quantize differs at block {blk} byte {} (row byte {i})\n  \
             input: {:?}\n  ours:  {}\n  ggml:  {}",
            c.name,
            i % ts,
            &c.x[blk * bs..(blk + 1) * bs],
            hex(&ours[block.clone()]),
            hex(&theirs[block]),
        ));
    }
    // Dequantize ggml's bytes, so this is checked even where quantize is not.
    check_dequantize(ty, o, &c.name, &theirs)
}

/// Dequantizes `bytes` both ways; returns a description of the first differing element.
fn check_dequantize(ty: GgmlType, o: &Oracle, name: &str, bytes: &[u8]) -> Option<String> {
    let to_float = o.dequantize?;
    let ts = ty.type_size();
    let bs = ty.block_size();
    let n = bytes.len() / ts * bs;
    let mut ours = vec![0f32; n];
    ty.dequantize(bytes, &mut ours).unwrap();
    let mut theirs = vec![0f32; n];
    // SAFETY: `bytes` holds n/bs whole blocks of `ty`, `theirs` holds n floats.
    unsafe { to_float(bytes.as_ptr().cast(), theirs.as_mut_ptr(), n as i64) };
    let i = ours
        .iter()
        .zip(&theirs)
        .position(|(a, b)| a.to_bits() != b.to_bits())?;
    let blk = i / bs;
    Some(format!(
        "{ty} [{name}]: dequantize differs at element {i} (block {blk}, index {}): \
         ours {} ({:#010x}), ggml {} ({:#010x})\n  block: {}",
        i % bs,
        ours[i],
        ours[i].to_bits(),
        theirs[i],
        theirs[i].to_bits(),
        hex(&bytes[blk * ts..(blk + 1) * ts]),
    ))
}

/// Runs every case for `ty` and fails with a report of all mismatching ones.
fn check_type(ty: GgmlType) {
    let o = oracle(ty);
    let mut failures = Vec::new();
    let k_quant = ty.block_size() == orcinus_quant::QK_K;
    let cases = random_cases().into_iter().chain(adversarial_cases());
    for c in cases.filter(|c| !(k_quant && c.tiny_scales)) {
        failures.extend(check_case(ty, &o, &c));
    }
    // Arbitrary bytes: every scale, minimum and quant pattern, including f16 inf and NaN.
    let mut rng = ChaCha8Rng::seed_from_u64(ty.id() as u64);
    for round in 0..8 {
        let mut bytes = vec![0u8; ty.row_bytes(ROW).unwrap()];
        rng.fill(&mut bytes[..]);
        failures.extend(check_dequantize(
            ty,
            &o,
            &format!("random bytes {round}"),
            &bytes,
        ));
    }
    if !failures.is_empty() {
        for f in failures.iter().take(20) {
            eprintln!("{f}\n");
        }
        panic!("{ty}: {} case(s) differ from ggml b2757", failures.len());
    }
}

/// One test per type.
macro_rules! oracle_tests {
    ($($name:ident => $ty:expr,)*) => {
        $(
            #[test]
            fn $name() {
                check_type($ty);
            }
        )*
    };
}

oracle_tests! {
    f16 => GgmlType::F16,
    q4_0 => GgmlType::Q4_0,
    q4_1 => GgmlType::Q4_1,
    q5_0 => GgmlType::Q5_0,
    q5_1 => GgmlType::Q5_1,
    q8_0 => GgmlType::Q8_0,
    q8_1 => GgmlType::Q8_1,
    q2_k => GgmlType::Q2K,
    q3_k => GgmlType::Q3K,
    q4_k => GgmlType::Q4K,
    q5_k => GgmlType::Q5K,
    q6_k => GgmlType::Q6K,
    q8_k => GgmlType::Q8K,
}

/// The cases themselves: finite, whole super-blocks, deterministic.
#[test]
fn cases_are_deterministic() {
    let a: Vec<u32> = random_cases()
        .iter()
        .chain(&adversarial_cases())
        .flat_map(|c| c.x.iter().map(|v| v.to_bits()))
        .collect();
    let b: Vec<u32> = random_cases()
        .iter()
        .chain(&adversarial_cases())
        .flat_map(|c| c.x.iter().map(|v| v.to_bits()))
        .collect();
    assert_eq!(a, b);
}
