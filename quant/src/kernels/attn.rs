//! The kernels of attention, over one kv head's keys or values held as rows of `d` values
//! (f32, converted once from the f16 cache by the caller with [`F16ToF32Fn`], or the f16 rows
//! themselves): the scores of one query against many keys, and the weighted sum of many value
//! rows; and for prefill, the same for a few queries at once (a token's heads that share the
//! kv head) over keys in a blocked transposed layout ([`ScoresTFn`], [`WeightedSumManyFn`]).
//! Chosen per [`Isa`] like the dot products. The SIMD weighted sums keep a range of output
//! columns in registers across many value rows (the one-query ones across all of them; the
//! many-query ones across each 16 KiB block of rows, carrying the sums over in the output),
//! where the scalar one (which the compiler vectorizes only to the x86-64 baseline, SSE2)
//! loads and stores it once per row. The model's attention uses the many-query kernels
//! ([`ScoresTFn`] and [`WeightedSumManyFn`] for prefill, [`ScoresManyF16Fn`] and
//! [`WeightedSumManyF16Fn`] for decoding); the one-query kernels are their references.

use std::sync::OnceLock;

use super::{available_isas, isa, Isa};

/// `out[r] = scale · (q · rows[r])` for the `out.len()` rows of `q.len()` floats in `rows`.
pub type ScoresFn = fn(q: &[f32], rows: &[f32], scale: f32, out: &mut [f32]);

/// `out = Σ_r w[r] · rows[r]` for the `w.len()` rows of `out.len()` floats in `rows`
/// (`out` is overwritten).
pub type WeightedSumFn = fn(w: &[f32], rows: &[f32], out: &mut [f32]);

/// `dst[i] = src[i]` converted exactly (the lengths must be equal). The f16 KV cache's rows
/// go through it once per attention task: in decode that is every cached key and value of
/// every layer, per token.
pub type F16ToF32Fn = fn(src: &[half::f16], dst: &mut [f32]);

/// [`ScoresFn`] over rows read straight from the f16 KV cache, each value converted exactly
/// as it is loaded. Its results have the bits of [`ScoresFn`] on the rows converted first
/// ([`F16ToF32Fn`]), without writing the f32 copy.
pub type ScoresF16Fn = fn(q: &[f32], rows: &[half::f16], scale: f32, out: &mut [f32]);

/// [`WeightedSumFn`] over rows read straight from the f16 KV cache, with the bits of
/// [`WeightedSumFn`] on the converted rows.
pub type WeightedSumF16Fn = fn(w: &[f32], rows: &[half::f16], out: &mut [f32]);

/// Keys per block of the transposed key layout that [`ScoresTFn`] reads: block `b` holds
/// keys `8b..8b + 8` as `d` groups of eight, `kt[(b·d + j)·8 + r]` = element `j` of key
/// `8b + r` (write it with [`transpose_keys`]). One query element times one group is then a
/// vector multiply-add, and a block's eight scores come out of the registers in order, with
/// no sum across lanes.
pub const KEY_BLOCK: usize = 8;

/// `out[i·s + r] = scale · (q[i] · key r)` for the `nq` queries of `d` floats in `q` (one
/// after the other: a token's heads that share a kv head) and the `8·nb` keys of `kt` (`nb`
/// blocks of [`KEY_BLOCK`] in its transposed layout), `s = 8·nb`. Prefill attention: each key
/// is loaded once for up to four queries (and each query element once per eight keys), where
/// [`ScoresFn`] loads both once per product.
pub type ScoresTFn = fn(q: &[f32], nq: usize, kt: &[f32], scale: f32, out: &mut [f32]);

/// `out[i] = Σ_r w[i·stride + r] · rows[r]` for the `nq` queries (`out` holds `nq` rows of
/// `d`; `rows` holds `n` rows of `d`; query `i`'s `n` weights start at `w[i·stride]`). Each
/// value row is loaded once for up to three queries.
pub type WeightedSumManyFn = fn(w: &[f32], stride: usize, nq: usize, rows: &[f32], out: &mut [f32]);

