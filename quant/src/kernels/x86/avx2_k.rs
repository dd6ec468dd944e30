//! AVX2 (+FMA, F16C) kernels for the K-quants against Q8_K activations: the 256-bit bodies
//! (generic over `VNNI` and the row count `R`, see `avx2.rs`) and the AVX2 kernels built from
//! them and, for the decode step (`many`), from the one-row bodies of `avx2_decode.rs`.
//! Integer sums exact for every block content (the 4-, 5- and 6-bit quants are unsigned, so
//! `vpmaddubsw` pairs stay below 2^15 even against -128); float accumulation as ggml's AVX2
//! `ggml_vec_dot_q*_K_q8_K` (llama.cpp b2757): one FMA per super-block into 8 lanes, then a
//! horizontal sum.

use std::arch::x86_64::*;

use super::super::{many_rows, RowKernel};
use super::avx2::{f16x8, hsum_ps, hsum_ps128, madd_acc, prefetch_ahead, same_lengths, NO_VNNI};
use super::avx2_decode::{q4k_one, q5k_one, q6k_one};
use super::{both, find, Entry};
use crate::formats::q4_k::BlockQ4K;
use crate::formats::q5_k::BlockQ5K;
use crate::formats::q6_k::BlockQ6K;
use crate::formats::q8_k::BlockQ8K;
use crate::GgmlType;

/// The AVX2 K-quant kernels.
const KERNELS: &[Entry] = &[
    both::<Q4KAvx2>(GgmlType::Q4K),
    both::<Q5KAvx2>(GgmlType::Q5K),
    both::<Q6KAvx2>(GgmlType::Q6K),
];

/// The entry of `ty`, if this file has one.
pub(super) fn entry(ty: GgmlType) -> Option<&'static Entry> {
    find(KERNELS, ty)
}

// SAFETY (each `unsafe impl`): `rows` needs AVX2, FMA and F16C, and the tables above are only
// consulted after `kernels::available_isas` detected them.

pub(super) struct Q4KAvx2;
unsafe impl RowKernel for Q4KAvx2 {
    type W = BlockQ4K;
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn rows<const R: usize>(x: &[BlockQ4K], y: [&[BlockQ8K]; R]) -> [f32; R] {
        q4k::<NO_VNNI, R>(x, y)
    }
    many_rows!("avx2,fma,f16c", q4k_one::<NO_VNNI>);
}

pub(super) struct Q5KAvx2;
unsafe impl RowKernel for Q5KAvx2 {
    type W = BlockQ5K;
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn rows<const R: usize>(x: &[BlockQ5K], y: [&[BlockQ8K]; R]) -> [f32; R] {
        q5k::<NO_VNNI, R>(x, y)
    }
    many_rows!("avx2,fma,f16c", q5k_one::<NO_VNNI>);
}

pub(super) struct Q6KAvx2;
unsafe impl RowKernel for Q6KAvx2 {
    type W = BlockQ6K;
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn rows<const R: usize>(x: &[BlockQ6K], y: [&[BlockQ8K]; R]) -> [f32; R] {
        q6k::<NO_VNNI, R>(x, y)
    }
    many_rows!("avx2,fma,f16c", q6k_one::<NO_VNNI>);
}

#[inline(always)]
pub(super) unsafe fn load(p: &[i8]) -> __m256i {
    debug_assert!(p.len() >= 32);
    _mm256_loadu_si256(p.as_ptr().cast())
}

#[inline(always)]
pub(super) unsafe fn load_u8(p: &[u8]) -> __m256i {
    debug_assert!(p.len() >= 32);
    _mm256_loadu_si256(p.as_ptr().cast())
}

/// The first sixteen bytes of a Q4_K/Q5_K super-block (`d`, `dmin`, then the twelve bytes of
/// packed scales and mins).
#[inline(always)]
pub(super) fn head_k4<B: bytemuck::Pod>(block: &B) -> &[u8; 16] {
    // The sizes are constants: the conversion cannot fail for these blocks.
    bytemuck::bytes_of(block)[..16].try_into().unwrap()
}

