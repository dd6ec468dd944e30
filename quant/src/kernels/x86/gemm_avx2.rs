//! The 256-bit micro-kernels of the K-quant GEMM (layout and formula in `kernels/gemm.rs`):
//! the sixteen rows of a packed tile in two 256-bit vectors of i32 lanes. AVX2 ([`tokens`],
//! [`TOKENS`] tokens at a time): without VNNI the four-byte products go through
//! `vpmaddubsw` (i16 pairs), which are summed in i16 over [`GemmPack::STEPS_I16`] steps
//! (exact: the bound is checked in `kernels/gemm.rs`) and then scaled and widened at once by
//! `vpmaddwd` against the group's scale in both i16 halves of each lane. AVX-VNNI
//! ([`tokens_vnni`], [`TOKENS_VNNI`] tokens at a time): `vpdpbusd` into i32 group sums, scaled
//! by `vpmulld`, as the AVX-512 kernel does. All integer sums are exact.
//!
//! The legacy types (Q4_0 ... Q8_0, [`tokens_legacy`]) take the same packed tile, eight
//! blocks of 32 per super-block: each block's exact integer sum (AVX-VNNI `vpdpbusd`; AVX2
//! `vpmaddubsw` pairs summed in i16 over [`LegacyPack::STEPS_I16`] steps and widened by
//! `vpmaddwd`; Q8_0 on AVX2 has its own kernel, `gemm_i16.rs`), then the block's term added
//! to the f32 sums in the scalar reference's order, so the results have its bits.

use std::arch::x86_64::*;

use super::super::gemm::{
    corr_words, GemmPack, LegacyAct, LegacyPack, PackedSb, Square, GEMM_ROWS, STEPS, TILE_ROWS,
};
use super::avx2::{dot_u8i8, madd_acc, NO_VNNI, VEX_VNNI};
use crate::formats::q8_k::BlockQ8K;

/// Tokens per call of [`tokens`]: per token two i16 sums and two i32 sums, besides the two
/// weight vectors and the broadcast word (fifteen of the sixteen registers; the scales are
/// read from memory). Two tokens, or four, measured 10-20% slower on the Q4_K GEMM of a
/// 4096-wide matrix (Zen 4).
pub(super) const TOKENS: usize = 3;

/// The two halves (rows 0..8, 8..16) of a lane array.
#[inline(always)]
unsafe fn halves<T>(lanes: &[T; TILE_ROWS]) -> [__m256i; 2] {
    let p = lanes.as_ptr().cast::<__m256i>();
    [_mm256_loadu_si256(p), _mm256_loadu_si256(p.add(1))]
}

/// Four activation bytes (or two i16) at `p`, broadcast to every i32 lane.
#[inline(always)]
unsafe fn bcast<T>(p: *const T) -> __m256i {
    _mm256_set1_epi32(std::ptr::read_unaligned(p.cast::<i32>()))
}

/// `out[t][i] += Σ_b` (super-block `b` of `sbs`) · `y[t][b]`, for `T` tokens (`out` rows
/// [`GEMM_ROWS`] apart): the float sums live in `out`, updated once per super-block (in
/// [`tokens_vnni`]'s order), so that the caller can run the tile in chunks of super-blocks
/// that stay in the L1 cache while every token passes through them.
///
/// # Safety
/// The CPU must have AVX2 and FMA (the caller's `target_feature`).
#[inline(always)]
#[allow(clippy::needless_range_loop)] // `h` picks a half of `sb`'s lanes and of each `s[t]`
pub(super) unsafe fn tokens<B: GemmPack, const T: usize>(
    sbs: &[PackedSb],
    y: [&[BlockQ8K]; T],
    out: &mut [f32],
) {
    assert!(y.iter().all(|y| y.len() == sbs.len()));
    assert!(out.len() >= (T - 1) * GEMM_ROWS + TILE_ROWS);
    let steps = STEPS / B::GROUPS;
    let o = out.as_mut_ptr();
    for (b, sb) in sbs.iter().enumerate() {
        // SAFETY (get_unchecked): `b < sbs.len() == y[t].len()` (asserted).
        let ys: [&BlockQ8K; T] = std::array::from_fn(|t| y[t].get_unchecked(b));
        let mut s = [[_mm256_setzero_si256(); 2]; T];
        for g in 0..B::GROUPS {
            // The group's scale in both i16 halves of each lane ([`pair_scales`]), read
            // by `vpmaddwd` from memory: no registers held.
            let sc = sb.sc[g].as_ptr().cast::<__m256i>();
            for c0 in (g * steps..(g + 1) * steps).step_by(B::STEPS_I16) {
                let mut p16 = [[_mm256_setzero_si256(); 2]; T];
                for p in c0..c0 + B::STEPS_I16 {
                    let w = halves(&sb.wq[p]);
                    for t in 0..T {
                        let yq = bcast(ys[t].qs.as_ptr().add(4 * p));
                        for h in 0..2 {
                            let prod = _mm256_maddubs_epi16(w[h], yq);
                            p16[t][h] = _mm256_add_epi16(p16[t][h], prod);
                        }
                    }
                }
                for t in 0..T {
                    for h in 0..2 {
                        let sc = _mm256_loadu_si256(sc.add(h));
                        s[t][h] = _mm256_add_epi32(s[t][h], _mm256_madd_epi16(p16[t][h], sc));
                    }
                }
            }
        }
        // SAFETY: `out` holds `T` rows from `o` (asserted above).
        add_super_block::<B, NO_VNNI, T>(sb, &ys, &s, o);
    }
}

