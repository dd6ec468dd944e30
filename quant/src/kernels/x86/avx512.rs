//! AVX-512 kernels: 512-bit decode kernels for the K-quants (Q4_K, Q5_K, Q6_K), the 32-element
//! types and F16; the 256-bit bodies of `avx2.rs` in their AVX512-VNNI builds take the
//! remainder blocks of the 32-element types (`vpdpbusd`/`vpdpwssd` in their 256-bit AVX512-VL
//! forms fuse the `vpmaddubsw`/`vpmaddwd`/`vpaddd` chains).
//!
//! Decode streams every weight once per token, so these kernels must keep up with memory:
//! the 256-bit ones spent about half an instruction per weight and read ~12 GB/s on a machine
//! that streams ~19 GB/s. The K-quant kernels take 64 quants per vector: a 32-byte chunk's low
//! and high nibbles are two sub-blocks whose 64 activations are adjacent in the Q8_K block,
//! so one load serves both; the two halves are then added in integers, which gives back the
//! eight lanes of the 256-bit kernels, so the float order (llama.cpp's) and the bits are
//! unchanged. In decode (one activation row against many weight rows, [`RowKernel::many`])
//! the Q4_K and Q5_K kernels first copy the activations into the order of the weights'
//! 64-byte loads ([`PrepK4`]), once for all the rows of the call: each row's super-block
//! then takes its quants without crossing lanes and its block sums ready (Q4_K: ~55
//! instructions instead of ~69), with the same integer sums, so the same bits. The 32-element
//! types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) take two blocks per vector and accumulate in sixteen
//! f32 lanes (not the reference's order; within rounding of it).
//! Without VNNI the [`super::super::Isa::Avx512`] table is the 512-bit F16 kernel plus the
//! AVX2 kernels.

use std::arch::x86_64::*;

use half::f16;

use super::super::{each_row, many_rows, RowKernel};
use super::avx2::{self, f16x4, EVEX_VNNI};
use super::avx2_k::{self, scales_mins_k4};
use super::{both, find, single, Entry};
use crate::formats::f16_to_f32;
use crate::formats::q4_0::BlockQ4_0;
use crate::formats::q4_1::BlockQ4_1;
use crate::formats::q4_k::BlockQ4K;
use crate::formats::q5_0::BlockQ5_0;
use crate::formats::q5_1::BlockQ5_1;
use crate::formats::q5_k::BlockQ5K;
use crate::formats::q6_k::BlockQ6K;
use crate::formats::q8_0::BlockQ8_0;
use crate::formats::q8_1::BlockQ8_1;
use crate::formats::q8_k::BlockQ8K;
use crate::GgmlType;

/// The AVX-512 (with VNNI) kernels.
const KERNELS: &[Entry] = &[
    single::<F16Avx512>(GgmlType::F16),
    both::<Q4_0Vnni>(GgmlType::Q4_0),
    both::<Q4_1Vnni>(GgmlType::Q4_1),
    both::<Q5_0Vnni>(GgmlType::Q5_0),
    both::<Q5_1Vnni>(GgmlType::Q5_1),
    both::<Q8_0Vnni>(GgmlType::Q8_0),
    both::<Q4KVnni>(GgmlType::Q4K),
    both::<Q5KVnni>(GgmlType::Q5K),
    both::<Q6KVnni>(GgmlType::Q6K),
];

/// The AVX-512 kernels that need no VNNI.
const NO_VNNI_KERNELS: &[Entry] = &[single::<F16Avx512>(GgmlType::F16)];

/// The entry of `ty`, if this file has one (`vnni`: whether the CPU has AVX512-VNNI).
pub(super) fn entry(ty: GgmlType, vnni: bool) -> Option<&'static Entry> {
    find(if vnni { KERNELS } else { NO_VNNI_KERNELS }, ty)
}

// SAFETY (each `unsafe impl`): `rows` and `many` need the features in their `target_feature`;
// the `*Vnni` kernels are only handed out through `entry` above (with `vnni`), which
// `x86::entry` consults after `kernels::available_isas` found AVX-512 F+BW+VL (with AVX2, FMA,
// F16C) and `kernels::has_avx512_vnni` found VNNI; `F16Avx512` needs AVX-512 F+BW+VL only.

pub(super) struct F16Avx512;
unsafe impl RowKernel for F16Avx512 {
    type W = f16;
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl")]
    unsafe fn rows<const R: usize>(x: &[f16], y: [&[f16]; R]) -> [f32; R] {
        // A loop, not `array::from_fn`: a closure does not inherit `target_feature`, and the
        // intrinsics inlined into it would become calls.
        let mut out = [0f32; R];
        for r in 0..R {
            out[r] = f16_dot(x, y[r]);
        }
        out
    }
    many_rows!("avx2,fma,f16c,avx512f,avx512bw,avx512vl");
}

pub(super) struct Q4_0Vnni;
unsafe impl RowKernel for Q4_0Vnni {
    type W = BlockQ4_0;
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn rows<const R: usize>(x: &[BlockQ4_0], y: [&[BlockQ8_0]; R]) -> [f32; R] {
        legacy_zmm::<_, R>(x, y)
    }
    many_rows!("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni");
}