/// The eight 6-bit scales (i16 lanes 0-7) and mins (8-15) of a Q4_K/Q5_K super-block, and its
/// `d` and `dmin` (f32 lanes 0 and 1), from its first sixteen bytes ([`head_k4`]).
///
/// ggml's `utmp` shuffle (equal to `get_scale_min_k4`) on the three packed words
/// `u0, u1, u2` in one vector, so that no scalar chain and no `vpinsrd` sit between the
/// block's load and its integer dot products:
/// `[u0 & K1, (u2 & K2) | (u0 >> 2) & 0x30.., u1 & K1, (u2 >> 4) & K2 | (u1 >> 2) & 0x30..]`.
#[inline(always)]
pub(super) unsafe fn scales_mins_k4(head: &[u8; 16]) -> (__m256i, __m128) {
    let (bytes, dm) = scales_mins_k4_bytes(head);
    (_mm256_cvtepu8_epi16(bytes), dm)
}

/// [`scales_mins_k4`] with the scales and mins as bytes (lanes 0-7 and 8-15).
#[inline(always)]
pub(super) unsafe fn scales_mins_k4_bytes(head: &[u8; 16]) -> (__m128i, __m128) {
    const KMASK1: i32 = 0x3f3f_3f3f;
    const KMASK2: i32 = 0x0f0f_0f0f;
    const HIGH2: i32 = 0x3030_3030;
    // Lanes: [d | dmin << 16, u0, u1, u2].
    let v = _mm_loadu_si128(head.as_ptr().cast());
    // [u0, u2, u1, u2] and [u0, u0, u1, u1] (lanes 1 3 2 3 and 1 1 2 2 of `v`).
    let p = _mm_shuffle_epi32::<0b11_10_11_01>(v);
    let q = _mm_shuffle_epi32::<0b10_10_01_01>(v);
    let low = _mm_and_si128(
        _mm_srlv_epi32(p, _mm_set_epi32(4, 0, 0, 0)),
        _mm_set_epi32(KMASK2, KMASK1, KMASK2, KMASK1),
    );
    let high = _mm_and_si128(_mm_srli_epi32::<2>(q), _mm_set_epi32(HIGH2, 0, HIGH2, 0));
    (_mm_or_si128(low, high), _mm_cvtph_ps(v))
}

/// The `vpshufb` control that broadcasts i16 lane `j` (0 to 7) of each 128-bit half.
#[inline(always)]
unsafe fn lane16(j: i16) -> __m128i {
    _mm_set1_epi16(((2 * j + 1) << 8) | (2 * j))
}

/// The eight scales of [`scales_mins_k4`]'s result broadcast one per vector (i16 lanes), for
/// `vpmaddwd`/`vpdpwssd` against the pairs of sub-block `j`, and the mins as eight i16 lanes.
#[inline(always)]
unsafe fn scale_vectors_k4(sm: __m256i) -> ([__m256i; 8], __m128i) {
    let sc = _mm256_broadcastsi128_si256(_mm256_castsi256_si128(sm));
    let mut scales = [_mm256_setzero_si256(); 8];
    for (j, s) in scales.iter_mut().enumerate() {
        let c = lane16(j as i16);
        *s = _mm256_shuffle_epi8(sc, _mm256_set_m128i(c, c));
    }
    (scales, _mm256_extracti128_si256::<1>(sm))
}

/// `Σ_j mins[j]·(bsums[2j] + bsums[2j+1])` as four i32 lanes (the minimum's term).
#[inline(always)]
unsafe fn min_sums(mins: __m128i, y: &BlockQ8K) -> __m128i {
    _mm_madd_epi16(mins, sub_block_sums(y))
}

/// The sums of the quants of each of `y`'s eight sub-blocks of 32 (`bsums` added in pairs;
/// exact in i16: at most 32·128).
#[inline(always)]
pub(super) unsafe fn sub_block_sums(y: &BlockQ8K) -> __m128i {
    let bs = _mm256_loadu_si256(y.bsums.as_ptr().cast());
    _mm_hadd_epi16(
        _mm256_castsi256_si128(bs),
        _mm256_extracti128_si256::<1>(bs),
    )
}

