//! The Q8_0 GEMM for AVX2 without VNNI: products of quants widened to i16 (`vpmaddwd`).
//!
//! Q8_0 multiplies signed weight quants by signed activation quants. `vpmaddubsw` wants one
//! side unsigned, so on bytes a block's exact sum costs three multiply-unit instructions per
//! 32 products (`vpsignb`, `vpmaddubsw`, `vpmaddwd`, the layout the other legacy types use).
//! Zen 4 runs all three on the same two pipes (measured: two per cycle, alone or mixed; the
//! adds go to the other two pipes), so that bound is 21 products per cycle. One `vpmaddwd` on
//! quants widened to i16 takes 16 products into i32 lanes: 32 per cycle, 24 measured with the
//! `vpaddd` that accumulates each (some of which take those pipes). The widening is paid
//! once per weight tile (at packing) and once per activation row (in `aux`, [`widen`]), not
//! per product. Every sum is exact (two products of at most 128·128 per lane), -128 quants
//! included.
//!
//! Layout: a tile of [`TILE_ROWS`] rows is packed block by block (32 columns), four blocks
//! per [`PackedSb`]: `wq[16j + s][i]` holds quants `2s` and `2s + 1` of block `j` of row `i`
//! as two i16 (the low one first), `sc[j][i]` the f32 bits of that block's scale. The
//! activations (`aux`) are, for each token in turn and each of its blocks, the block's
//! sixteen quant pairs in the same form, then the f32 bits of its scale. Each block's
//! integer sum is added to the f32 sum as the scalar reference does (`sumi·(d_w·d_a)`), so
//! the results have its bits.

use std::arch::x86_64::*;

use super::super::gemm::{PackedSb, Square, GEMM_ROWS, TILE_ROWS};
use super::gemm::{for_halves, groups, prefetch, sb_chunks, NextWeights};
use super::gemm_avx2::transpose;
use crate::formats::q8_0::{BlockQ8_0, QK8_0};
use crate::formats::with_blocks;

/// Quant pairs per block: a block's weight steps in a [`PackedSb`], its `aux` words before
/// the scale.
const PAIRS: usize = QK8_0 / 2;

// The written-out steps of `tokens` and the packed block's sixteen-step arrays assume it.
const _: () = assert!(PAIRS == 16);

/// `aux` words per token and block: the block's [`PAIRS`] quant pairs, then its scale.
const AUX_WORDS: usize = PAIRS + 1;

/// Blocks per packed super-block (a [`PackedSb`]'s 64 steps of sixteen i32 lanes hold four
/// blocks of sixteen quant pairs).
const BLOCKS: usize = 4;

/// Tokens per call of [`tokens`]: per token two i32 sums, besides the two weight vectors, the
/// broadcast pair and a product (fourteen of the sixteen registers). Measured on the Q8_0
/// GEMM of a 4096-wide matrix (Zen 4): four or six tokens 4-8% slower. Running the two tiles
/// of a call together, two or three tokens at a time (one broadcast per four `vpmaddwd`
/// instead of two), was 3-5% slower (three spill their sums). With the block's steps written
/// out (Emerald Rapids, 2026-11-29): four and five tokens equal.
const TOKENS: usize = 5;

/// Packed super-blocks of one pass over the tokens: 4 · 4 KiB of quant pairs, which stay in
/// the L1 cache while every group of tokens runs through them (measured: 65.8 G/s against
/// 59.6–62.1 for 2 or 8).
const CHUNK: usize = 4;

/// How many blocks ahead of the one being packed each row's weights are asked for.
const PREFETCH_AHEAD: usize = 8;

/// The activations' `aux` for [`tile`]: per token and block, the block's quant pairs, then
/// its scale (layout in the module documentation). `xq` holds `m` Q8_0 rows of `k` elements.
pub(super) fn widen(xq: &[u8], m: usize, k: usize) -> Vec<i32> {
    with_blocks::<BlockQ8_0, _>(xq, |blocks| {
        debug_assert_eq!(blocks.len() * QK8_0, m * k);
        let mut aux = Vec::with_capacity(blocks.len() * AUX_WORDS);
        for b in blocks {
            aux.extend(b.qs.chunks_exact(2).map(|p| pair(p[0], p[1])));
            aux.push(b.d.to_f32().to_bits() as i32);
        }
        aux
    })
}