pub(super) struct Q4_1Vnni;
unsafe impl RowKernel for Q4_1Vnni {
    type W = BlockQ4_1;
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn rows<const R: usize>(x: &[BlockQ4_1], y: [&[BlockQ8_1]; R]) -> [f32; R] {
        legacy_zmm::<_, R>(x, y)
    }
    many_rows!("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni");
}

pub(super) struct Q5_0Vnni;
unsafe impl RowKernel for Q5_0Vnni {
    type W = BlockQ5_0;
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn rows<const R: usize>(x: &[BlockQ5_0], y: [&[BlockQ8_0]; R]) -> [f32; R] {
        legacy_zmm::<_, R>(x, y)
    }
    many_rows!("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni");
}

pub(super) struct Q5_1Vnni;
unsafe impl RowKernel for Q5_1Vnni {
    type W = BlockQ5_1;
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn rows<const R: usize>(x: &[BlockQ5_1], y: [&[BlockQ8_1]; R]) -> [f32; R] {
        legacy_zmm::<_, R>(x, y)
    }
    many_rows!("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni");
}

pub(super) struct Q8_0Vnni;
unsafe impl RowKernel for Q8_0Vnni {
    type W = BlockQ8_0;
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn rows<const R: usize>(x: &[BlockQ8_0], y: [&[BlockQ8_0]; R]) -> [f32; R] {
        legacy_zmm::<_, R>(x, y)
    }
    many_rows!("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni");
}

pub(super) struct Q4KVnni;
unsafe impl RowKernel for Q4KVnni {
    type W = BlockQ4K;
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn rows<const R: usize>(x: &[BlockQ4K], y: [&[BlockQ8K]; R]) -> [f32; R] {
        k4_zmm::<_, _, R>(x, y)
    }
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn many(x: &[BlockQ4K], y: &[BlockQ8K], out: &mut [f32]) {
        k4_many(x, y, out)
    }
}

pub(super) struct Q5KVnni;
unsafe impl RowKernel for Q5KVnni {
    type W = BlockQ5K;
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn rows<const R: usize>(x: &[BlockQ5K], y: [&[BlockQ8K]; R]) -> [f32; R] {
        k4_zmm::<_, _, R>(x, y)
    }
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn many(x: &[BlockQ5K], y: &[BlockQ8K], out: &mut [f32]) {
        k4_many(x, y, out)
    }
}

pub(super) struct Q6KVnni;
unsafe impl RowKernel for Q6KVnni {
    type W = BlockQ6K;
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn rows<const R: usize>(x: &[BlockQ6K], y: [&[BlockQ8K]; R]) -> [f32; R] {
        q6k_zmm::<R>(x, y)
    }
    many_rows!("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni");
}

/// A 32-element weight type of [`legacy_zmm`].
trait Zmm32: Sized {
    /// Its activation block (Q8_0, or Q8_1 for the types with a minimum).
    type A: Act32;
    /// What the unsigned quants of [`Zmm32::pair`] are offset by (`w = d·(q - OFFSET)`);
    /// 0 for the types with a minimum (`w = d·q + m`).
    const OFFSET: u8;
    /// The unsigned quants of two blocks in element order (`a`'s 32, then `b`'s).
    unsafe fn pair(a: &Self, b: &Self) -> __m512i;
    /// The f16 bits of the scale and of the minimum (0 where the type has none).
    fn dm(&self) -> (u16, u16);
    /// The 256-bit kernel, for the blocks past the last group of four.
    unsafe fn tail<const R: usize>(x: &[Self], y: [&[Self::A]; R]) -> [f32; R];
}

/// An activation block of [`legacy_zmm`]: Q8_0 or Q8_1.
trait Act32 {
    /// The 32 quants.
    fn qs(&self) -> &[i8; 32];
    /// The f16 bits of the scale and of `s = d·Σq` (0 for Q8_0).
    fn ds(&self) -> (u16, u16);
}

impl Act32 for BlockQ8_0 {
    #[inline(always)]
    fn qs(&self) -> &[i8; 32] {
        &self.qs
    }
    #[inline(always)]
    fn ds(&self) -> (u16, u16) {
        (self.d.to_bits(), 0)
    }
}

impl Act32 for BlockQ8_1 {
    #[inline(always)]
    fn qs(&self) -> &[i8; 32] {
        &self.qs
    }
    #[inline(always)]
    fn ds(&self) -> (u16, u16) {
        (self.d.to_bits(), self.s.to_bits())
    }
}

/// The 32 quants of two blocks, one after the other.
#[inline(always)]
unsafe fn pair(a: &[i8; 32], b: &[i8; 32]) -> __m512i {
    let lo = _mm256_loadu_si256(a.as_ptr().cast());
    _mm512_inserti64x4::<1>(
        _mm512_castsi256_si512(lo),
        _mm256_loadu_si256(b.as_ptr().cast()),
    )
}