/// `out[i·n + r] = scale · (q[i] · rows[r])` for the `nq` queries of `d` floats in `q` (a
/// token's heads that share a kv head) and the `n` rows of `d` f16 values in `rows` (the KV
/// cache's keys, converted as loaded). Decoding: each key is loaded once for up to four of
/// the heads that share it, not once per head. Each score has the bits of the 256-bit
/// (AVX2) [`ScoresF16Fn`]'s for its query, also where the ISA is AVX-512.
pub type ScoresManyF16Fn =
    fn(q: &[f32], nq: usize, rows: &[half::f16], scale: f32, out: &mut [f32]);

/// [`WeightedSumManyFn`] over f16 value rows (converted as loaded), each query's sums with
/// the bits of [`WeightedSumF16Fn`]'s (each column summed in order of the rows, one FMA per
/// row, at any vector width).
pub type WeightedSumManyF16Fn =
    fn(w: &[f32], stride: usize, nq: usize, rows: &[half::f16], out: &mut [f32]);

/// The attention kernels of one instruction set.
#[derive(Clone, Copy, Debug)]
pub struct AttnKernels {
    /// See [`ScoresFn`].
    pub scores: ScoresFn,
    /// See [`WeightedSumFn`].
    pub weighted_sum: WeightedSumFn,
    /// See [`F16ToF32Fn`].
    pub f16_to_f32: F16ToF32Fn,
    /// See [`ScoresF16Fn`].
    pub scores_f16: ScoresF16Fn,
    /// See [`WeightedSumF16Fn`].
    pub weighted_sum_f16: WeightedSumF16Fn,
    /// See [`ScoresTFn`].
    pub scores_t: ScoresTFn,
    /// See [`WeightedSumManyFn`].
    pub weighted_sum_many: WeightedSumManyFn,
    /// See [`ScoresManyF16Fn`].
    pub scores_many_f16: ScoresManyF16Fn,
    /// See [`WeightedSumManyF16Fn`].
    pub weighted_sum_many_f16: WeightedSumManyF16Fn,
}

/// The portable kernels.
pub const SCALAR: AttnKernels = AttnKernels {
    scores: scores_scalar,
    weighted_sum: weighted_sum_scalar,
    f16_to_f32: f16_to_f32_scalar,
    scores_f16: scores_f16_scalar,
    weighted_sum_f16: weighted_sum_f16_scalar,
    scores_t: scores_t_scalar,
    weighted_sum_many: weighted_sum_many_scalar,
    scores_many_f16: scores_many_f16_scalar,
    weighted_sum_many_f16: weighted_sum_many_f16_scalar,
};

/// The kernels for `isa` (the scalar ones for an `isa` this CPU lacks).
pub fn attn_kernels_for(isa: Isa) -> AttnKernels {
    if !available_isas().contains(&isa) {
        return SCALAR;
    }
    #[cfg(target_arch = "x86_64")]
    {
        super::x86::attn_kernels(isa).unwrap_or(SCALAR)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        SCALAR
    }
}

/// The kernels for [`isa()`] (chosen once).
pub fn attn_kernels() -> AttnKernels {
    static K: OnceLock<AttnKernels> = OnceLock::new();
    *K.get_or_init(|| attn_kernels_for(isa()))
}

/// Panics unless `rows` holds exactly `n` rows of `d` values (a caller's bug, not bad input).
#[inline]
pub(crate) fn check_rows<T>(rows: &[T], n: usize, d: usize) {
    assert_eq!(
        Some(rows.len()),
        n.checked_mul(d),
        "attention kernel: {n} rows of {d} values"
    );
}

/// The scalar [`ScoresFn`]: eight-lane dot products ([`crate::matmul::dot`]).
pub fn scores_scalar(q: &[f32], rows: &[f32], scale: f32, out: &mut [f32]) {
    let d = q.len();
    check_rows(rows, out.len(), d);
    if d == 0 {
        out.fill(0.0);
        return;
    }
    for (o, k) in out.iter_mut().zip(rows.chunks_exact(d)) {
        *o = crate::matmul::dot(q, k) * scale;
    }
}

/// The scalar [`WeightedSumFn`].
pub fn weighted_sum_scalar(w: &[f32], rows: &[f32], out: &mut [f32]) {
    let d = out.len();
    check_rows(rows, w.len(), d);
    out.fill(0.0);
    if d == 0 {
        return;
    }
    for (&wr, v) in w.iter().zip(rows.chunks_exact(d)) {
        for (o, &x) in out.iter_mut().zip(v) {
            *o += wr * x;
        }
    }
}