/// The end of super-block `sb` for `T` tokens, shared by [`tokens`] and [`tokens_vnni`]:
/// each token's correction sum (`corr` against its [`corr_words`], exact), then its scaled
/// sums `s[t]` and the correction added to its float sums at `o` (rows [`GEMM_ROWS`] apart)
/// by two fused multiply-adds, half by half.
///
/// # Safety
/// `o` must hold `(T - 1) * GEMM_ROWS + TILE_ROWS` floats; the CPU must have AVX2 and FMA, and
/// AVX-VNNI where `VNNI` says so (the caller's `target_feature`).
#[inline(always)]
#[allow(clippy::needless_range_loop)] // `h` picks a half of `sb`'s lanes and of each `s[t]`
unsafe fn add_super_block<B: GemmPack, const VNNI: u8, const T: usize>(
    sb: &PackedSb,
    ys: &[&BlockQ8K; T],
    s: &[[__m256i; 2]; T],
    o: *mut f32,
) {
    let words: [[i32; 8]; T] = std::array::from_fn(|t| corr_words::<B>(ys[t]));
    for h in 0..2 {
        let da = _mm256_loadu_ps(sb.da.as_ptr().add(8 * h));
        let db = _mm256_loadu_ps(sb.db.as_ptr().add(8 * h));
        for t in 0..T {
            let mut c = _mm256_setzero_si256();
            for (p, &w) in words[t].iter().enumerate().take(B::CORR_STEPS) {
                let cw = _mm256_loadu_si256(sb.corr[p].as_ptr().add(8 * h).cast());
                c = madd_acc::<VNNI>(c, cw, _mm256_set1_epi32(w));
            }
            let f = o.add(t * GEMM_ROWS + 8 * h);
            let yd = _mm256_set1_ps(ys[t].d);
            let mut facc = _mm256_loadu_ps(f);
            facc = _mm256_fmadd_ps(_mm256_mul_ps(yd, da), _mm256_cvtepi32_ps(s[t][h]), facc);
            facc = _mm256_fmadd_ps(_mm256_mul_ps(yd, db), _mm256_cvtepi32_ps(c), facc);
            _mm256_storeu_ps(f, facc);
        }
    }
}

/// Rewrites the group scales of packed super-blocks for [`tokens`]: each (|scale| <= 128)
/// in both i16 halves of its lane, the operand of `vpmaddwd`.
pub(super) fn pair_scales<B: GemmPack>(sbs: &mut [PackedSb]) {
    for sb in sbs {
        for v in sb.sc[..B::GROUPS].iter_mut().flatten() {
            debug_assert!((-128..=128).contains(v));
            *v = (*v & 0xffff) | (*v << 16);
        }
    }
}

/// The AVX-VNNI kernel's preparation of packed super-blocks: none (it scales by `vpmulld`
/// against the packed i32 scales as they are).
pub(super) fn keep_scales<B: GemmPack>(_sbs: &mut [PackedSb]) {}

