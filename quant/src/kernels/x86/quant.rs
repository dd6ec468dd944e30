//! Activation quantization with AVX2 and AVX-512, bit for bit the scalar `from_float`s.
//!
//! Q8_K (`formats/q8_k.rs`): the same signed maximum (the first of largest magnitude), the
//! same `iscale = -127 / max`, the same products rounded half to even (`vcvtps2dq` under the
//! default rounding mode is `nearest_int` for these magnitudes), `MIN(127, q)` and the same
//! sums. Blocks holding a NaN or an infinity, and blocks so small that `iscale` overflows,
//! go to the reference.
//!
//! Q8_0 and Q8_1 (`formats/q8_0.rs`, ggml's x86 `quantize_row_q8_0/1`): `d = amax / 127`,
//! `vcvtps2dq(x · (127 / amax))` saturated to i8, and for Q8_1 the wrapping sum of the i32
//! lanes; the hardware's "integer indefinite" for overflowing products is what the reference
//! models. Blocks holding a NaN or an infinity go to the reference.

use std::arch::x86_64::*;

use super::avx2::hsum_epi32;
use crate::formats::q8_0::BlockQ8_0;
use crate::formats::q8_1::BlockQ8_1;
use crate::formats::q8_k::BlockQ8K;
use crate::formats::{f16, with_blocks_mut, Block};
use crate::QK_K;

/// The Q8_K `from_float` for AVX-512 (F+BW) or AVX2 (`avx512`), on bytes.
pub(in crate::kernels) fn from_float_q8k(avx512: bool) -> super::super::FromFloatFn {
    macro_rules! f {
        ($amax:ident, $quants:ident) => {
            |x, dst| {
                with_blocks_mut::<BlockQ8K>(dst, |out| {
                    // SAFETY: handed out only for instruction sets with the features `$amax`
                    // and `$quants` enable (`kernels::available_isas` detected them).
                    quantize(
                        x,
                        out,
                        |x| unsafe { $amax(x) },
                        |x, s, y| unsafe { $quants(x, s, y) },
                    )
                })
            }
        };
    }
    if avx512 {
        f!(amax_512, quants_512)
    } else {
        f!(amax_256, quants_256)
    }
}

/// The Q8_0 (`sum: false`) or Q8_1 (`sum: true`) `from_float` for AVX-512 (F+BW+VL) or AVX2
/// (`avx512`), on bytes.
pub(in crate::kernels) fn from_float_q8_0(avx512: bool, sum: bool) -> super::super::FromFloatFn {
    macro_rules! f {
        ($block:ident, $B:ty, $store:expr) => {
            |x, dst| {
                with_blocks_mut::<$B>(dst, |out| {
                    assert_eq!(x.len(), out.len() * 32);
                    for (x, y) in x.chunks_exact(32).zip(out.iter_mut()) {
                        let x: &[f32; 32] = x.try_into().expect("32 floats");
                        // SAFETY: handed out only for instruction sets with the features
                        // `$block` enables (`kernels::available_isas` detected them).
                        match unsafe { $block(x, &mut y.qs) } {
                            Some((d, s)) => $store(y, d, s),
                            None => <$B>::from_float(x, std::slice::from_mut(y)),
                        }
                    }
                })
            }
        };
    }
    fn q8_0(y: &mut BlockQ8_0, d: f32, _: i32) {
        y.d = f16(d);
    }
    fn q8_1(y: &mut BlockQ8_1, d: f32, s: i32) {
        y.d = f16(d);
        y.s = f16(d * s as f32);
    }
    match (avx512, sum) {
        (true, false) => f!(block_512, BlockQ8_0, q8_0),
        (true, true) => f!(block_512, BlockQ8_1, q8_1),
        (false, false) => f!(block_256, BlockQ8_0, q8_0),
        (false, true) => f!(block_256, BlockQ8_1, q8_1),
    }
}