/// The nibbles of two Q4/Q5 blocks in element order (`qs[j]`: elements `j` and `j + 16`).
#[inline(always)]
unsafe fn nibble_pair(a: &[u8; 16], b: &[u8; 16]) -> __m512i {
    let v = _mm256_set_m128i(
        _mm_loadu_si128(b.as_ptr().cast()),
        _mm_loadu_si128(a.as_ptr().cast()),
    );
    // 128-bit lanes [a, b, a >> 4, b >> 4], reordered to [a, a >> 4, b, b >> 4].
    let z = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(v), _mm256_srli_epi16::<4>(v));
    _mm512_and_si512(_mm512_shuffle_i64x2::<0xd8>(z, z), _mm512_set1_epi8(0x0f))
}

/// [`nibble_pair`] plus the fifth bits (`qh`, bit `j` for element `j`) as 16.
#[inline(always)]
unsafe fn q5_pair(a: (&[u8; 16], [u8; 4]), b: (&[u8; 16], [u8; 4])) -> __m512i {
    let q = nibble_pair(a.0, b.0);
    let k = u32::from_le_bytes(a.1) as u64 | (u32::from_le_bytes(b.1) as u64) << 32;
    _mm512_mask_add_epi8(q, k, q, _mm512_set1_epi8(16))
}

impl Zmm32 for BlockQ4_0 {
    type A = BlockQ8_0;
    const OFFSET: u8 = 8;
    #[inline(always)]
    unsafe fn pair(a: &Self, b: &Self) -> __m512i {
        nibble_pair(&a.qs, &b.qs)
    }
    #[inline(always)]
    fn dm(&self) -> (u16, u16) {
        (self.d.to_bits(), 0)
    }
    #[inline(always)]
    unsafe fn tail<const R: usize>(x: &[Self], y: [&[BlockQ8_0]; R]) -> [f32; R] {
        avx2::q4_0::<EVEX_VNNI, R>(x, y)
    }
}

impl Zmm32 for BlockQ4_1 {
    type A = BlockQ8_1;
    const OFFSET: u8 = 0;
    #[inline(always)]
    unsafe fn pair(a: &Self, b: &Self) -> __m512i {
        nibble_pair(&a.qs, &b.qs)
    }
    #[inline(always)]
    fn dm(&self) -> (u16, u16) {
        (self.d.to_bits(), self.m.to_bits())
    }
    #[inline(always)]
    unsafe fn tail<const R: usize>(x: &[Self], y: [&[BlockQ8_1]; R]) -> [f32; R] {
        avx2::q4_1::<EVEX_VNNI, R>(x, y)
    }
}

impl Zmm32 for BlockQ5_0 {
    type A = BlockQ8_0;
    const OFFSET: u8 = 16;
    #[inline(always)]
    unsafe fn pair(a: &Self, b: &Self) -> __m512i {
        q5_pair((&a.qs, a.qh), (&b.qs, b.qh))
    }
    #[inline(always)]
    fn dm(&self) -> (u16, u16) {
        (self.d.to_bits(), 0)
    }
    #[inline(always)]
    unsafe fn tail<const R: usize>(x: &[Self], y: [&[BlockQ8_0]; R]) -> [f32; R] {
        avx2::q5_0::<EVEX_VNNI, R>(x, y)
    }
}

impl Zmm32 for BlockQ5_1 {
    type A = BlockQ8_1;
    const OFFSET: u8 = 0;
    #[inline(always)]
    unsafe fn pair(a: &Self, b: &Self) -> __m512i {
        q5_pair((&a.qs, a.qh), (&b.qs, b.qh))
    }
    #[inline(always)]
    fn dm(&self) -> (u16, u16) {
        (self.d.to_bits(), self.m.to_bits())
    }
    #[inline(always)]
    unsafe fn tail<const R: usize>(x: &[Self], y: [&[BlockQ8_1]; R]) -> [f32; R] {
        avx2::q5_1::<EVEX_VNNI, R>(x, y)
    }
}

impl Zmm32 for BlockQ8_0 {
    type A = BlockQ8_0;
    const OFFSET: u8 = 128;
    #[inline(always)]
    unsafe fn pair(a: &Self, b: &Self) -> __m512i {
        _mm512_xor_si512(pair(&a.qs, &b.qs), _mm512_set1_epi8(-128))
    }
    #[inline(always)]
    fn dm(&self) -> (u16, u16) {
        (self.d.to_bits(), 0)
    }
    #[inline(always)]
    unsafe fn tail<const R: usize>(x: &[Self], y: [&[BlockQ8_0]; R]) -> [f32; R] {
        avx2::q8_0::<EVEX_VNNI, R>(x, y)
    }
}

