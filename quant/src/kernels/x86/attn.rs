//! AVX2+FMA and AVX-512 attention kernels (contracts in `kernels/attn.rs`). Row lengths that
//! are not a multiple of the vector width go to the scalar kernels.

use std::arch::x86_64::*;

use super::super::attn::{
    check_many, check_rows, check_scores_many, check_t, f16_to_f32_scalar, scores_f16_scalar,
    scores_many_f16_scalar, scores_scalar, weighted_sum_f16_scalar, weighted_sum_many_f16_scalar,
    weighted_sum_many_scalar, weighted_sum_scalar, AttnKernels, KEY_BLOCK,
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
            scores_t: scores_t_avx2,
            weighted_sum_many: weighted_sum_many_avx2,
            scores_many_f16: scores_many_f16_avx2,
            weighted_sum_many_f16: weighted_sum_many_f16_avx2,
        }),
        Isa::Avx512 => Some(AttnKernels {
            scores: scores_avx512,
            weighted_sum: weighted_sum_avx512,
            f16_to_f32: f16_to_f32_avx512,
            scores_f16: scores_f16_avx512,
            weighted_sum_f16: weighted_sum_f16_avx512,
            // 256-bit on AMD: Zen 4 splits a 512-bit FMA in two, so its multiply-adds per
            // cycle are the same. Intel's cores run two 512-bit FMAs per cycle, as many as
            // 256-bit ones: twice the multiply-adds. (Each score, and each column of a
            // weighted sum, is the same chain of FMAs at either width: the same bits.)
            scores_t: if super::intel() {
                scores_t_avx512
            } else {
                scores_t_avx2
            },
            weighted_sum_many: if super::intel() {
                weighted_sum_many_avx512
            } else {
                weighted_sum_many_avx2
            },
            // 256-bit as above; each query's results then have the AVX2 one-query kernels'
            // bits, not the 512-bit ones'.
            scores_many_f16: scores_many_f16_avx2,
            weighted_sum_many_f16: if super::intel() {
                weighted_sum_many_f16_avx512
            } else {
                weighted_sum_many_f16_avx2
            },
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

fn scores_t_avx2(q: &[f32], nq: usize, kt: &[f32], scale: f32, out: &mut [f32]) {
    let (d, nb) = check_t(q, nq, kt, out);
    // SAFETY: see above.
    unsafe { scores_t_256(q, nq, d, kt, nb, scale, out) }
}

fn scores_t_avx512(q: &[f32], nq: usize, kt: &[f32], scale: f32, out: &mut [f32]) {
    let (d, nb) = check_t(q, nq, kt, out);
    // SAFETY: see above.
    unsafe { scores_t_512(q, nq, d, kt, nb, scale, out) }
}

fn weighted_sum_many_avx2(w: &[f32], stride: usize, nq: usize, rows: &[f32], out: &mut [f32]) {
    let (d, n) = check_many(w, stride, nq, rows, out);
    if !d.is_multiple_of(8) {
        return weighted_sum_many_scalar(w, stride, nq, rows, out);
    }
    // SAFETY: see above.
    unsafe { weighted_sum_many_256(w, stride, nq, rows, d, n, out) }
}

fn weighted_sum_many_avx512(w: &[f32], stride: usize, nq: usize, rows: &[f32], out: &mut [f32]) {
    let (d, n) = check_many(w, stride, nq, rows, out);
    if !d.is_multiple_of(16) {
        return weighted_sum_many_avx2(w, stride, nq, rows, out);
    }
    // SAFETY: see above.
    unsafe { weighted_sum_many_512(w, stride, nq, rows, d, n, out) }
}

fn weighted_sum_many_f16_avx512(
    w: &[f32],
    stride: usize,
    nq: usize,
    rows: &[half::f16],
    out: &mut [f32],
) {
    let (d, n) = check_many(w, stride, nq, rows, out);
    if !d.is_multiple_of(16) {
        return weighted_sum_many_f16_avx2(w, stride, nq, rows, out);
    }
    // SAFETY: see above.
    unsafe { weighted_sum_many_512(w, stride, nq, rows, d, n, out) }
}

fn scores_many_f16_avx2(q: &[f32], nq: usize, rows: &[half::f16], scale: f32, out: &mut [f32]) {
    let (d, n) = check_scores_many(q, nq, rows, out);
    if !d.is_multiple_of(8) {
        return scores_many_f16_scalar(q, nq, rows, scale, out);
    }
    // SAFETY: see above.
    unsafe { scores_many_256(q, nq, d, rows, n, scale, out) }
}

fn weighted_sum_many_f16_avx2(
    w: &[f32],
    stride: usize,
    nq: usize,
    rows: &[half::f16],
    out: &mut [f32],
) {
    let (d, n) = check_many(w, stride, nq, rows, out);
    if !d.is_multiple_of(8) {
        return weighted_sum_many_f16_scalar(w, stride, nq, rows, out);
    }
    // SAFETY: see above.
    unsafe { weighted_sum_many_256(w, stride, nq, rows, d, n, out) }
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

/// [`scores_t_avx2`] past its checks (`q`: `nq` rows of `d`; `kt`: `nb` key blocks; `out`:
/// `nq` rows of `8·nb`): up to four queries at a time, with as many blocks in flight as keep
/// eight or nine independent accumulators (so that the FMA chains hide their latency)
/// besides a register per block and the broadcast: per element, one load per block and one
/// broadcast per query. (Sixteen registers: one more spills an accumulator through the
/// stack on every element, a chain that more than halves the speed.)
#[target_feature(enable = "avx2,fma")]
unsafe fn scores_t_256(
    q: &[f32],
    nq: usize,
    d: usize,
    kt: &[f32],
    nb: usize,
    scale: f32,
    out: &mut [f32],
) {
    let s = KEY_BLOCK * nb;
    let mut i = 0;
    while i < nq {
        let qn = (nq - i).min(4);
        // SAFETY: queries `i..i + qn <= nq` and their output rows are inside `q` and `out`.
        let (qp, op) = (q.as_ptr().add(i * d), out.as_mut_ptr().add(i * s));
        let kp = kt.as_ptr();
        match qn {
            1 => scores_t_queries::<1, 8>(qp, d, kp, nb, scale, op, s),
            2 => scores_t_queries::<2, 4>(qp, d, kp, nb, scale, op, s),
            3 => scores_t_queries::<3, 3>(qp, d, kp, nb, scale, op, s),
            _ => scores_t_queries::<4, 2>(qp, d, kp, nb, scale, op, s),
        }
        i += qn;
    }
}

/// The scores of `Q` queries (rows of `d` at `q`) against all `nb` blocks at `kt`, `V`
/// (at most 8) blocks at a time (the rest in one smaller step), into rows `s` apart at `out`.
///
/// # Safety
/// As [`scores_t_blocks`] for every block; the CPU must have AVX2 and FMA.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn scores_t_queries<const Q: usize, const V: usize>(
    q: *const f32,
    d: usize,
    kt: *const f32,
    nb: usize,
    scale: f32,
    out: *mut f32,
    s: usize,
) {
    let mut b = 0;
    while b + V <= nb {
        scores_t_blocks::<Q, V>(
            q,
            d,
            kt.add(b * KEY_BLOCK * d),
            scale,
            out.add(b * KEY_BLOCK),
            s,
        );
        b += V;
    }
    let (kt, out) = (kt.add(b * KEY_BLOCK * d), out.add(b * KEY_BLOCK));
    match nb - b {
        0 => {}
        1 => scores_t_blocks::<Q, 1>(q, d, kt, scale, out, s),
        2 => scores_t_blocks::<Q, 2>(q, d, kt, scale, out, s),
        3 => scores_t_blocks::<Q, 3>(q, d, kt, scale, out, s),
        4 => scores_t_blocks::<Q, 4>(q, d, kt, scale, out, s),
        5 => scores_t_blocks::<Q, 5>(q, d, kt, scale, out, s),
        6 => scores_t_blocks::<Q, 6>(q, d, kt, scale, out, s),
        _ => scores_t_blocks::<Q, 7>(q, d, kt, scale, out, s),
    }
}

/// `Q` queries against `V` consecutive key blocks: `Q·V` accumulators, summed over the `d`
/// elements in order.
///
/// # Safety
/// `q` points to `Q` rows of `d`, `kt` to `V` blocks of `8·d`, `out` to `Q` rows of at
/// least `8·V` that are `s` apart; the CPU must have AVX2 and FMA.
#[inline(always)]
unsafe fn scores_t_blocks<const Q: usize, const V: usize>(
    q: *const f32,
    d: usize,
    kt: *const f32,
    scale: f32,
    out: *mut f32,
    s: usize,
) {
    let mut acc = [[_mm256_setzero_ps(); V]; Q];
    for j in 0..d {
        let k: [__m256; V] =
            std::array::from_fn(|v| _mm256_loadu_ps(kt.add((v * d + j) * KEY_BLOCK)));
        for (i, acc) in acc.iter_mut().enumerate() {
            let x = _mm256_broadcast_ss(&*q.add(i * d + j));
            for (a, &k) in acc.iter_mut().zip(&k) {
                *a = _mm256_fmadd_ps(x, k, *a);
            }
        }
    }
    let sv = _mm256_set1_ps(scale);
    for (i, acc) in acc.iter().enumerate() {
        for (v, a) in acc.iter().enumerate() {
            _mm256_storeu_ps(out.add(i * s + v * KEY_BLOCK), _mm256_mul_ps(*a, sv));
        }
    }
}

/// [`scores_t_avx512`] past its checks: as [`scores_t_256`], each 512-bit register holding
/// two consecutive key blocks (the second inserted from its own row of `kt`), up to four
/// queries at a time with as many pairs of blocks in flight as keep sixteen to eighteen
/// accumulators; a last odd block by [`scores_t_blocks`]. Every score is the FMA chain of
/// [`scores_t_256`] (same order, same scaling), so it has its bits.
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn scores_t_512(
    q: &[f32],
    nq: usize,
    d: usize,
    kt: &[f32],
    nb: usize,
    scale: f32,
    out: &mut [f32],
) {
    let s = KEY_BLOCK * nb;
    let mut i = 0;
    while i < nq {
        let qn = (nq - i).min(4);
        // SAFETY: queries `i..i + qn <= nq` and their output rows are inside `q` and `out`.
        let (qp, op) = (q.as_ptr().add(i * d), out.as_mut_ptr().add(i * s));
        let kp = kt.as_ptr();
        match qn {
            1 => scores_t_queries_512::<1, 8>(qp, d, kp, nb, scale, op, s),
            2 => scores_t_queries_512::<2, 8>(qp, d, kp, nb, scale, op, s),
            3 => scores_t_queries_512::<3, 6>(qp, d, kp, nb, scale, op, s),
            _ => scores_t_queries_512::<4, 4>(qp, d, kp, nb, scale, op, s),
        }
        i += qn;
    }
}

/// As [`scores_t_queries`], `P` (at most 8) pairs of blocks at a time, the remaining pairs in
/// one smaller step and a last odd block by [`scores_t_blocks`].
///
/// # Safety
/// As [`scores_t_queries`]; the CPU must have AVX-512 F, AVX2 and FMA.
#[inline(always)]
unsafe fn scores_t_queries_512<const Q: usize, const P: usize>(
    q: *const f32,
    d: usize,
    kt: *const f32,
    nb: usize,
    scale: f32,
    out: *mut f32,
    s: usize,
) {
    let mut b = 0;
    while b + 2 * P <= nb {
        let (k, o) = (kt.add(b * KEY_BLOCK * d), out.add(b * KEY_BLOCK));
        scores_t_pairs::<Q, P>(q, d, k, scale, o, s);
        b += 2 * P;
    }
    let (k, o) = (kt.add(b * KEY_BLOCK * d), out.add(b * KEY_BLOCK));
    match (nb - b) / 2 {
        0 => {}
        1 => scores_t_pairs::<Q, 1>(q, d, k, scale, o, s),
        2 => scores_t_pairs::<Q, 2>(q, d, k, scale, o, s),
        3 => scores_t_pairs::<Q, 3>(q, d, k, scale, o, s),
        4 => scores_t_pairs::<Q, 4>(q, d, k, scale, o, s),
        5 => scores_t_pairs::<Q, 5>(q, d, k, scale, o, s),
        6 => scores_t_pairs::<Q, 6>(q, d, k, scale, o, s),
        _ => scores_t_pairs::<Q, 7>(q, d, k, scale, o, s),
    }
    b += (nb - b) / 2 * 2;
    if b < nb {
        let (k, o) = (kt.add(b * KEY_BLOCK * d), out.add(b * KEY_BLOCK));
        scores_t_blocks::<Q, 1>(q, d, k, scale, o, s);
    }
}

/// `Q` queries against `P` pairs of consecutive key blocks: `Q·P` 512-bit accumulators,
/// summed over the `d` elements in order.
///
/// # Safety
/// `q` points to `Q` rows of `d`, `kt` to `2·P` blocks of `8·d`, `out` to `Q` rows of at
/// least `16·P` that are `s` apart; the CPU must have AVX-512 F.
#[inline(always)]
unsafe fn scores_t_pairs<const Q: usize, const P: usize>(
    q: *const f32,
    d: usize,
    kt: *const f32,
    scale: f32,
    out: *mut f32,
    s: usize,
) {
    let mut acc = [[_mm512_setzero_ps(); P]; Q];
    for j in 0..d {
        let k: [__m512; P] = std::array::from_fn(|v| {
            let lo = _mm256_loadu_ps(kt.add((2 * v * d + j) * KEY_BLOCK));
            let hi = _mm256_loadu_ps(kt.add(((2 * v + 1) * d + j) * KEY_BLOCK));
            _mm512_castpd_ps(_mm512_insertf64x4::<1>(
                _mm512_castpd256_pd512(_mm256_castps_pd(lo)),
                _mm256_castps_pd(hi),
            ))
        });
        for (i, acc) in acc.iter_mut().enumerate() {
            let x = _mm512_set1_ps(*q.add(i * d + j));
            for (a, &k) in acc.iter_mut().zip(&k) {
                *a = _mm512_fmadd_ps(x, k, *a);
            }
        }
    }
    let sv = _mm512_set1_ps(scale);
    for (i, acc) in acc.iter().enumerate() {
        for (v, a) in acc.iter().enumerate() {
            _mm512_storeu_ps(out.add(i * s + 2 * v * KEY_BLOCK), _mm512_mul_ps(*a, sv));
        }
    }
}

/// [`weighted_sum_many_avx2`] past its checks (`d` a multiple of 8): [`weighted_sum_many`]
/// in 256-bit registers (16 of them): three queries at a time 24 columns at a time (nine
/// accumulators, three value registers and the broadcast), or two (four as two and two)
/// 32 columns at a time (eight accumulators, four value registers): more spill an
/// accumulator; a single query 64 columns at a time.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn weighted_sum_many_256<E: Load>(
    w: &[f32],
    stride: usize,
    nq: usize,
    rows: &[E],
    d: usize,
    n: usize,
    out: &mut [f32],
) {
    weighted_sum_many::<W256, E>(w, stride, nq, rows, d, n, out)
}

/// [`weighted_sum_many_avx512`] past its checks (`d` a multiple of 16): [`weighted_sum_many`]
/// in 512-bit registers (32 of them): four queries at a time 64 columns at a time (sixteen
/// accumulators, four value registers), three 96, two or one 128.
#[target_feature(enable = "avx512f,f16c")]
unsafe fn weighted_sum_many_512<E: Load>(
    w: &[f32],
    stride: usize,
    nq: usize,
    rows: &[E],
    d: usize,
    n: usize,
    out: &mut [f32],
) {
    weighted_sum_many::<W512, E>(w, stride, nq, rows, d, n, out)
}

/// A register width of [`weighted_sum_many`]: its vector operations, and ([`Width::queries`])
/// how many queries and columns one step takes for the registers it has.
trait Width {
    /// A vector of [`Width::LANES`] f32.
    type V: Copy;
    /// f32 lanes per vector.
    const LANES: usize;
    /// All lanes zero.
    ///
    /// # Safety
    /// The CPU must have this width's instructions (as for every method here).
    unsafe fn zero() -> Self::V;
    /// `LANES` f32 at `p` (which must point to them).
    ///
    /// # Safety
    /// As [`Width::zero`].
    unsafe fn load(p: *const f32) -> Self::V;
    /// `LANES` row elements at `p` (which must point to them) as f32.
    ///
    /// # Safety
    /// As [`Width::zero`].
    unsafe fn load_row<E: Load>(p: *const E) -> Self::V;
    /// `v` to the `LANES` f32 at `p` (which must be writable).
    ///
    /// # Safety
    /// As [`Width::zero`].
    unsafe fn store(p: *mut f32, v: Self::V);
    /// The f32 at `p` in every lane.
    ///
    /// # Safety
    /// As [`Width::zero`].
    unsafe fn splat(p: *const f32) -> Self::V;
    /// `a·b + c`, fused.
    ///
    /// # Safety
    /// As [`Width::zero`].
    unsafe fn fmadd(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// [`weighted_sum_queries`] of as many of the `rest` (> 0) queries left as one step takes,
    /// with the column count that fits the registers; returns how many it took.
    ///
    /// # Safety
    /// As [`weighted_sum_queries`] for `rest` queries.
    #[allow(clippy::too_many_arguments)]
    unsafe fn queries<E: Load>(
        rest: usize,
        w: *const f32,
        stride: usize,
        rows: *const E,
        d: usize,
        n: usize,
        out: *mut f32,
        first: bool,
    ) -> usize;
}

/// 256-bit registers (AVX2, FMA, F16C).
struct W256;

/// 512-bit registers (AVX-512 F, F16C).
struct W512;

/// The vector operations of a [`Width`] (`$load_row`: the [`Load`] method of its lane
/// count), and its `queries` (`|rest| -> (Q, C)`: queries and column vectors per step).
macro_rules! width {
    ($w:ty, $v:ty, $lanes:literal, $zero:ident, $loadu:ident, $load_row:ident, $storeu:ident,
     $set1:ident, $fmadd:ident,
     |$rest:ident| { $($pat:pat => ($q:literal, $c:literal)),* $(,)? }) => {
        impl Width for $w {
            type V = $v;
            const LANES: usize = $lanes;
            #[inline(always)]
            unsafe fn zero() -> $v {
                $zero()
            }
            #[inline(always)]
            unsafe fn load(p: *const f32) -> $v {
                $loadu(p)
            }
            #[inline(always)]
            unsafe fn load_row<E: Load>(p: *const E) -> $v {
                E::$load_row(p)
            }
            #[inline(always)]
            unsafe fn store(p: *mut f32, v: $v) {
                $storeu(p, v)
            }
            #[inline(always)]
            unsafe fn splat(p: *const f32) -> $v {
                $set1(*p)
            }
            #[inline(always)]
            unsafe fn fmadd(a: $v, b: $v, c: $v) -> $v {
                $fmadd(a, b, c)
            }
            #[inline(always)]
            unsafe fn queries<E: Load>(
                $rest: usize,
                w: *const f32,
                stride: usize,
                rows: *const E,
                d: usize,
                n: usize,
                out: *mut f32,
                first: bool,
            ) -> usize {
                match $rest {
                    $($pat => {
                        weighted_sum_queries::<Self, E, $q, $c>(w, stride, rows, d, n, out, first);
                        $q
                    })*
                }
            }
        }
    };
}

width!(W256, __m256, 8, _mm256_setzero_ps, _mm256_loadu_ps, load8, _mm256_storeu_ps,
    _mm256_set1_ps, _mm256_fmadd_ps, |rest| { 1 => (1, 8), 2 | 4 => (2, 4), _ => (3, 3) });
width!(W512, __m512, 16, _mm512_setzero_ps, _mm512_loadu_ps, load16, _mm512_storeu_ps,
    _mm512_set1_ps, _mm512_fmadd_ps, |rest| { 1 => (1, 8), 2 => (2, 8), 3 => (3, 6), _ => (4, 4) });

/// `out[i] = Σ_r w[i·stride + r] · rows[r]` for the `nq` queries `i`, in registers of width
/// `W` (`d` a multiple of its lanes): the value rows in blocks of [`ROW_BLOCK_BYTES`], each
/// block run through every query and column while it is in the L1 cache (one pass over all
/// the rows per query and column range had read a long context's values from L2 eight times
/// per token for a 128-wide head); within a block, [`Width::queries`] queries at a time.
/// Each column sums its rows in order, as [`weighted_sum_256`] does (the sums carry over
/// from block to block in `out`, exactly, and every lane is the same FMA chain at either
/// width), so the results have its bits.
///
/// # Safety
/// As the callers' checks (`check_many`); the CPU must have `W`'s instructions.
#[inline(always)]
unsafe fn weighted_sum_many<W: Width, E: Load>(
    w: &[f32],
    stride: usize,
    nq: usize,
    rows: &[E],
    d: usize,
    n: usize,
    out: &mut [f32],
) {
    if n == 0 {
        out.fill(0.0);
        return;
    }
    let block = (ROW_BLOCK_BYTES / (std::mem::size_of::<E>() * d)).max(8);
    let mut r0 = 0;
    while r0 < n {
        let len = block.min(n - r0);
        let first = r0 == 0;
        let mut i = 0;
        while i < nq {
            // SAFETY: the queries of this step, `i..i + qn <= nq`: their weights (`n` from
            // `w[q·stride]`, here `r0..r0 + len`) and output rows are inside `w` and `out`,
            // the block's rows inside `rows` (checked by the caller).
            let wp = w.as_ptr().add(i * stride + r0);
            let (rp, op) = (rows.as_ptr().add(r0 * d), out.as_mut_ptr().add(i * d));
            i += W::queries(nq - i, wp, stride, rp, d, len, op, first);
        }
        r0 += len;
    }
}

/// Bytes of value rows per block of [`weighted_sum_many`]: half the L1 data cache.
const ROW_BLOCK_BYTES: usize = 16 << 10;

/// All `d` columns of `Q` queries' weighted sums over `n` rows, `LANES·C` (`C` at most 8) at a
/// time, the rest in one smaller step; `first`: the sums start from zero, else from `out`.
///
/// # Safety
/// As [`weighted_sum_cols`] with all `d` columns readable and writable; `d` a multiple of
/// `W::LANES`; the CPU must have `W`'s instructions.
#[inline(always)]
unsafe fn weighted_sum_queries<W: Width, E: Load, const Q: usize, const C: usize>(
    w: *const f32,
    stride: usize,
    rows: *const E,
    d: usize,
    n: usize,
    out: *mut f32,
    first: bool,
) {
    let step = W::LANES;
    let mut c0 = 0;
    while c0 + step * C <= d {
        weighted_sum_cols::<W, E, Q, C>(w, stride, rows.add(c0), d, n, out.add(c0), first);
        c0 += step * C;
    }
    let (rows, out) = (rows.add(c0), out.add(c0));
    match (d - c0) / step {
        0 => {}
        1 => weighted_sum_cols::<W, E, Q, 1>(w, stride, rows, d, n, out, first),
        2 => weighted_sum_cols::<W, E, Q, 2>(w, stride, rows, d, n, out, first),
        3 => weighted_sum_cols::<W, E, Q, 3>(w, stride, rows, d, n, out, first),
        4 => weighted_sum_cols::<W, E, Q, 4>(w, stride, rows, d, n, out, first),
        5 => weighted_sum_cols::<W, E, Q, 5>(w, stride, rows, d, n, out, first),
        6 => weighted_sum_cols::<W, E, Q, 6>(w, stride, rows, d, n, out, first),
        _ => weighted_sum_cols::<W, E, Q, 7>(w, stride, rows, d, n, out, first),
    }
}

/// `LANES·C` columns of `Q` queries' weighted sums: `Q·C` accumulators over the `n` rows,
/// starting from zero (`first`) or from `out`.
///
/// # Safety
/// `w` points to `Q` rows of `n` weights `stride` apart, `rows` to `n` rows `d` apart with
/// `LANES·C` readable columns each, `out` to `Q` rows `d` apart with `LANES·C` writable
/// columns; the CPU must have `W`'s instructions.
#[inline(always)]
unsafe fn weighted_sum_cols<W: Width, E: Load, const Q: usize, const C: usize>(
    w: *const f32,
    stride: usize,
    rows: *const E,
    d: usize,
    n: usize,
    out: *mut f32,
    first: bool,
) {
    let step = W::LANES;
    let mut acc: [[W::V; C]; Q] = std::array::from_fn(|i| {
        std::array::from_fn(|c| {
            if first {
                W::zero()
            } else {
                W::load(out.add(i * d + step * c))
            }
        })
    });
    for r in 0..n {
        let v: [W::V; C] = std::array::from_fn(|c| W::load_row(rows.add(r * d + step * c)));
        for (i, acc) in acc.iter_mut().enumerate() {
            let x = W::splat(w.add(i * stride + r));
            for (a, &v) in acc.iter_mut().zip(&v) {
                *a = W::fmadd(x, v, *a);
            }
        }
    }
    for (i, acc) in acc.iter().enumerate() {
        for (c, a) in acc.iter().enumerate() {
            W::store(out.add(i * d + step * c), *a);
        }
    }
}

/// [`scores_many_f16_avx2`] past its checks (`d` a multiple of 8), on rows of f32 or f16:
/// four queries two rows at a time, or two queries four rows at a time (a last single query
/// as [`scores_256`]); each step loads every row slice once for the queries, and the eight
/// accumulators are summed across lanes together ([`hsum8_256`]). Every score is summed as
/// [`scores_256`] sums it (lane sums of the same FMA chain, the same lane reduction, the
/// missing rows of a last group standing in as repeats), so it has that kernel's bits.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn scores_many_256<E: Load>(
    q: &[f32],
    nq: usize,
    d: usize,
    rows: &[E],
    n: usize,
    scale: f32,
    out: &mut [f32],
) {
    let mut i = 0;
    while i < nq {
        let (qs, os) = (&q[i * d..], &mut out[i * n..]);
        match nq - i {
            1 => {
                scores_256(&qs[..d], rows, scale, &mut os[..n]);
                i += 1;
            }
            2 | 3 => {
                scores_queries_rows::<E, 2, 4>(&qs[..2 * d], d, rows, n, scale, &mut os[..2 * n]);
                i += 2;
            }
            _ => {
                scores_queries_rows::<E, 4, 2>(&qs[..4 * d], d, rows, n, scale, &mut os[..4 * n]);
                i += 4;
            }
        }
    }
}

/// `Q` queries (`Q·R = 8`) against the `n` rows, `R` rows at a time.
///
/// # Safety
/// `q` holds `Q` rows of `d` (a multiple of 8), `rows` `n` rows of `d`, `out` `Q` rows of
/// `n`; the CPU must have AVX2, FMA and F16C.
#[inline(always)]
unsafe fn scores_queries_rows<E: Load, const Q: usize, const R: usize>(
    q: &[f32],
    d: usize,
    rows: &[E],
    n: usize,
    scale: f32,
    out: &mut [f32],
) {
    debug_assert!(Q * R == 8 && q.len() == Q * d && rows.len() == n * d && out.len() == Q * n);
    let sv = _mm256_set1_ps(scale);
    let qp = q.as_ptr();
    let mut r0 = 0;
    while r0 < n {
        let cnt = R.min(n - r0);
        // The last of the group's rows that exist stands in for the missing ones.
        let k: [*const E; R] =
            std::array::from_fn(|r| rows.as_ptr().add((r0 + r.min(cnt - 1)) * d));
        let mut acc = [_mm256_setzero_ps(); 8];
        let mut j = 0;
        // SAFETY: `j + 8 <= d` inside every query and row.
        while j < d {
            let kv: [__m256; R] = std::array::from_fn(|r| E::load8(k[r].add(j)));
            for qi in 0..Q {
                let qv = _mm256_loadu_ps(qp.add(qi * d + j));
                for (r, kv) in kv.iter().enumerate() {
                    acc[qi * R + r] = _mm256_fmadd_ps(qv, *kv, acc[qi * R + r]);
                }
            }
            j += 8;
        }
        let mut lanes = [0f32; 8];
        _mm256_storeu_ps(lanes.as_mut_ptr(), _mm256_mul_ps(hsum8_256(&acc), sv));
        for qi in 0..Q {
            out[qi * n + r0..qi * n + r0 + cnt].copy_from_slice(&lanes[qi * R..qi * R + cnt]);
        }
        r0 += cnt;
    }
}
