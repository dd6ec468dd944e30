//! AVX2 (+FMA, F16C) kernels for the 32-element types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) and F16,
//! the helpers the 256-bit K-quant bodies in `avx2_k.rs` share, and the AVX2 dispatch table.
//!
//! Each body is generic over `VNNI` (see `x86/mod.rs`) and over `R`, the number of activation
//! rows dotted with one weight row: the weight block is unpacked once, then dotted with the
//! `R` activation blocks, each row with its own accumulators in the same order, so every row's
//! result has the bits of `R = 1`. Integer sums are exact for every block content (including
//! `-128` activation quants). Q4_0 and Q5_0 then accumulate as ggml's AVX2 code does: each
//! block's eight i32 partial sums are converted to f32 and added with one fused multiply-add
//! by the block's combined scale into eight f32 lanes, summed at the end (a horizontal integer
//! sum and a scalar multiply-add per block, the reference's order, held the decode at half
//! the memory speed). Q4_1 and Q5_1 do the same into two sets of eight lanes (even and odd
//! blocks), four blocks at a time, and sum their `m_x·s_y` terms in four f32 lanes where
//! ggml keeps a scalar sum. Q8_0 accumulates four blocks' sums in four f32 lanes, and in
//! sixteen in `avx512.rs`. F16 accumulates in eight f32 lanes, unlike the reference's f64. So
//! results are within float rounding of the scalar reference, not its bits.
//!
//! Matches the scalar `VecDot::vec_dot` of each format (ggml b2757's generic C), and follows
//! the x86 branches of ggml's `ggml_vec_dot_*` (llama.cpp `ggml-quants.c`).

use std::arch::x86_64::*;

use half::f16;

use super::super::gemm::{LegacyAct, LegacyPack};
use super::super::{many_rows, RowKernel};
use super::avx2_k;
use super::{both, find, single, Entry};
use crate::formats::f16_to_f32;
use crate::formats::q4_0::BlockQ4_0;
use crate::formats::q4_1::BlockQ4_1;
use crate::formats::q5_0::BlockQ5_0;
use crate::formats::q5_1::BlockQ5_1;
use crate::formats::q8_0::BlockQ8_0;
use crate::formats::q8_1::BlockQ8_1;
use crate::GgmlType;

/// The AVX2 kernels of the legacy types and F16 (the K-quants: `avx2_k.rs`).
const KERNELS: &[Entry] = &[
    single::<F16Avx2>(GgmlType::F16),
    both::<Q4_0Avx2>(GgmlType::Q4_0),
    both::<Q4_1Avx2>(GgmlType::Q4_1),
    both::<Q5_0Avx2>(GgmlType::Q5_0),
    both::<Q5_1Avx2>(GgmlType::Q5_1),
    both::<Q8_0Avx2>(GgmlType::Q8_0),
];

/// The entry of `ty`, if this file (or its fallback, `avx2_k.rs`) has one.
pub(super) fn entry(ty: GgmlType) -> Option<&'static Entry> {
    find(KERNELS, ty).or_else(|| avx2_k::entry(ty))
}

// The kernels. SAFETY (each `unsafe impl`): `rows` needs AVX2, FMA and F16C, and the tables
// above are only consulted after `kernels::available_isas` detected them.

pub(super) struct F16Avx2;
unsafe impl RowKernel for F16Avx2 {
    type W = f16;
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn rows<const R: usize>(x: &[f16], y: [&[f16]; R]) -> [f32; R] {
        std::array::from_fn(|r| f16_dot(x, y[r]))
    }
    many_rows!("avx2,fma,f16c");
}

pub(super) struct Q4_0Avx2;
unsafe impl RowKernel for Q4_0Avx2 {
    type W = BlockQ4_0;
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn rows<const R: usize>(x: &[BlockQ4_0], y: [&[BlockQ8_0]; R]) -> [f32; R] {
        q4_0::<NO_VNNI, R>(x, y)
    }
    many_rows!("avx2,fma,f16c");
}

