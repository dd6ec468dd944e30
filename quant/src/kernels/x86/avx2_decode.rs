//! The one-row bodies of the 256-bit K-quant decode kernels (`RowKernel::many` of the AVX2
//! and AVX-VNNI Q4_K, Q5_K and Q6_K kernels: one activation row against many weight rows).
//!
//! Each gives the bits of its multi-row body in `avx2_k.rs` with `R = 1` (the same exact
//! integer sums, and the same float steps in the same order). Those bodies unpack all eight
//! quant vectors of a super-block first, to reuse them for their `R` rows; with one row that
//! spills them to the stack. Here each pair of vectors is unpacked, multiplied and scaled
//! before the next is read, and each scale vector is one `vpshufb` of the scale bytes from a
//! table the compiler cannot see into (it would otherwise rewrite each into a shift and a
//! `vpbroadcastw`, two instructions).

use std::arch::x86_64::*;

use super::avx2::{f16x8, hsum_ps, hsum_ps128, madd_acc, prefetch_ahead, same_lengths};
use super::avx2_k::{
    add_scaled, head_k4, load, load_u8, q4k_add_min, q4k_pair, q5k_add_min, q5k_pair, q6k_half,
    q6k_offset, q6k_scales, scales_mins_k4_bytes, Q6K_SPREAD,
};
use crate::formats::q4_k::BlockQ4K;
use crate::formats::q5_k::BlockQ5K;
use crate::formats::q6_k::BlockQ6K;
use crate::formats::q8_k::BlockQ8K;

/// `vpshufb` controls that spread scale byte `j` (0 to 7) of [`scales_mins_k4_bytes`] (held
/// in both 128-bit halves) over all sixteen i16 lanes: the scale vector of sub-block `j`.
static SCALE_SPREAD: [[u8; 32]; 8] = {
    let mut t = [[0x80u8; 32]; 8];
    let mut j = 0;
    while j < 8 {
        let mut i = 0;
        while i < 32 {
            t[j][i] = j as u8;
            i += 2;
        }
        j += 1;
    }
    t
};

/// `sumi` plus the scaled sums of sub-blocks `2c` and `2c + 1` (quants `q`, unsigned, at most
/// 31) against `y`: `scale_j · Σ q·y`, each scale vector one `vpshufb` of the scale bytes
/// `sc` ([`scales_mins_k4_bytes`] in both halves) by [`SCALE_SPREAD`]'s entry `j`.
///
/// # Safety
/// The CPU must have AVX2, and the VNNI that `VNNI` names.
#[inline(always)]
unsafe fn scaled_pair<const VNNI: u8>(
    sumi: __m256i,
    q: [__m256i; 2],
    y: &BlockQ8K,
    c: usize,
    sc: __m256i,
    spread: &[[u8; 32]; 8],
) -> __m256i {
    let mut sumi = sumi;
    for (h, q) in q.into_iter().enumerate() {
        let j = 2 * c + h;
        let p16 = _mm256_maddubs_epi16(q, load(&y.qs[32 * j..]));
        let s = _mm256_shuffle_epi8(sc, _mm256_loadu_si256(spread[j].as_ptr().cast()));
        sumi = madd_acc::<VNNI>(sumi, s, p16);
    }
    sumi
}

/// Q4_K · Q8_K for one activation row: `q4k::<VNNI, 1>`'s bits.
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C, and the VNNI that `VNNI` names.
#[inline(always)]
pub(super) unsafe fn q4k_one<const VNNI: u8>(x: &[BlockQ4K], y: &[BlockQ8K]) -> f32 {
    same_lengths(x, &[y]);
    // Opaque: see the module documentation.
    let spread = std::hint::black_box(&SCALE_SPREAD);
    let mut acc = _mm256_setzero_ps();
    let mut acc_m = _mm_setzero_ps();
    for (xb, yb) in x.iter().zip(y) {
        prefetch_ahead(xb);
        let (sm, dm) = scales_mins_k4_bytes(head_k4(xb));
        let sc = _mm256_broadcastsi128_si256(sm);
        let mut sumi = _mm256_setzero_si256();
        for c in 0..4 {
            sumi = scaled_pair::<VNNI>(sumi, q4k_pair(&xb.qs, c), yb, c, sc, spread);
        }
        let mins = _mm_cvtepu8_epi16(_mm_unpackhi_epi64(sm, sm));
        let mx = _mm256_broadcastss_ps(_mm_movehdup_ps(dm));
        acc_m = q4k_add_min(acc_m, mins, mx, yb);
        acc = add_scaled(acc, sumi, _mm256_broadcastss_ps(dm), yb);
    }
    hsum_ps(acc) + hsum_ps128(acc_m)
}