/// The scalar [`ScoresF16Fn`]: [`scores_scalar`]'s sums on each element converted as read.
pub fn scores_f16_scalar(q: &[f32], rows: &[half::f16], scale: f32, out: &mut [f32]) {
    let d = q.len();
    check_rows(rows, out.len(), d);
    if d == 0 {
        out.fill(0.0);
        return;
    }
    for (o, k) in out.iter_mut().zip(rows.chunks_exact(d)) {
        *o = crate::matmul::dot_with(q, k, |h| h.to_f32()) * scale;
    }
}

/// The scalar [`WeightedSumF16Fn`]: [`weighted_sum_scalar`]'s sums on each element converted
/// as read.
pub fn weighted_sum_f16_scalar(w: &[f32], rows: &[half::f16], out: &mut [f32]) {
    let d = out.len();
    check_rows(rows, w.len(), d);
    out.fill(0.0);
    if d == 0 {
        return;
    }
    for (&wr, v) in w.iter().zip(rows.chunks_exact(d)) {
        for (o, x) in out.iter_mut().zip(v) {
            *o += wr * x.to_f32();
        }
    }
}

/// Writes the `n = keys.len() / d` rows of `d` floats in `keys` into `kt` in the layout of
/// [`ScoresTFn`] (`kt.len()` must be `d · 8 · ⌈n / 8⌉`); the missing keys of the last block are
/// zero.
pub fn transpose_keys(keys: &[f32], d: usize, kt: &mut [f32]) {
    assert!(
        d > 0 && keys.len().is_multiple_of(d),
        "attention kernel: keys of {d}"
    );
    let n = keys.len() / d;
    assert_eq!(
        kt.len(),
        n.div_ceil(KEY_BLOCK) * KEY_BLOCK * d,
        "attention kernel: transposed keys"
    );
    for (b, blk) in kt.chunks_exact_mut(KEY_BLOCK * d).enumerate() {
        for r in 0..KEY_BLOCK {
            match keys.chunks_exact(d).nth(b * KEY_BLOCK + r) {
                Some(key) => {
                    for (j, &x) in key.iter().enumerate() {
                        blk[j * KEY_BLOCK + r] = x;
                    }
                }
                None => {
                    for j in 0..d {
                        blk[j * KEY_BLOCK + r] = 0.0;
                    }
                }
            }
        }
    }
}

/// The shapes of a [`ScoresTFn`] call: `(d, nb)`. Panics on inconsistent lengths (a
/// caller's bug, not bad input).
#[inline]
pub(crate) fn check_t(q: &[f32], nq: usize, kt: &[f32], out: &[f32]) -> (usize, usize) {
    assert!(
        nq > 0 && q.len().is_multiple_of(nq),
        "attention kernel: {nq} queries"
    );
    let d = q.len() / nq;
    assert!(d > 0, "attention kernel: empty queries");
    assert!(
        kt.len().is_multiple_of(KEY_BLOCK * d),
        "attention kernel: transposed keys of {d}"
    );
    let nb = kt.len() / (KEY_BLOCK * d);
    check_rows(out, nq, KEY_BLOCK * nb);
    (d, nb)
}

/// The shapes of a [`WeightedSumManyFn`] call: `(d, n)`. Panics on inconsistent lengths.
#[inline]
pub(crate) fn check_many<T>(
    w: &[f32],
    stride: usize,
    nq: usize,
    rows: &[T],
    out: &[f32],
) -> (usize, usize) {
    assert!(
        nq > 0 && out.len().is_multiple_of(nq),
        "attention kernel: {nq} outputs"
    );
    let d = out.len() / nq;
    assert!(
        d > 0 && rows.len().is_multiple_of(d),
        "attention kernel: rows of {d}"
    );
    let n = rows.len() / d;
    assert!(
        stride >= n && w.len() >= (nq - 1) * stride + n,
        "attention kernel: {nq} weight rows of {n}, {stride} apart"
    );
    (d, n)
}

