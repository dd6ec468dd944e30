//! AVX2+FMA and AVX-512 attention kernels (contracts in `kernels/attn.rs`). Row lengths that
//! are not a multiple of the vector width go to the scalar kernels.

use std::arch::x86_64::*;

use super::super::attn::{
    check_rows, f16_to_f32_scalar, scores_f16_scalar, scores_scalar, weighted_sum_f16_scalar,
    weighted_sum_scalar, AttnKernels,
};
use super::super::Isa;

/// The kernels of `isa` (the caller checked that the CPU has it).
pub(in crate::kernels) fn attn_kernels(isa: Isa) -> Option<AttnKernels> {
    match isa {
        Isa::Scalar => None,
        Isa::Avx2 | Isa::AvxVnni => Some(AttnKernels {
            scores: scores_avx2,
            weighted_sum: weighted_sum_avx2,
            f16_to_f32: f16_to_f32_avx2,
            scores_f16: scores_f16_avx2,
            weighted_sum_f16: weighted_sum_f16_avx2,
        }),
        Isa::Avx512 => Some(AttnKernels {
            scores: scores_avx512,
            weighted_sum: weighted_sum_avx512,
            f16_to_f32: f16_to_f32_avx512,
            scores_f16: scores_f16_avx512,
            weighted_sum_f16: weighted_sum_f16_avx512,
        }),
    }
}

// SAFETY (each call of a `#[target_feature]` body below): these wrappers are only handed out
// by `attn_kernels` for an instruction set `kernels::available_isas` detected: AVX2, FMA and
// F16C for `Avx2`/`AvxVnni`; for `Avx512`, AVX-512 F+BW+VL, which it lists only together with
// AVX2, FMA and F16C (so the AVX-512 wrappers may fall back to the AVX2 ones). They check the
// lengths the bodies assume.

fn scores_avx2(q: &[f32], rows: &[f32], scale: f32, out: &mut [f32]) {
    check_rows(rows, out.len(), q.len());
    if q.is_empty() || !q.len().is_multiple_of(8) {
        return scores_scalar(q, rows, scale, out);
    }
    // SAFETY: see above.
    unsafe { scores_256(q, rows, scale, out) }
}

fn weighted_sum_avx2(w: &[f32], rows: &[f32], out: &mut [f32]) {
    check_rows(rows, w.len(), out.len());
    if out.is_empty() || !out.len().is_multiple_of(8) {
        return weighted_sum_scalar(w, rows, out);
    }
    // SAFETY: see above.
    unsafe { weighted_sum_256(w, rows, out) }
}

fn scores_avx512(q: &[f32], rows: &[f32], scale: f32, out: &mut [f32]) {
    check_rows(rows, out.len(), q.len());
    if q.is_empty() || !q.len().is_multiple_of(16) {
        return scores_avx2(q, rows, scale, out);
    }
    // SAFETY: see above.
    unsafe { scores_512(q, rows, scale, out) }
}

fn weighted_sum_avx512(w: &[f32], rows: &[f32], out: &mut [f32]) {
    check_rows(rows, w.len(), out.len());
    if out.is_empty() || !out.len().is_multiple_of(16) {
        return weighted_sum_avx2(w, rows, out);
    }
    // SAFETY: see above.
    unsafe { weighted_sum_512(w, rows, out) }
}

fn scores_f16_avx2(q: &[f32], rows: &[half::f16], scale: f32, out: &mut [f32]) {
    check_rows(rows, out.len(), q.len());
    if q.is_empty() || !q.len().is_multiple_of(8) {
        return scores_f16_scalar(q, rows, scale, out);
    }
    // SAFETY: see above.
    unsafe { scores_256(q, rows, scale, out) }
}

fn weighted_sum_f16_avx2(w: &[f32], rows: &[half::f16], out: &mut [f32]) {
    check_rows(rows, w.len(), out.len());
    if out.is_empty() || !out.len().is_multiple_of(8) {
        return weighted_sum_f16_scalar(w, rows, out);
    }
    // SAFETY: see above.
    unsafe { weighted_sum_256(w, rows, out) }
}

