//! The x86 micro-kernels of the quantized GEMM (layout and formula in `kernels/gemm.rs`): the
//! tile driver shared by all of them (packing, chunks of super-blocks, groups of tokens), and
//! the AVX-512 VNNI kernels (the AVX2 and AVX-VNNI ones are in `gemm_avx2.rs`). The VNNI
//! K-quant kernel, [`tokens`]: sixteen weight rows in the i32 lanes of a 512-bit vector, up
//! to [`TOKENS`] tokens at a time, each with its own accumulators. Per four-column step one
//! vector of packed quants is loaded and multiplied (`vpdpbusd`) by each token's four
//! activation bytes broadcast to every lane; per scale group the sums are scaled
//! (`vpmulld`); per super-block the correction term (`vpdpwssd`; none for Q6_K, whose
//! offset [`fold_offset`] folds into each sum's start) and the float accumulation follow.
//! Each token's activations come from its [`vnni_aux`](super::super::gemm::vnni_aux) words,
//! one run per super-block. All integer sums are exact. With `FS` (float scales,
//! [`GemmKind::VnniFloatScales`]) each scale group's sum is converted and added in floats
//! instead (`vcvtdq2ps` + `vfmadd231ps`): on Intel's cores all of them share the two
//! `vpdpbusd` ports, and the two float uops cost less there than `vpmulld` (two uops) and
//! `vpaddd` (on Zen 4 it is the other way round). [`tokens2`] does the same for the two
//! tiles of a 32-row call at once, [`TOKENS2`] tokens at a time, so that each broadcast word
//! meets two weight vectors. Q8_0 ([`tokens_q8_0`]) runs its tiles one after the other.

use std::arch::x86_64::*;

use super::super::gemm::{
    pack_tile, pack_tile_legacy, vnni_aux_words, vnni_corr_steps, vnni_folds, GemmPack, LegacyAct,
    LegacyPack, PackedSb, Square, GEMM_ROWS, STEPS, TILE_ROWS,
};
use super::super::GemmTileFn;
use super::avx2::{NO_VNNI, VEX_VNNI};
use super::gemm_avx2;
use crate::formats::q4_0::BlockQ4_0;
use crate::formats::q4_1::BlockQ4_1;
use crate::formats::q4_k::BlockQ4K;
use crate::formats::q5_0::BlockQ5_0;
use crate::formats::q5_1::BlockQ5_1;
use crate::formats::q5_k::BlockQ5K;
use crate::formats::q6_k::BlockQ6K;
use crate::formats::q8_0::BlockQ8_0;
use crate::formats::q8_k::BlockQ8K;
use crate::formats::with_blocks;
use crate::GgmlType;

/// Which GEMM micro-kernel.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum GemmKind {
    /// 512-bit, AVX512-VNNI.
    Vnni,
    /// 512-bit, AVX512-VNNI, the K-quants' scale step in floats (Intel cores); the legacy
    /// types as [`GemmKind::Vnni`].
    VnniFloatScales,
    /// 256-bit, AVX-VNNI (VEX).
    AvxVnni,
    /// 256-bit, AVX2 only.
    Avx2,
}

/// The GEMM tile function of `ty` for the micro-kernel `kind`.
pub(super) fn gemm_tile(ty: GgmlType, kind: GemmKind) -> Option<GemmTileFn> {
    Some(match (ty, kind) {
        (GgmlType::Q4K, GemmKind::Vnni) => tile_bytes::<BlockQ4K, Vnni<false>>,
        (GgmlType::Q5K, GemmKind::Vnni) => tile_bytes::<BlockQ5K, Vnni<false>>,
        (GgmlType::Q6K, GemmKind::Vnni) => tile_bytes::<BlockQ6K, Vnni<false>>,
        (GgmlType::Q4K, GemmKind::VnniFloatScales) => tile_bytes::<BlockQ4K, Vnni<true>>,
        (GgmlType::Q5K, GemmKind::VnniFloatScales) => tile_bytes::<BlockQ5K, Vnni<true>>,
        (GgmlType::Q6K, GemmKind::VnniFloatScales) => tile_bytes::<BlockQ6K, Vnni<true>>,
        (GgmlType::Q4_0, GemmKind::Vnni | GemmKind::VnniFloatScales) => {
            tile_bytes_legacy::<BlockQ4_0, Vnni>
        }
        (GgmlType::Q4_1, GemmKind::Vnni | GemmKind::VnniFloatScales) => {
            tile_bytes_legacy::<BlockQ4_1, Vnni>
        }
        (GgmlType::Q5_0, GemmKind::Vnni | GemmKind::VnniFloatScales) => {
            tile_bytes_legacy::<BlockQ5_0, Vnni>
        }
        (GgmlType::Q5_1, GemmKind::Vnni | GemmKind::VnniFloatScales) => {
            tile_bytes_legacy::<BlockQ5_1, Vnni>
        }
        (GgmlType::Q8_0, GemmKind::Vnni | GemmKind::VnniFloatScales) => {
            tile_bytes_legacy::<BlockQ8_0, Vnni>
        }
        (GgmlType::Q4_0, GemmKind::AvxVnni) => tile_bytes_legacy::<BlockQ4_0, AvxVnni>,
        (GgmlType::Q4_1, GemmKind::AvxVnni) => tile_bytes_legacy::<BlockQ4_1, AvxVnni>,
        (GgmlType::Q5_0, GemmKind::AvxVnni) => tile_bytes_legacy::<BlockQ5_0, AvxVnni>,
        (GgmlType::Q5_1, GemmKind::AvxVnni) => tile_bytes_legacy::<BlockQ5_1, AvxVnni>,
        (GgmlType::Q8_0, GemmKind::AvxVnni) => tile_bytes_legacy::<BlockQ8_0, AvxVnni>,
        (GgmlType::Q4_0, GemmKind::Avx2) => tile_bytes_legacy::<BlockQ4_0, Avx2>,
        (GgmlType::Q4_1, GemmKind::Avx2) => tile_bytes_legacy::<BlockQ4_1, Avx2>,
        (GgmlType::Q5_0, GemmKind::Avx2) => tile_bytes_legacy::<BlockQ5_0, Avx2>,
        (GgmlType::Q5_1, GemmKind::Avx2) => tile_bytes_legacy::<BlockQ5_1, Avx2>,
        (GgmlType::Q8_0, GemmKind::Avx2) => super::gemm_i16::tile_for(super::intel()),
        (GgmlType::Q4K, GemmKind::AvxVnni) => tile_bytes::<BlockQ4K, AvxVnni>,
        (GgmlType::Q5K, GemmKind::AvxVnni) => tile_bytes::<BlockQ5K, AvxVnni>,
        (GgmlType::Q6K, GemmKind::AvxVnni) => tile_bytes::<BlockQ6K, AvxVnni>,
        (GgmlType::Q4K, GemmKind::Avx2) => tile_bytes::<BlockQ4K, Avx2>,
        (GgmlType::Q5K, GemmKind::Avx2) => tile_bytes::<BlockQ5K, Avx2>,
        (GgmlType::Q6K, GemmKind::Avx2) => tile_bytes::<BlockQ6K, Avx2>,
        _ => return None,
    })
}