/// Q5_K · Q8_K for one activation row: `q5k::<VNNI, 1>`'s bits.
///
/// # Safety
/// As [`q4k_one`].
#[inline(always)]
pub(super) unsafe fn q5k_one<const VNNI: u8>(x: &[BlockQ5K], y: &[BlockQ8K]) -> f32 {
    same_lengths(x, &[y]);
    // Opaque: see the module documentation.
    let spread = std::hint::black_box(&SCALE_SPREAD);
    let mut acc = _mm256_setzero_ps();
    let mut summs = 0f32;
    for (xb, yb) in x.iter().zip(y) {
        prefetch_ahead(xb);
        let (sm, dm) = scales_mins_k4_bytes(head_k4(xb));
        let sc = _mm256_broadcastsi128_si256(sm);
        let qh = load_u8(&xb.qh);
        let mut sumi = _mm256_setzero_si256();
        for c in 0..4 {
            sumi = scaled_pair::<VNNI>(sumi, q5k_pair(&xb.qs, qh, c), yb, c, sc, spread);
        }
        let mins = _mm_cvtepu8_epi16(_mm_unpackhi_epi64(sm, sm));
        summs = q5k_add_min(summs, mins, _mm_cvtss_f32(_mm_movehdup_ps(dm)), yb);
        acc = add_scaled(acc, sumi, _mm256_broadcastss_ps(dm), yb);
    }
    hsum_ps(acc) + summs
}

/// Q6_K · Q8_K for one activation row: `q6k::<VNNI, 1>`'s bits.
///
/// # Safety
/// As [`q4k_one`].
#[inline(always)]
pub(super) unsafe fn q6k_one<const VNNI: u8>(x: &[BlockQ6K], y: &[BlockQ8K]) -> f32 {
    same_lengths(x, &[y]);
    // Opaque: see the module documentation.
    let spread = std::hint::black_box(&Q6K_SPREAD);
    let mut acc = _mm256_setzero_ps();
    for (xb, yb) in x.iter().zip(y) {
        prefetch_ahead(xb);
        let (sc16, halves) = q6k_scales(xb);
        let offset = q6k_offset(sc16, yb);
        let mut sumi = _mm256_setzero_si256();
        for (h, &half) in halves.iter().enumerate() {
            for (k, q) in q6k_half(xb, h).into_iter().enumerate() {
                let p = 4 * h + k;
                let p16 = _mm256_maddubs_epi16(q, load(&yb.qs[32 * p..]));
                let sc = _mm256_shuffle_epi8(half, _mm256_loadu_si256(spread[p].as_ptr().cast()));
                sumi = madd_acc::<VNNI>(sumi, sc, p16);
            }
        }
        acc = add_scaled(acc, _mm256_sub_epi32(sumi, offset), f16x8(xb.d), yb);
    }
    hsum_ps(acc)
}

#[cfg(test)]
mod tests {
    use super::super::avx2::{EVEX_VNNI, NO_VNNI};
    use super::super::avx2_k::llama_cpp_order::{activations, f16_scale, Rng};
    use super::super::avx2_k::{q4k, q5k, q6k};
    use super::{q4k_one, q5k_one, q6k_one};
    use crate::formats::q4_k::BlockQ4K;
    use crate::formats::q5_k::BlockQ5K;
    use crate::formats::q6_k::BlockQ6K;
    use crate::formats::q8_k::BlockQ8K;

