//! AVX2+FMA and AVX-512 attention kernels (contracts in `kernels/attn.rs`). Row lengths that
//! are not a multiple of the vector width go to the scalar kernels.

use std::arch::x86_64::*;

use super::super::attn::{check_rows, scores_scalar, weighted_sum_scalar, AttnKernels};
use super::super::Isa;

/// The kernels of `isa` (the caller checked that the CPU has it).
pub(in crate::kernels) fn attn_kernels(isa: Isa) -> Option<AttnKernels> {
    match isa {
        Isa::Scalar => None,
        Isa::Avx2 | Isa::AvxVnni => Some(AttnKernels {
            scores: scores_avx2,
            weighted_sum: weighted_sum_avx2,
        }),
        Isa::Avx512 => Some(AttnKernels {
            scores: scores_avx512,
            weighted_sum: weighted_sum_avx512,
        }),
    }
}

// SAFETY (each call of a `#[target_feature]` body below): these wrappers are only handed out
// by `attn_kernels` for an instruction set `kernels::available_isas` detected: AVX2 and FMA
// for `Avx2`/`AvxVnni`; for `Avx512`, AVX-512 F+BW+VL, which it lists only together with
// AVX2 and FMA (so the AVX-512 wrappers may fall back to the AVX2 ones). They check the
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

/// [`scores_avx2`] for `d = q.len()` a positive multiple of 8: two accumulators per row.
#[target_feature(enable = "avx2,fma")]
unsafe fn scores_256(q: &[f32], rows: &[f32], scale: f32, out: &mut [f32]) {
    let d = q.len();
    let qp = q.as_ptr();
    for (r, o) in out.iter_mut().enumerate() {
        // SAFETY: row `r < out.len()` lies inside `rows` (`check_rows`); `j + 8 <= d`.
        let k = rows.as_ptr().add(r * d);
        let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let mut j = 0;
        while j + 16 <= d {
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(qp.add(j)), _mm256_loadu_ps(k.add(j)), a0);
            a1 = _mm256_fmadd_ps(
                _mm256_loadu_ps(qp.add(j + 8)),
                _mm256_loadu_ps(k.add(j + 8)),
                a1,
            );
            j += 16;
        }
        if j < d {
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(qp.add(j)), _mm256_loadu_ps(k.add(j)), a0);
        }
        *o = super::avx2::hsum_ps(_mm256_add_ps(a0, a1)) * scale;
    }
}

/// [`weighted_sum_avx2`] for `d = out.len()` a positive multiple of 8: 64 output columns at a
/// time in eight registers across all rows, then 8 at a time.
#[target_feature(enable = "avx2,fma")]
unsafe fn weighted_sum_256(w: &[f32], rows: &[f32], out: &mut [f32]) {
    let d = out.len();
    let mut c0 = 0;
    // SAFETY (pointer offsets): `r < w.len()` rows of `d` (`check_rows`), columns `< d`.
    while c0 + 64 <= d {
        let mut acc = [_mm256_setzero_ps(); 8];
        for (r, &wr) in w.iter().enumerate() {
            let wv = _mm256_set1_ps(wr);
            let p = rows.as_ptr().add(r * d + c0);
            for (j, a) in acc.iter_mut().enumerate() {
                *a = _mm256_fmadd_ps(wv, _mm256_loadu_ps(p.add(8 * j)), *a);
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
            let v = _mm256_loadu_ps(rows.as_ptr().add(r * d + c0));
            acc = _mm256_fmadd_ps(_mm256_set1_ps(wr), v, acc);
        }
        _mm256_storeu_ps(out.as_mut_ptr().add(c0), acc);
        c0 += 8;
    }
}

/// [`scores_avx512`] for `d = q.len()` a positive multiple of 16: two accumulators per row.
#[target_feature(enable = "avx512f")]
unsafe fn scores_512(q: &[f32], rows: &[f32], scale: f32, out: &mut [f32]) {
    let d = q.len();
    let qp = q.as_ptr();
    for (r, o) in out.iter_mut().enumerate() {
        // SAFETY: row `r < out.len()` lies inside `rows` (`check_rows`); `j + 16 <= d`.
        let k = rows.as_ptr().add(r * d);
        let (mut a0, mut a1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
        let mut j = 0;
        while j + 32 <= d {
            a0 = _mm512_fmadd_ps(_mm512_loadu_ps(qp.add(j)), _mm512_loadu_ps(k.add(j)), a0);
            a1 = _mm512_fmadd_ps(
                _mm512_loadu_ps(qp.add(j + 16)),
                _mm512_loadu_ps(k.add(j + 16)),
                a1,
            );
            j += 32;
        }
        if j < d {
            a0 = _mm512_fmadd_ps(_mm512_loadu_ps(qp.add(j)), _mm512_loadu_ps(k.add(j)), a0);
        }
        *o = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1)) * scale;
    }
}

/// [`weighted_sum_avx512`] for `d = out.len()` a positive multiple of 16: 128 output columns
/// (a whole head of the Llama models) at a time in eight registers across all rows, then the
/// rest (64 columns for SmolLM2's heads) in as many registers, so that every row issues
/// independent FMAs rather than one chain per 16 columns. Each column sums its rows in order.
#[target_feature(enable = "avx512f")]
unsafe fn weighted_sum_512(w: &[f32], rows: &[f32], out: &mut [f32]) {
    let d = out.len();
    let mut c0 = 0;
    while c0 + 128 <= d {
        weighted_sum_cols_512::<8>(w, rows, d, c0, out);
        c0 += 128;
    }
    match (d - c0) / 16 {
        0 => {}
        1 => weighted_sum_cols_512::<1>(w, rows, d, c0, out),
        2 => weighted_sum_cols_512::<2>(w, rows, d, c0, out),
        3 => weighted_sum_cols_512::<3>(w, rows, d, c0, out),
        4 => weighted_sum_cols_512::<4>(w, rows, d, c0, out),
        5 => weighted_sum_cols_512::<5>(w, rows, d, c0, out),
        6 => weighted_sum_cols_512::<6>(w, rows, d, c0, out),
        _ => weighted_sum_cols_512::<7>(w, rows, d, c0, out),
    }
}

/// Columns `c0..c0 + 16·N` of [`weighted_sum_512`], in `N` registers across all rows.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn weighted_sum_cols_512<const N: usize>(
    w: &[f32],
    rows: &[f32],
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
            *a = _mm512_fmadd_ps(wv, _mm512_loadu_ps(p.add(16 * j)), *a);
        }
    }
    for (j, a) in acc.iter().enumerate() {
        _mm512_storeu_ps(out.as_mut_ptr().add(c0 + 16 * j), *a);
    }
}