/// A micro-kernel: packs a tile and runs every token through it.
///
/// # Safety
/// `tile` needs the CPU features its implementation names; the dispatch hands a kernel out
/// only after detecting them.
unsafe trait Kernel {
    /// The words of `aux` that `tile` takes per activation super-block for weights `B`
    /// (0: an empty `aux`).
    fn aux_words<B: GemmPack>() -> usize;
    /// `out[t][i] = w[i] · a[t]` for the `rows` (1 to [`GEMM_ROWS`]) weight rows of `w`
    /// (`nb` super-blocks each) and the `m` activation rows of `a` (`aux`: their
    /// `super::gemm_aux` where the kernel takes one, its length checked by [`tile_bytes`]);
    /// `out` is `[m][GEMM_ROWS]`, its lanes past `rows` zero.
    ///
    /// # Safety
    /// The CPU must have the implementation's features.
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile<B: GemmPack>(
        w: &[B],
        rows: usize,
        nb: usize,
        a: &[BlockQ8K],
        aux: &[i32],
        m: usize,
        scratch: &mut Vec<PackedSb>,
        out: &mut [f32],
    );
}

/// A legacy-type micro-kernel: as [`Kernel`], with rows of `nb` 32-element blocks and
/// `aux` the activations' [`super::super::gemm::activation_sums`].
///
/// # Safety
/// As [`Kernel`].
unsafe trait LegacyKernel {
    /// As [`Kernel::tile`], for a legacy type.
    ///
    /// # Safety
    /// The CPU must have the implementation's features.
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile<W: LegacyPack>(
        w: &[W],
        rows: usize,
        nb: usize,
        a: &[W::Act],
        aux: &[i32],
        m: usize,
        scratch: &mut Vec<PackedSb>,
        out: &mut [f32],
    );
}

/// The AVX-512 VNNI kernel (`tokens`, below); `FS`: the K-quants' scale step in floats.
struct Vnni<const FS: bool = false>;
/// The AVX2 kernel (`gemm_avx2.rs`).
struct Avx2;
/// The AVX-VNNI kernel (`gemm_avx2.rs`).
struct AvxVnni;

/// [`GemmTileFn`] on bytes: `w` holds `rows` weight rows, `a` holds `m` Q8_K rows of as many
/// elements (`aux`: their `super::gemm_aux` for a kernel that takes one), `out` is
/// `[m][GEMM_ROWS]`.
fn tile_bytes<B: GemmPack, K: Kernel>(
    w: &[u8],
    rows: usize,
    a: &[u8],
    aux: &[i32],
    m: usize,
    scratch: &mut Vec<PackedSb>,
    out: &mut [f32],
) {
    with_blocks::<B, _>(w, |w| {
        with_blocks::<BlockQ8K, _>(a, |a| {
            assert!(rows <= GEMM_ROWS && rows > 0 && w.len() % rows == 0);
            let nb = w.len() / rows;
            assert!(a.len() == m * nb && out.len() == m * GEMM_ROWS);
            let aux_len = m * nb * K::aux_words::<B>();
            assert!(
                aux.len() == aux_len,
                "aux: {} words, not {aux_len}",
                aux.len()
            );
            // SAFETY: `gemm_tile` is consulted only after `kernels::available_isas` detected
            // the instruction set of `K` (and `kernels::has_avx512_vnni` VNNI for `Vnni`).
            unsafe { K::tile::<B>(w, rows, nb, a, aux, m, scratch, out) }
        })
    })
}

/// [`GemmTileFn`] for a legacy type: as [`tile_bytes`], with rows of 32-element blocks and
/// `aux` the activations' [`super::super::gemm::activation_sums`].
fn tile_bytes_legacy<W: LegacyPack, K: LegacyKernel>(
    w: &[u8],
    rows: usize,
    a: &[u8],
    aux: &[i32],
    m: usize,
    scratch: &mut Vec<PackedSb>,
    out: &mut [f32],
) {
    with_blocks::<W, _>(w, |w| {
        with_blocks::<W::Act, _>(a, |a| {
            assert!(rows <= GEMM_ROWS && rows > 0 && w.len() % rows == 0);
            let nb = w.len() / rows;
            let aux_len = if W::OFFSET == 0 { 0 } else { m * nb };
            assert!(a.len() == m * nb && aux.len() == aux_len && out.len() == m * GEMM_ROWS);
            // SAFETY: as in `tile_bytes`.
            unsafe { K::tile(w, rows, nb, a, aux, m, scratch, out) }
        })
    })
}