/// `dst[c][r] = src[r][c]` for a 16 x 16 matrix of words, as four 8 x 8 transposes (32-bit,
/// 64-bit and 128-bit interleaves).
#[inline(always)]
pub(super) unsafe fn transpose(src: &Square, dst: &mut Square) {
    for (br, bc) in [(0, 0), (0, 8), (8, 0), (8, 8)] {
        // Source rows br..br+8, columns bc..bc+8 -> destination rows bc.., columns br...
        let mut r = [_mm256_setzero_si256(); 8];
        for (i, r) in r.iter_mut().enumerate() {
            *r = _mm256_loadu_si256(src[br + i][bc..].as_ptr().cast());
        }
        let mut t = [_mm256_setzero_si256(); 8];
        for k in 0..4 {
            t[2 * k] = _mm256_unpacklo_epi32(r[2 * k], r[2 * k + 1]);
            t[2 * k + 1] = _mm256_unpackhi_epi32(r[2 * k], r[2 * k + 1]);
        }
        // u[4k + c], 128-bit lane l: column 4l + c of rows 4k..4k+4.
        let mut u = [_mm256_setzero_si256(); 8];
        for k in 0..2 {
            u[4 * k] = _mm256_unpacklo_epi64(t[4 * k], t[4 * k + 2]);
            u[4 * k + 1] = _mm256_unpackhi_epi64(t[4 * k], t[4 * k + 2]);
            u[4 * k + 2] = _mm256_unpacklo_epi64(t[4 * k + 1], t[4 * k + 3]);
            u[4 * k + 3] = _mm256_unpackhi_epi64(t[4 * k + 1], t[4 * k + 3]);
        }
        for c in 0..4 {
            let lo = _mm256_permute2x128_si256::<0x20>(u[c], u[4 + c]);
            let hi = _mm256_permute2x128_si256::<0x31>(u[c], u[4 + c]);
            _mm256_storeu_si256(dst[bc + c][br..].as_mut_ptr().cast(), lo);
            _mm256_storeu_si256(dst[bc + 4 + c][br..].as_mut_ptr().cast(), hi);
        }
    }
}

/// Tokens per call of [`tokens_vnni`] (sixteen vector registers: per token two i32 group
/// sums and two scaled sums, besides the two weight vectors and the broadcast word).
pub(super) const TOKENS_VNNI: usize = 3;

/// [`tokens`] with AVX-VNNI (`vpdpbusd` on 256-bit vectors, VEX-encoded): each step's four
/// products per lane go straight into an i32 group sum, which is scaled once per group
/// (`vpmulld`), as in the AVX-512 kernel; the float accumulators live in `out` (rows
/// [`GEMM_ROWS`] apart), updated once per super-block in [`tokens`]' order. All integer sums
/// are exact.
///
/// # Safety
/// The CPU must have AVX2, FMA and AVX-VNNI (the caller's `target_feature`).
#[inline(always)]
#[allow(clippy::needless_range_loop)] // `h` picks a half of `sb`'s lanes and of each `s[t]`
pub(super) unsafe fn tokens_vnni<B: GemmPack, const T: usize>(
    sbs: &[PackedSb],
    y: [&[BlockQ8K]; T],
    out: &mut [f32],
) {
    assert!(y.iter().all(|y| y.len() == sbs.len()));
    let steps = STEPS / B::GROUPS;
    assert!(out.len() >= (T - 1) * GEMM_ROWS + TILE_ROWS);
    let o = out.as_mut_ptr();
    for (b, sb) in sbs.iter().enumerate() {
        // SAFETY (get_unchecked): `b < sbs.len() == y[t].len()` (asserted).
        let ys: [&BlockQ8K; T] = std::array::from_fn(|t| y[t].get_unchecked(b));
        let mut s = [[_mm256_setzero_si256(); 2]; T];
        for g in 0..B::GROUPS {
            let mut acc = [[_mm256_setzero_si256(); 2]; T];
            for p in g * steps..(g + 1) * steps {
                let w = halves(&sb.wq[p]);
                for t in 0..T {
                    let yq = bcast(ys[t].qs.as_ptr().add(4 * p));
                    for h in 0..2 {
                        acc[t][h] = _mm256_dpbusd_avx_epi32(acc[t][h], w[h], yq);
                    }
                }
            }
            let sc = halves(&sb.sc[g]);
            for t in 0..T {
                for h in 0..2 {
                    s[t][h] = _mm256_add_epi32(s[t][h], _mm256_mullo_epi32(acc[t][h], sc[h]));
                }
            }
        }
        // SAFETY: `out` holds `T` rows from `o` (asserted above).
        add_super_block::<B, VEX_VNNI, T>(sb, &ys, &s, o);
    }
}