/// Sum of four i32 lanes (exact: the lanes are bounded well inside i32).
#[inline(always)]
pub(super) unsafe fn hsum_epi32_128(v: __m128i) -> i32 {
    let s = _mm_add_epi32(v, _mm_unpackhi_epi64(v, v));
    _mm_cvtsi128_si32(_mm_add_epi32(s, _mm_shuffle_epi32::<1>(s)))
}

/// One activation row's float step for a super-block: `acc + (y.d·dx)·sumi` (`sumi`: the
/// block's scaled integer sums, `dx`: the weight block's `d` in every lane). Every 256-bit
/// K-quant body, multi-row and one-row, adds its sums through this, so they share one float
/// order.
#[inline(always)]
pub(super) unsafe fn add_scaled(acc: __m256, sumi: __m256i, dx: __m256, y: &BlockQ8K) -> __m256 {
    let d = _mm256_mul_ps(_mm256_set1_ps(y.d), dx);
    _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc)
}

/// Q4_K's minimum term for one activation row, added in four lanes (as llama.cpp's AVX2
/// kernel): `acc_m + (−y.d·dmin)·`[`min_sums`] (`mx`: the block's `dmin` in every lane).
#[inline(always)]
pub(super) unsafe fn q4k_add_min(acc_m: __m128, mins: __m128i, mx: __m256, y: &BlockQ8K) -> __m128 {
    let dmin = _mm256_castps256_ps128(_mm256_mul_ps(_mm256_set1_ps(-y.d), mx));
    _mm_fmadd_ps(dmin, _mm_cvtepi32_ps(min_sums(mins, y)), acc_m)
}

/// Q5_K's minimum term for one activation row: as llama.cpp's AVX2 kernel, the exact integer
/// sum, then one fused multiply-add into a scalar (`xdmin`: the block's `dmin`).
#[inline(always)]
pub(super) unsafe fn q5k_add_min(summs: f32, mins: __m128i, xdmin: f32, y: &BlockQ8K) -> f32 {
    let dmin = -y.d * xdmin;
    let m = hsum_epi32_128(min_sums(mins, y)) as f32;
    m.mul_add(dmin, summs)
}

/// Q6_K's offset for one activation row: eight i32 lanes (two sub-blocks each) whose sum is
/// `32·Σ_s sc_s·bsum_s` (`sc16`: [`q6k_scales`]' sixteen scales), subtracted from the sums of
/// the unsigned quants.
#[inline(always)]
pub(super) unsafe fn q6k_offset(sc16: __m256i, y: &BlockQ8K) -> __m256i {
    let bs = _mm256_loadu_si256(y.bsums.as_ptr().cast());
    _mm256_slli_epi32::<5>(_mm256_madd_epi16(sc16, bs))
}

/// Σ over the eight sub-blocks of 32 of `scale_j · Σ q·y` (`q` unsigned, <= 31).
#[inline(always)]
unsafe fn scaled_sums<const VNNI: u8>(
    q: &[__m256i; 8],
    scales: &[__m256i; 8],
    y: &BlockQ8K,
) -> __m256i {
    let mut sumi = _mm256_setzero_si256();
    for j in 0..8 {
        let p16 = _mm256_maddubs_epi16(q[j], load(&y.qs[32 * j..]));
        sumi = madd_acc::<VNNI>(sumi, scales[j], p16);
    }
    sumi
}

/// Sub-blocks `2c` and `2c + 1` of a Q4_K or Q5_K super-block's low four bits (the low and
/// the high nibbles of `qs[32c..32c + 32]`), one quant per byte.
#[inline(always)]
pub(super) unsafe fn q4k_pair(qs: &[u8; 128], c: usize) -> [__m256i; 2] {
    let m4 = _mm256_set1_epi8(0xf);
    let bits = load_u8(&qs[32 * c..]);
    [
        _mm256_and_si256(bits, m4),
        _mm256_and_si256(_mm256_srli_epi16::<4>(bits), m4),
    ]
}