/// `$tokens::<$w, n>` for the `n` tokens from `t0` (`n` one of the literals).
macro_rules! run_legacy {
    ($n:expr, $tokens:ident, $w:ty, $sbs:expr, $row:expr, $t0:expr, $o:expr; $($k:literal)*) => {
        match $n {
            $($k => $tokens::<$w, $k>(
                $sbs,
                std::array::from_fn(|t| $row($t0 + t)),
                $o,
            ),)*
            _ => unreachable!(),
        }
    };
}

/// The legacy-type driver, one for every micro-kernel: each [`TILE_ROWS`]-row half of the
/// call packed ([`pack_tile_legacy`] with `$transpose`), then its super-blocks in chunks of
/// [`SB_CHUNK`], each chunk run through the tokens in groups of `$group` by
/// `$tokens::<W, group size>`, for the group sizes listed (`$group` must be one of them).
macro_rules! legacy_kernel {
    ($kernel:ty, $features:literal, $transpose:path, $group:expr, $tokens:path;
     $($k:literal)*) => {
        // SAFETY: `tile` needs the features it enables; see `tile_bytes`.
        unsafe impl LegacyKernel for $kernel {
            #[target_feature(enable = $features)]
            unsafe fn tile<W: LegacyPack>(
                w: &[W],
                rows: usize,
                nb: usize,
                a: &[W::Act],
                aux: &[i32],
                m: usize,
                scratch: &mut Vec<PackedSb>,
                out: &mut [f32],
            ) {
                use $tokens as tokens_fn;
                out.fill(0.0);
                let nsb = nb.div_ceil(8);
                let group: usize = $group;
                assert!([$($k),*].contains(&group));
                let next = NextWeights::after(w);
                for_halves(w, rows, nb, nsb, scratch, |w, rows, sbs_all, col| {
                    let mut row_refs: [&[W]; TILE_ROWS] = [&[]; TILE_ROWS];
                    for (i, r) in row_refs.iter_mut().enumerate().take(rows) {
                        *r = &w[i * nb..(i + 1) * nb];
                    }
                    pack_tile_legacy(
                        &row_refs[..rows],
                        nb,
                        sbs_all,
                        |s, d| $transpose(s, d),
                        prefetch,
                    );
                    sb_chunks(nsb, SB_CHUNK, (col > 0).then_some(next), |bs| {
                        let sbs = &sbs_all[bs.clone()];
                        let (b0, b1) = (8 * bs.start, (8 * bs.end).min(nb));
                        let row = |t: usize| {
                            let r = t * nb;
                            (&a[r + b0..r + b1], aux.get(r + b0..r + b1).unwrap_or(&[]))
                        };
                        groups(m, group, |t0, n| {
                            let o = &mut out[t0 * GEMM_ROWS + col..];
                            run_legacy!(
                                n, tokens_fn, W, sbs, row, t0, o; $($k)*
                            )
                        })
                    })
                });
            }
        }
    };
}

legacy_kernel!(
    Vnni,
    "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c",
    transpose,
    TOKENS,
    tokens_legacy;
    1 2 3 4 5 6 7 8
);
legacy_kernel!(
    Avx2,
    "avx2,fma,f16c",
    gemm_avx2::transpose,
    gemm_avx2::legacy_tokens::<W, NO_VNNI>(),
    gemm_avx2::tokens_legacy_avx2;
    1 2 3 4 5
);
legacy_kernel!(
    AvxVnni,
    "avx2,fma,f16c,avxvnni",
    gemm_avx2::transpose,
    gemm_avx2::legacy_tokens::<W, VEX_VNNI>(),
    gemm_avx2::tokens_legacy_avxvnni;
    1 2 3 4 5 6
);

/// Runs `run(first token, tokens)` over the `m` tokens in groups of at most `group`.
#[inline(always)]
pub(super) fn groups(m: usize, group: usize, mut run: impl FnMut(usize, usize)) {
    let mut t0 = 0;
    while t0 < m {
        let n = (m - t0).min(group);
        run(t0, n);
        t0 += n;
    }
}

/// Super-blocks of a packed tile that one pass over every token takes: 4 · 5760 bytes, which
/// stay in the L1 cache while each group of tokens runs through them, so the tile is read
/// from L2 once per call, not once per group of tokens.
const SB_CHUNK: usize = 4;

/// Runs `run(super-blocks)` over the `nb` super-blocks in chunks of `chunk`; with `next`,
/// asks for the next call's weights a part after each chunk of the last half.
#[inline(always)]
pub(super) fn sb_chunks(
    nb: usize,
    chunk: usize,
    next: Option<NextWeights>,
    mut run: impl FnMut(std::ops::Range<usize>),
) {
    let n = nb.div_ceil(chunk);
    for (c, b0) in (0..nb).step_by(chunk).enumerate() {
        run(b0..(b0 + chunk).min(nb));
        if let Some(next) = next {
            if c >= n / 2 {
                next.ask(c - n / 2, n - n / 2);
            }
        }
    }
}

/// The weights of the call after this one: the bytes that follow this call's rows in the
/// matrix, where a thread's next call usually starts (the calls of a matrix go to the
/// threads in runs of neighbours). While the last tile pass of a call runs its tokens, the
/// driver asks for them a part at a time into the L2 cache, so that packing them does not
/// wait on memory (the packing itself asks only `PREFETCH_BLOCKS` super-blocks of each row
/// ahead: sixteen short streams). In the 7B prefill profiles the packing's weight loads
/// drew 10-25% of the tile samples before and next to none after; the gain measured is
/// small (see BENCHMARKS.md). Asking past the end of the matrix is harmless (a prefetch
/// never faults).
#[derive(Clone, Copy)]
pub(super) struct NextWeights {
    start: *const i8,
    bytes: usize,
}

impl NextWeights {
    /// The `size_of_val(w)` bytes after `w`.
    #[inline(always)]
    pub(super) fn after<B>(w: &[B]) -> NextWeights {
        NextWeights {
            start: w.as_ptr_range().end.cast(),
            bytes: std::mem::size_of_val(w),
        }
    }