/// The 32-element types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) with 512-bit vectors, for the decode
/// step where the weight stream must keep up with memory: two blocks per vector,
/// `Σ (q - OFFSET)·y = Σ q·y - Σ OFFSET·y` by `vpdpbusd` (exact for every quant, Q8_0's -128
/// included: its quants are taken plus 128), each lane's sum times its block's `d_x·d_y`
/// added into sixteen f32 lanes (two accumulators per row), and for the types with a
/// minimum `m_x·s_y` into four more, reduced once at the end. So, unlike the 256-bit Q4_0
/// and Q5_0 kernels, not the reference's float order: within rounding of it (the integer sums
/// are exact). Remainder blocks (fewer than four) go to the 256-bit kernel.
#[inline(always)]
unsafe fn legacy_zmm<W: Zmm32, const R: usize>(x: &[W], y: [&[W::A]; R]) -> [f32; R] {
    avx2::same_lengths(x, &y);
    let bias = _mm512_set1_epi8(W::OFFSET as i8);
    let zero = _mm512_setzero_si512();
    // Lanes 0-7 hold the first block of a pair, 8-15 the second: their scales from the four
    // products `d = [d0, d1, d2, d3]` of a group of four blocks.
    let idx01 = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    let idx23 = _mm512_set_epi32(3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2);
    let mut acc = [[_mm512_setzero_ps(); 2]; R];
    let mut acc_m = [_mm_setzero_ps(); R];
    let n4 = x.len() / 4 * 4;
    for i in (0..n4).step_by(4) {
        // SAFETY: `i + 4 <= n4 <= x.len() == y[r].len()` (`same_lengths`).
        let xc = x.get_unchecked(i..i + 4);
        avx2::prefetch_ahead(&xc[0]);
        avx2::prefetch_ahead(&xc[2]);
        let x01 = W::pair(&xc[0], &xc[1]);
        let x23 = W::pair(&xc[2], &xc[3]);
        let dm: [(u16, u16); 4] = std::array::from_fn(|b| xc[b].dm());
        let dx = f16x4(dm.map(|(d, _)| d));
        for r in 0..R {
            let yc = y[r].get_unchecked(i..i + 4);
            let (y01, y23) = (pair(yc[0].qs(), yc[1].qs()), pair(yc[2].qs(), yc[3].qs()));
            let mut s01 = _mm512_dpbusd_epi32(zero, x01, y01);
            let mut s23 = _mm512_dpbusd_epi32(zero, x23, y23);
            if W::OFFSET != 0 {
                s01 = _mm512_sub_epi32(s01, _mm512_dpbusd_epi32(zero, bias, y01));
                s23 = _mm512_sub_epi32(s23, _mm512_dpbusd_epi32(zero, bias, y23));
            }
            let ds: [(u16, u16); 4] = std::array::from_fn(|b| yc[b].ds());
            let d = _mm512_castps128_ps512(_mm_mul_ps(dx, f16x4(ds.map(|(d, _)| d))));
            let [a0, a1] = &mut acc[r];
            *a0 = _mm512_fmadd_ps(
                _mm512_cvtepi32_ps(s01),
                _mm512_permutexvar_ps(idx01, d),
                *a0,
            );
            *a1 = _mm512_fmadd_ps(
                _mm512_cvtepi32_ps(s23),
                _mm512_permutexvar_ps(idx23, d),
                *a1,
            );
            if W::OFFSET == 0 {
                let (mx, sy) = (dm.map(|(_, m)| m), ds.map(|(_, s)| s));
                acc_m[r] = _mm_fmadd_ps(f16x4(mx), f16x4(sy), acc_m[r]);
            }
        }
    }
    let mut out = [0f32; R];
    for r in 0..R {
        out[r] = _mm512_reduce_add_ps(_mm512_add_ps(acc[r][0], acc[r][1]));
        if W::OFFSET == 0 {
            out[r] += _mm512_reduce_add_ps(_mm512_zextps128_ps512(acc_m[r]));
        }
    }
    if n4 < x.len() {
        // SAFETY: as above; the tail has the same length in every row.
        let tail = W::tail::<R>(
            x.get_unchecked(n4..),
            std::array::from_fn(|r| y[r].get_unchecked(n4..)),
        );
        for r in 0..R {
            out[r] += tail[r];
        }
    }
    out
}

/// The `vpermw` index giving, for the chunk pair `2p, 2p + 1` of a Q4_K/Q5_K super-block,
/// the two scales of each i32 lane of their [`scaled_sums64`] pair: in the low i16 the scale
/// of chunk `2p`'s element there, in the high one chunk `2p + 1`'s. Chunk `c` holds
/// sub-block `2c` in lanes 0-7 and `2c + 1` in lanes 8-15.
#[inline(always)]
unsafe fn k4_pair_index(p: usize) -> __m512i {
    let mut idx = [0i16; 32];
    for (l, v) in idx.iter_mut().enumerate() {
        let chunk = 2 * p + l % 2;
        *v = (2 * chunk + usize::from(l / 2 >= 8)) as i16;
    }
    _mm512_loadu_si512(idx.as_ptr().cast())
}

/// A 4-bit chunk of 32 bytes as 64 quants: the low nibbles (sub-block `2c`), then the high
/// ones (`2c + 1`), which is the order of their 64 activations in a Q8_K block.
#[inline(always)]
unsafe fn nibbles64(bits: &[u8], m4: __m512i) -> __m512i {
    debug_assert!(bits.len() >= 32);
    let b = _mm256_loadu_si256(bits.as_ptr().cast());
    _mm512_and_si512(
        _mm512_inserti64x4::<1>(_mm512_castsi256_si512(b), _mm256_srli_epi16::<4>(b)),
        m4,
    )
}