    /// Per type (Q4_K, Q5_K, Q6_K): the one-row body's result and the multi-row body's.
    type Pairs = [(f32, f32); 3];

    #[inline(always)]
    unsafe fn pairs<const VNNI: u8>(
        x4: &[BlockQ4K],
        x5: &[BlockQ5K],
        x6: &[BlockQ6K],
        y: &[BlockQ8K],
    ) -> Pairs {
        [
            (q4k_one::<VNNI>(x4, y), q4k::<VNNI, 1>(x4, [y])[0]),
            (q5k_one::<VNNI>(x5, y), q5k::<VNNI, 1>(x5, [y])[0]),
            (q6k_one::<VNNI>(x6, y), q6k::<VNNI, 1>(x6, [y])[0]),
        ]
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn plain(x4: &[BlockQ4K], x5: &[BlockQ5K], x6: &[BlockQ6K], y: &[BlockQ8K]) -> Pairs {
        pairs::<NO_VNNI>(x4, x5, x6, y)
    }

    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512vnni")]
    unsafe fn evex(x4: &[BlockQ4K], x5: &[BlockQ5K], x6: &[BlockQ6K], y: &[BlockQ8K]) -> Pairs {
        pairs::<EVEX_VNNI>(x4, x5, x6, y)
    }

    fn random<B: bytemuck::Pod>(rng: &mut Rng, nb: usize) -> Vec<B> {
        let mut x: Vec<B> = vec![bytemuck::Zeroable::zeroed(); nb];
        for b in bytemuck::cast_slice_mut::<_, u8>(&mut x) {
            *b = rng.next() as u8;
        }
        x
    }

    /// The one-row bodies give the bits of the multi-row bodies with one row, without VNNI
    /// (the AVX2 kernels) and with it. AVX-VNNI (VEX, the AVX-VNNI kernels) is rare on the
    /// test machines; the EVEX encoding of the same instructions (AVX512-VNNI with AVX512-VL)
    /// runs the same code where the CPU has it. (`tests/kernels.rs` checks the AVX2 `many`
    /// kernels against the single-row ones as well.)
    #[test]
    fn one_row_bodies_equal_rows() {
        use std::arch::is_x86_feature_detected as has;
        if !(has!("avx2") && has!("fma") && has!("f16c")) {
            eprintln!("no AVX2 here: nothing to check");
            return;
        }
        let with_evex = has!("avx512f") && has!("avx512vl") && has!("avx512vnni");
        if !with_evex {
            eprintln!("no AVX512-VNNI with AVX512-VL here: the VNNI bodies are not checked");
        }
        let mut rng = Rng(0x51_7cc1_b727_220a);
        for trial in 0..100 {
            let nb = 1 + trial % 20;
            let y = activations(&mut rng, nb);
            let mut x4: Vec<BlockQ4K> = random(&mut rng, nb);
            let mut x5: Vec<BlockQ5K> = random(&mut rng, nb);
            let mut x6: Vec<BlockQ6K> = random(&mut rng, nb);
            for b in &mut x4 {
                (b.d, b.dmin) = (f16_scale(&mut rng), f16_scale(&mut rng));
            }
            for b in &mut x5 {
                (b.d, b.dmin) = (f16_scale(&mut rng), f16_scale(&mut rng));
            }
            for b in &mut x6 {
                b.d = f16_scale(&mut rng);
            }
            // SAFETY: the features were detected above.
            let mut got = vec![("avx2", unsafe { plain(&x4, &x5, &x6, &y) })];
            if with_evex {
                // SAFETY: as above.
                got.push(("avx512vnni", unsafe { evex(&x4, &x5, &x6, &y) }));
            }
            for (isa, pairs) in got {
                for (ty, (one, rows)) in ["Q4_K", "Q5_K", "Q6_K"].iter().zip(pairs) {
                    assert_eq!(
                        one.to_bits(),
                        rows.to_bits(),
                        "{ty} {isa} trial {trial}: {one} vs {rows}"
                    );
                }
            }
        }
    }
}