    /// Asks for the cache lines of part `i` of `parts` into the L2 cache.
    #[inline(always)]
    fn ask(self, i: usize, parts: usize) {
        let (from, to) = (self.bytes * i / parts, self.bytes * (i + 1) / parts);
        for off in (from & !63..to).step_by(64) {
            // SAFETY: SSE is part of x86-64; a prefetch never faults, and `wrapping_add`
            // makes no claim that the address is inside an allocation.
            unsafe { _mm_prefetch::<_MM_HINT_T1>(self.start.wrapping_add(off)) };
        }
    }
}

/// Runs `run(weight rows, row count, packed super-blocks, first output column)` for each
/// [`TILE_ROWS`]-row half of a [`GEMM_ROWS`]-row call (rows of `nb` blocks), one after the
/// other, each half packed into the same `packed` super-blocks of `scratch`.
#[inline(always)]
pub(super) fn for_halves<B>(
    w: &[B],
    rows: usize,
    nb: usize,
    packed: usize,
    scratch: &mut Vec<PackedSb>,
    mut run: impl FnMut(&[B], usize, &mut [PackedSb], usize),
) {
    scratch.resize(packed, bytemuck::Zeroable::zeroed());
    for i0 in (0..rows).step_by(TILE_ROWS) {
        let r = TILE_ROWS.min(rows - i0);
        run(&w[i0 * nb..(i0 + r) * nb], r, &mut scratch[..packed], i0);
    }
}

/// Packs the tile of `rows` rows of `w` into `scratch` with `transpose`, asking for each
/// row's blocks a little ahead.
#[inline(always)]
unsafe fn pack<B: GemmPack>(
    w: &[B],
    rows: usize,
    nb: usize,
    dst: &mut [PackedSb],
    transpose: impl Fn(&Square, &mut Square),
) {
    debug_assert!(rows <= TILE_ROWS && dst.len() == nb);
    let mut row_refs: [&[B]; TILE_ROWS] = [&[]; TILE_ROWS];
    for (i, r) in row_refs.iter_mut().enumerate().take(rows) {
        *r = &w[i * nb..(i + 1) * nb];
    }
    pack_tile(&row_refs[..rows], dst, transpose, prefetch);
}

/// Asks for the cache lines of `blocks`.
#[inline(always)]
pub(super) fn prefetch<B>(blocks: &[B]) {
    let p = blocks.as_ptr().cast::<i8>();
    for off in (0..std::mem::size_of_val(blocks)).step_by(64) {
        // SAFETY: SSE is part of x86-64; a prefetch never faults.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(off)) };
    }
}

/// Tokens per call of the VNNI `tokens` (accumulators: three vectors per token).
const TOKENS: usize = 8;