/// Σ over a super-block's four vectors of 64 quants of `scale · Σ q·y` per four elements
/// (vector `c` against the activations `qs[64c..64c + 64]`), with the two 256-bit halves
/// added: the eight i32 lanes of the 256-bit kernel (lane `k`: elements `4k..4k + 4` of every
/// 32 elements, exact). Each half of a vector holds one sub-block, so the lanes do not depend
/// on which sub-block sits in which half.
///
/// Each vector's sums of four products come from one `vpdpbusd`. They fit in i16
/// (`4·63·128 < 2^15`, Q6_K's quants being the largest), so two vectors' sums share one
/// register, one in each i16 half of a lane, and one `vpmaddwd` against the pair of their
/// scales (`sp`, low and high halves as [`k4_pair_index`], [`k4_prepped_index`] and
/// [`q6k_pair_index`] place them) scales and adds both: six multiplies per super-block
/// instead of eight.
#[inline(always)]
unsafe fn scaled_sums64(q: &[__m512i; 4], sp: &[__m512i; 2], qs: &[i8; 256]) -> __m256i {
    let mut d = [_mm512_setzero_si512(); 4];
    for c in 0..4 {
        let yv = _mm512_loadu_si512(qs.as_ptr().add(64 * c).cast());
        d[c] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q[c], yv);
    }
    // Odd i16 lanes from the second vector: its sums moved to the high halves.
    const HIGH: __mmask32 = 0xaaaa_aaaa;
    let d01 = _mm512_mask_blend_epi16(HIGH, d[0], _mm512_slli_epi32::<16>(d[1]));
    let d23 = _mm512_mask_blend_epi16(HIGH, d[2], _mm512_slli_epi32::<16>(d[3]));
    let sumi = _mm512_dpwssd_epi32(_mm512_madd_epi16(d01, sp[0]), d23, sp[1]);
    _mm256_add_epi32(
        _mm512_castsi512_si256(sumi),
        _mm512_extracti64x4_epi64::<1>(sumi),
    )
}

/// An f16 as f32 (F16C, exact).
#[inline(always)]
unsafe fn f16_f32(h: f16) -> f32 {
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h.to_bits() as i32)))
}

/// A block shaped like Q4_K (Q4_K, Q5_K): 4-bit quants in four 32-byte chunks, each the low
/// and high nibbles of two sub-blocks, with packed 6-bit scales and mins.
trait K4Zmm: bytemuck::Pod {
    /// Whether the minimum's term is summed as one scalar fused multiply-add per super-block
    /// (llama.cpp's Q5_K) rather than in four f32 lanes (its Q4_K): kept, for the bits.
    const SCALAR_MINS: bool;
    /// The four vectors of 64 quants (chunk `c`: sub-blocks `2c` and `2c + 1`).
    ///
    /// # Safety
    /// The CPU must have AVX-512 F+BW.
    unsafe fn quants(&self, m4: __m512i) -> [__m512i; 4];
    /// The four vectors of 64 quants in [`PrepK4`]'s order: vector `2p + s` holds sub-blocks
    /// `4p + s` and `4p + s + 2`, the low (`s = 0`) or high (`s = 1`) nibbles of the 64 bytes
    /// `qs[64p..64p + 64]`, so each comes from one load and no lane crossing.
    ///
    /// # Safety
    /// As `quants`.
    unsafe fn quants_prepped(&self, m4: __m512i) -> [__m512i; 4];
}

/// `(a & m4) | b`, one `vpternlogd`.
#[inline(always)]
unsafe fn and_or(a: __m512i, m4: __m512i, b: __m512i) -> __m512i {
    // Truth table over (a, b, m4) as bits (2, 1, 0): set where b, or where a and m4.
    _mm512_ternarylogic_epi32::<0xec>(a, b, m4)
}

impl K4Zmm for BlockQ4K {
    const SCALAR_MINS: bool = false;
    #[inline(always)]
    unsafe fn quants(&self, m4: __m512i) -> [__m512i; 4] {
        let mut q = [_mm512_setzero_si512(); 4];
        for (c, qc) in q.iter_mut().enumerate() {
            *qc = nibbles64(&self.qs[32 * c..], m4);
        }
        q
    }
    #[inline(always)]
    unsafe fn quants_prepped(&self, m4: __m512i) -> [__m512i; 4] {
        let mut q = [_mm512_setzero_si512(); 4];
        for p in 0..2 {
            let a = _mm512_loadu_si512(self.qs.as_ptr().add(64 * p).cast());
            q[2 * p] = _mm512_and_si512(a, m4);
            q[2 * p + 1] = _mm512_and_si512(_mm512_srli_epi16::<4>(a), m4);
        }
        q
    }
}