/// Bit `j` of each byte of `v` at bit 4, the other bits of the byte anything: 16-bit shifts
/// of at most 4, so bit 4 of a word's high byte comes from bit `j` of that same byte.
#[inline(always)]
unsafe fn bit_to_4(v: __m256i, j: usize) -> __m256i {
    match j {
        0 => _mm256_slli_epi16::<4>(v),
        1 => _mm256_slli_epi16::<3>(v),
        2 => _mm256_slli_epi16::<2>(v),
        3 => _mm256_add_epi16(v, v),
        4 => v,
        5 => _mm256_srli_epi16::<1>(v),
        6 => _mm256_srli_epi16::<2>(v),
        _ => _mm256_srli_epi16::<3>(v),
    }
}

/// Sub-blocks `2c` and `2c + 1` of a Q5_K super-block: [`q4k_pair`] with each quant's fifth
/// bit, bit `j` of `qh[i]` for element `i` of sub-block `j` (`qh`: the block's 32 bytes).
#[inline(always)]
pub(super) unsafe fn q5k_pair(qs: &[u8; 128], qh: __m256i, c: usize) -> [__m256i; 2] {
    let bit4 = _mm256_set1_epi8(0x10);
    let [lo, hi] = q4k_pair(qs, c);
    [
        _mm256_or_si256(lo, _mm256_and_si256(bit_to_4(qh, 2 * c), bit4)),
        _mm256_or_si256(hi, _mm256_and_si256(bit_to_4(qh, 2 * c + 1), bit4)),
    ]
}

/// Q4_K · Q8_K: `d·Σ_j sc_j·Σ q·y - dmin·Σ_j m_j·bsum_j` per super-block.
#[inline(always)]
pub(super) unsafe fn q4k<const VNNI: u8, const R: usize>(
    x: &[BlockQ4K],
    y: [&[BlockQ8K]; R],
) -> [f32; R] {
    same_lengths(x, &y);
    let mut acc = [_mm256_setzero_ps(); R];
    let mut acc_m = [_mm_setzero_ps(); R];
    for (i, xb) in x.iter().enumerate() {
        prefetch_ahead(xb);
        let (sm, dm) = scales_mins_k4(head_k4(xb));
        let (scales, mins) = scale_vectors_k4(sm);
        let mut q = [_mm256_setzero_si256(); 8];
        for c in 0..4 {
            [q[2 * c], q[2 * c + 1]] = q4k_pair(&xb.qs, c);
        }
        let (dx, mx) = (
            _mm256_broadcastss_ps(dm),
            _mm256_broadcastss_ps(_mm_movehdup_ps(dm)),
        );
        for r in 0..R {
            // SAFETY: `same_lengths` checked `i < x.len() == y[r].len()`.
            let yb = y[r].get_unchecked(i);
            acc_m[r] = q4k_add_min(acc_m[r], mins, mx, yb);
            let sumi = scaled_sums::<VNNI>(&q, &scales, yb);
            acc[r] = add_scaled(acc[r], sumi, dx, yb);
        }
    }
    std::array::from_fn(|r| hsum_ps(acc[r]) + hsum_ps128(acc_m[r]))
}

/// Q5_K · Q8_K: as Q4_K, the fifth bit of sub-block `j` being bit `j` of `qh[i]`.
#[inline(always)]
pub(super) unsafe fn q5k<const VNNI: u8, const R: usize>(
    x: &[BlockQ5K],
    y: [&[BlockQ8K]; R],
) -> [f32; R] {
    same_lengths(x, &y);
    let mut acc = [_mm256_setzero_ps(); R];
    let mut summs = [0f32; R];
    for (i, xb) in x.iter().enumerate() {
        prefetch_ahead(xb);
        let (sm, dm) = scales_mins_k4(head_k4(xb));
        let (scales, mins) = scale_vectors_k4(sm);
        let mut q = [_mm256_setzero_si256(); 8];
        let qh = load_u8(&xb.qh);
        for c in 0..4 {
            [q[2 * c], q[2 * c + 1]] = q5k_pair(&xb.qs, qh, c);
        }
        let (dx, xdmin) = (
            _mm256_broadcastss_ps(dm),
            _mm_cvtss_f32(_mm_movehdup_ps(dm)),
        );
        for r in 0..R {
            // SAFETY: `same_lengths` checked `i < x.len() == y[r].len()`.
            let yb = y[r].get_unchecked(i);
            summs[r] = q5k_add_min(summs[r], mins, xdmin, yb);
            let sumi = scaled_sums::<VNNI>(&q, &scales, yb);
            acc[r] = add_scaled(acc[r], sumi, dx, yb);
        }
    }
    std::array::from_fn(|r| hsum_ps(acc[r]) + summs[r])
}

