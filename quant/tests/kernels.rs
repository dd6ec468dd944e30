//! Every SIMD kernel against the scalar reference, on every instruction set this CPU has:
//! random and adversarial blocks (all-max quants, extreme and subnormal f16 scales, zeros,
//! alternating signs, -128 activation quants), rows of 1, 2, 3, 7 and 16 blocks.
//!
//! Integer sums are exact in every kernel, so the only difference from the reference is the
//! order of the float accumulation: `|simd - scalar| <= 1e-5 · Σ|terms| + 1e-30`, with
//! `Σ|terms|` from the dequantized values in f64 (the scale and the minimum parts of each
//! weight counted separately, since the kernels sum them separately). The multi-row kernels
//! must give, row by row, the bits of the single-row kernel. The GEMM tiles of the 32-element
//! types must give the reference's bits, for every activation pattern (-128 included).

use orcinus_quant::kernels::{self, Isa};
use orcinus_quant::GgmlType;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Pattern {
    Random,
    /// Every quant byte 0xff (activations 127), scales 65504.
    Max,
    /// Random quants, scales -65504.
    MinScale,
    Zeros,
    /// Random quants, subnormal f16 scales (and tiny f32 Q8_K scales).
    Subnormal,
    /// Bytes alternating 0x0f/0xf0 (weights) and 127/-128 (activations).
    Alternating,
    /// Random weights, every activation quant -128.
    Neg128,
}

const PATTERNS: [Pattern; 7] = [
    Pattern::Random,
    Pattern::Max,
    Pattern::MinScale,
    Pattern::Zeros,
    Pattern::Subnormal,
    Pattern::Alternating,
    Pattern::Neg128,
];

/// Byte offsets of the f16 scale fields of a weight block, and of the one holding a minimum
/// (subtracted or added as a whole, so it is counted apart in `Σ|terms|`).
fn layout(ty: GgmlType) -> Option<(&'static [usize], Option<usize>)> {
    Some(match ty {
        GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => (&[0], None),
        GgmlType::Q4_1 | GgmlType::Q5_1 => (&[0, 2], Some(2)),
        GgmlType::Q4K | GgmlType::Q5K => (&[0, 2], Some(2)),
        GgmlType::Q2K => (&[80, 82], Some(82)),
        GgmlType::Q3K => (&[108], None),
        GgmlType::Q6K => (&[208], None),
        _ => return None,
    })
}

fn f16_scale(p: Pattern, rng: &mut ChaCha8Rng) -> half::f16 {
    let sign = if rng.gen::<bool>() { -1.0 } else { 1.0 };
    match p {
        Pattern::Max => half::f16::from_f32(65504.0),
        Pattern::MinScale => half::f16::from_f32(-65504.0),
        Pattern::Zeros => half::f16::ZERO,
        Pattern::Subnormal => {
            half::f16::from_bits(rng.gen_range(1..0x400u16) | if sign < 0.0 { 0x8000 } else { 0 })
        }
        _ => half::f16::from_f32(sign * rng.gen_range(0.001f32..4.0)),
    }
}

fn put_f16(b: &mut [u8], off: usize, v: half::f16) {
    b[off..off + 2].copy_from_slice(&v.to_bits().to_le_bytes());
}

/// `nb` weight blocks of `ty` in pattern `p`.
fn weights(ty: GgmlType, nb: usize, p: Pattern, rng: &mut ChaCha8Rng) -> Vec<u8> {
    let ts = ty.type_size();
    if ty == GgmlType::F16 {
        return (0..nb)
            .flat_map(|i| f16_value(p, i, rng).to_bits().to_le_bytes())
            .collect();
    }
    let (scales, _) = layout(ty).unwrap();
    let mut out = vec![0u8; nb * ts];
    for (i, b) in out.chunks_exact_mut(ts).enumerate() {
        for (j, v) in b.iter_mut().enumerate() {
            *v = match p {
                Pattern::Max => 0xff,
                Pattern::Zeros => 0,
                Pattern::Alternating => [0x0f, 0xf0, 0x80, 0x7f][(i + j) % 4],
                _ => rng.gen(),
            };
        }
        for &off in scales {
            let s = f16_scale(p, rng);
            put_f16(b, off, s);
        }
    }
    out
}