impl K4Zmm for BlockQ5K {
    const SCALAR_MINS: bool = true;
    /// The nibbles with the fifth bit of sub-block `j` (bit `j` of each `qh` byte) in bit 4.
    #[inline(always)]
    unsafe fn quants(&self, m4: __m512i) -> [__m512i; 4] {
        let b4 = _mm512_set1_epi8(0x10);
        // Bit 2c of each `qh` byte (low half) and bit 2c + 1 (high half, from `qh >> 1`) are
        // wanted at bit 4: a 16-bit shift by `4 - 2c` moves each byte's own bit there.
        let qh = _mm256_loadu_si256(self.qh.as_ptr().cast());
        let h01 = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(qh), _mm256_srli_epi16::<1>(qh));
        let mut q = [_mm512_setzero_si512(); 4];
        for (c, qc) in q.iter_mut().enumerate() {
            let h = match c {
                0 => _mm512_slli_epi16::<4>(h01),
                1 => _mm512_slli_epi16::<2>(h01),
                2 => h01,
                _ => _mm512_srli_epi16::<2>(h01),
            };
            *qc = _mm512_or_si512(nibbles64(&self.qs[32 * c..], m4), _mm512_and_si512(h, b4));
        }
        q
    }
    /// As `quants`, in [`PrepK4`]'s order.
    #[inline(always)]
    unsafe fn quants_prepped(&self, m4: __m512i) -> [__m512i; 4] {
        let b4 = _mm512_set1_epi8(0x10);
        // Vector `2p + s` wants bit `4p + s` of each `qh` byte in its low half and bit
        // `4p + s + 2` in its high half, at bit 4: with `qh >> 2` in the high half both are
        // bit `4p + s`, which a 16-bit shift by `4 - (4p + s)` moves there within each byte.
        let qh = _mm256_loadu_si256(self.qh.as_ptr().cast());
        let h02 = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(qh), _mm256_srli_epi16::<2>(qh));
        let h = [
            _mm512_slli_epi16::<4>(h02),
            _mm512_slli_epi16::<3>(h02),
            h02,
            _mm512_srli_epi16::<1>(h02),
        ];
        let mut q = [_mm512_setzero_si512(); 4];
        for p in 0..2 {
            let a = _mm512_loadu_si512(self.qs.as_ptr().add(64 * p).cast());
            q[2 * p] = and_or(a, m4, _mm512_and_si512(h[2 * p], b4));
            q[2 * p + 1] = and_or(
                _mm512_srli_epi16::<4>(a),
                m4,
                _mm512_and_si512(h[2 * p + 1], b4),
            );
        }
        q
    }
}

/// The activation side of [`k4_zmm`]: a Q8_K block as it is, or as [`k4_many`] prepared it.
trait K4Act {
    /// Whether the quants are in [`PrepK4`]'s order (the weights then come from
    /// [`K4Zmm::quants_prepped`], the scales through [`k4_prepped_index`]).
    const PREPPED: bool;
    /// The block's scale.
    fn d(&self) -> f32;
    /// The 256 quants, in the order of `PREPPED`.
    fn qs(&self) -> &[i8; 256];
    /// The sums of the quants of each sub-block ([`avx2_k::sub_block_sums`]), in sub-block
    /// order whatever `PREPPED` is (the mins they meet are in that order).
    ///
    /// # Safety
    /// The CPU must have AVX2.
    unsafe fn sums(&self) -> __m128i;
}

impl K4Act for BlockQ8K {
    const PREPPED: bool = false;
    #[inline(always)]
    fn d(&self) -> f32 {
        self.d
    }
    #[inline(always)]
    fn qs(&self) -> &[i8; 256] {
        &self.qs
    }
    #[inline(always)]
    unsafe fn sums(&self) -> __m128i {
        avx2_k::sub_block_sums(self)
    }
}

/// A Q8_K block prepared once per [`k4_many`] call for all its weight rows: the quants in
/// the order of [`K4Zmm::quants_prepped`] (vector `2p + s`: sub-blocks `4p + s`, then
/// `4p + s + 2`), the sub-block sums added up.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct PrepK4 {
    /// The 256 quants in [`K4Zmm::quants_prepped`]'s order.
    qs: [i8; 256],
    /// The eight sub-block sums, in sub-block order (read by an aligned 16-byte load).
    sums: [i16; 8],
    /// The Q8_K scale.
    d: f32,
}
const _: () = assert!(std::mem::offset_of!(PrepK4, sums) % 16 == 0);

impl PrepK4 {
    /// `y` prepared.
    ///
    /// # Safety
    /// The CPU must have AVX2.
    #[inline(always)]
    unsafe fn new(y: &BlockQ8K) -> PrepK4 {
        let mut out = PrepK4 {
            qs: [0; 256],
            sums: [0; 8],
            d: y.d,
        };
        for (v, dst) in out.qs.chunks_exact_mut(64).enumerate() {
            let (p, s) = (v / 2, v % 2);
            for half in 0..2 {
                let sub = 4 * p + s + 2 * half;
                dst[32 * half..32 * half + 32].copy_from_slice(&y.qs[32 * sub..32 * sub + 32]);
            }
        }
        _mm_storeu_si128(out.sums.as_mut_ptr().cast(), avx2_k::sub_block_sums(y));
        out
    }
}

impl K4Act for PrepK4 {
    const PREPPED: bool = true;
    #[inline(always)]
    fn d(&self) -> f32 {
        self.d
    }
    #[inline(always)]
    fn qs(&self) -> &[i8; 256] {
        &self.qs
    }
    #[inline(always)]
    unsafe fn sums(&self) -> __m128i {
        // SAFETY: `sums` is 16-byte aligned (the struct's alignment and the assertion above).
        _mm_load_si128(self.sums.as_ptr().cast())
    }
}