/// One Q8_0/Q8_1 block (AVX-512 F+BW+VL): writes the quants, returns `(d, wrapping Σ of the
/// unsaturated quants)`; `None` (nothing written) when the block holds a NaN or an infinity.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn block_512(x: &[f32; 32], qs: &mut [i8; 32]) -> Option<(f32, i32)> {
    // SAFETY: floats 0..16 and 16..32 of the block.
    let (a, b) = (
        _mm512_loadu_ps(x.as_ptr()),
        _mm512_loadu_ps(x.as_ptr().add(16)),
    );
    let (aa, ab) = (_mm512_abs_ps(a), _mm512_abs_ps(b));
    let inf = _mm512_set1_ps(f32::INFINITY);
    // Not finite: |x| >= inf, or unordered (NaN).
    if _mm512_cmp_ps_mask::<_CMP_NLT_UQ>(aa, inf) | _mm512_cmp_ps_mask::<_CMP_NLT_UQ>(ab, inf) != 0
    {
        return None;
    }
    let amax = _mm512_reduce_max_ps(_mm512_max_ps(aa, ab));
    let d = amax / 127.0;
    let id = _mm512_set1_ps(if amax != 0.0 { 127.0 / amax } else { 0.0 });
    let qa = _mm512_cvtps_epi32(_mm512_mul_ps(a, id));
    let qb = _mm512_cvtps_epi32(_mm512_mul_ps(b, id));
    // SAFETY: quants 0..16 and 16..32.
    _mm_storeu_si128(qs.as_mut_ptr().cast(), _mm512_cvtsepi32_epi8(qa));
    _mm_storeu_si128(qs.as_mut_ptr().add(16).cast(), _mm512_cvtsepi32_epi8(qb));
    Some((d, _mm512_reduce_add_epi32(_mm512_add_epi32(qa, qb))))
}

/// [`block_512`] with AVX2: four vectors of i32 packed to bytes with signed saturation
/// (`packs_epi32`, `packs_epi16`) and put back in order, as ggml's AVX2 code.
#[target_feature(enable = "avx2")]
unsafe fn block_256(x: &[f32; 32], qs: &mut [i8; 32]) -> Option<(f32, i32)> {
    // SAFETY: floats 8j..8j + 8 of the block.
    let v: [__m256; 4] = std::array::from_fn(|j| _mm256_loadu_ps(x.as_ptr().add(8 * j)));
    let abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
    let inf = _mm256_set1_ps(f32::INFINITY);
    let mut m = _mm256_setzero_ps();
    let mut bad = _mm256_setzero_ps();
    for v in v {
        let a = _mm256_and_ps(abs_mask, v);
        bad = _mm256_or_ps(bad, _mm256_cmp_ps::<_CMP_NLT_UQ>(a, inf));
        m = _mm256_max_ps(m, a);
    }
    if _mm256_movemask_ps(bad) != 0 {
        return None;
    }
    let amax = hmax_256(m);
    let d = amax / 127.0;
    let id = _mm256_set1_ps(if amax != 0.0 { 127.0 / amax } else { 0.0 });
    let q = v.map(|v| _mm256_cvtps_epi32(_mm256_mul_ps(v, id)));
    // SAFETY: the 32 quants.
    _mm256_storeu_si256(qs.as_mut_ptr().cast(), pack_i8_256(q));
    let s = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
    Some((d, hsum_epi32(s)))
}

/// The reference's steps around the two SIMD ones: `amax(block)` (the largest magnitude) and
/// `quants(block, iscale, out)` (the quants and sums of a block with a finite `iscale`).
#[inline(always)]
fn quantize(
    x: &[f32],
    out: &mut [BlockQ8K],
    amax: impl Fn(&[f32; QK_K]) -> f32,
    quants: impl Fn(&[f32; QK_K], f32, &mut BlockQ8K),
) {
    assert_eq!(x.len(), out.len() * QK_K);
    for (x, y) in x.chunks_exact(QK_K).zip(out.iter_mut()) {
        let x: &[f32; QK_K] = x.try_into().expect("QK_K floats");
        if !x.iter().all(|v| v.is_finite()) {
            BlockQ8K::quantize(x, std::slice::from_mut(y));
            continue;
        }
        let amax = amax(x);
        if amax == 0.0 {
            *y = bytemuck::Zeroable::zeroed();
            continue;
        }
        // The signed value of largest magnitude, the first one on ties.
        let max = x.iter().copied().find(|v| v.abs() == amax).unwrap_or(amax);
        let iscale = -127.0 / max;
        if !iscale.is_finite() {
            // |max| < 127 / f32::MAX: the products overflow, which the reference turns into
            // zeros (and the saturating packs would not).
            BlockQ8K::quantize(x, std::slice::from_mut(y));
            continue;
        }
        quants(x, iscale, y);
        y.d = 1.0 / iscale;
    }
}

