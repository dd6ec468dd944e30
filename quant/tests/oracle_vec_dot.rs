//! Dot products against ggml's (llama.cpp b2757, compiled from its C source by
//! `ggml-sys-bleedingedge`): for every weight type, ggml's type-traits `vec_dot` and
//! [`GgmlType::vec_dot`] on the same bytes, and the activation quantizers (`from_float` of
//! each `vec_dot_type`) byte for byte.
//!
//! ```text
//! cargo test -p orcinus-quant --features ggml-oracle --test oracle_vec_dot -- --nocapture
//! ```
//! The `ggml-sys` build script compiles ggml with the host's SIMD flags (`-mavx2 -mfma -mf16c`
//! here), and ggml's SIMD dot kernels add in another order than its generic C code, which ours
//! transcribes: results then agree to `TOL · Σ|x̂ᵢ·ŷᵢ|`, and `--nocapture` prints the largest
//! difference per type. Built without SIMD, ggml runs its generic C code, and the results must
//! be bit-identical; the test notices which (`ggml_cpu_has_avx`, `_sse3`) and asserts that:
//! ```text
//! CFLAGS="-D_GNU_SOURCE -ffp-contract=off -mno-avx -mno-sse3" CARGO_TARGET_DIR=target/ggml-scalar \
//!     cargo test -p orcinus-quant --features ggml-oracle --test oracle_vec_dot
//! ```
//! (cc puts `CFLAGS` last, so `-mno-avx` overrides the build script's `-mavx2`.) The activation
//! quantizers compare against ggml's `from_float` as built: x86 SIMD for Q8_0/Q8_1 (which ours
//! follows), the reference code in the generic build.
#![cfg(feature = "ggml-oracle")]

mod common;

use std::ffi::c_void;

use common::{adversarial_cases, init_ggml, random_cases, Case, ROW};
use ggml_sys_bleedingedge as ggml;
use orcinus_quant::GgmlType;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Largest accepted `|ours - ggml| / Σ|x̂ᵢ·ŷᵢ|` against ggml's SIMD kernels.
const TOL: f64 = 1e-6;

type FromFloat = unsafe extern "C" fn(*const f32, *mut c_void, i64);
type VecDotFn =
    unsafe extern "C" fn(i32, *mut f32, usize, *const c_void, usize, *const c_void, usize, i32);

/// Whether the linked ggml was compiled without SIMD, so that it runs its generic C code.
fn ggml_is_scalar() -> bool {
    // SAFETY: these report compile-time flags and touch no state.
    unsafe { ggml::ggml_cpu_has_avx() == 0 && ggml::ggml_cpu_has_sse3() == 0 }
}

fn traits(ty: GgmlType) -> ggml::ggml_type_traits_t {
    init_ggml();
    // SAFETY: reads a row of ggml's static type table; every id we pass is a ggml_type.
    let t = unsafe { ggml::ggml_internal_get_type_traits(ty.id() as ggml::ggml_type) };
    assert_eq!(t.blck_size as usize, ty.block_size(), "{ty} block size");
    assert_eq!(t.type_size, ty.type_size(), "{ty} type size");
    t
}

/// ggml's activation quantizer for `at`, `None` for F32 (whose activations are the floats).
fn ggml_from_float(at: GgmlType) -> Option<FromFloat> {
    (at != GgmlType::F32).then(|| {
        traits(at)
            .from_float
            .unwrap_or_else(|| panic!("ggml has no from_float for {at}"))
    })
}

/// Our weight bytes for `x`: the reference quantizer (which gives ggml's bytes; oracle.rs).
fn weight_bytes(ty: GgmlType, x: &[f32]) -> Vec<u8> {
    let mut b = vec![0u8; ty.row_bytes(x.len()).unwrap()];
    ty.quantize(x, &mut b).unwrap();
    b
}