/// [`k4_pair_index`] for [`PrepK4`]'s order: vector `2p + s` holds sub-block `4p + s` in
/// lanes 0-7 and `4p + s + 2` in lanes 8-15.
#[inline(always)]
unsafe fn k4_prepped_index(p: usize) -> __m512i {
    let mut idx = [0i16; 32];
    for (l, v) in idx.iter_mut().enumerate() {
        *v = (4 * p + l % 2 + 2 * usize::from(l / 2 >= 8)) as i16;
    }
    _mm512_loadu_si512(idx.as_ptr().cast())
}

/// Q4_K or Q5_K · Q8_K with 512-bit vectors: each vector of 64 quants (Q5_K with its fifth
/// bits) is dotted with its 64 activations (one `vpdpbusd`) and scaled by [`scaled_sums64`];
/// the two halves are added in integers, so the lanes and the float order are those of the
/// 256-bit kernels (llama.cpp's, bit for bit) with half the instructions. With the
/// activations prepared ([`PrepK4`]) the quants need no lane crossing (Q4_K: 8 instructions
/// per super-block instead of 16, loads included; Q5_K: ~18 instead of ~30) and the block
/// sums are added once for all rows: the same integers, so the same bits.
#[inline(always)]
unsafe fn k4_zmm<B: K4Zmm, A: K4Act, const R: usize>(x: &[B], y: [&[A]; R]) -> [f32; R] {
    avx2::same_lengths(x, &y);
    let m4 = _mm512_set1_epi8(0xf);
    let idx = if A::PREPPED {
        [k4_prepped_index(0), k4_prepped_index(1)]
    } else {
        [k4_pair_index(0), k4_pair_index(1)]
    };
    let mut acc = [_mm256_setzero_ps(); R];
    let mut acc_m = [_mm_setzero_ps(); R];
    let mut summs = [0f32; R];
    for (i, xb) in x.iter().enumerate() {
        avx2::prefetch_ahead(xb);
        let (sm, dm) = scales_mins_k4(avx2_k::head_k4(xb));
        let sm512 = _mm512_castsi256_si512(sm);
        let mins = _mm256_extracti128_si256::<1>(sm);
        let q = if A::PREPPED {
            xb.quants_prepped(m4)
        } else {
            xb.quants(m4)
        };
        let sp = [
            _mm512_permutexvar_epi16(idx[0], sm512),
            _mm512_permutexvar_epi16(idx[1], sm512),
        ];
        let (dx, mx) = (_mm_cvtss_f32(dm), _mm_cvtss_f32(_mm_movehdup_ps(dm)));
        for r in 0..R {
            // SAFETY: `same_lengths` checked `i < x.len() == y[r].len()`.
            let yb = y[r].get_unchecked(i);
            let ms = _mm_madd_epi16(mins, yb.sums());
            if B::SCALAR_MINS {
                let m = avx2_k::hsum_epi32_128(ms) as f32;
                summs[r] = m.mul_add(-yb.d() * mx, summs[r]);
            } else {
                acc_m[r] = _mm_fmadd_ps(_mm_set1_ps(-yb.d() * mx), _mm_cvtepi32_ps(ms), acc_m[r]);
            }
            let sumi = scaled_sums64(&q, &sp, yb.qs());
            let d = _mm256_set1_ps(yb.d() * dx);
            acc[r] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc[r]);
        }
    }
    let mut out = [0f32; R];
    for r in 0..R {
        let min_term = if B::SCALAR_MINS {
            summs[r]
        } else {
            avx2::hsum_ps128(acc_m[r])
        };
        out[r] = avx2::hsum_ps(acc[r]) + min_term;
    }
    out
}

/// Longest row, in super-blocks, whose activations [`k4_many`] prepares (on its stack, 20 KiB):
/// 16384 elements, Mistral's longest being 14336. Longer rows (e.g. the `ffn_down` of a
/// 70B model, 28672) take the unprepared kernel: the same bits, without the saving.
const PREP_SBS: usize = 64;

/// [`RowKernel::many`] for Q4_K and Q5_K: `out[j] = x_j · y` for the consecutive rows `x_j`,
/// the activations prepared once ([`PrepK4`]) for all of them; the bits of
/// [`k4_zmm`] on `y` as it is.
#[inline(always)]
unsafe fn k4_many<B: K4Zmm>(x: &[B], y: &[BlockQ8K], out: &mut [f32]) {
    let nb = y.len();
    if nb > PREP_SBS {
        return each_row(x, y, out, |x, y| k4_zmm::<B, BlockQ8K, 1>(x, [y])[0]);
    }
    let mut buf = [const { std::mem::MaybeUninit::<PrepK4>::uninit() }; PREP_SBS];
    for (b, yb) in buf.iter_mut().zip(y) {
        b.write(PrepK4::new(yb));
    }
    // SAFETY: `nb <= PREP_SBS` (checked above), and the first `nb` entries were written just
    // above.
    let prep = std::slice::from_raw_parts(buf.as_ptr().cast::<PrepK4>(), nb);
    each_row(x, prep, out, |x, p| k4_zmm::<B, PrepK4, 1>(x, [p])[0])
}