// SAFETY: `tile` needs the features it enables; see `tile_bytes`.
unsafe impl<const FS: bool> Kernel for Vnni<FS> {
    fn aux_words<B: GemmPack>() -> usize {
        vnni_aux_words::<B>()
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn tile<B: GemmPack>(
        w: &[B],
        rows: usize,
        nb: usize,
        // Read through `aux`, which holds all of it as the kernel takes it.
        _a: &[BlockQ8K],
        aux: &[i32],
        m: usize,
        scratch: &mut Vec<PackedSb>,
        out: &mut [f32],
    ) {
        out.fill(0.0);
        if rows <= TILE_ROWS {
            scratch.resize(nb, bytemuck::Zeroable::zeroed());
            pack(w, rows, nb, scratch, |src, dst| transpose(src, dst));
            fold_offset::<B>(scratch);
            sb_chunks(nb, SB_CHUNK, None, |bs| {
                let sbs = &scratch[bs.clone()];
                let aw = vnni_aux_words::<B>();
                let act = |t: usize| &aux[(t * nb + bs.start) * aw..(t * nb + bs.end) * aw];
                groups(m, TOKENS, |t0, n| {
                    let o = &mut out[t0 * GEMM_ROWS..];
                    macro_rules! run {
                        ($($n:literal)*) => {
                            match n {
                                $($n => tokens::<B, $n, FS>(
                                    sbs,
                                    std::array::from_fn(|t| act(t0 + t)),
                                    o,
                                ),)*
                                _ => unreachable!(),
                            }
                        };
                    }
                    run!(1 2 3 4 5 6 7 8)
                })
            });
            return;
        }
        // Both halves packed side by side and run together.
        scratch.resize(2 * nb, bytemuck::Zeroable::zeroed());
        let (lo, hi) = scratch.split_at_mut(nb);
        pack(w, TILE_ROWS, nb, lo, |src, dst| transpose(src, dst));
        pack(
            &w[TILE_ROWS * nb..],
            rows - TILE_ROWS,
            nb,
            hi,
            |src, dst| transpose(src, dst),
        );
        fold_offset::<B>(lo);
        fold_offset::<B>(hi);
        sb_chunks(nb, SB_CHUNK / 2, Some(NextWeights::after(w)), |bs| {
            let sbs = [&lo[bs.clone()], &hi[bs.clone()]];
            let aw = vnni_aux_words::<B>();
            let act = |t: usize| &aux[(t * nb + bs.start) * aw..(t * nb + bs.end) * aw];
            groups(m, TOKENS2, |t0, n| {
                let o = &mut out[t0 * GEMM_ROWS..];
                macro_rules! run {
                    ($($n:literal)*) => {
                        match n {
                            $($n => tokens2::<B, $n, FS>(
                                sbs,
                                std::array::from_fn(|t| act(t0 + t)),
                                o,
                            ),)*
                            _ => unreachable!(),
                        }
                    };
                }
                run!(1 2 3 4 5 6)
            })
        });
    }
}

/// The 256-bit K-quant driver, one for each micro-kernel: each [`TILE_ROWS`]-row half of the
/// call packed (then `gemm_avx2::$prepare`d), its super-blocks in chunks of [`SB_CHUNK`], each
/// chunk run through the tokens in groups of `gemm_avx2::$group` (at most three) by
/// `gemm_avx2::$tokens::<B, group size>`.
macro_rules! kernel_256 {
    ($kernel:ty, $features:literal, $prepare:ident, $group:ident, $tokens:ident) => {
        // SAFETY: `tile` needs the features it enables; see `tile_bytes`.
        unsafe impl Kernel for $kernel {
            fn aux_words<B: GemmPack>() -> usize {
                0
            }

            #[target_feature(enable = $features)]
            unsafe fn tile<B: GemmPack>(
                w: &[B],
                rows: usize,
                nb: usize,
                a: &[BlockQ8K],
                _aux: &[i32],
                m: usize,
                scratch: &mut Vec<PackedSb>,
                out: &mut [f32],
            ) {
                const { assert!(gemm_avx2::$group <= 3) };
                out.fill(0.0);
                let next = NextWeights::after(w);
                for_halves(w, rows, nb, nb, scratch, |w, rows, sbs_all, col| {
                    pack(w, rows, nb, sbs_all, |src, dst| {
                        gemm_avx2::transpose(src, dst)
                    });
                    gemm_avx2::$prepare::<B>(sbs_all);
                    sb_chunks(nb, SB_CHUNK, (col > 0).then_some(next), |bs| {
                        let sbs = &sbs_all[bs.clone()];
                        let row = |t: usize| &a[t * nb + bs.start..t * nb + bs.end];
                        groups(m, gemm_avx2::$group, |t0, n| {
                            let o = &mut out[t0 * GEMM_ROWS + col..];
                            match n {
                                1 => gemm_avx2::$tokens::<B, 1>(sbs, [row(t0)], o),
                                2 => gemm_avx2::$tokens::<B, 2>(sbs, [row(t0), row(t0 + 1)], o),
                                3 => gemm_avx2::$tokens::<B, 3>(
                                    sbs,
                                    [row(t0), row(t0 + 1), row(t0 + 2)],
                                    o,
                                ),
                                _ => unreachable!(),
                            }
                        })
                    })
                });
            }
        }
    };
}

kernel_256!(Avx2, "avx2,fma,f16c", pair_scales, TOKENS, tokens);
kernel_256!(
    AvxVnni,
    "avx2,fma,f16c,avxvnni",
    keep_scales,
    TOKENS_VNNI,
    tokens_vnni
);

/// `dst[c][r] = src[r][c]` for a 16 x 16 matrix of words: 32-bit, 64-bit and 128-bit
/// interleaves (64 shuffles).
#[inline(always)]
unsafe fn transpose(src: &Square, dst: &mut Square) {
    let mut r = [_mm512_setzero_si512(); 16];
    for (r, row) in r.iter_mut().zip(src) {
        *r = _mm512_loadu_si512(row.as_ptr().cast());
    }
    // t[2k], t[2k+1]: rows 2k, 2k+1 interleaved by word (low, high halves of each 128 bits).
    let mut t = [_mm512_setzero_si512(); 16];
    for k in 0..8 {
        t[2 * k] = _mm512_unpacklo_epi32(r[2 * k], r[2 * k + 1]);
        t[2 * k + 1] = _mm512_unpackhi_epi32(r[2 * k], r[2 * k + 1]);
    }
    // u[4k + c], 128-bit lane l: column 4l + c of rows 4k..4k+4.
    let mut u = [_mm512_setzero_si512(); 16];
    for k in 0..4 {
        u[4 * k] = _mm512_unpacklo_epi64(t[4 * k], t[4 * k + 2]);
        u[4 * k + 1] = _mm512_unpackhi_epi64(t[4 * k], t[4 * k + 2]);
        u[4 * k + 2] = _mm512_unpacklo_epi64(t[4 * k + 1], t[4 * k + 3]);
        u[4 * k + 3] = _mm512_unpackhi_epi64(t[4 * k + 1], t[4 * k + 3]);
    }
    // Column 4l + c: lane l of u[c], u[4 + c], u[8 + c], u[12 + c].
    for c in 0..4 {
        let v0 = _mm512_shuffle_i32x4::<0x44>(u[c], u[4 + c]);
        let v1 = _mm512_shuffle_i32x4::<0xee>(u[c], u[4 + c]);
        let v2 = _mm512_shuffle_i32x4::<0x44>(u[8 + c], u[12 + c]);
        let v3 = _mm512_shuffle_i32x4::<0xee>(u[8 + c], u[12 + c]);
        let cols = [
            _mm512_shuffle_i32x4::<0x88>(v0, v2),
            _mm512_shuffle_i32x4::<0xdd>(v0, v2),
            _mm512_shuffle_i32x4::<0x88>(v1, v3),
            _mm512_shuffle_i32x4::<0xdd>(v1, v3),
        ];
        for (l, col) in cols.iter().enumerate() {
            _mm512_storeu_si512(dst[4 * l + c].as_mut_ptr().cast(), *col);
        }
    }
}

/// Four activation bytes (or two i16) at `p`, broadcast to every i32 lane.
#[inline(always)]
unsafe fn bcast<T>(p: *const T) -> __m512i {
    _mm512_set1_epi32(std::ptr::read_unaligned(p.cast::<i32>()))
}

/// Where the kernel folds the quant offset ([`vnni_folds`]; else nothing): turns the packed
/// unsigned quants `q + offset` into the signed `q`, and stores in `corr[0]` each row's
/// starting sum `-128 · Σ_g sc[g] · Σ_{j in g} q_j`, so that adding
/// `sc[g] · Σ_{j in g} q_j·(a_j + 128)` for every group gives the exact
/// `Σ_g sc[g] · Σ_{j in g} q_j·a_j` (rows past the matrix have zero scales, so their sums
/// stay zero). Runs once per packed tile.
#[inline(always)]
unsafe fn fold_offset<B: GemmPack>(sbs: &mut [PackedSb]) {
    if !vnni_folds::<B>() {
        return;
    }
    let off = _mm512_set1_epi8(B::QUANT_OFFSET as i8);
    let ones = _mm512_set1_epi8(1);
    let steps = STEPS / B::GROUPS;
    for sb in sbs {
        let mut c = _mm512_setzero_si512();
        for g in 0..B::GROUPS {
            let mut sum = _mm512_setzero_si512();
            for p in g * steps..(g + 1) * steps {
                let wq = sb.wq[p].as_mut_ptr().cast();
                let q = _mm512_sub_epi8(_mm512_load_si512(wq), off);
                _mm512_store_si512(wq, q);
                sum = _mm512_dpbusd_epi32(sum, ones, q);
            }
            let sc = _mm512_load_si512(sb.sc[g].as_ptr().cast());
            c = _mm512_add_epi32(c, _mm512_mullo_epi32(sum, sc));
        }
        let start = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32::<7>(c));
        _mm512_store_si512(sb.corr[0].as_mut_ptr().cast(), start);
    }
}