/// Two signed quants as the i16 pair of one lane, `lo` in the low half.
#[inline(always)]
fn pair(lo: i8, hi: i8) -> i32 {
    (lo as i16 as u16 as u32 | ((hi as i16 as u16 as u32) << 16)) as i32
}

/// The [`tile`] for this CPU: each block's [`PAIRS`] steps written out on Intel's cores
/// (`unrolled`), a loop over them elsewhere. The same bits either way; measured:
/// - Emerald Rapids (2026-11-29): with no loop, its index, pointer and counter arithmetic no
///   longer takes the ports the `vpmaddwd`/`vpaddd` stream needs; `gemm_rate` (one thread,
///   m = 512) 4096x14336 about 48-49 -> 51-52 G/s, 7B Q8_0 pp512 +8-12%.
/// - Zen 4 (2026-11-29): the loop is faster; `gemm_rate` 4096x14336 65.0-66.9 G/s written out
///   against 69.1-70.3 as a loop (three alternating runs); 7B Q8_0 pp512 with
///   `ORCINUS_ISA=avx2`, two threads: 17.19-18.14 t/s against 18.94-19.10 (three pairs).
///
/// The loop's speed on Zen 4 rests on the compiler keeping it a loop (rustc 1.95 does not
/// unroll its sixteen steps); re-measure after a compiler update.
pub(super) fn tile_for(unrolled: bool) -> super::super::GemmTileFn {
    if unrolled {
        tile::<true>
    } else {
        tile::<false>
    }
}

/// [`super::super::GemmTileFn`] for Q8_0 on AVX2 (`UNROLLED`: see [`tile_for`]): `w` holds
/// `rows` Q8_0 weight rows, `a` the `m` Q8_0 activation rows (only their length is read: the
/// kernel takes `aux`, [`widen`] of them), `out` is `[m][GEMM_ROWS]`.
fn tile<const UNROLLED: bool>(
    w: &[u8],
    rows: usize,
    a: &[u8],
    aux: &[i32],
    m: usize,
    scratch: &mut Vec<PackedSb>,
    out: &mut [f32],
) {
    with_blocks::<BlockQ8_0, _>(w, |w| {
        assert!(rows <= GEMM_ROWS && rows > 0 && w.len() % rows == 0);
        let nb = w.len() / rows;
        let blocks = m * nb;
        assert!(a.len() == blocks * std::mem::size_of::<BlockQ8_0>());
        assert!(aux.len() == blocks * AUX_WORDS && out.len() == m * GEMM_ROWS);
        // SAFETY: `gemm_tile` hands this function out only after `kernels::available_isas`
        // detected AVX2 (with FMA and F16C).
        unsafe { tile_avx2::<UNROLLED>(w, rows, nb, aux, m, scratch, out) }
    })
}

/// [`tile`] past its checks: each [`TILE_ROWS`]-row half of the call packed, then its
/// super-blocks in chunks of [`CHUNK`], each chunk run through the tokens [`TOKENS`] at a
/// time.
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tile_avx2<const UNROLLED: bool>(
    w: &[BlockQ8_0],
    rows: usize,
    nb: usize,
    aux: &[i32],
    m: usize,
    scratch: &mut Vec<PackedSb>,
    out: &mut [f32],
) {
    out.fill(0.0);
    let nsb = nb.div_ceil(BLOCKS);
    let next = NextWeights::after(w);
    for_halves(w, rows, nb, nsb, scratch, |w, rows, sbs_all, col| {
        pack(w, rows, nb, sbs_all);
        sb_chunks(nsb, CHUNK, (col > 0).then_some(next), |c| {
            let sbs = &sbs_all[c.start..];
            let (b0, b1) = (BLOCKS * c.start, (BLOCKS * c.end).min(nb));
            groups(m, TOKENS, |t0, n| {
                // SAFETY: tokens `t0..t0 + n <= m`, whose `aux` rows (`AUX_WORDS·nb` words
                // each) are inside it (asserted by `tile`).
                let y = |t: usize| unsafe { aux.as_ptr().add(AUX_WORDS * nb * (t0 + t)) };
                let o = &mut out[t0 * GEMM_ROWS + col..];
                macro_rules! run {
                    ($($k:literal)*) => {
                        match n {
                            $($k => tokens::<$k, UNROLLED>(
                                sbs,
                                std::array::from_fn(y),
                                nb,
                                b0..b1,
                                o,
                            ),)*
                            _ => unreachable!(),
                        }
                    };
                }
                run!(1 2 3 4 5)
            })
        })
    });
}