pub(super) struct Q4_1Avx2;
unsafe impl RowKernel for Q4_1Avx2 {
    type W = BlockQ4_1;
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn rows<const R: usize>(x: &[BlockQ4_1], y: [&[BlockQ8_1]; R]) -> [f32; R] {
        q4_1::<NO_VNNI, R>(x, y)
    }
    many_rows!("avx2,fma,f16c");
}

pub(super) struct Q5_0Avx2;
unsafe impl RowKernel for Q5_0Avx2 {
    type W = BlockQ5_0;
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn rows<const R: usize>(x: &[BlockQ5_0], y: [&[BlockQ8_0]; R]) -> [f32; R] {
        q5_0::<NO_VNNI, R>(x, y)
    }
    many_rows!("avx2,fma,f16c");
}

pub(super) struct Q5_1Avx2;
unsafe impl RowKernel for Q5_1Avx2 {
    type W = BlockQ5_1;
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn rows<const R: usize>(x: &[BlockQ5_1], y: [&[BlockQ8_1]; R]) -> [f32; R] {
        q5_1::<NO_VNNI, R>(x, y)
    }
    many_rows!("avx2,fma,f16c");
}

pub(super) struct Q8_0Avx2;
unsafe impl RowKernel for Q8_0Avx2 {
    type W = BlockQ8_0;
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn rows<const R: usize>(x: &[BlockQ8_0], y: [&[BlockQ8_0]; R]) -> [f32; R] {
        q8_0::<NO_VNNI, R>(x, y)
    }
    many_rows!("avx2,fma,f16c");
}

// ---- shared helpers (inlined into the `#[target_feature]` callers) ----

/// Bytes ahead of the block being read that [`prefetch_ahead`] asks for. A decode step streams
/// every weight once; the hardware prefetcher stops at 4 KiB page boundaries, so the kernels
/// ask for the data a little ahead themselves (past a row's end that is the next row, rows
/// being contiguous; prefetching never faults).
const PREFETCH_BYTES: usize = 4096;

/// Asks for the cache lines of the bytes `PREFETCH_BYTES` after `block` (one block's size).
#[inline(always)]
pub(super) unsafe fn prefetch_ahead<T>(block: &T) {
    let p = (block as *const T)
        .cast::<i8>()
        .wrapping_add(PREFETCH_BYTES);
    let mut off = 0;
    while off < std::mem::size_of::<T>() {
        _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(off));
        off += 64;
    }
}

/// Sum of the eight lanes.
#[inline(always)]
pub(super) unsafe fn hsum_ps(v: __m256) -> f32 {
    hsum_ps128(_mm_add_ps(
        _mm256_castps256_ps128(v),
        _mm256_extractf128_ps::<1>(v),
    ))
}

/// Sum of the four lanes.
#[inline(always)]
pub(super) unsafe fn hsum_ps128(v: __m128) -> f32 {
    let s = _mm_add_ps(v, _mm_movehl_ps(v, v));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
}

/// The 256-bit bodies' `VNNI` parameter: how they form u8·i8 and i16·i16 dot products.
/// Without VNNI: AVX2 `vpmaddubsw`/`vpmaddwd` chains.
pub(super) const NO_VNNI: u8 = 0;
/// AVX512-VNNI with AVX512-VL: the EVEX-encoded 256-bit `vpdpbusd`/`vpdpwssd`.
pub(super) const EVEX_VNNI: u8 = 1;
/// AVX-VNNI (client CPUs without AVX-512): the same instructions, VEX-encoded.
pub(super) const VEX_VNNI: u8 = 2;

/// `acc + Σ a·b` over each four bytes (`a` unsigned, `b` signed), as i32 lanes. Exact for
/// `a <= 127` (without VNNI the pairs go through saturating i16: `2·127·128 < 2^15`); with
/// VNNI exact for every `a`.
#[inline(always)]
pub(super) unsafe fn dot_u8i8<const VNNI: u8>(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
    if VNNI == EVEX_VNNI {
        _mm256_dpbusd_epi32(acc, a, b)
    } else if VNNI == VEX_VNNI {
        _mm256_dpbusd_avx_epi32(acc, a, b)
    } else {
        let p16 = _mm256_maddubs_epi16(a, b);
        _mm256_add_epi32(acc, _mm256_madd_epi16(p16, _mm256_set1_epi16(1)))
    }
}