/// `acc + ` the four-byte dot products of the packed weights `w` and the activation bytes
/// `a` in each lane (`vpdpbusd`, whose first factor is unsigned): the weights unsigned
/// against signed activations, or where it folds the offset ([`vnni_folds`]), the signed
/// weights [`fold_offset`] leaves against biased (unsigned) activations.
#[inline(always)]
unsafe fn dot4<B: GemmPack>(acc: __m512i, w: __m512i, a: __m512i) -> __m512i {
    if vnni_folds::<B>() {
        _mm512_dpbusd_epi32(acc, a, w)
    } else {
        _mm512_dpbusd_epi32(acc, w, a)
    }
}

/// One activation super-block as [`vnni_aux`] lays it out: its scale, its correction
/// words, its (possibly biased) quants.
#[derive(Clone, Copy)]
struct Act {
    d: f32,
    corr: *const i32,
    qs: *const i32,
}

impl Act {
    /// Super-block `b` of a token's [`vnni_aux`] words `act` (the caller checked that `act`
    /// holds it).
    #[inline(always)]
    unsafe fn at<B: GemmPack>(act: &[i32], b: usize) -> Act {
        let p = act.as_ptr().add(b * vnni_aux_words::<B>());
        Act {
            d: f32::from_bits(*p as u32),
            corr: p.add(1),
            qs: p.add(1 + vnni_corr_steps::<B>()),
        }
    }
}

/// The sums every super-block of a row starts from: `corr[0]` where [`fold_offset`] put
/// them there, else zero.
#[inline(always)]
unsafe fn start<B: GemmPack>(sb: &PackedSb) -> __m512i {
    if vnni_folds::<B>() {
        _mm512_load_si512(sb.corr[0].as_ptr().cast())
    } else {
        _mm512_setzero_si512()
    }
}

/// Adds a row's correction term for token `a` to `facc`: `(a.d · db) · Σ_p corr[p]·words[p]`
/// (nothing where [`fold_offset`] folded it into the start sums).
#[inline(always)]
unsafe fn add_corr<B: GemmPack>(sb: &PackedSb, a: Act, yd: __m512, facc: __m512) -> __m512 {
    if vnni_corr_steps::<B>() == 0 {
        return facc;
    }
    let mut c = _mm512_setzero_si512();
    for p in 0..vnni_corr_steps::<B>() {
        let corr = _mm512_load_si512(sb.corr[p].as_ptr().cast());
        c = _mm512_dpwssd_epi32(c, corr, bcast(a.corr.add(p)));
    }
    let db = _mm512_load_ps(sb.db.as_ptr());
    _mm512_fmadd_ps(_mm512_mul_ps(yd, db), _mm512_cvtepi32_ps(c), facc)
}

/// `out[t][i] += Σ_b` (super-block `b` of `sbs`) · (super-block `b` of token `t`), for `T`
/// tokens (`FS`: the scale step in floats, see the file's docs); `act[t]`: token `t`'s
/// [`vnni_aux`] words of those super-blocks.
#[inline(always)]
unsafe fn tokens<B: GemmPack, const T: usize, const FS: bool>(
    sbs: &[PackedSb],
    act: [&[i32]; T],
    out: &mut [f32],
) {
    assert!(act
        .iter()
        .all(|a| a.len() == sbs.len() * vnni_aux_words::<B>()));
    let steps = STEPS / B::GROUPS;
    let mut facc = [_mm512_setzero_ps(); T];
    for (t, f) in facc.iter_mut().enumerate() {
        *f = _mm512_loadu_ps(out[t * GEMM_ROWS..t * GEMM_ROWS + TILE_ROWS].as_ptr());
    }
    for (b, sb) in sbs.iter().enumerate() {
        // SAFETY: `act[t]` holds every super-block of `sbs` (asserted).
        let ys: [Act; T] = std::array::from_fn(|t| Act::at::<B>(act[t], b));
        let mut s = [start::<B>(sb); T];
        let mut sf = [_mm512_cvtepi32_ps(s[0]); T];
        for g in 0..B::GROUPS {
            let mut acc = [_mm512_setzero_si512(); T];
            for p in g * steps..(g + 1) * steps {
                let w = _mm512_load_si512(sb.wq[p].as_ptr().cast());
                for t in 0..T {
                    acc[t] = dot4::<B>(acc[t], w, bcast(ys[t].qs.add(p)));
                }
            }
            let sc = _mm512_load_si512(sb.sc[g].as_ptr().cast());
            if FS {
                let scf = _mm512_cvtepi32_ps(sc);
                for t in 0..T {
                    sf[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[t]), scf, sf[t]);
                }
            } else {
                for t in 0..T {
                    s[t] = _mm512_add_epi32(s[t], _mm512_mullo_epi32(acc[t], sc));
                }
            }
        }
        if !FS {
            for t in 0..T {
                sf[t] = _mm512_cvtepi32_ps(s[t]);
            }
        }
        let da = _mm512_load_ps(sb.da.as_ptr());
        for t in 0..T {
            // This float order keeps the SmolLM2 Q5_K_M parity perplexity at 0.215% from
            // llama.cpp's; `acc + a.d·(da·S + db·C)` (one multiply fewer) gave 0.556%, over the
            // 0.5% bound (see tests/parity.rs: that file moves by ~0.3% with float order alone).
            let yd = _mm512_set1_ps(ys[t].d);
            facc[t] = _mm512_fmadd_ps(_mm512_mul_ps(yd, da), sf[t], facc[t]);
            facc[t] = add_corr::<B>(sb, ys[t], yd, facc[t]);
        }
    }
    for (t, f) in facc.iter().enumerate() {
        _mm512_storeu_ps(
            out[t * GEMM_ROWS..t * GEMM_ROWS + TILE_ROWS].as_mut_ptr(),
            *f,
        );
    }
}