/// An activation row quantized to `at` by ggml, checked against ours byte for byte.
fn activation_bytes(at: GgmlType, c: &Case, failures: &mut Vec<String>) -> Vec<u8> {
    let n = c.x.len();
    let mut ours = vec![0u8; at.row_bytes(n).unwrap()];
    let Some(from_float) = ggml_from_float(at) else {
        at.from_float(&c.x, &mut ours).unwrap();
        return ours;
    };
    // ggml's x86 from_float is ours; its generic build's is the reference.
    if ggml_is_scalar() {
        at.quantize(&c.x, &mut ours).unwrap();
    } else {
        at.from_float(&c.x, &mut ours).unwrap();
    }
    // Zeroed: ggml's Q8_K quantizer leaves `bsums` of an all-zero block unwritten.
    let mut theirs = vec![0u8; ours.len()];
    // SAFETY: `c.x` holds n floats, `theirs` the bytes of n elements of `at`.
    unsafe { from_float(c.x.as_ptr(), theirs.as_mut_ptr().cast(), n as i64) };
    if let Some(i) = ours.iter().zip(&theirs).position(|(a, b)| a != b) {
        failures.push(format!(
            "{at} from_float [{}]: byte {i} (block {}) differs: ours {:#04x}, ggml {:#04x}",
            c.name,
            i / at.type_size(),
            ours[i],
            theirs[i]
        ));
    }
    theirs
}

/// The bytes of the quants in a block of the types whose weights have a minimum (an offset:
/// `x̂ = d·q - min`); zeroing them leaves a block that dequantizes to `-min`.
fn quant_bytes(ty: GgmlType) -> Option<std::ops::Range<usize>> {
    match ty {
        GgmlType::Q4_1 => Some(4..20),
        GgmlType::Q5_1 => Some(4..24),
        GgmlType::Q2K => Some(16..80),
        GgmlType::Q4K => Some(16..144),
        GgmlType::Q5K => Some(16..176),
        _ => None,
    }
}

/// The scale of a dot's rounding error: `Σ|x̂ᵢ·ŷᵢ|` in f64 over the dequantized rows, plus
/// `Σ|minᵢ·ŷᵢ|` for the types with a minimum, whose kernels sum `d·q·y` and `min·y`
/// separately (both can be far larger than their difference).
fn magnitude(ty: GgmlType, x: &[u8], at: GgmlType, y: &[u8], n: usize) -> f64 {
    let (mut xd, mut yd) = (vec![0f32; n], vec![0f32; n]);
    ty.dequantize(x, &mut xd).unwrap();
    at.dequantize(y, &mut yd).unwrap();
    let mut mins = vec![0f32; n];
    if let Some(quants) = quant_bytes(ty) {
        let mut no_quants = x.to_vec();
        for block in no_quants.chunks_exact_mut(ty.type_size()) {
            block[quants.clone()].fill(0);
        }
        ty.dequantize(&no_quants, &mut mins).unwrap();
    }
    xd.iter()
        .zip(&mins)
        .zip(&yd)
        .map(|((&a, &m), &b)| (a as f64 * b as f64).abs() + (m as f64 * b as f64).abs())
        .sum()
}

/// The largest difference seen for one type, and where.
#[derive(Default)]
struct Worst {
    scaled: f64,
    scaled_at: String,
    /// `|ours - ggml| / |ggml|`, over results not dominated by cancellation
    /// (`|ggml| >= 1e-3 · Σ|x̂ŷ|`).
    relative: f64,
    bit_exact: usize,
    total: usize,
}