/// Bits 0 and 1 of each byte of `v`, moved to bits 4 and 5.
#[inline(always)]
unsafe fn high2(m3: __m256i, v: __m256i) -> __m256i {
    _mm256_slli_epi16::<4>(_mm256_and_si256(v, m3))
}

/// The quants (unsigned, 0 to 63) of elements `128h + 32k .. 128h + 32k + 32` of a Q6_K
/// super-block, `k` = 0 to 3 (layout in `formats/q6_k.rs`), one per byte.
#[inline(always)]
pub(super) unsafe fn q6k_half(xb: &BlockQ6K, h: usize) -> [__m256i; 4] {
    let m4 = _mm256_set1_epi8(0xf);
    let m3 = _mm256_set1_epi8(3);
    let ql1 = load_u8(&xb.ql[64 * h..]);
    let ql2 = load_u8(&xb.ql[64 * h + 32..]);
    let qh = load_u8(&xb.qh[32 * h..]);
    [
        _mm256_or_si256(_mm256_and_si256(ql1, m4), high2(m3, qh)),
        _mm256_or_si256(
            _mm256_and_si256(ql2, m4),
            high2(m3, _mm256_srli_epi16::<2>(qh)),
        ),
        _mm256_or_si256(
            _mm256_and_si256(_mm256_srli_epi16::<4>(ql1), m4),
            high2(m3, _mm256_srli_epi16::<4>(qh)),
        ),
        _mm256_or_si256(
            _mm256_and_si256(_mm256_srli_epi16::<4>(ql2), m4),
            high2(m3, _mm256_srli_epi16::<6>(qh)),
        ),
    ]
}

/// The sixteen sub-block scales of a Q6_K super-block as i16 lanes, and their two halves
/// (scales 0-7, 8-15) each broadcast to both 128-bit halves, the `vpshufb` sources of the
/// scale vectors.
#[inline(always)]
pub(super) unsafe fn q6k_scales(xb: &BlockQ6K) -> (__m256i, [__m256i; 2]) {
    let sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(xb.scales.as_ptr().cast()));
    let halves = [
        _mm256_broadcastsi128_si256(_mm256_castsi256_si128(sc16)),
        _mm256_broadcastsi128_si256(_mm256_extracti128_si256::<1>(sc16)),
    ];
    (sc16, halves)
}

/// `vpshufb` controls for the Q6_K bodies ([`q6k`] and `q6k_one`), on the eight i16 scales
/// of one half of a Q6_K super-block held in both 128-bit halves ([`q6k_scales`]): entry `p`
/// (0 to 7) puts scale `2p % 8` in the low half's eight lanes and scale `2p % 8 + 1` in the
/// high half's (the scales of the two sub-blocks of 16 in elements `32p .. 32p + 32`).
pub(super) static Q6K_SPREAD: [[u8; 32]; 8] = {
    let mut t = [[0u8; 32]; 8];
    let mut p = 0;
    while p < 8 {
        let k = (2 * p % 8) as u8;
        let mut i = 0;
        while i < 16 {
            t[p][i] = 2 * k + (i % 2) as u8;
            t[p][16 + i] = 2 * (k + 1) + (i % 2) as u8;
            i += 1;
        }
        p += 1;
    }
    t
};