fn f16_value(p: Pattern, i: usize, rng: &mut ChaCha8Rng) -> half::f16 {
    match p {
        Pattern::Max => half::f16::from_f32(if i.is_multiple_of(2) {
            65504.0
        } else {
            -65504.0
        }),
        Pattern::Zeros => half::f16::ZERO,
        Pattern::Alternating => half::f16::from_f32(if i.is_multiple_of(2) { 1.5 } else { -3.25 }),
        _ => f16_scale(p, rng),
    }
}

/// `nb` blocks of activation type `at` holding as many elements as `nb_w` weight blocks.
fn activations(at: GgmlType, n: usize, p: Pattern, rng: &mut ChaCha8Rng) -> Vec<u8> {
    let nb = n / at.block_size();
    let ts = at.type_size();
    if at == GgmlType::F16 {
        return (0..n)
            .flat_map(|i| {
                let p = if p == Pattern::Neg128 {
                    Pattern::Random
                } else {
                    p
                };
                f16_value(p, i + 1, rng).to_bits().to_le_bytes()
            })
            .collect();
    }
    let (qs_off, nq) = match at {
        GgmlType::Q8_0 => (2, 32),
        GgmlType::Q8_1 => (4, 32),
        GgmlType::Q8K => (4, 256),
        _ => unreachable!("{at}"),
    };
    let mut out = vec![0u8; nb * ts];
    for b in out.chunks_exact_mut(ts) {
        let qs: Vec<i8> = (0..nq)
            .map(|j| match p {
                Pattern::Max => 127,
                Pattern::Zeros => 0,
                Pattern::Alternating => [127, -128][j % 2],
                Pattern::Neg128 => -128,
                _ => rng.gen(),
            })
            .collect();
        for (v, &q) in b[qs_off..qs_off + nq].iter_mut().zip(&qs) {
            *v = q as u8;
        }
        match at {
            GgmlType::Q8K => {
                let d: f32 = match p {
                    Pattern::Max => 1e4,
                    Pattern::MinScale => -1e4,
                    Pattern::Zeros => 0.0,
                    Pattern::Subnormal => 1e-41,
                    _ => rng.gen_range(-0.1f32..0.1),
                };
                b[0..4].copy_from_slice(&d.to_le_bytes());
                for (s, q) in qs.chunks_exact(16).enumerate() {
                    let sum: i32 = q.iter().map(|&v| v as i32).sum();
                    let off = 260 + 2 * s;
                    b[off..off + 2].copy_from_slice(&(sum as i16).to_le_bytes());
                }
            }
            _ => {
                let d = f16_scale(p, rng);
                put_f16(b, 0, d);
                if at == GgmlType::Q8_1 {
                    let sum: i32 = qs.iter().map(|&v| v as i32).sum();
                    let s = (d.to_f32() * sum as f32).clamp(-65504.0, 65504.0);
                    put_f16(b, 2, half::f16::from_f32(s));
                }
            }
        }
    }
    out
}

/// `Σ|terms|` in f64: per element `(|scale part| + |min part|) · |activation|`.
fn magnitude(ty: GgmlType, w: &[u8], a: &[u8], n: usize) -> f64 {
    let at = ty.vec_dot_type();
    let deq = |t: GgmlType, b: &[u8]| {
        let mut v = vec![0f32; n];
        t.dequantize(b, &mut v).unwrap();
        v
    };
    let wd = deq(ty, w);
    let ad = deq(at, a);
    // |s| + |m| = max(|s - m|, |s + m|): dequantize again with the minimum negated.
    let wflip = match layout(ty).and_then(|l| l.1) {
        Some(off) => {
            let mut w2 = w.to_vec();
            for b in w2.chunks_exact_mut(ty.type_size()) {
                b[off + 1] ^= 0x80;
            }
            deq(ty, &w2)
        }
        None => wd.clone(),
    };
    let mut mag = 0f64;
    for i in 0..n {
        let wm = (wd[i] as f64).abs().max((wflip[i] as f64).abs());
        mag += wm * (ad[i] as f64).abs();
    }
    // Q4_1/Q5_1 add `m·s` with the block's stored `s` (`d·Σq`, rounded to f16).
    if at == GgmlType::Q8_1 {
        for (wb, ab) in w.chunks_exact(ty.type_size()).zip(a.chunks_exact(36)) {
            let m = half::f16::from_le_bytes([wb[2], wb[3]]).to_f32() as f64;
            let s = half::f16::from_le_bytes([ab[2], ab[3]]).to_f32() as f64;
            mag += (m * s).abs();
        }
    }
    mag
}