/// Packs the `rows` rows of `w` (`nb` blocks each; at most [`TILE_ROWS`], the missing rows
/// zero) into `out` ([`BLOCKS`] blocks per super-block; layout in the module documentation).
///
/// # Safety
/// The CPU must have AVX2 (the caller's `target_feature`).
#[inline(always)]
unsafe fn pack(w: &[BlockQ8_0], rows: usize, nb: usize, out: &mut [PackedSb]) {
    debug_assert!(rows <= TILE_ROWS && w.len() == rows * nb && out.len() == nb.div_ceil(BLOCKS));
    let mut src: Square = [[0; TILE_ROWS]; TILE_ROWS];
    for b in 0..nb {
        let (sb, j) = (&mut out[b / BLOCKS], b % BLOCKS);
        for (i, s) in src.iter_mut().enumerate().take(rows) {
            let row = &w[i * nb..(i + 1) * nb];
            prefetch(
                row.get(b + PREFETCH_AHEAD..b + PREFETCH_AHEAD + 1)
                    .unwrap_or(&[]),
            );
            let blk = &row[b];
            let q = _mm256_loadu_si256(blk.qs.as_ptr().cast());
            let lo = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(q));
            let hi = _mm256_cvtepi8_epi16(_mm256_extracti128_si256::<1>(q));
            _mm256_storeu_si256(s.as_mut_ptr().cast(), lo);
            _mm256_storeu_si256(s[8..].as_mut_ptr().cast(), hi);
            sb.sc[j][i] = blk.d.to_f32().to_bits() as i32;
        }
        let dst: &mut Square = (&mut sb.wq[PAIRS * j..PAIRS * (j + 1)])
            .try_into()
            .expect("sixteen steps");
        transpose(&src, dst);
    }
}

/// The two halves (rows 0..8, 8..16) of a lane array.
#[inline(always)]
unsafe fn halves(lanes: &[u32; TILE_ROWS]) -> [__m256i; 2] {
    let p = lanes.as_ptr().cast::<__m256i>();
    [_mm256_loadu_si256(p), _mm256_loadu_si256(p.add(1))]
}