/// Q6_K · Q8_K: `d·Σ_s sc_s·Σ (q - 32)·y` per super-block, computed as
/// `Σ_s sc_s·Σ q·y - 32·Σ_s sc_s·bsum_s` (q unsigned, so `vpmaddubsw` applies directly).
#[inline(always)]
pub(super) unsafe fn q6k<const VNNI: u8, const R: usize>(
    x: &[BlockQ6K],
    y: [&[BlockQ8K]; R],
) -> [f32; R] {
    same_lengths(x, &y);
    let mut acc = [_mm256_setzero_ps(); R];
    for (i, xb) in x.iter().enumerate() {
        prefetch_ahead(xb);
        let mut q = [_mm256_setzero_si256(); 8];
        for h in 0..2 {
            q[4 * h..4 * h + 4].copy_from_slice(&q6k_half(xb, h));
        }
        let (sc16, halves) = q6k_scales(xb);
        // Per 32 elements `p`: the scales of its two sub-blocks of 16.
        let scales: [__m256i; 8] = std::array::from_fn(|p| {
            let ctrl = _mm256_loadu_si256(Q6K_SPREAD[p].as_ptr().cast());
            _mm256_shuffle_epi8(halves[p / 4], ctrl)
        });
        let dx = f16x8(xb.d);
        for r in 0..R {
            // SAFETY: `same_lengths` checked `i < x.len() == y[r].len()`.
            let yb = y[r].get_unchecked(i);
            let offset = q6k_offset(sc16, yb);
            let mut sumi = _mm256_setzero_si256();
            for p in 0..8 {
                let p16 = _mm256_maddubs_epi16(q[p], load(&yb.qs[32 * p..]));
                sumi = madd_acc::<VNNI>(sumi, scales[p], p16);
            }
            acc[r] = add_scaled(acc[r], _mm256_sub_epi32(sumi, offset), dx, yb);
        }
    }
    acc.map(|a| hsum_ps(a))
}

/// The Q4_K and Q5_K kernels give, bit for bit, what llama.cpp's x86 (AVX2) kernels compute,
/// written out here in plain arithmetic: per super-block eight i32 lanes (lane `k` holds the
/// scaled products of elements `4k..4k+4` of every sub-block), `acc[k] = fma(d, lane, acc[k])`;
/// the minimum's term in four lanes of `fma(dmin, ·)` (Q4_K) or as one scalar
/// `fma(Σ, dmin, summs)` (Q5_K); then llama.cpp's `hsum_float_8`. The SmolLM2 parity
/// perplexity depends on this order (see `tests/parity.rs`).
#[cfg(test)]
pub(super) mod llama_cpp_order {
    use super::super::super::{available_isas, vec_dot_for, Isa};
    use crate::formats::k_common::get_scale_min_k4;
    use crate::formats::q4_k::BlockQ4K;
    use crate::formats::q5_k::BlockQ5K;
    use crate::formats::q8_k::BlockQ8K;
    use crate::formats::Block;
    use crate::GgmlType;

    /// xorshift64*, for reproducible bytes.
    pub(in crate::kernels::x86) struct Rng(pub(in crate::kernels::x86) u64);
    impl Rng {
        pub(in crate::kernels::x86) fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn unit(&mut self) -> f32 {
            (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        }
    }

    fn hsum8(v: [f32; 8]) -> f32 {
        let a: [f32; 4] = std::array::from_fn(|i| v[i] + v[i + 4]);
        hsum4(a)
    }

    fn hsum4(a: [f32; 4]) -> f32 {
        (a[0] + a[2]) + (a[1] + a[3])
    }

    /// llama.cpp's order for a K-quant with 4-bit scales/mins (`q(j, l)`: element `l` of
    /// sub-block `j`); `scalar_min` picks Q5_K's scalar minimum term over Q4_K's four lanes.
    fn model(
        (d, dmin): (f32, f32),
        scales: &[u8; 12],
        y: &[BlockQ8K],
        i: usize,
        q: impl Fn(usize, usize) -> i32,
        st: &mut ([f32; 8], [f32; 4], f32),
        scalar_min: bool,
    ) {
        let yb = &y[i];
        let sm: Vec<(i32, i32)> = (0..8)
            .map(|j| {
                let (s, m) = get_scale_min_k4(j, scales);
                (s as i32, m as i32)
            })
            .collect();
        let mut lanes = [0i32; 8];
        for (k, lane) in lanes.iter_mut().enumerate() {
            for (j, &(s, _)) in sm.iter().enumerate() {
                let p: i32 = (4 * k..4 * k + 4)
                    .map(|l| q(j, l) * yb.qs[32 * j + l] as i32)
                    .sum();
                *lane += s * p;
            }
        }
        let dd = yb.d * d;
        for (a, &lane) in st.0.iter_mut().zip(&lanes) {
            *a = dd.mul_add(lane as f32, *a);
        }
        let pair = |j: usize| yb.bsums[2 * j] as i32 + yb.bsums[2 * j + 1] as i32;
        let prod: [i32; 4] =
            std::array::from_fn(|l| sm[2 * l].1 * pair(2 * l) + sm[2 * l + 1].1 * pair(2 * l + 1));
        let dm = -yb.d * dmin;
        if scalar_min {
            let m: i32 = prod.iter().sum();
            st.2 = (m as f32).mul_add(dm, st.2);
        } else {
            for (a, &p) in st.1.iter_mut().zip(&prod) {
                *a = dm.mul_add(p as f32, *a);
            }
        }
    }