fn check(ty: GgmlType, isa: Isa, what: &str, got: f32, want: f32, mag: f64) {
    if want.is_nan() {
        assert!(got.is_nan(), "{ty} {isa} {what}: {got} vs NaN");
        return;
    }
    let tol = 1e-5 * mag + 1e-30;
    let diff = (got as f64 - want as f64).abs();
    assert!(
        diff <= tol || got == want,
        "{ty} {isa} {what}: simd {got:e} scalar {want:e} (|diff| {diff:e} > {tol:e})"
    );
}

fn tested_types() -> impl Iterator<Item = GgmlType> {
    GgmlType::all().filter(|&t| t == GgmlType::F16 || layout(t).is_some())
}

#[test]
fn every_kernel_matches_scalar() {
    let mut rng = ChaCha8Rng::seed_from_u64(0x5eed);
    let mut checked = 0;
    for &isa in kernels::available_isas() {
        for ty in tested_types() {
            let Some(simd) = kernels::vec_dot_for(ty, isa) else {
                continue;
            };
            let at = ty.vec_dot_type();
            let lens: &[usize] = if ty == GgmlType::F16 {
                &[1, 2, 3, 7, 16, 31, 32, 69, 300]
            } else {
                &[1, 2, 3, 7, 16]
            };
            for &nb in lens {
                let n = nb * ty.block_size();
                for p in PATTERNS {
                    for rep in 0..3 {
                        let w = weights(ty, nb, p, &mut rng);
                        let a = activations(at, n, p, &mut rng);
                        let want = ty.vec_dot(&w, &a, n).unwrap();
                        let got = simd(&w, &a);
                        let what = format!("{p:?} {nb} blocks #{rep}");
                        check(ty, isa, &what, got, want, magnitude(ty, &w, &a, n));
                        checked += 1;
                    }
                }
            }
        }
    }
    eprintln!("{checked} dot products checked");
}

/// The many-weight-rows (decode) kernels give, row by row, the single-row kernel's bits; every
/// ISA that has a single-row SIMD kernel has one (and the scalar ISA none).
#[test]
fn many_row_kernels_equal_single_row() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for &isa in kernels::available_isas() {
        for ty in tested_types() {
            let many = kernels::vec_dot_many_for(ty, isa);
            assert_eq!(
                many.is_some(),
                kernels::simd_vec_dot(ty, isa).is_some(),
                "{ty} {isa}"
            );
            let Some(many) = many else {
                continue;
            };
            let single = kernels::vec_dot_for(ty, isa).unwrap();
            let at = ty.vec_dot_type();
            // 64 and 65 super-blocks: the longest row whose activations the AVX-512 Q4_K/Q5_K
            // decode kernel prepares, and the shortest it leaves as they are.
            for nb in [1, 3, 7, 16, 64, 65] {
                let n = nb * ty.block_size();
                let rb = ty.row_bytes(n).unwrap();
                for p in PATTERNS {
                    // Five rows of different patterns, against one activation row.
                    let w: Vec<u8> = (0..5)
                        .flat_map(|r| {
                            let p = if r % 2 == 1 { Pattern::Random } else { p };
                            weights(ty, nb, p, &mut rng)
                        })
                        .collect();
                    let a = activations(at, n, p, &mut rng);
                    for rows in [1, 2, 5] {
                        let mut out = vec![f32::NAN; rows];
                        many(&w[..rows * rb], &a, &mut out);
                        for (j, &o) in out.iter().enumerate() {
                            let want = single(&w[j * rb..(j + 1) * rb], &a);
                            assert_eq!(
                                o.to_bits(),
                                want.to_bits(),
                                "{ty} {isa} {p:?} {nb} blocks, {rows} rows, row {j}: {o} vs {want}"
                            );
                        }
                    }
                }
            }
        }
    }
}

/// Empty rows: every many-weight-rows kernel writes zeros (the empty sum), as the single-row
/// kernels return for an empty row.
#[test]
fn many_row_kernels_on_empty_rows_give_zeros() {
    for &isa in kernels::available_isas() {
        for ty in tested_types() {
            let Some(many) = kernels::vec_dot_many_for(ty, isa) else {
                continue;
            };
            let mut out = [f32::NAN; 3];
            many(&[], &[], &mut out);
            assert_eq!(out, [0.0; 3], "{ty} {isa}");
            let single = kernels::vec_dot_for(ty, isa).unwrap();
            assert_eq!(single(&[], &[]), 0.0, "{ty} {isa}");
        }
    }
}