fn scores_f16_avx512(q: &[f32], rows: &[half::f16], scale: f32, out: &mut [f32]) {
    check_rows(rows, out.len(), q.len());
    if q.is_empty() || !q.len().is_multiple_of(16) {
        return scores_f16_avx2(q, rows, scale, out);
    }
    // SAFETY: see above.
    unsafe { scores_512(q, rows, scale, out) }
}

fn weighted_sum_f16_avx512(w: &[f32], rows: &[half::f16], out: &mut [f32]) {
    check_rows(rows, w.len(), out.len());
    if out.is_empty() || !out.len().is_multiple_of(16) {
        return weighted_sum_f16_avx2(w, rows, out);
    }
    // SAFETY: see above.
    unsafe { weighted_sum_512(w, rows, out) }
}

fn f16_to_f32_avx2(src: &[half::f16], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len(), "f16 to f32: lengths");
    // SAFETY: see above (`Avx2` includes F16C).
    unsafe { f16_to_f32_256(src, dst) }
}

fn f16_to_f32_avx512(src: &[half::f16], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len(), "f16 to f32: lengths");
    // SAFETY: see above.
    unsafe { f16_to_f32_512(src, dst) }
}

/// [`f16_to_f32_avx2`] past its check: eight values per `vcvtph2ps` (exact), the tail by the
/// scalar kernel. (`half`'s slice conversion calls a function per eight values.)
#[target_feature(enable = "avx2,f16c")]
unsafe fn f16_to_f32_256(src: &[half::f16], dst: &mut [f32]) {
    let n = src.len() / 8 * 8;
    let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
    for i in (0..n).step_by(8) {
        // SAFETY: `i + 8 <= n <= len` for both slices (equal lengths, checked by the caller).
        _mm256_storeu_ps(d.add(i), _mm256_cvtph_ps(_mm_loadu_si128(s.add(i).cast())));
    }
    f16_to_f32_scalar(&src[n..], &mut dst[n..]);
}

/// [`f16_to_f32_avx512`] past its check: sixteen values per `vcvtph2ps`, the rest by
/// [`f16_to_f32_256`].
#[target_feature(enable = "avx512f,avx2,f16c")]
unsafe fn f16_to_f32_512(src: &[half::f16], dst: &mut [f32]) {
    let n = src.len() / 16 * 16;
    let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
    for i in (0..n).step_by(16) {
        // SAFETY: as in `f16_to_f32_256`, sixteen at a time.
        _mm512_storeu_ps(
            d.add(i),
            _mm512_cvtph_ps(_mm256_loadu_si256(s.add(i).cast())),
        );
    }
    f16_to_f32_256(&src[n..], &mut dst[n..]);
}

/// [`scores_avx2`] for `d = q.len()` a positive multiple of 8, on rows of f32 or of f16
/// converted as loaded (the same sums either way): eight rows at a time, one
/// accumulator each (eight independent FMA chains, each step's slice of `q` loaded once for
/// the eight), summed across lanes together ([`hsum8_256`]). The last group of fewer than
/// eight rows runs the same code on its last row repeated ([`group_rows`]), so every row's
/// score is summed in the same order wherever it sits.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn scores_256<E: Load>(q: &[f32], rows: &[E], scale: f32, out: &mut [f32]) {
    let d = q.len();
    let qp = q.as_ptr();
    let sv = _mm256_set1_ps(scale);
    for (g, o) in out.chunks_mut(8).enumerate() {
        let k = group_rows(rows, d, 8 * g, o.len());
        let mut acc = [_mm256_setzero_ps(); 8];
        let mut j = 0;
        // SAFETY: every `k[r]` starts a row of `d` elements inside `rows`; `j + 8 <= d`.
        while j < d {
            let qv = _mm256_loadu_ps(qp.add(j));
            for (a, kr) in acc.iter_mut().zip(k) {
                *a = _mm256_fmadd_ps(qv, E::load8(kr.add(j)), *a);
            }
            j += 8;
        }
        store_first(_mm256_mul_ps(hsum8_256(&acc), sv), o);
    }
}

/// Pointers to the eight rows (of `d` elements) from row `r0` of `rows`, the last of the `n`
/// (1 to 8) that exist standing in for the missing ones.
#[inline(always)]
fn group_rows<E>(rows: &[E], d: usize, r0: usize, n: usize) -> [*const E; 8] {
    debug_assert!((1..=8).contains(&n) && (r0 + n) * d <= rows.len());
    std::array::from_fn(|r| rows[(r0 + r.min(n - 1)) * d..].as_ptr())
}