/// Tokens per call of [`tokens2`] (accumulators: four vectors per token).
const TOKENS2: usize = 6;

/// [`tokens`] for the two halves of a [`GEMM_ROWS`]-row tile at once (`sbs[h]`: rows
/// `16h..16h + 16`): each broadcast activation word meets two weight vectors, which halves
/// the broadcasts per `vpdpbusd`. The float accumulators live in `out`, updated once per
/// super-block in the order of [`tokens`], so the results have its bits (for the same `FS`).
#[inline(always)]
unsafe fn tokens2<B: GemmPack, const T: usize, const FS: bool>(
    sbs: [&[PackedSb]; 2],
    act: [&[i32]; T],
    out: &mut [f32],
) {
    assert!(act
        .iter()
        .all(|a| a.len() == sbs[0].len() * vnni_aux_words::<B>()));
    let steps = STEPS / B::GROUPS;
    assert!(sbs[1].len() == sbs[0].len() && out.len() >= (T - 1) * GEMM_ROWS + 2 * TILE_ROWS);
    let o = out.as_mut_ptr();
    for b in 0..sbs[0].len() {
        // SAFETY (get_unchecked, `Act::at`): `b < sbs[h].len()`, and `act[t]` holds every
        // super-block of `sbs[h]` (asserted).
        let sb = [sbs[0].get_unchecked(b), sbs[1].get_unchecked(b)];
        let ys: [Act; T] = std::array::from_fn(|t| Act::at::<B>(act[t], b));
        let mut s = [[start::<B>(sb[0]), start::<B>(sb[1])]; T];
        let mut sf = [[_mm512_cvtepi32_ps(s[0][0]), _mm512_cvtepi32_ps(s[0][1])]; T];
        for g in 0..B::GROUPS {
            let mut acc = [[_mm512_setzero_si512(); 2]; T];
            for p in g * steps..(g + 1) * steps {
                let w0 = _mm512_load_si512(sb[0].wq[p].as_ptr().cast());
                let w1 = _mm512_load_si512(sb[1].wq[p].as_ptr().cast());
                for t in 0..T {
                    let yq = bcast(ys[t].qs.add(p));
                    acc[t][0] = dot4::<B>(acc[t][0], w0, yq);
                    acc[t][1] = dot4::<B>(acc[t][1], w1, yq);
                }
            }
            let sc0 = _mm512_load_si512(sb[0].sc[g].as_ptr().cast());
            let sc1 = _mm512_load_si512(sb[1].sc[g].as_ptr().cast());
            if FS {
                let (f0, f1) = (_mm512_cvtepi32_ps(sc0), _mm512_cvtepi32_ps(sc1));
                for t in 0..T {
                    sf[t][0] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[t][0]), f0, sf[t][0]);
                    sf[t][1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[t][1]), f1, sf[t][1]);
                }
            } else {
                for t in 0..T {
                    s[t][0] = _mm512_add_epi32(s[t][0], _mm512_mullo_epi32(acc[t][0], sc0));
                    s[t][1] = _mm512_add_epi32(s[t][1], _mm512_mullo_epi32(acc[t][1], sc1));
                }
            }
        }
        if !FS {
            for t in 0..T {
                sf[t] = [_mm512_cvtepi32_ps(s[t][0]), _mm512_cvtepi32_ps(s[t][1])];
            }
        }
        for h in 0..2 {
            let da = _mm512_load_ps(sb[h].da.as_ptr());
            for t in 0..T {
                // SAFETY: inside `out` (asserted above).
                let f = o.add(t * GEMM_ROWS + h * TILE_ROWS);
                let yd = _mm512_set1_ps(ys[t].d);
                let mut facc = _mm512_loadu_ps(f);
                facc = _mm512_fmadd_ps(_mm512_mul_ps(yd, da), sf[t][h], facc);
                facc = add_corr::<B>(sb[h], ys[t], yd, facc);
                _mm512_storeu_ps(f, facc);
            }
        }
    }
}