    pub(in crate::kernels::x86) fn activations(rng: &mut Rng, nb: usize) -> Vec<BlockQ8K> {
        let x: Vec<f32> = (0..nb * 256).map(|_| rng.unit() * 3.0).collect();
        let mut y = vec![bytemuck::Zeroable::zeroed(); nb];
        BlockQ8K::quantize(&x, &mut y);
        y
    }

    pub(in crate::kernels::x86) fn f16_scale(rng: &mut Rng) -> half::f16 {
        half::f16::from_f32(rng.unit().abs() * 0.02 + 1e-4)
    }

    #[test]
    fn q4_k_and_q5_k_follow_llama_cpp() {
        let isas: Vec<Isa> = available_isas()
            .iter()
            .copied()
            .filter(|&i| i != Isa::Scalar)
            .collect();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for trial in 0..200 {
            let nb = 1 + trial % 16;
            let y = activations(&mut rng, nb);
            let mut x4: Vec<BlockQ4K> = vec![bytemuck::Zeroable::zeroed(); nb];
            let mut x5: Vec<BlockQ5K> = vec![bytemuck::Zeroable::zeroed(); nb];
            for b in bytemuck::cast_slice_mut::<_, u8>(&mut x4) {
                *b = rng.next() as u8;
            }
            for b in bytemuck::cast_slice_mut::<_, u8>(&mut x5) {
                *b = rng.next() as u8;
            }
            for b in &mut x4 {
                (b.d, b.dmin) = (f16_scale(&mut rng), f16_scale(&mut rng));
            }
            for b in &mut x5 {
                (b.d, b.dmin) = (f16_scale(&mut rng), f16_scale(&mut rng));
            }
            let (mut s4, mut s5) = (([0f32; 8], [0f32; 4], 0f32), ([0f32; 8], [0f32; 4], 0f32));
            for i in 0..nb {
                let b = &x4[i];
                let q4 =
                    |j: usize, l: usize| ((b.qs[32 * (j / 2) + l] >> (4 * (j % 2))) & 15) as i32;
                model(
                    (b.d.to_f32(), b.dmin.to_f32()),
                    &b.scales,
                    &y,
                    i,
                    q4,
                    &mut s4,
                    false,
                );
                let b = &x5[i];
                let q5 = |j: usize, l: usize| {
                    let lo = (b.qs[32 * (j / 2) + l] >> (4 * (j % 2))) & 15;
                    (lo | (((b.qh[l] >> j) & 1) << 4)) as i32
                };
                model(
                    (b.d.to_f32(), b.dmin.to_f32()),
                    &b.scales,
                    &y,
                    i,
                    q5,
                    &mut s5,
                    true,
                );
            }
            let want4 = hsum8(s4.0) + hsum4(s4.1);
            let want5 = hsum8(s5.0) + s5.2;
            let yb: &[u8] = bytemuck::cast_slice(&y);
            for &isa in &isas {
                let k4 = vec_dot_for(GgmlType::Q4K, isa).unwrap();
                let k5 = vec_dot_for(GgmlType::Q5K, isa).unwrap();
                let got4 = k4(bytemuck::cast_slice(&x4), yb);
                let got5 = k5(bytemuck::cast_slice(&x5), yb);
                assert_eq!(
                    got4.to_bits(),
                    want4.to_bits(),
                    "Q4_K {isa:?} trial {trial}: {got4} vs {want4}"
                );
                assert_eq!(
                    got5.to_bits(),
                    want5.to_bits(),
                    "Q5_K {isa:?} trial {trial}: {got5} vs {want5}"
                );
            }
        }
    }
}