/// A row element the kernels load eight or sixteen at a time as f32: f32, or f16 (the KV
/// cache's, converted exactly by `vcvtph2ps`).
trait Load: Copy {
    /// Eight elements at `p` as f32.
    ///
    /// # Safety
    /// `p` must point to eight elements; the CPU must have AVX2 and F16C.
    unsafe fn load8(p: *const Self) -> __m256;
    /// Sixteen elements at `p` as f32.
    ///
    /// # Safety
    /// `p` must point to sixteen elements; the CPU must have AVX-512 F.
    unsafe fn load16(p: *const Self) -> __m512;
}

impl Load for f32 {
    #[inline(always)]
    unsafe fn load8(p: *const f32) -> __m256 {
        _mm256_loadu_ps(p)
    }
    #[inline(always)]
    unsafe fn load16(p: *const f32) -> __m512 {
        _mm512_loadu_ps(p)
    }
}

impl Load for half::f16 {
    #[inline(always)]
    unsafe fn load8(p: *const half::f16) -> __m256 {
        _mm256_cvtph_ps(_mm_loadu_si128(p.cast()))
    }
    #[inline(always)]
    unsafe fn load16(p: *const half::f16) -> __m512 {
        _mm512_cvtph_ps(_mm256_loadu_si256(p.cast()))
    }
}

/// The first `o.len()` (at most 8) lanes of `v` into `o`.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn store_first(v: __m256, o: &mut [f32]) {
    let mut lanes = [0f32; 8];
    _mm256_storeu_ps(lanes.as_mut_ptr(), v);
    o.copy_from_slice(&lanes[..o.len()]);
}

/// The lane sums of eight vectors, in one vector (lane `r`: the sum of `a[r]`).
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn hsum8_256(a: &[__m256; 8]) -> __m256 {
    // Lanes of `h01`: per 128-bit half, pair sums of a0, a0, a1, a1, and so on.
    let h01 = _mm256_hadd_ps(a[0], a[1]);
    let h23 = _mm256_hadd_ps(a[2], a[3]);
    let h45 = _mm256_hadd_ps(a[4], a[5]);
    let h67 = _mm256_hadd_ps(a[6], a[7]);
    // Per 128-bit half: the half-sums of a0, a1, a2, a3 (and a4..a7).
    let h0123 = _mm256_hadd_ps(h01, h23);
    let h4567 = _mm256_hadd_ps(h45, h67);
    // Low halves plus high halves.
    _mm256_add_ps(
        _mm256_permute2f128_ps::<0x20>(h0123, h4567),
        _mm256_permute2f128_ps::<0x31>(h0123, h4567),
    )
}

/// [`weighted_sum_avx2`] for `d = out.len()` a positive multiple of 8, on rows of f32 or f16
/// (as [`scores_256`]): 64 output columns at a time in eight registers across all rows, then
/// 8 at a time.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn weighted_sum_256<E: Load>(w: &[f32], rows: &[E], out: &mut [f32]) {
    let d = out.len();
    let mut c0 = 0;
    // SAFETY (pointer offsets): `r < w.len()` rows of `d` (`check_rows`), columns `< d`.
    while c0 + 64 <= d {
        let mut acc = [_mm256_setzero_ps(); 8];
        for (r, &wr) in w.iter().enumerate() {
            let wv = _mm256_set1_ps(wr);
            let p = rows.as_ptr().add(r * d + c0);
            for (j, a) in acc.iter_mut().enumerate() {
                *a = _mm256_fmadd_ps(wv, E::load8(p.add(8 * j)), *a);
            }
        }
        for (j, a) in acc.iter().enumerate() {
            _mm256_storeu_ps(out.as_mut_ptr().add(c0 + 8 * j), *a);
        }
        c0 += 64;
    }
    while c0 < d {
        let mut acc = _mm256_setzero_ps();
        for (r, &wr) in w.iter().enumerate() {
            let v = E::load8(rows.as_ptr().add(r * d + c0));
            acc = _mm256_fmadd_ps(_mm256_set1_ps(wr), v, acc);
        }
        _mm256_storeu_ps(out.as_mut_ptr().add(c0), acc);
        c0 += 8;
    }
}