/// The largest magnitude of a block (AVX-512 F).
#[target_feature(enable = "avx512f")]
unsafe fn amax_512(x: &[f32; QK_K]) -> f32 {
    let mut m = _mm512_setzero_ps();
    for i in 0..QK_K / 16 {
        // SAFETY: floats 16i..16i + 16 of the QK_K-float block.
        m = _mm512_max_ps(m, _mm512_abs_ps(_mm512_loadu_ps(x.as_ptr().add(16 * i))));
    }
    _mm512_reduce_max_ps(m)
}

/// A block's quants (`MIN(127, round(iscale · x))`) and their sums by sixteen (AVX-512 F+BW).
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn quants_512(x: &[f32; QK_K], iscale: f32, y: &mut BlockQ8K) {
    let s = _mm512_set1_ps(iscale);
    let top = _mm512_set1_epi32(127);
    for i in 0..QK_K / 16 {
        // SAFETY: floats 16i..16i + 16 of the block, quants 16i..16i + 16 of the 256.
        let v = _mm512_mul_ps(s, _mm512_loadu_ps(x.as_ptr().add(16 * i)));
        let q = _mm512_min_epi32(_mm512_cvtps_epi32(v), top);
        _mm_storeu_si128(
            y.qs.as_mut_ptr().add(16 * i).cast(),
            _mm512_cvtepi32_epi8(q),
        );
        y.bsums[i] = _mm512_reduce_add_epi32(q) as i16;
    }
}

/// The largest magnitude of a block (AVX2).
#[target_feature(enable = "avx2")]
unsafe fn amax_256(x: &[f32; QK_K]) -> f32 {
    let abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
    let mut m = _mm256_setzero_ps();
    for i in 0..QK_K / 8 {
        // SAFETY: floats 8i..8i + 8 of the QK_K-float block.
        m = _mm256_max_ps(
            m,
            _mm256_and_ps(abs_mask, _mm256_loadu_ps(x.as_ptr().add(8 * i))),
        );
    }
    hmax_256(m)
}

/// The largest of eight f32 lanes.
#[inline(always)]
unsafe fn hmax_256(m: __m256) -> f32 {
    let m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps::<1>(m));
    let m2 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    _mm_cvtss_f32(_mm_max_ss(m2, _mm_movehdup_ps(m2)))
}

/// Four vectors of eight i32 as 32 bytes in order, saturated to i8 (`packs_epi32`,
/// `packs_epi16`, then the lanes the packs interleave put back in order), as ggml's AVX2
/// quantizers.
#[inline(always)]
unsafe fn pack_i8_256(q: [__m256i; 4]) -> __m256i {
    let b = _mm256_packs_epi16(
        _mm256_packs_epi32(q[0], q[1]),
        _mm256_packs_epi32(q[2], q[3]),
    );
    _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
}

/// [`quants_512`] with AVX2: thirty-two quants at a time, four vectors of i32 in
/// -127..=127 packed to bytes (the saturating packs change nothing in that range) and put
/// back in order.
#[target_feature(enable = "avx2")]
unsafe fn quants_256(x: &[f32; QK_K], iscale: f32, y: &mut BlockQ8K) {
    let s = _mm256_set1_ps(iscale);
    let top = _mm256_set1_epi32(127);
    for c in 0..QK_K / 32 {
        let mut q = [_mm256_setzero_si256(); 4];
        for (j, q) in q.iter_mut().enumerate() {
            // SAFETY: floats 32c + 8j..32c + 8j + 8 of the block.
            let v = _mm256_mul_ps(s, _mm256_loadu_ps(x.as_ptr().add(32 * c + 8 * j)));
            *q = _mm256_min_epi32(_mm256_cvtps_epi32(v), top);
        }
        // SAFETY: quants 32c..32c + 32 of the 256.
        _mm256_storeu_si256(y.qs.as_mut_ptr().add(32 * c).cast(), pack_i8_256(q));
        for h in 0..2 {
            let v = _mm256_add_epi32(q[2 * h], q[2 * h + 1]);
            y.bsums[2 * c + h] = hsum_epi32(v) as i16;
        }
    }
}