/// The scalar [`ScoresTFn`]: each score summed in order of the elements (eight keys side by
/// side, which the compiler vectorizes).
pub fn scores_t_scalar(q: &[f32], nq: usize, kt: &[f32], scale: f32, out: &mut [f32]) {
    let (d, nb) = check_t(q, nq, kt, out);
    for (qi, o) in q.chunks_exact(d).zip(out.chunks_exact_mut(KEY_BLOCK * nb)) {
        for (blk, o) in kt
            .chunks_exact(KEY_BLOCK * d)
            .zip(o.chunks_exact_mut(KEY_BLOCK))
        {
            let mut acc = [0f32; KEY_BLOCK];
            for (&x, k) in qi.iter().zip(blk.chunks_exact(KEY_BLOCK)) {
                for (a, &k) in acc.iter_mut().zip(k) {
                    *a += x * k;
                }
            }
            for (o, a) in o.iter_mut().zip(acc) {
                *o = a * scale;
            }
        }
    }
}

/// The scalar [`WeightedSumManyFn`]: [`weighted_sum_scalar`] per query.
pub fn weighted_sum_many_scalar(
    w: &[f32],
    stride: usize,
    nq: usize,
    rows: &[f32],
    out: &mut [f32],
) {
    let (d, n) = check_many(w, stride, nq, rows, out);
    for (i, o) in out.chunks_exact_mut(d).enumerate() {
        weighted_sum_scalar(&w[i * stride..i * stride + n], rows, o);
    }
}

/// The shapes of a [`ScoresManyF16Fn`] call: `(d, n)`. Panics on inconsistent lengths.
#[inline]
pub(crate) fn check_scores_many<T>(
    q: &[f32],
    nq: usize,
    rows: &[T],
    out: &[f32],
) -> (usize, usize) {
    assert!(
        nq > 0 && q.len().is_multiple_of(nq),
        "attention kernel: {nq} queries"
    );
    let d = q.len() / nq;
    assert!(
        d > 0 && rows.len().is_multiple_of(d),
        "attention kernel: rows of {d}"
    );
    let n = rows.len() / d;
    check_rows(out, nq, n);
    (d, n)
}

/// The scalar [`ScoresManyF16Fn`]: [`scores_f16_scalar`] per query.
pub fn scores_many_f16_scalar(
    q: &[f32],
    nq: usize,
    rows: &[half::f16],
    scale: f32,
    out: &mut [f32],
) {
    let (d, n) = check_scores_many(q, nq, rows, out);
    for (qi, o) in q.chunks_exact(d).zip(out.chunks_exact_mut(n.max(1))) {
        scores_f16_scalar(qi, rows, scale, &mut o[..n]);
    }
}

/// The scalar [`WeightedSumManyF16Fn`]: [`weighted_sum_f16_scalar`] per query.
pub fn weighted_sum_many_f16_scalar(
    w: &[f32],
    stride: usize,
    nq: usize,
    rows: &[half::f16],
    out: &mut [f32],
) {
    let (d, n) = check_many(w, stride, nq, rows, out);
    for (i, o) in out.chunks_exact_mut(d).enumerate() {
        weighted_sum_f16_scalar(&w[i * stride..i * stride + n], rows, o);
    }
}