/// `out[t][i] += Σ_b` (block `b` of the packed tile `sbs`) · token `t`'s block `b0 + b`,
/// for `T` tokens (`out` rows [`GEMM_ROWS`] apart) and the blocks `b0..b1` of rows of `nb`,
/// each token given by its `aux` row (`y[t]`: per block its sixteen quant pairs, then its
/// scale): per block the exact integer sum (`vpmaddwd` into i32 lanes), then
/// `sumi·(d_w·d_a)` added to the f32 sum in `out`, as the scalar reference adds it. With
/// `UNROLLED` the sixteen steps of a block are written out (no loop counter, every address a
/// constant offset from the block's pointers), else a loop runs them ([`tile_for`]: which
/// is faster depends on the core).
///
/// # Safety
/// Every `y[t]` must point to an `aux` row of [`AUX_WORDS`]`·nb` values, `b1 <= nb`; the
/// CPU must have AVX2 and FMA (the caller's `target_feature`).
#[inline(always)]
#[allow(clippy::needless_range_loop)] // `h` picks a half of the lanes
unsafe fn tokens<const T: usize, const UNROLLED: bool>(
    sbs: &[PackedSb],
    y: [*const i32; T],
    nb: usize,
    blocks: std::ops::Range<usize>,
    out: &mut [f32],
) {
    let b0 = blocks.start;
    assert!(blocks.end <= nb && blocks.len() <= BLOCKS * sbs.len());
    assert!(out.len() >= (T - 1) * GEMM_ROWS + TILE_ROWS);
    let o = out.as_mut_ptr();
    for b in blocks {
        // SAFETY (get_unchecked): `(b - b0) / BLOCKS < sbs.len()` (asserted).
        let (sb, j) = (sbs.get_unchecked((b - b0) / BLOCKS), (b - b0) % BLOCKS);
        let wq: &[[u32; TILE_ROWS]; PAIRS] = (&sb.wq[PAIRS * j..PAIRS * (j + 1)])
            .try_into()
            .expect("sixteen steps");
        // SAFETY: `b < nb` (asserted): words `AUX_WORDS·b..AUX_WORDS·(b + 1)` of each token's
        // `AUX_WORDS·nb`-word `aux` row (the caller's contract), the pairs at `+0..PAIRS`, the
        // scale at `+PAIRS`.
        let yb: [*const i32; T] = std::array::from_fn(|t| y[t].add(AUX_WORDS * b));
        let mut acc = [[_mm256_setzero_si256(); 2]; T];
        macro_rules! step {
            ($s:expr) => {{
                let w = halves(&wq[$s]);
                for t in 0..T {
                    // SAFETY: the step index is below `PAIRS`: a pair of the block (see `yb`).
                    let yp = _mm256_set1_epi32(*yb[t].add($s));
                    for h in 0..2 {
                        acc[t][h] = _mm256_add_epi32(acc[t][h], _mm256_madd_epi16(w[h], yp));
                    }
                }
            }};
        }
        if UNROLLED {
            macro_rules! steps {
                ($($s:literal)*) => {$(step!($s);)*};
            }
            steps!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15);
        } else {
            for s in 0..PAIRS {
                step!(s);
            }
        }
        for h in 0..2 {
            let dw = _mm256_loadu_ps(sb.sc[j].as_ptr().add(8 * h).cast());
            for t in 0..T {
                // SAFETY: the block's scale (see `yb`).
                let da = _mm256_set1_ps(f32::from_bits(*yb[t].add(PAIRS) as u32));
                // C: sumi*(d_x*d_y).
                let term = _mm256_mul_ps(_mm256_cvtepi32_ps(acc[t][h]), _mm256_mul_ps(dw, da));
                // SAFETY: inside `out` (asserted above).
                let f = o.add(t * GEMM_ROWS + 8 * h);
                _mm256_storeu_ps(f, _mm256_add_ps(_mm256_loadu_ps(f), term));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::k_common::test_util::weights_like;
    use crate::kernels::{available_isas, Isa};
    use crate::GgmlType;

    /// The written-out and the looped kernel (each CPU runs only one of them) both give the
    /// scalar reference's bits, and zeros past the weight rows: rows of 37 blocks (ten chunks,
    /// the last one short), every group size of tokens.
    #[test]
    fn unrolled_and_looped_give_the_reference_bits() {
        if !available_isas().contains(&Isa::Avx2) {
            return;
        }
        let ty = GgmlType::Q8_0;
        let k = 37 * QK8_0;
        let rb = ty.row_bytes(k).unwrap();
        let x = weights_like(13 * k, 1);
        let mut xq = vec![0u8; 13 * rb];
        ty.quantize(&x, &mut xq).unwrap();
        for rows in [GEMM_ROWS, TILE_ROWS, 11] {
            let w = weights_like(rows * k, 2 + rows as u64);
            let mut wq = vec![0u8; rows * rb];
            ty.quantize(&w, &mut wq).unwrap();
            for m in [1, 2, 3, 4, 13] {
                let xq = &xq[..m * rb];
                let aux = widen(xq, m, k);
                for unrolled in [true, false] {
                    let mut out = vec![f32::NAN; m * GEMM_ROWS];
                    tile_for(unrolled)(&wq, rows, xq, &aux, m, &mut Vec::new(), &mut out);
                    for t in 0..m {
                        for i in 0..GEMM_ROWS {
                            let got = out[t * GEMM_ROWS + i];
                            let want = if i < rows {
                                let a = &xq[t * rb..(t + 1) * rb];
                                ty.vec_dot(&wq[i * rb..(i + 1) * rb], a, k).unwrap()
                            } else {
                                0.0
                            };
                            assert_eq!(
                                got.to_bits(),
                                want.to_bits(),
                                "unrolled {unrolled}, {rows} rows, m {m}, t{t} row {i}: {got} vs {want}"
                            );
                        }
                    }
                }
            }
        }
    }
}