#[test]
fn multi_row_kernels_equal_single_row() {
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    for &isa in kernels::available_isas() {
        for ty in tested_types() {
            let Some(rows) = kernels::vec_dot_rows_for(ty, isa) else {
                continue;
            };
            let single = kernels::vec_dot_for(ty, isa).unwrap();
            let at = ty.vec_dot_type();
            for nb in [1, 3, 7, 16] {
                let n = nb * ty.block_size();
                for p in PATTERNS {
                    let w = weights(ty, nb, p, &mut rng);
                    let acts: Vec<u8> = (0..kernels::MAX_ROWS)
                        .flat_map(|r| {
                            let p = if r % 2 == 1 { Pattern::Random } else { p };
                            activations(at, n, p, &mut rng)
                        })
                        .collect();
                    let arb = at.row_bytes(n).unwrap();
                    for r in 1..=kernels::MAX_ROWS {
                        let mut out = vec![f32::NAN; r];
                        rows(&w, &acts[..r * arb], &mut out);
                        for (t, &o) in out.iter().enumerate() {
                            let want = single(&w, &acts[t * arb..(t + 1) * arb]);
                            assert_eq!(
                                o.to_bits(),
                                want.to_bits(),
                                "{ty} {isa} {p:?} {nb} blocks, {r} rows, row {t}: {o} vs {want}"
                            );
                        }
                    }
                }
            }
        }
    }
}

/// The GEMM tiles of the legacy types give, output by output, the scalar reference's bits,
/// with activation blocks of every pattern (so -128 quants, which the quantizer never writes
/// but the tile must take) and rows of 9 and 18 blocks (576 elements, SmolLM2's width), on
/// every instruction set with a GEMM. (`QMatMul`'s tests run the same tiles on quantized
/// activations.)
#[test]
fn legacy_gemm_tiles_give_the_reference_bits() {
    use orcinus_quant::kernels::gemm::GEMM_ROWS;
    let mut rng = ChaCha8Rng::seed_from_u64(44);
    let legacy = [
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q8_0,
    ];
    let mut tiles = 0;
    for &isa in kernels::available_isas() {
        for ty in legacy {
            let Some(tile) = kernels::gemm_tile_for(ty, isa) else {
                continue;
            };
            let at = ty.vec_dot_type();
            for (nb, rows) in [(9, 20), (18, 16), (18, 32)] {
                let n = nb * 32;
                let (rb, arb) = (ty.row_bytes(n).unwrap(), at.row_bytes(n).unwrap());
                let w: Vec<u8> = (0..rows)
                    .flat_map(|r| {
                        let p = [Pattern::Random, Pattern::Max, Pattern::Alternating][r % 3];
                        weights(ty, nb, p, &mut rng)
                    })
                    .collect();
                let m = PATTERNS.len();
                let a: Vec<u8> = PATTERNS
                    .iter()
                    .flat_map(|&p| activations(at, n, p, &mut rng))
                    .collect();
                let aux = kernels::gemm_aux_for(ty, isa, &a, m, n);
                let mut scratch = Vec::new();
                let mut out = vec![f32::NAN; m * GEMM_ROWS];
                tile(&w, rows, &a, &aux, m, &mut scratch, &mut out);
                for t in 0..m {
                    for i in 0..rows {
                        let want = ty
                            .vec_dot(&w[i * rb..(i + 1) * rb], &a[t * arb..(t + 1) * arb], n)
                            .unwrap();
                        let got = out[t * GEMM_ROWS + i];
                        assert!(
                            got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                            "{ty} {isa} {:?} {nb} blocks, row {i}: {got} vs {want}",
                            PATTERNS[t]
                        );
                    }
                }
                tiles += 1;
            }
        }
    }
    if kernels::available_isas().contains(&Isa::Avx2) {
        assert!(tiles >= 15, "{tiles}");
    }
}

/// The kernels of the K-quants and Q8_0, the types of the benchmark models, exist on every
/// x86 instruction set.
#[test]
fn main_types_have_simd_kernels() {
    for &isa in kernels::available_isas() {
        if isa == Isa::Scalar {
            continue;
        }
        for ty in [GgmlType::Q4K, GgmlType::Q6K, GgmlType::Q8_0, GgmlType::Q5K] {
            assert!(kernels::simd_vec_dot(ty, isa).is_some(), "{ty} {isa}");
            assert!(kernels::vec_dot_rows_for(ty, isa).is_some(), "{ty} {isa}");
        }
    }
}