/// [`scores_avx512`] for `d = q.len()` a positive multiple of 16: as [`scores_256`], eight
/// rows at a time with one accumulator each, each folded to 256 bits before the lane sums.
#[target_feature(enable = "avx512f,avx2,f16c")]
unsafe fn scores_512<E: Load>(q: &[f32], rows: &[E], scale: f32, out: &mut [f32]) {
    let d = q.len();
    let qp = q.as_ptr();
    let sv = _mm256_set1_ps(scale);
    for (g, o) in out.chunks_mut(8).enumerate() {
        let k = group_rows(rows, d, 8 * g, o.len());
        let mut acc = [_mm512_setzero_ps(); 8];
        let mut j = 0;
        // SAFETY: every `k[r]` starts a row of `d` elements inside `rows`; `j + 16 <= d`.
        while j < d {
            let qv = _mm512_loadu_ps(qp.add(j));
            for (a, kr) in acc.iter_mut().zip(k) {
                *a = _mm512_fmadd_ps(qv, E::load16(kr.add(j)), *a);
            }
            j += 16;
        }
        let mut half = [_mm256_setzero_ps(); 8];
        for (h, a) in half.iter_mut().zip(&acc) {
            *h = _mm256_add_ps(
                _mm512_castps512_ps256(*a),
                _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(*a))),
            );
        }
        store_first(_mm256_mul_ps(hsum8_256(&half), sv), o);
    }
}

/// [`weighted_sum_avx512`] for `d = out.len()` a positive multiple of 16: 128 output columns
/// (a whole head of the Llama models) at a time in eight registers across all rows, then the
/// rest (64 columns for SmolLM2's heads) in as many registers, so that every row issues
/// independent FMAs rather than one chain per 16 columns. Each column sums its rows in order.
#[target_feature(enable = "avx512f,f16c")]
unsafe fn weighted_sum_512<E: Load>(w: &[f32], rows: &[E], out: &mut [f32]) {
    let d = out.len();
    let mut c0 = 0;
    while c0 + 128 <= d {
        weighted_sum_cols_512::<E, 8>(w, rows, d, c0, out);
        c0 += 128;
    }
    match (d - c0) / 16 {
        0 => {}
        1 => weighted_sum_cols_512::<E, 1>(w, rows, d, c0, out),
        2 => weighted_sum_cols_512::<E, 2>(w, rows, d, c0, out),
        3 => weighted_sum_cols_512::<E, 3>(w, rows, d, c0, out),
        4 => weighted_sum_cols_512::<E, 4>(w, rows, d, c0, out),
        5 => weighted_sum_cols_512::<E, 5>(w, rows, d, c0, out),
        6 => weighted_sum_cols_512::<E, 6>(w, rows, d, c0, out),
        _ => weighted_sum_cols_512::<E, 7>(w, rows, d, c0, out),
    }
}

/// Columns `c0..c0 + 16·N` of [`weighted_sum_512`], in `N` registers across all rows.
#[inline]
#[target_feature(enable = "avx512f,f16c")]
unsafe fn weighted_sum_cols_512<E: Load, const N: usize>(
    w: &[f32],
    rows: &[E],
    d: usize,
    c0: usize,
    out: &mut [f32],
) {
    debug_assert!(c0 + 16 * N <= d && out.len() == d && rows.len() == w.len() * d);
    let mut acc = [_mm512_setzero_ps(); N];
    // SAFETY (pointer offsets): `r < w.len()` rows of `d` (`check_rows`), columns
    // `c0 + 16·N <= d`.
    for (r, &wr) in w.iter().enumerate() {
        let wv = _mm512_set1_ps(wr);
        let p = rows.as_ptr().add(r * d + c0);
        for (j, a) in acc.iter_mut().enumerate() {
            *a = _mm512_fmadd_ps(wv, E::load16(p.add(16 * j)), *a);
        }
    }
    for (j, a) in acc.iter().enumerate() {
        _mm512_storeu_ps(out.as_mut_ptr().add(c0 + 16 * j), *a);
    }
}