/// `out[t][i] += Σ_b` (block `b` of the packed `sbs`, eight per super-block) · `y[t][b]` for
/// a legacy type, `T` tokens; each token's blocks come with their `OFFSET·Σ a` (empty for
/// the types with a minimum). Per block of 32: the exact integer sum (`vpdpbusd` of the
/// unsigned quants, minus `OFFSET·Σ a`), then the block's term added to the f32 sum as the
/// scalar reference computes it.
#[inline(always)]
unsafe fn tokens_legacy<W: LegacyPack, const T: usize>(
    sbs: &[PackedSb],
    y: [(&[W::Act], &[i32]); T],
    out: &mut [f32],
) {
    let nb = y[0].0.len();
    assert!(nb <= 8 * sbs.len());
    assert!(y
        .iter()
        .all(|(y, s)| y.len() == nb && (W::OFFSET == 0 || s.len() == nb)));
    let mut facc = [_mm512_setzero_ps(); T];
    for (t, f) in facc.iter_mut().enumerate() {
        *f = _mm512_loadu_ps(out[t * GEMM_ROWS..t * GEMM_ROWS + TILE_ROWS].as_ptr());
    }
    for (b, sb) in sbs.iter().enumerate() {
        for j in 0..nb.saturating_sub(8 * b).min(8) {
            // SAFETY (get_unchecked): `8b + j < nb`, each `y[t]`'s length (asserted).
            let blk = 8 * b + j;
            let ya: [&W::Act; T] = std::array::from_fn(|t| y[t].0.get_unchecked(blk));
            let mut acc = [_mm512_setzero_si512(); T];
            for p in 0..8 {
                let w = _mm512_load_si512(sb.wq[8 * j + p].as_ptr().cast());
                for t in 0..T {
                    let yq = bcast(ya[t].qs().as_ptr().add(4 * p));
                    acc[t] = _mm512_dpbusd_epi32(acc[t], w, yq);
                }
            }
            let dw = _mm512_castsi512_ps(_mm512_load_si512(sb.sc[j].as_ptr().cast()));
            for t in 0..T {
                let da = _mm512_set1_ps(ya[t].d());
                let term = if W::OFFSET != 0 {
                    let off = _mm512_set1_epi32(*y[t].1.get_unchecked(blk));
                    let sum = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[t], off));
                    if W::LEFT_TO_RIGHT {
                        // C: sumi*d_x*d_y.
                        _mm512_mul_ps(_mm512_mul_ps(sum, dw), da)
                    } else {
                        // C: sumi*(d_x*d_y).
                        _mm512_mul_ps(sum, _mm512_mul_ps(dw, da))
                    }
                } else {
                    // C: (d_x*d_y)*sumi + m_x*s_y, no fused multiply-add.
                    let mw = _mm512_castsi512_ps(_mm512_load_si512(sb.sc[8 + j].as_ptr().cast()));
                    let sum = _mm512_cvtepi32_ps(acc[t]);
                    _mm512_add_ps(
                        _mm512_mul_ps(_mm512_mul_ps(dw, da), sum),
                        _mm512_mul_ps(mw, _mm512_set1_ps(ya[t].s())),
                    )
                };
                facc[t] = _mm512_add_ps(facc[t], term);
            }
        }
    }
    for (t, f) in facc.iter().enumerate() {
        _mm512_storeu_ps(
            out[t * GEMM_ROWS..t * GEMM_ROWS + TILE_ROWS].as_mut_ptr(),
            *f,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::gemm::{transpose_scalar, vnni_aux};
    use super::*;

    #[test]
    fn transpose_is_the_scalar_one() {
        if !super::super::super::has_avx512_vnni() {
            return;
        }
        let src: Square = std::array::from_fn(|r| std::array::from_fn(|c| (r * 100 + c) as u32));
        let (mut want, mut got) = ([[0; 16]; 16], [[0; 16]; 16]);
        transpose_scalar(&src, &mut want);
        // SAFETY: AVX-512 F was detected just above.
        unsafe { transpose_avx512(&src, &mut got) };
        assert_eq!(got, want);
    }

    /// Both VNNI K-quant kernels, integer and float scale steps, against the scalar
    /// reference's dot product within float rounding (each CPU runs only one of them).
    #[test]
    fn float_and_integer_scales_agree() {
        if !super::super::super::has_avx512_vnni() {
            return;
        }
        use crate::formats::k_common::test_util::weights_like;
        let (k, m) = (512, 13);
        let x = weights_like(m * k, 1);
        let at = GgmlType::Q8K;
        let arb = at.row_bytes(k).unwrap();
        let mut xq = vec![0u8; m * arb];
        for (q, x) in xq.chunks_exact_mut(arb).zip(x.chunks_exact(k)) {
            at.from_float(x, q).unwrap();
        }
        for ty in [GgmlType::Q4K, GgmlType::Q5K, GgmlType::Q6K] {
            let rb = ty.row_bytes(k).unwrap();
            for rows in [GEMM_ROWS, 11] {
                let w = weights_like(rows * k, 2 + rows as u64);
                let mut wq = vec![0u8; rows * rb];
                ty.quantize(&w, &mut wq).unwrap();
                let mut outs = Vec::new();
                let aux = match ty {
                    GgmlType::Q4K => vnni_aux::<BlockQ4K>(&xq, m, k),
                    GgmlType::Q5K => vnni_aux::<BlockQ5K>(&xq, m, k),
                    _ => vnni_aux::<BlockQ6K>(&xq, m, k),
                };
                for kind in [GemmKind::Vnni, GemmKind::VnniFloatScales] {
                    let tile = gemm_tile(ty, kind).unwrap();
                    let mut out = vec![f32::NAN; m * GEMM_ROWS];
                    tile(&wq, rows, &xq, &aux, m, &mut Vec::new(), &mut out);
                    outs.push(out);
                }
                let (mut wd, mut xd) = (vec![0f32; k], vec![0f32; k]);
                for t in 0..m {
                    let a = &xq[t * arb..(t + 1) * arb];
                    at.dequantize(a, &mut xd).unwrap();
                    for i in 0..rows {
                        let wr = &wq[i * rb..(i + 1) * rb];
                        ty.dequantize(wr, &mut wd).unwrap();
                        let mag: f64 = wd.iter().zip(&xd).map(|(w, a)| (w * a).abs() as f64).sum();
                        let want = ty.vec_dot(wr, a, k).unwrap() as f64;
                        for out in &outs {
                            let got = out[t * GEMM_ROWS + i] as f64;
                            assert!((got - want).abs() <= 1e-6 * mag, "{ty} t{t} row {i}");
                        }
                    }
                    let pad = |o: &Vec<f32>| o[t * GEMM_ROWS + rows..(t + 1) * GEMM_ROWS].to_vec();
                    assert!(outs.iter().all(|o| pad(o).iter().all(|&v| v == 0.0)));
                }
            }
        }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn transpose_avx512(src: &Square, dst: &mut Square) {
        transpose(src, dst)
    }
}