fn check_type(ty: GgmlType) {
    let at = ty.vec_dot_type();
    let tw = traits(ty);
    assert_eq!(
        tw.vec_dot_type,
        at.id() as ggml::ggml_type,
        "{ty}: ggml's vec_dot_type"
    );
    // SAFETY: the bindings' vec_dot type is this signature (ggml_vec_dot_t).
    let vec_dot: VecDotFn = tw.vec_dot.expect("ggml has a vec_dot");
    let scalar = ggml_is_scalar();
    let k_quant = ty.block_size() == orcinus_quant::QK_K;
    let q8k = at == GgmlType::Q8K;
    let mut failures = Vec::new();
    let mut worst = Worst::default();

    let all: Vec<Case> = random_cases()
        .into_iter()
        .chain(adversarial_cases())
        .collect();
    // Weights: every case; plus random bytes (every scale and quant pattern, f16 inf/NaN too).
    let mut weights: Vec<(String, Vec<u8>)> = all
        .iter()
        .filter(|c| !(k_quant && c.tiny_scales))
        .map(|c| (c.name.clone(), weight_bytes(ty, &c.x)))
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(1000 + ty.id() as u64);
    for r in 0..8 {
        let mut b = vec![0u8; ty.row_bytes(ROW).unwrap()];
        rng.fill(&mut b[..]);
        weights.push((format!("random bytes {r}"), b));
    }
    // Activations: every case (Q8_K's quantizer aborts on tiny scales, as the K-quants').
    let activations: Vec<(String, Vec<u8>)> = all
        .iter()
        .filter(|c| !(q8k && c.tiny_scales))
        .map(|c| (c.name.clone(), activation_bytes(at, c, &mut failures)))
        .collect();

    // Each weight row against a few activation rows, cycling through all of them.
    for (wi, (wname, x)) in weights.iter().enumerate() {
        for r in 0..3 {
            let (aname, y) = &activations[(wi * 7 + r * 31) % activations.len()];
            let ours = ty.vec_dot(x, y, ROW).unwrap();
            let mut theirs = f32::NAN;
            // SAFETY: x holds ROW elements of `ty`, y ROW elements of its vec_dot_type; one row.
            unsafe {
                vec_dot(
                    ROW as i32,
                    &mut theirs,
                    0,
                    x.as_ptr().cast(),
                    0,
                    y.as_ptr().cast(),
                    0,
                    1,
                )
            };
            let case = format!("[{wname}] · [{aname}]");
            worst.total += 1;
            if ours.to_bits() == theirs.to_bits() || (ours.is_nan() && theirs.is_nan()) {
                worst.bit_exact += 1;
                continue;
            }
            let mag = magnitude(ty, x, at, y, ROW);
            let diff = (ours as f64 - theirs as f64).abs();
            let scaled = diff / mag;
            if scalar || !ours.is_finite() || !theirs.is_finite() || scaled.is_nan() || scaled > TOL
            {
                failures.push(format!(
                    "{ty}·{at} {case}: ours {ours:e}, ggml {theirs:e} (diff / Σ|x̂ŷ| = {scaled:.2e})"
                ));
            }
            if scaled > worst.scaled {
                worst.scaled = scaled;
                worst.scaled_at = case;
            }
            if theirs.abs() as f64 >= 1e-3 * mag {
                worst.relative = worst.relative.max(diff / theirs.abs() as f64);
            }
        }
    }
    eprintln!(
        "{:<5}·{:<5} ggml {}: {}/{} bit-exact; max diff / magnitude = {:.2e} ({}); max relative = {:.2e}",
        ty.name(),
        at.name(),
        if scalar { "generic C" } else { "SIMD" },
        worst.bit_exact,
        worst.total,
        worst.scaled,
        worst.scaled_at,
        worst.relative
    );
    if !failures.is_empty() {
        for f in failures.iter().take(20) {
            eprintln!("{f}");
        }
        panic!("{ty}: {} difference(s) from ggml b2757", failures.len());
    }
}

/// One test per weight type.
macro_rules! vec_dot_tests {
    ($($name:ident => $ty:expr,)*) => {
        $(
            #[test]
            fn $name() {
                check_type($ty);
            }
        )*
    };
}

vec_dot_tests! {
    f32 => GgmlType::F32,
    f16 => GgmlType::F16,
    q4_0 => GgmlType::Q4_0,
    q4_1 => GgmlType::Q4_1,
    q5_0 => GgmlType::Q5_0,
    q5_1 => GgmlType::Q5_1,
    q8_0 => GgmlType::Q8_0,
    q2_k => GgmlType::Q2K,
    q3_k => GgmlType::Q3K,
    q4_k => GgmlType::Q4K,
    q5_k => GgmlType::Q5K,
    q6_k => GgmlType::Q6K,
}