/// `acc + madd(a, b)` (i16 pairs multiplied and added into i32 lanes).
#[inline(always)]
pub(super) unsafe fn madd_acc<const VNNI: u8>(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
    if VNNI == EVEX_VNNI {
        _mm256_dpwssd_epi32(acc, a, b)
    } else if VNNI == VEX_VNNI {
        _mm256_dpwssd_avx_epi32(acc, a, b)
    } else {
        _mm256_add_epi32(acc, _mm256_madd_epi16(a, b))
    }
}

/// The 32 nibbles of a legacy block in element order: low nibbles (elements 0..16), then
/// high nibbles (16..32).
#[inline(always)]
unsafe fn nibbles(qs: &[u8; 16]) -> __m256i {
    let lo = _mm_loadu_si128(qs.as_ptr().cast());
    let both = _mm256_set_m128i(_mm_srli_epi16::<4>(lo), lo);
    _mm256_and_si256(both, _mm256_set1_epi8(0xf))
}

/// The fifth bits of a Q5_0/Q5_1 block (`qh`, little-endian) as `0x10` in each byte whose
/// bit is set (ggml's `bytes_from_bits_32`, masked).
#[inline(always)]
unsafe fn fifth_bits(qh: [u8; 4]) -> __m256i {
    let bits = _mm256_set1_epi32(i32::from_le_bytes(qh));
    // Byte j of the result takes byte j / 8 of `qh` ...
    let spread = _mm256_shuffle_epi8(
        bits,
        _mm256_set_epi64x(
            0x0303030303030303,
            0x0202020202020202,
            0x0101010101010101,
            0,
        ),
    );
    // ... and keeps bit j % 8 of it: all other bits set, so the byte is 0xff iff it was set.
    let mask = _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe);
    let set = _mm256_cmpeq_epi8(_mm256_or_si256(spread, mask), _mm256_set1_epi8(-1));
    _mm256_and_si256(set, _mm256_set1_epi8(0x10))
}

/// `Σ (q - offset)·y` over a 32-element block, `q` unsigned (`<= 31`), `y` signed, exact:
/// `q·y` and `offset·y` pairs both fit i16, and so does their difference.
#[inline(always)]
unsafe fn dot_offset<const VNNI: u8>(q: __m256i, off: __m256i, y: __m256i) -> __m256i {
    let zero = _mm256_setzero_si256();
    if VNNI != NO_VNNI {
        _mm256_sub_epi32(dot_u8i8::<VNNI>(zero, q, y), dot_u8i8::<VNNI>(zero, off, y))
    } else {
        let p16 = _mm256_sub_epi16(_mm256_maddubs_epi16(q, y), _mm256_maddubs_epi16(off, y));
        _mm256_madd_epi16(p16, _mm256_set1_epi16(1))
    }
}

/// Sum of the eight i32 lanes, wrapping as the lane adds do (the dot products' sums are far
/// below 2^31; the Q8_1 quantizer's sum wraps as ggml's).
#[inline(always)]
pub(super) unsafe fn hsum_epi32(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
    let s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    _mm_cvtsi128_si32(_mm_add_epi32(s, _mm_shuffle_epi32::<1>(s)))
}

/// An f16 as eight equal f32 lanes, with F16C (exact, as `formats::f16_to_f32`). Kept a
/// full vector on purpose: converting to a scalar f32 (`_mm_cvtsi32_si128` or a broadcast,
/// then lane 0) makes LLVM emit `vpinsrw` into whatever register is free, which made each
/// block's scale wait for the previous block's accumulator (a ~20-cycle dependency chain).
#[inline(always)]
pub(super) unsafe fn f16x8(h: f16) -> __m256 {
    _mm256_cvtph_ps(_mm_set1_epi16(h.to_bits() as i16))
}