/// Tokens per call of [`tokens_legacy`] for the weight type `W` and `VNNI` (sixteen vector
/// registers: the two weight vectors and the broadcast word, and per token two i32 sums, plus
/// without VNNI two i16 sums).
pub(super) const fn legacy_tokens<W: LegacyPack, const VNNI: u8>() -> usize {
    if VNNI != NO_VNNI {
        6
    } else if W::STEPS_I16 == 8 {
        // The i16 sums cover the whole block: they are widened straight into the i32 ones.
        5
    } else {
        3
    }
}

/// `out[t][i] += Σ_b` (block `b` of the packed `sbs`, eight per super-block) · `y[t][b]` for
/// a legacy type, `T` tokens (`out` rows [`GEMM_ROWS`] apart); each token's blocks come with
/// their `OFFSET·Σ a` (empty for the types with a minimum). Per block of 32: the exact
/// integer sum ([`legacy_block_sums`], minus `OFFSET·Σ a`), then the block's term added to
/// the f32 sum in `out` as the scalar reference computes it (the AVX-512 kernel's order).
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C, and AVX-VNNI where `VNNI` says so (the caller's
/// `target_feature`).
#[inline(always)]
#[allow(clippy::needless_range_loop)] // `h` picks a half of the lanes, `p` a step
pub(super) unsafe fn tokens_legacy<W: LegacyPack, const VNNI: u8, const T: usize>(
    sbs: &[PackedSb],
    y: [(&[W::Act], &[i32]); T],
    out: &mut [f32],
) {
    let nb = y[0].0.len();
    assert!(nb <= 8 * sbs.len());
    assert!(y
        .iter()
        .all(|(y, s)| y.len() == nb && (W::OFFSET == 0 || s.len() == nb)));
    assert!(out.len() >= (T - 1) * GEMM_ROWS + TILE_ROWS);
    let o = out.as_mut_ptr();
    for (b, sb) in sbs.iter().enumerate() {
        for j in 0..nb.saturating_sub(8 * b).min(8) {
            // SAFETY (get_unchecked): `8b + j < nb`, each `y[t]`'s length (asserted).
            let blk = 8 * b + j;
            let ya: [&W::Act; T] = std::array::from_fn(|t| y[t].0.get_unchecked(blk));
            let acc = legacy_block_sums::<W, VNNI, T>(&sb.wq[8 * j..8 * j + 8], ya);
            for h in 0..2 {
                let dw = _mm256_loadu_ps(sb.sc[j].as_ptr().add(8 * h).cast());
                let mw = _mm256_loadu_ps(sb.sc[8 + j].as_ptr().add(8 * h).cast());
                for t in 0..T {
                    let da = _mm256_set1_ps(ya[t].d());
                    let term = if W::OFFSET != 0 {
                        let off = _mm256_set1_epi32(*y[t].1.get_unchecked(blk));
                        let sum = _mm256_cvtepi32_ps(_mm256_sub_epi32(acc[t][h], off));
                        if W::LEFT_TO_RIGHT {
                            // C: sumi*d_x*d_y.
                            _mm256_mul_ps(_mm256_mul_ps(sum, dw), da)
                        } else {
                            // C: sumi*(d_x*d_y).
                            _mm256_mul_ps(sum, _mm256_mul_ps(dw, da))
                        }
                    } else {
                        // C: (d_x*d_y)*sumi + m_x*s_y, no fused multiply-add.
                        let sum = _mm256_cvtepi32_ps(acc[t][h]);
                        _mm256_add_ps(
                            _mm256_mul_ps(_mm256_mul_ps(dw, da), sum),
                            _mm256_mul_ps(mw, _mm256_set1_ps(ya[t].s())),
                        )
                    };
                    // SAFETY: inside `out` (asserted above).
                    let f = o.add(t * GEMM_ROWS + 8 * h);
                    _mm256_storeu_ps(f, _mm256_add_ps(_mm256_loadu_ps(f), term));
                }
            }
        }
    }
}

/// [`tokens_legacy`] without VNNI.
///
/// # Safety
/// As [`tokens_legacy`].
#[inline(always)]
pub(super) unsafe fn tokens_legacy_avx2<W: LegacyPack, const T: usize>(
    sbs: &[PackedSb],
    y: [(&[W::Act], &[i32]); T],
    out: &mut [f32],
) {
    tokens_legacy::<W, NO_VNNI, T>(sbs, y, out)
}

/// [`tokens_legacy`] with AVX-VNNI.
///
/// # Safety
/// As [`tokens_legacy`].
#[inline(always)]
pub(super) unsafe fn tokens_legacy_avxvnni<W: LegacyPack, const T: usize>(
    sbs: &[PackedSb],
    y: [(&[W::Act], &[i32]); T],
    out: &mut [f32],
) {
    tokens_legacy::<W, VEX_VNNI, T>(sbs, y, out)
}

/// The exact integer sums `Σ q·a` of one packed block (`wq`: its eight steps) with each of
/// the `T` activation blocks, for the two halves of the tile's rows. Without VNNI `W` must
/// have [`LegacyPack::STEPS_I16`] (not Q8_0, whose AVX2 kernel is `gemm_i16.rs`).
#[inline(always)]
#[allow(clippy::needless_range_loop)] // `h` picks a half of the lanes, `p` a step
unsafe fn legacy_block_sums<W: LegacyPack, const VNNI: u8, const T: usize>(
    wq: &[[u32; TILE_ROWS]],
    ya: [&W::Act; T],
) -> [[__m256i; 2]; T] {
    debug_assert_eq!(wq.len(), 8);
    let mut acc = [[_mm256_setzero_si256(); 2]; T];
    let ones = _mm256_set1_epi16(1);
    if VNNI != NO_VNNI {
        // `vpdpbusd`: exact for every unsigned quant.
        for (p, wq) in wq.iter().enumerate() {
            let w = halves(wq);
            for t in 0..T {
                let yq = bcast(ya[t].qs().as_ptr().add(4 * p));
                for h in 0..2 {
                    acc[t][h] = dot_u8i8::<VNNI>(acc[t][h], w[h], yq);
                }
            }
        }
    } else {
        assert!(W::STEPS_I16 > 0, "Q8_0 without VNNI is gemm_i16.rs's");
        // Pairs summed in i16 over `STEPS_I16` steps (exact, see `LegacyPack::STEPS_I16`).
        for p0 in (0..8).step_by(W::STEPS_I16) {
            let mut p16 = [[_mm256_setzero_si256(); 2]; T];
            for p in p0..p0 + W::STEPS_I16 {
                let w = halves(&wq[p]);
                for t in 0..T {
                    let yq = bcast(ya[t].qs().as_ptr().add(4 * p));
                    for h in 0..2 {
                        let prod = _mm256_maddubs_epi16(w[h], yq);
                        p16[t][h] = _mm256_add_epi16(p16[t][h], prod);
                    }
                }
            }
            for t in 0..T {
                for h in 0..2 {
                    acc[t][h] = _mm256_add_epi32(acc[t][h], _mm256_madd_epi16(p16[t][h], ones));
                }
            }
        }
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::super::super::gemm::transpose_scalar;
    use super::*;

    #[test]
    fn transpose_is_the_scalar_one() {
        if !std::is_x86_feature_detected!("avx2") {
            return;
        }
        let src: Square = std::array::from_fn(|r| std::array::from_fn(|c| (r * 100 + c) as u32));
        let (mut want, mut got) = ([[0; 16]; 16], [[0; 16]; 16]);
        transpose_scalar(&src, &mut want);
        // SAFETY: AVX2 was detected just above.
        unsafe { transpose_avx2(&src, &mut got) };
        assert_eq!(got, want);
    }

    #[target_feature(enable = "avx2")]
    unsafe fn transpose_avx2(src: &Square, dst: &mut Square) {
        transpose(src, dst)
    }
}