/// The scalar [`F16ToF32Fn`] (`half`'s conversion: exact).
pub fn f16_to_f32_scalar(src: &[half::f16], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len(), "f16 to f32: lengths");
    for (d, s) in dst.iter_mut().zip(src) {
        *d = s.to_f32();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Every instruction set's kernels against the scalar ones, relative to `Σ|terms|`.
    #[test]
    fn every_isa_equals_scalar() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for &isa in available_isas() {
            let k = attn_kernels_for(isa);
            for d in [1usize, 8, 16, 24, 64, 128, 144, 256] {
                for n in [0usize, 1, 2, 5, 77] {
                    let q: Vec<f32> = (0..d).map(|_| rng.gen_range(-2.0..2.0)).collect();
                    let rows: Vec<f32> = (0..n * d).map(|_| rng.gen_range(-2.0..2.0)).collect();
                    let w: Vec<f32> = (0..n).map(|_| rng.gen_range(0.0..1.0)).collect();
                    let (mut got, mut want) = (vec![f32::NAN; n], vec![0f32; n]);
                    (k.scores)(&q, &rows, 0.3, &mut got);
                    scores_scalar(&q, &rows, 0.3, &mut want);
                    for r in 0..n {
                        let mag: f32 = (0..d).map(|j| (q[j] * rows[r * d + j]).abs()).sum();
                        let tol = 1e-5 * 0.3 * mag + 1e-30;
                        assert!(
                            (got[r] - want[r]).abs() <= tol,
                            "{isa} scores d={d} n={n} r={r}"
                        );
                    }
                    let (mut got, mut want) = (vec![f32::NAN; d], vec![0f32; d]);
                    (k.weighted_sum)(&w, &rows, &mut got);
                    weighted_sum_scalar(&w, &rows, &mut want);
                    for j in 0..d {
                        let mag: f32 = (0..n).map(|r| (w[r] * rows[r * d + j]).abs()).sum();
                        let tol = 1e-5 * mag + 1e-30;
                        assert!(
                            (got[j] - want[j]).abs() <= tol,
                            "{isa} sum d={d} n={n} j={j}"
                        );
                    }
                }
            }
        }
    }

    /// The query-block kernels against the scalar ones (and the scalar ones against the
    /// per-query kernels on the same keys), for every count of queries and key blocks the
    /// SIMD kernels split differently.
    #[test]
    fn query_block_kernels_equal_scalar() {
        let mut rng = ChaCha8Rng::seed_from_u64(10);
        for &isa in available_isas() {
            let k = attn_kernels_for(isa);
            // Head sizes taking each column remainder; key counts giving 1 to 17 blocks
            // (every remainder of every query group's step), whole and partial.
            let ns = [1usize, 7, 8, 9]
                .into_iter()
                .chain((2..=17).map(|nb| KEY_BLOCK * nb - 3));
            let ns: Vec<usize> = ns.collect();
            for d in [1usize, 8, 16, 24, 40, 64, 80, 96, 128] {
                for nq in 1..=7 {
                    for &n in &ns {
                        let q: Vec<f32> = (0..nq * d).map(|_| rng.gen_range(-2.0..2.0)).collect();
                        let keys: Vec<f32> = (0..n * d).map(|_| rng.gen_range(-2.0..2.0)).collect();
                        let s = n.div_ceil(KEY_BLOCK) * KEY_BLOCK;
                        let mut kt = vec![f32::NAN; s * d];
                        transpose_keys(&keys, d, &mut kt);
                        let (mut got, mut want) = (vec![f32::NAN; nq * s], vec![0f32; nq * s]);
                        (k.scores_t)(&q, nq, &kt, 0.3, &mut got);
                        scores_t_scalar(&q, nq, &kt, 0.3, &mut want);
                        if isa != Isa::Scalar && available_isas().contains(&Isa::Avx2) {
                            // Every width sums each score in the same FMA order: the bits
                            // of the 256-bit kernel.
                            let mut avx2 = vec![f32::NAN; nq * s];
                            (attn_kernels_for(Isa::Avx2).scores_t)(&q, nq, &kt, 0.3, &mut avx2);
                            let bits =
                                |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                            assert_eq!(bits(&got), bits(&avx2), "{isa} d={d} nq={nq} n={n}");
                        }
                        for i in 0..nq {
                            let qi = &q[i * d..(i + 1) * d];
                            let mut per_query = vec![0f32; n];
                            scores_scalar(qi, &keys, 0.3, &mut per_query);
                            for r in 0..s {
                                let (g, w) = (got[i * s + r], want[i * s + r]);
                                if r >= n {
                                    // Padding keys are zero.
                                    assert_eq!((g, w), (0.0, 0.0), "{isa} pad d={d} nq={nq}");
                                    continue;
                                }
                                let mag: f32 =
                                    (0..d).map(|j| (qi[j] * keys[r * d + j]).abs()).sum();
                                let tol = 1e-5 * 0.3 * mag + 1e-30;
                                let at = format!("{isa} d={d} nq={nq} n={n} q{i} r{r}");
                                assert!((g - w).abs() <= tol, "scores {at}: {g} vs {w}");
                                assert!((w - per_query[r]).abs() <= tol, "scalar {at}");
                            }
                        }
                        // Weights `stride` apart with junk between the rows.
                        let stride = n + 3;
                        let w: Vec<f32> =
                            (0..nq * stride).map(|_| rng.gen_range(0.0..1.0)).collect();
                        let (mut got, mut want) = (vec![f32::NAN; nq * d], vec![0f32; nq * d]);
                        (k.weighted_sum_many)(&w, stride, nq, &keys, &mut got);
                        weighted_sum_many_scalar(&w, stride, nq, &keys, &mut want);
                        for i in 0..nq {
                            // Each query's sums have the bits of this ISA's one-query kernel.
                            let wi = &w[i * stride..i * stride + n];
                            let mut simd = vec![f32::NAN; d];
                            (k.weighted_sum)(wi, &keys, &mut simd);
                            let row = &got[i * d..(i + 1) * d];
                            let bits =
                                |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                            assert_eq!(bits(row), bits(&simd), "{isa} d={d} nq={nq} n={n} q{i}");
                            for j in 0..d {
                                let mag: f32 = (0..n)
                                    .map(|r| (w[i * stride + r] * keys[r * d + j]).abs())
                                    .sum();
                                let tol = 1e-5 * mag + 1e-30;
                                let (g, wv) = (got[i * d + j], want[i * d + j]);
                                let at = format!("{isa} d={d} nq={nq} n={n} q{i} j{j}");
                                assert!((g - wv).abs() <= tol, "sum {at}: {g} vs {wv}");
                                let exact: f64 = (0..n)
                                    .map(|r| f64::from(wi[r]) * f64::from(keys[r * d + j]))
                                    .sum();
                                let e = f64::from(wv) - exact;
                                assert!(e.abs() <= f64::from(tol), "scalar {at}: {wv} vs {exact}");
                            }
                        }
                    }
                }
            }
        }
    }

    /// The decoding kernels for a group of queries over f16 rows: each query's results have
    /// the bits of the one-query f16 kernels (the 256-bit ones where the ISA is AVX-512, which
    /// runs the group kernels at 256 bits), for every split of queries and rows.
    #[test]
    fn f16_group_kernels_equal_one_query_kernels() {
        let mut rng = ChaCha8Rng::seed_from_u64(12);
        for &isa in available_isas() {
            let k = attn_kernels_for(isa);
            let one = if isa == Isa::Avx512 {
                attn_kernels_for(Isa::Avx2)
            } else {
                k
            };
            for d in [1usize, 8, 24, 64, 128] {
                for nq in 1..=6 {
                    for n in [0usize, 1, 2, 3, 5, 9, 77] {
                        let q: Vec<f32> = (0..nq * d).map(|_| rng.gen_range(-2.0..2.0)).collect();
                        let rows: Vec<half::f16> = (0..n * d)
                            .map(|_| half::f16::from_f32(rng.gen_range(-2.0..2.0)))
                            .collect();
                        let stride = n + 2;
                        let w: Vec<f32> =
                            (0..nq * stride).map(|_| rng.gen_range(0.0..1.0)).collect();
                        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                        let mut got = vec![f32::NAN; nq * n];
                        (k.scores_many_f16)(&q, nq, &rows, 0.3, &mut got);
                        let mut sums = vec![f32::NAN; nq * d];
                        (k.weighted_sum_many_f16)(&w, stride, nq, &rows, &mut sums);
                        for i in 0..nq {
                            let at = format!("{isa} d={d} nq={nq} n={n} q{i}");
                            let mut want = vec![f32::NAN; n];
                            (one.scores_f16)(&q[i * d..(i + 1) * d], &rows, 0.3, &mut want);
                            assert_eq!(bits(&got[i * n..(i + 1) * n]), bits(&want), "scores {at}");
                            let mut want = vec![f32::NAN; d];
                            (one.weighted_sum_f16)(
                                &w[i * stride..i * stride + n],
                                &rows,
                                &mut want,
                            );
                            assert_eq!(bits(&sums[i * d..(i + 1) * d]), bits(&want), "sums {at}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    #[should_panic(expected = "transposed keys")]
    fn transposed_keys_of_the_wrong_length_panic() {
        scores_t_scalar(&[1.0; 16], 2, &[0.0; 8 * 8 + 1], 1.0, &mut [0.0; 16]);
    }

    /// A row's score has the same bits wherever it sits among the rows (the SIMD kernels
    /// take rows in groups; a last, partial group is summed in the same order).
    #[test]
    fn scores_do_not_depend_on_the_row_position() {
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        for &isa in available_isas() {
            let k = attn_kernels_for(isa);
            for d in [16usize, 64, 128] {
                let q: Vec<f32> = (0..d).map(|_| rng.gen_range(-2.0..2.0)).collect();
                let rows: Vec<f32> = (0..13 * d).map(|_| rng.gen_range(-2.0..2.0)).collect();
                let mut all = vec![0f32; 13];
                (k.scores)(&q, &rows, 0.3, &mut all);
                for r0 in [0, 3, 8, 12] {
                    let mut part = vec![0f32; 13 - r0];
                    (k.scores)(&q, &rows[r0 * d..], 0.3, &mut part);
                    for (r, (a, p)) in all[r0..].iter().zip(&part).enumerate() {
                        assert_eq!(a.to_bits(), p.to_bits(), "{isa} d={d} from {r0}, row {r}");
                    }
                }
            }
        }
    }

    /// Every f16 value converts to the scalar kernel's f32 (NaNs to NaNs), at every offset
    /// and length around the vector widths.
    #[test]
    fn f16_conversion_equals_scalar() {
        let all: Vec<half::f16> = (0..=u16::MAX).map(half::f16::from_bits).collect();
        let mut want = vec![0f32; all.len()];
        f16_to_f32_scalar(&all, &mut want);
        for &isa in available_isas() {
            let k = attn_kernels_for(isa);
            for (start, len) in [(0, all.len()), (3, 61), (17, 16), (5, 7), (0, 0), (1, 33)] {
                let mut got = vec![f32::NAN; len];
                (k.f16_to_f32)(&all[start..start + len], &mut got);
                for (i, (g, w)) in got.iter().zip(&want[start..start + len]).enumerate() {
                    assert!(
                        g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()),
                        "{isa} value {:#06x}: {g} vs {w}",
                        start + i
                    );
                }
            }
        }
    }

    /// The f16 kernels have the bits of the f32 ones on the converted rows, on every
    /// instruction set.
    #[test]
    fn f16_kernels_equal_f32_kernels_on_converted_rows() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        for &isa in available_isas() {
            let k = attn_kernels_for(isa);
            for d in [1usize, 8, 16, 24, 64, 128, 144] {
                for n in [0usize, 1, 5, 13, 77] {
                    let rows: Vec<half::f16> = (0..n * d)
                        .map(|_| half::f16::from_f32(rng.gen_range(-2.0..2.0)))
                        .collect();
                    let converted: Vec<f32> = rows.iter().map(|h| h.to_f32()).collect();
                    let q: Vec<f32> = (0..d).map(|_| rng.gen_range(-2.0..2.0)).collect();
                    let w: Vec<f32> = (0..n).map(|_| rng.gen_range(0.0..1.0)).collect();
                    let (mut got, mut want) = (vec![f32::NAN; n], vec![f32::NAN; n]);
                    (k.scores_f16)(&q, &rows, 0.3, &mut got);
                    (k.scores)(&q, &converted, 0.3, &mut want);
                    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&got), bits(&want), "{isa} scores d={d} n={n}");
                    let (mut got, mut want) = (vec![f32::NAN; d], vec![f32::NAN; d]);
                    (k.weighted_sum_f16)(&w, &rows, &mut got);
                    (k.weighted_sum)(&w, &converted, &mut want);
                    assert_eq!(bits(&got), bits(&want), "{isa} sum d={d} n={n}");
                }
            }
        }
    }

    #[test]
    #[should_panic(expected = "attention kernel")]
    fn short_f16_rows_panic() {
        let rows = vec![half::f16::ZERO; 2 * 8 + 7];
        scores_f16_scalar(&[1.0; 8], &rows, 1.0, &mut [0.0; 3]);
    }

    #[test]
    #[should_panic(expected = "attention kernel")]
    fn wrong_row_count_panics() {
        scores_scalar(&[1.0; 4], &[1.0; 7], 1.0, &mut [0.0; 2]);
    }
}