/// Four f16 (bits) as four f32 lanes (F16C: exact, as `f16_to_f32`).
#[inline(always)]
pub(super) unsafe fn f16x4(h: [u16; 4]) -> __m128 {
    let v = h[0] as u64 | (h[1] as u64) << 16 | (h[2] as u64) << 32 | (h[3] as u64) << 48;
    _mm_cvtph_ps(_mm_cvtsi64_si128(v as i64))
}

/// The kernels' precondition: every activation row as long as the weight row (the bodies
/// then index them without bounds checks).
#[inline(always)]
pub(super) fn same_lengths<W, A, const R: usize>(x: &[W], y: &[&[A]; R]) {
    assert!(y.iter().all(|y| y.len() == x.len()), "kernel row lengths");
}

#[inline(always)]
unsafe fn load(q: &[i8; 32]) -> __m256i {
    _mm256_loadu_si256(q.as_ptr().cast())
}

// ---- the bodies ----

/// `acc + sumi·d` lane by lane: a block's eight i32 partial sums as f32, times its combined
/// scale `d` (in every lane), in one fused multiply-add (the partial sums are exact in f32:
/// each is below 2^24).
#[inline(always)]
unsafe fn scaled_add(acc: __m256, sumi: __m256i, d: __m256) -> __m256 {
    _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi), d, acc)
}

/// A 32-element weight type of [`legacy_ymm`]: Q4_0, Q4_1, Q5_0, Q5_1.
trait Ymm32: LegacyPack {
    /// The 32 unsigned quants in element order.
    ///
    /// # Safety
    /// The CPU must have AVX2.
    unsafe fn quants(&self) -> __m256i;
    /// The scale and the minimum (zero where the type has none).
    fn dm(&self) -> (f16, f16);
}

impl Ymm32 for BlockQ4_0 {
    #[inline(always)]
    unsafe fn quants(&self) -> __m256i {
        nibbles(&self.qs)
    }
    fn dm(&self) -> (f16, f16) {
        (self.d, f16::ZERO)
    }
}

impl Ymm32 for BlockQ4_1 {
    #[inline(always)]
    unsafe fn quants(&self) -> __m256i {
        nibbles(&self.qs)
    }
    fn dm(&self) -> (f16, f16) {
        (self.d, self.m)
    }
}

impl Ymm32 for BlockQ5_0 {
    #[inline(always)]
    unsafe fn quants(&self) -> __m256i {
        _mm256_or_si256(nibbles(&self.qs), fifth_bits(self.qh))
    }
    fn dm(&self) -> (f16, f16) {
        (self.d, f16::ZERO)
    }
}

impl Ymm32 for BlockQ5_1 {
    #[inline(always)]
    unsafe fn quants(&self) -> __m256i {
        _mm256_or_si256(nibbles(&self.qs), fifth_bits(self.qh))
    }
    fn dm(&self) -> (f16, f16) {
        (self.d, self.m)
    }
}

/// Q4_0/Q5_0 · Q8_0 (`Σ (q - OFFSET)·y` per block, times `d_x·d_y`) and Q4_1/Q5_1 · Q8_1
/// (`Σ q·y` per block times `d_x·d_y`, plus `m_x·s_y`).
#[inline(always)]
unsafe fn legacy_ymm<W: Ymm32, const VNNI: u8, const R: usize>(
    x: &[W],
    y: [&[W::Act]; R],
) -> [f32; R] {
    same_lengths(x, &y);
    let mut acc = [_mm256_setzero_ps(); R];
    let mut summs = [0f32; R];
    let offset = _mm256_set1_epi8(W::OFFSET as i8);
    for (i, xb) in x.iter().enumerate() {
        prefetch_ahead(xb);
        let q = xb.quants();
        let (d, m) = xb.dm();
        let (dx, mx) = (f16x8(d), f16_to_f32(m));
        for r in 0..R {
            // SAFETY: `same_lengths` checked `i < x.len() == y[r].len()`.
            let yb = y[r].get_unchecked(i);
            let (dy, sy) = yb.ds();
            let d = _mm256_mul_ps(dx, f16x8(dy));
            let yq = load(yb.qs());
            if W::OFFSET != 0 {
                acc[r] = scaled_add(acc[r], dot_offset::<VNNI>(q, offset, yq), d);
            } else {
                acc[r] = scaled_add(acc[r], dot_u8i8::<VNNI>(_mm256_setzero_si256(), q, yq), d);
                // ggml: the m·s terms in a scalar sum beside the lanes.
                summs[r] += mx * f16_to_f32(sy);
            }
        }
    }
    let mut out = [0f32; R];
    for r in 0..R {
        out[r] = hsum_ps(acc[r]);
        if W::OFFSET == 0 {
            out[r] += summs[r];
        }
    }
    out
}