/// `ORCINUS_ISA` is read in a child process (the variable is process-global): `scalar` forces
/// the scalar path, an unknown value warns and falls back to the best available.
#[test]
fn orcinus_isa_env_override() {
    let exe = std::env::current_exe().unwrap();
    let best = *kernels::available_isas().last().unwrap();
    for (value, expect, warns) in [
        ("scalar", Isa::Scalar, false),
        ("bogus", best, true),
        (best.name(), best, false),
    ] {
        let out = std::process::Command::new(&exe)
            .args(["--exact", "isa_in_child", "--nocapture", "--test-threads=1"])
            .env("ORCINUS_ISA", value)
            .env("ORCINUS_TEST_EXPECT_ISA", expect.name())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "ORCINUS_ISA={value}: {stderr}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("1 passed"),
            "child did not run"
        );
        assert_eq!(stderr.contains("ORCINUS_ISA=bogus"), warns, "{stderr}");
    }
}

/// Run by `orcinus_isa_env_override` in a child process; does nothing otherwise.
#[test]
fn isa_in_child() {
    if let Ok(expect) = std::env::var("ORCINUS_TEST_EXPECT_ISA") {
        assert_eq!(kernels::isa().name(), expect);
    }
}

/// The SIMD activation quantizers (Q8_K, Q8_0, Q8_1) give the reference's bytes: random rows, ties between
/// `+max` and `-max` (the first wins), all zeros, values that round at exactly .5, tiny
/// (down to subnormal) and huge magnitudes, and rows with a NaN or an infinity (which go to
/// the reference); into aligned and unaligned destinations.
#[test]
fn activation_quantizers_equal_reference() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let n = 4 * 256;
    let mut rows: Vec<Vec<f32>> = Vec::new();
    // 1e-38 and 1e-44: |max| below 127 / f32::MAX, so `iscale` overflows (subnormals).
    for scale in [1.0f32, 1e-30, 1e30, 3.5, 1e-38, 1e-44] {
        rows.push((0..n).map(|_| rng.gen_range(-1.0..1.0) * scale).collect());
    }
    let mut ties: Vec<f32> = (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect();
    ties[5] = -2.0;
    ties[200] = 2.0;
    ties[256 + 9] = 2.0;
    ties[256 + 10] = -2.0;
    rows.push(ties);
    let mut halves: Vec<f32> = (0..n).map(|i| (i % 255) as f32 - 127.0).collect();
    halves[0] = -127.0; // iscale 1: integers, then .5 steps below
    for (i, v) in halves.iter_mut().enumerate().skip(256) {
        *v = (i % 64) as f32 * 0.5 - 16.0;
    }
    rows.push(halves);
    // Every block: 127 first (`d` 1, so the products are the values), then ties at k + 0.5.
    rows.push(
        (0..n)
            .map(|i| {
                if i % 32 == 0 {
                    127.0
                } else {
                    (i % 32) as f32 * 0.5 - 8.25 + 0.25
                }
            })
            .collect(),
    );
    let mut zeros = vec![0.0f32; n];
    zeros[700] = -0.0;
    rows.push(zeros);
    let mut odd: Vec<f32> = (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect();
    odd[3] = f32::NAN;
    odd[300] = f32::INFINITY;
    odd[600] = f32::NEG_INFINITY;
    rows.push(odd);
    for (at, isa) in [GgmlType::Q8K, GgmlType::Q8_0, GgmlType::Q8_1]
        .into_iter()
        .flat_map(|at| {
            kernels::available_isas()
                .iter()
                .copied()
                .map(move |isa| (at, isa))
        })
    {
        let reference = kernels::from_float_for(at, Isa::Scalar);
        let rb = at.row_bytes(n).unwrap();
        let f = kernels::from_float_for(at, isa);
        for (r, x) in rows.iter().enumerate() {
            let (mut want, mut got) = (vec![0u8; rb], vec![0xa5u8; rb + 1]);
            reference(x, &mut want);
            f(x, &mut got[..rb]);
            assert!(
                want == got[..rb],
                "{at} {isa}: row {r} differs from the reference"
            );
            // A destination not aligned for the blocks (written through a copy).
            f(x, &mut got[1..]);
            assert!(
                want == got[1..],
                "{at} {isa}: row {r}, unaligned, differs from the reference"
            );
        }
    }
}