/// The `vpermw` index giving, for the vector pair `2p, 2p + 1` of a Q6_K super-block (vector
/// `v` holds sub-blocks `4v..4v + 4`, one per 128-bit lane), the two scales of each i32
/// lane of their [`scaled_sums64`] pair: vector `2p`'s in the low i16, `2p + 1`'s in the
/// high one.
#[inline(always)]
unsafe fn q6k_pair_index(p: usize) -> __m512i {
    let mut idx = [0i16; 32];
    for (l, v) in idx.iter_mut().enumerate() {
        *v = (4 * (2 * p + l % 2) + l / 8) as i16;
    }
    _mm512_loadu_si512(idx.as_ptr().cast())
}

/// Q6_K · Q8_K with 512-bit vectors: 64 bytes of `ql` give, by their low and their high
/// nibbles, two vectors of 64 quants whose activations are adjacent, the two high bits coming
/// from `qh` and `qh >> 2`; `vpmaddubsw`, then `vpdpwssd` against the sixteen scales spread
/// four per vector. The halves are added in integers: the lanes, and so the bits, of the
/// 256-bit kernel.
#[inline(always)]
unsafe fn q6k_zmm<const R: usize>(x: &[BlockQ6K], y: [&[BlockQ8K]; R]) -> [f32; R] {
    avx2::same_lengths(x, &y);
    let m4 = _mm512_set1_epi8(0xf);
    let m30 = _mm512_set1_epi8(0x30);
    // Vector `v` (of four) holds sub-blocks `4v..4v + 4`, eight i16 lanes each.
    let idx = [q6k_pair_index(0), q6k_pair_index(1)];
    let mut acc = [_mm256_setzero_ps(); R];
    for (i, xb) in x.iter().enumerate() {
        avx2::prefetch_ahead(xb);
        let mut q = [_mm512_setzero_si512(); 4];
        for h in 0..2 {
            let a = _mm512_loadu_si512(xb.ql.as_ptr().add(64 * h).cast());
            let qh = _mm256_loadu_si256(xb.qh.as_ptr().add(32 * h).cast());
            let hh =
                _mm512_inserti64x4::<1>(_mm512_castsi256_si512(qh), _mm256_srli_epi16::<2>(qh));
            q[2 * h] = _mm512_or_si512(
                _mm512_and_si512(a, m4),
                _mm512_and_si512(_mm512_slli_epi16::<4>(hh), m30),
            );
            q[2 * h + 1] = _mm512_or_si512(
                _mm512_and_si512(_mm512_srli_epi16::<4>(a), m4),
                _mm512_and_si512(hh, m30),
            );
        }
        let sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(xb.scales.as_ptr().cast()));
        let sc512 = _mm512_castsi256_si512(sc16);
        let sp = [
            _mm512_permutexvar_epi16(idx[0], sc512),
            _mm512_permutexvar_epi16(idx[1], sc512),
        ];
        let dx = f16_f32(xb.d);
        for r in 0..R {
            // SAFETY: `same_lengths` checked `i < x.len() == y[r].len()`.
            let yb = y[r].get_unchecked(i);
            let bs = _mm256_loadu_si256(yb.bsums.as_ptr().cast());
            let offset = _mm256_slli_epi32::<5>(_mm256_madd_epi16(sc16, bs));
            let sumi = _mm256_sub_epi32(scaled_sums64(&q, &sp, &yb.qs), offset);
            let d = _mm256_set1_ps(yb.d * dx);
            acc[r] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc[r]);
        }
    }
    let mut out = [0f32; R];
    for r in 0..R {
        out[r] = avx2::hsum_ps(acc[r]);
    }
    out
}

/// F16 · F16 with 16-lane vectors: products in f32 (exact), four 16-lane f32 sums.
#[inline(always)]
unsafe fn f16_dot(x: &[f16], y: &[f16]) -> f32 {
    let n = x.len().min(y.len());
    let (xp, yp) = (x.as_ptr().cast::<__m256i>(), y.as_ptr().cast::<__m256i>());
    let mut acc = [_mm512_setzero_ps(); 4];
    let mut j = 0;
    while (j + 4) * 16 <= n {
        for (u, a) in acc.iter_mut().enumerate() {
            *a = _mm512_fmadd_ps(cvt(xp, j + u), cvt(yp, j + u), *a);
        }
        j += 4;
    }
    while (j + 1) * 16 <= n {
        acc[0] = _mm512_fmadd_ps(cvt(xp, j), cvt(yp, j), acc[0]);
        j += 1;
    }
    let s = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
    let mut sum = _mm512_reduce_add_ps(s);
    for k in j * 16..n {
        sum += f16_to_f32(x[k]) * f16_to_f32(y[k]);
    }
    sum
}

/// Sixteen f16 at `p + 16·j` as f32.
#[inline(always)]
unsafe fn cvt(p: *const __m256i, j: usize) -> __m512 {
    _mm512_cvtph_ps(_mm256_loadu_si256(p.add(j)))
}