/// Q4_1/Q5_1 · Q8_1 four blocks at a time, for the decode step: each block's exact `Σ q·y`
/// times its `d_x·d_y` into eight f32 lanes as in [`legacy_ymm`] (here two sets of eight, for
/// the even and the odd blocks, summed at the end), but the four blocks' scales are
/// converted and multiplied together (F16C on four lanes), and their `m_x·s_y` summed in four
/// f32 lanes instead of ggml's scalar sum (a software f16 conversion and a dependent add per
/// block). So not the reference's float order: within rounding of it. Blocks past the last
/// four go to [`legacy_ymm`].
#[inline(always)]
unsafe fn legacy_ymm_min4<W: Ymm32, const VNNI: u8, const R: usize>(
    x: &[W],
    y: [&[W::Act]; R],
) -> [f32; R] {
    debug_assert_eq!(W::OFFSET, 0);
    same_lengths(x, &y);
    let zero = _mm256_setzero_si256();
    let mut acc = [[_mm256_setzero_ps(); 2]; R];
    let mut acc_m = [_mm_setzero_ps(); R];
    let n4 = x.len() / 4 * 4;
    for i in (0..n4).step_by(4) {
        // SAFETY: `i + 4 <= n4 <= x.len() == y[r].len()` (`same_lengths`).
        let xc = x.get_unchecked(i..i + 4);
        prefetch_ahead(&xc[0]);
        prefetch_ahead(&xc[3]);
        let q = [
            xc[0].quants(),
            xc[1].quants(),
            xc[2].quants(),
            xc[3].quants(),
        ];
        let dm = [xc[0].dm(), xc[1].dm(), xc[2].dm(), xc[3].dm()];
        let dx = f16x4(dm.map(|(d, _)| d.to_bits()));
        let mx = f16x4(dm.map(|(_, m)| m.to_bits()));
        for r in 0..R {
            let yc = y[r].get_unchecked(i..i + 4);
            let ds = [yc[0].ds(), yc[1].ds(), yc[2].ds(), yc[3].ds()];
            let d = _mm_mul_ps(dx, f16x4(ds.map(|(d, _)| d.to_bits())));
            let d = _mm256_castps128_ps256(d);
            for b in 0..4 {
                let sumi = dot_u8i8::<VNNI>(zero, q[b], load(yc[b].qs()));
                let db = _mm256_permutevar8x32_ps(d, _mm256_set1_epi32(b as i32));
                acc[r][b % 2] = scaled_add(acc[r][b % 2], sumi, db);
            }
            acc_m[r] = _mm_fmadd_ps(mx, f16x4(ds.map(|(_, s)| s.to_bits())), acc_m[r]);
        }
    }
    let mut out = [0f32; R];
    for r in 0..R {
        out[r] = hsum_ps(_mm256_add_ps(acc[r][0], acc[r][1])) + hsum_ps128(acc_m[r]);
    }
    if n4 < x.len() {
        // SAFETY: as above; the tail has the same length in every row.
        let mut yt = y;
        for r in 0..R {
            yt[r] = y[r].get_unchecked(n4..);
        }
        let tail = legacy_ymm::<W, VNNI, R>(x.get_unchecked(n4..), yt);
        for r in 0..R {
            out[r] += tail[r];
        }
    }
    out
}

/// Q4_0 · Q8_0 ([`legacy_ymm`]).
#[inline(always)]
pub(super) unsafe fn q4_0<const VNNI: u8, const R: usize>(
    x: &[BlockQ4_0],
    y: [&[BlockQ8_0]; R],
) -> [f32; R] {
    legacy_ymm::<_, VNNI, R>(x, y)
}

/// Q5_0 · Q8_0 ([`legacy_ymm`]).
#[inline(always)]
pub(super) unsafe fn q5_0<const VNNI: u8, const R: usize>(
    x: &[BlockQ5_0],
    y: [&[BlockQ8_0]; R],
) -> [f32; R] {
    legacy_ymm::<_, VNNI, R>(x, y)
}

/// Q4_1 · Q8_1 ([`legacy_ymm_min4`]).
#[inline(always)]
pub(super) unsafe fn q4_1<const VNNI: u8, const R: usize>(
    x: &[BlockQ4_1],
    y: [&[BlockQ8_1]; R],
) -> [f32; R] {
    legacy_ymm_min4::<_, VNNI, R>(x, y)
}

/// Q5_1 · Q8_1 ([`legacy_ymm_min4`]).
#[inline(always)]
pub(super) unsafe fn q5_1<const VNNI: u8, const R: usize>(
    x: &[BlockQ5_1],
    y: [&[BlockQ8_1]; R],
) -> [f32; R] {
    legacy_ymm_min4::<_, VNNI, R>(x, y)
}

/// Q8_0 · Q8_0: `Σ x·y` per block, times `d_x·d_y`, accumulated in four lanes (a slice of
/// fewer than four blocks takes only the one-block loop: the AVX-512 kernel's remainder).
/// Both operands are signed and may be -128, so ggml's `abs`/`sign` trick (wrong for a -128
/// it negates) is not used: without VNNI the quants are widened to i16 (`vpmaddwd`); with
/// VNNI, `x + 128` is unsigned and `Σ x·y = Σ (x + 128)·y - Σ 128·y`.
#[inline(always)]
pub(super) unsafe fn q8_0<const VNNI: u8, const R: usize>(
    x: &[BlockQ8_0],
    y: [&[BlockQ8_0]; R],
) -> [f32; R] {
    same_lengths(x, &y);
    // Four blocks at a time: their integer sums reduced together, their products
    // `sumi·(d_x·d_y)` added into four f32 lanes (one fused multiply-add), which are summed at
    // the end (not the reference's order: within rounding of it).
    let mut acc4 = [_mm_setzero_ps(); R];
    let n4 = x.len() / 4 * 4;
    for i in (0..n4).step_by(4) {
        // SAFETY: `i + 4 <= n4 <= x.len() == y[r].len()` (`same_lengths`).
        let xc = x.get_unchecked(i..i + 4);
        prefetch_ahead(&xc[0]);
        prefetch_ahead(&xc[2]);
        let xs = [
            q8_operand(&xc[0]),
            q8_operand(&xc[1]),
            q8_operand(&xc[2]),
            q8_operand(&xc[3]),
        ];
        let dx = scales4(xc);
        for r in 0..R {
            let yc = y[r].get_unchecked(i..i + 4);
            let sums = hsum4_epi32([
                q8_sum::<VNNI>(&xs[0], &yc[0]),
                q8_sum::<VNNI>(&xs[1], &yc[1]),
                q8_sum::<VNNI>(&xs[2], &yc[2]),
                q8_sum::<VNNI>(&xs[3], &yc[3]),
            ]);
            acc4[r] = _mm_fmadd_ps(_mm_cvtepi32_ps(sums), _mm_mul_ps(dx, scales4(yc)), acc4[r]);
        }
    }
    let mut acc = [0f32; R];
    for r in 0..R {
        acc[r] = hsum_ps128(acc4[r]);
    }
    for (i, xb) in x.iter().enumerate().skip(n4) {
        let xo = q8_operand(xb);
        let dx = f16_to_f32(xb.d);
        for r in 0..R {
            // SAFETY: `same_lengths` checked `i < x.len() == y[r].len()`.
            let yb = y[r].get_unchecked(i);
            // C: sumi*(d_x*d_y).
            acc[r] += hsum_epi32(q8_sum::<VNNI>(&xo, yb)) as f32 * (dx * f16_to_f32(yb.d));
        }
    }
    acc
}

/// A Q8_0 weight block's quants, prepared for [`q8_sum`]: `x + 128` (unsigned), and `x`
/// widened to i16 (low and high sixteen).
struct Q8Operand(__m256i, __m256i, __m256i);

#[inline(always)]
unsafe fn q8_operand(xb: &BlockQ8_0) -> Q8Operand {
    let xv = load(&xb.qs);
    Q8Operand(
        _mm256_xor_si256(xv, _mm256_set1_epi8(-128)),
        _mm256_cvtepi8_epi16(_mm256_castsi256_si128(xv)),
        _mm256_cvtepi8_epi16(_mm256_extracti128_si256::<1>(xv)),
    )
}

/// `Σ x·y` of a Q8_0 block pair in eight i32 lanes (exact).
#[inline(always)]
unsafe fn q8_sum<const VNNI: u8>(x: &Q8Operand, yb: &BlockQ8_0) -> __m256i {
    let yv = load(&yb.qs);
    if VNNI != NO_VNNI {
        let zero = _mm256_setzero_si256();
        _mm256_sub_epi32(
            dot_u8i8::<VNNI>(zero, x.0, yv),
            dot_u8i8::<VNNI>(zero, _mm256_set1_epi8(-128), yv),
        )
    } else {
        let ylo = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(yv));
        let yhi = _mm256_cvtepi8_epi16(_mm256_extracti128_si256::<1>(yv));
        _mm256_add_epi32(_mm256_madd_epi16(x.1, ylo), _mm256_madd_epi16(x.2, yhi))
    }
}

/// The scales of four Q8_0 blocks as four f32 lanes (F16C: exact, as `f16_to_f32`).
#[inline(always)]
pub(super) unsafe fn scales4(b: &[BlockQ8_0]) -> __m128 {
    let (h0, h1, h2, h3) = (
        b[0].d.to_bits(),
        b[1].d.to_bits(),
        b[2].d.to_bits(),
        b[3].d.to_bits(),
    );
    let lo = h0 as u64 | (h1 as u64) << 16 | (h2 as u64) << 32 | (h3 as u64) << 48;
    _mm_cvtph_ps(_mm_cvtsi64_si128(lo as i64))
}

/// The lane sums of four vectors of eight i32 lanes, as four lanes (exact).
#[inline(always)]
unsafe fn hsum4_epi32(v: [__m256i; 4]) -> __m128i {
    // Per 128-bit half: [Σ v0, Σ v1, Σ v2, Σ v3] of that half's four lanes.
    let c = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
    _mm_add_epi32(_mm256_castsi256_si128(c), _mm256_extracti128_si256::<1>(c))
}

/// F16 · F16: products in f32 (exact: f16·f16 fits an f32), accumulated in four 8-lane f32
/// sums (the scalar reference accumulates in f64).
#[inline(always)]
pub(super) unsafe fn f16_dot(x: &[f16], y: &[f16]) -> f32 {
    let n = x.len().min(y.len());
    let (xp, yp) = (x.as_ptr().cast::<__m128i>(), y.as_ptr().cast::<__m128i>());
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut j = 0;
    while (j + 4) * 8 <= n {
        for (u, a) in acc.iter_mut().enumerate() {
            *a = _mm256_fmadd_ps(cvt(xp, j + u), cvt(yp, j + u), *a);
        }
        j += 4;
    }
    while (j + 1) * 8 <= n {
        acc[0] = _mm256_fmadd_ps(cvt(xp, j), cvt(yp, j), acc[0]);
        j += 1;
    }
    let s = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    let mut sum = hsum_ps(s);
    for k in j * 8..n {
        sum += f16_to_f32(x[k]) * f16_to_f32(y[k]);
    }
    sum
}

/// Eight f16 at `p + 8·j` as f32.
#[inline(always)]
unsafe fn cvt(p: *const __m128i, j: usize) -> __m256 {
    _mm256_cvtph_ps(_mm_loadu_si128(p.add(j)))
}
