//! Quantized GEMM for prompt processing: K-quant weights against many Q8_K activation rows,
//! and legacy (32-element block) weights against Q8_0/Q8_1 rows ([`LegacyPack`]).
//!
//! A dot-product kernel ([`super::VecDotFn`]) unpacks every weight block again for every
//! activation row (four rows at a time in the multi-row kernels). For a batch of tokens the
//! GEMM instead takes [`GEMM_ROWS`] weight rows per call and unpacks them once, as one or two
//! tiles of [`TILE_ROWS`] rows, into [`PackedSb`]s, one per tile and super-block of 256
//! columns:
//!
//! ```text
//! wq[p][i]    4 bytes: the unsigned quants of elements 4p..4p+4 of tile row i (p < 64)
//! sc[g][i]    i32: the integer scale of group g of row i (8 groups of 32 elements for
//!             Q4_K/Q5_K, 16 groups of 16 for Q6_K); the AVX2 tile rewrites it after
//!             packing as the same i16 in both halves (`pair_scales`)
//! corr[p][i]  two i16: the weights of the correction term against the activations'
//!             words [`GemmPack::CORR_STEPS`] of them (Q6_K: the scales of sub-blocks 2p,
//!             2p + 1, against bsums[2p], bsums[2p+1]; Q4_K/Q5_K: the mins of sub-blocks 2p,
//!             2p + 1, against the sums of those sub-blocks' activations, p < 4)
//! da[i], db[i] f32: row i's factors of the two integer sums
//! ```
//!
//! so that one vector of `wq[p]` holds the same four columns of sixteen rows. Then the SIMD
//! micro-kernel (x86: `x86/gemm.rs`) multiplies it by the four activation bytes of each of
//! several tokens broadcast to every lane (`vpdpbusd`), and every super-block's output is
//!
//! ```text
//! y[t][i] += a.d · (da[i] · Σ_g sc[g][i] · Σ_{p in g} wq[p][i]·a.qs[4p..4p+4]
//!                   + db[i] · Σ_p corr[p][i]·a.corr_words[p])
//! ```
//!
//! which is the weight row's dot product (`da = d`, `db = -dmin` for Q4_K/Q5_K:
//! `d·Σ sc·Σ q·y - dmin·Σ m·bsum`; `da = d`, `db = -32·d` for Q6_K, whose quants are stored
//! as `q + 32`). The AVX-512 VNNI kernel reads each token's super-block (scale, correction
//! words, quants) from one contiguous run ([`vnni_aux`]), and for Q6_K folds the `+ 32`
//! away: signed quants against activations biased to unsigned, each sum starting from a
//! packed constant, no correction term. The integer sums are exact, as in the dot-product
//! kernels; only the float accumulation order differs from them (one conversion per
//! super-block instead of eight lanes), so a GEMM output differs from
//! [`super::vec_dot_for`]'s in the last bits.

use crate::formats::k_common::get_scale_min_k4;
use crate::formats::q4_0::BlockQ4_0;
use crate::formats::q4_1::BlockQ4_1;
use crate::formats::q4_k::BlockQ4K;
use crate::formats::q5_0::BlockQ5_0;
use crate::formats::q5_1::BlockQ5_1;
use crate::formats::q5_k::BlockQ5K;
use crate::formats::q6_k::BlockQ6K;
use crate::formats::q8_0::BlockQ8_0;
use crate::formats::q8_1::BlockQ8_1;
use crate::QK_K;

/// Weight rows per packed tile ([`PackedSb`]): one 512-bit vector of i32 lanes.
pub const TILE_ROWS: usize = 16;

/// Weight rows per call of a GEMM tile function ([`super::GemmTileFn`]): two packed tiles,
/// which the AVX-512 VNNI K-quant kernel runs together (two weight vectors per broadcast
/// activation word); the other kernels (AVX2, AVX-VNNI, Q8_0) run them one after the other.
pub const GEMM_ROWS: usize = 2 * TILE_ROWS;

/// Four-element steps per super-block.
pub(crate) const STEPS: usize = QK_K / 4;

/// One super-block of a tile of [`TILE_ROWS`] weight rows, unpacked for the micro-kernel
/// (layout in the module documentation). Rows past the end of the matrix are all zero.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, bytemuck::Zeroable)]
pub struct PackedSb {
    /// `[STEPS][TILE_ROWS]`: four unsigned quants per row and step, little-endian.
    pub wq: [[u32; TILE_ROWS]; STEPS],
    /// `[16][TILE_ROWS]`: the integer scale of each group (the first [`GemmPack::GROUPS`]);
    /// the AVX2 micro-kernel rewrites it in place as that i16 in both halves of the lane.
    pub sc: [[i32; TILE_ROWS]; 16],
    /// `[8][TILE_ROWS]`: the correction weights, two i16 per lane (the first
    /// [`GemmPack::CORR_STEPS`]).
    pub corr: [[i32; TILE_ROWS]; 8],
    /// `[TILE_ROWS]`: the factor of the scaled quant sum.
    pub da: [f32; TILE_ROWS],
    /// `[TILE_ROWS]`: the factor of the correction sum.
    pub db: [f32; TILE_ROWS],
}

const _: () = assert!(std::mem::size_of::<PackedSb>() == 5760);

/// A 16 x 16 matrix of 32-bit words, `[row][column]`.
pub(crate) type Square = [[u32; TILE_ROWS]; TILE_ROWS];

/// A K-quant weight block the GEMM can unpack.
pub trait GemmPack: bytemuck::Pod {
    /// Scale groups per super-block (each `STEPS / GROUPS` steps long).
    const GROUPS: usize;
    /// Whether the correction term pairs each weight with a whole sub-block of 32 (Q4_K,
    /// Q5_K: one min per sub-block, so the activations' two bsums of a sub-block are summed
    /// first, `corr_words`) rather than with each bsum of 16 (Q6_K).
    const SUMMED_MINS: bool;
    /// `vpdpwssd` steps of the correction term per super-block (two i16 each).
    const CORR_STEPS: usize = if Self::SUMMED_MINS { 4 } else { 8 };
    /// What each stored quant carries on top of the signed value it stands for (Q6_K: 32, its
    /// quants being stored as `q + 32`, whence its `db = -32·d`); 0 for Q4_K/Q5_K, whose
    /// unsigned quants count up from a minimum. The AVX-512 VNNI kernel subtracts a nonzero
    /// offset after packing and takes the activations biased to unsigned instead
    /// ([`vnni_aux`]), which needs no correction term per token.
    const QUANT_OFFSET: u8 = 0;
    /// Steps whose `vpmaddubsw` pairs (two products of a quant and a Q8_K activation in
    /// -128..=127) add up without leaving i16: `STEPS_I16 · 2 · max_q · 128 < 2^15` (the
    /// AVX2 micro-kernel sums that many in i16 before scaling); 0 where no AVX2 kernel
    /// exists.
    const STEPS_I16: usize;
    /// Writes the block's 256 unsigned quants in element order into `q` and its sixteen
    /// scale words into `s` (Q4_K/Q5_K: the eight scales, then the eight mins; Q6_K: the
    /// sixteen scales, sign-extended); returns the row's `(da, db)`.
    fn unpack(&self, q: &mut [u8; QK_K], s: &mut [u32; 16]) -> (f32, f32);
    /// Fills `sb.sc` and `sb.corr` from the scale words of the tile's rows, transposed:
    /// `t[w][i]` is word `w` of row `i`.
    fn lanes(t: &Square, sb: &mut PackedSb);
}

/// Two i16 in one i32 lane (`lo` in the low half), as `vpdpwssd` reads them.
#[inline(always)]
fn pair(lo: u32, hi: u32) -> i32 {
    ((lo & 0xffff) | (hi << 16)) as i32
}

/// The scale words of a Q4_K/Q5_K super-block, and its `(da, db)`.
#[inline(always)]
fn k4_scales(d: half::f16, dmin: half::f16, scales: &[u8; 12], s: &mut [u32; 16]) -> (f32, f32) {
    for j in 0..8 {
        let (sc, m) = get_scale_min_k4(j, scales);
        (s[j], s[8 + j]) = (sc as u32, m as u32);
    }
    (d.to_f32(), -dmin.to_f32())
}

/// `lanes` for Q4_K/Q5_K: eight scale groups; the correction weights of step `q` are the
/// mins of sub-blocks `2q` and `2q + 1` (against their activation sums, [`corr_words`]).
#[inline(always)]
fn k4_lanes(t: &Square, sb: &mut PackedSb) {
    // Two simple loops per group: LLVM vectorized the one zipped loop this replaces with
    // gathers and scatters (slow on Zen 4; no speed change measured in the GEMM as a whole).
    for (sc, tj) in sb.sc.iter_mut().zip(t).take(8) {
        for (sc, &s) in sc.iter_mut().zip(tj) {
            *sc = s as i32;
        }
    }
    for q in 0..4 {
        let mins = t[8 + 2 * q].iter().zip(&t[8 + 2 * q + 1]);
        for (c, (&lo, &hi)) in sb.corr[q].iter_mut().zip(mins) {
            *c = pair(lo, hi);
        }
        sb.corr[4 + q] = [0; TILE_ROWS];
    }
}

impl GemmPack for BlockQ4K {
    const GROUPS: usize = 8;
    const SUMMED_MINS: bool = true;
    const STEPS_I16: usize = 8; // 8 · 2 · 15 · 128 = 30720
    #[inline(always)]
    fn unpack(&self, q: &mut [u8; QK_K], s: &mut [u32; 16]) -> (f32, f32) {
        for c in 0..4 {
            let qs = &self.qs[32 * c..32 * c + 32];
            let (lo, hi) = q[64 * c..64 * c + 64].split_at_mut(32);
            for l in 0..32 {
                lo[l] = qs[l] & 0xf;
                hi[l] = qs[l] >> 4;
            }
        }
        k4_scales(self.d, self.dmin, &self.scales, s)
    }
    #[inline(always)]
    fn lanes(t: &Square, sb: &mut PackedSb) {
        k4_lanes(t, sb)
    }
}

impl GemmPack for BlockQ5K {
    const GROUPS: usize = 8;
    const SUMMED_MINS: bool = true;
    const STEPS_I16: usize = 4; // 4 · 2 · 31 · 128 = 31744
    #[inline(always)]
    fn unpack(&self, q: &mut [u8; QK_K], s: &mut [u32; 16]) -> (f32, f32) {
        for c in 0..4 {
            let qs = &self.qs[32 * c..32 * c + 32];
            let (lo, hi) = q[64 * c..64 * c + 64].split_at_mut(32);
            for l in 0..32 {
                let h = self.qh[l] >> (2 * c);
                lo[l] = (qs[l] & 0xf) | ((h & 1) << 4);
                hi[l] = (qs[l] >> 4) | ((h & 2) << 3);
            }
        }
        k4_scales(self.d, self.dmin, &self.scales, s)
    }
    #[inline(always)]
    fn lanes(t: &Square, sb: &mut PackedSb) {
        k4_lanes(t, sb)
    }
}

impl GemmPack for BlockQ6K {
    const GROUPS: usize = 16;
    const SUMMED_MINS: bool = false;
    const STEPS_I16: usize = 2; // 2 · 2 · 63 · 128 = 32256
    const QUANT_OFFSET: u8 = 32;
    #[inline(always)]
    fn unpack(&self, q: &mut [u8; QK_K], s: &mut [u32; 16]) -> (f32, f32) {
        for h in 0..2 {
            let (ql, qh) = (&self.ql[64 * h..64 * h + 64], &self.qh[32 * h..32 * h + 32]);
            let q = &mut q[128 * h..128 * h + 128];
            for l in 0..32 {
                q[l] = (ql[l] & 0xf) | ((qh[l] & 3) << 4);
                q[l + 32] = (ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4);
                q[l + 64] = (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4);
                q[l + 96] = (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4);
            }
        }
        for (s, &sc) in s.iter_mut().zip(&self.scales) {
            *s = sc as i32 as u32;
        }
        let d = self.d.to_f32();
        (d, -32.0 * d)
    }
    #[inline(always)]
    fn lanes(t: &Square, sb: &mut PackedSb) {
        for (sc, tg) in sb.sc.iter_mut().zip(t) {
            for (s, &v) in sc.iter_mut().zip(tg) {
                *s = v as i32;
            }
        }
        for (p, corr) in sb.corr.iter_mut().enumerate() {
            for ((c, &lo), &hi) in corr.iter_mut().zip(&t[2 * p]).zip(&t[2 * p + 1]) {
                *c = pair(lo, hi);
            }
        }
    }
}

/// The activation words of a super-block's correction term for `B`: the first
/// [`GemmPack::CORR_STEPS`] hold two i16 each, paired with `corr[p]`. Q6_K: the bsums
/// themselves; Q4_K/Q5_K: the sums of the two bsums of each sub-block (at most 32·128 in
/// magnitude).
#[inline(always)]
pub(crate) fn corr_words<B: GemmPack>(y: &crate::formats::q8_k::BlockQ8K) -> [i32; 8] {
    let b = &y.bsums;
    let mut w = [0i32; 8];
    for (p, w) in w.iter_mut().enumerate().take(B::CORR_STEPS) {
        let (lo, hi) = if B::SUMMED_MINS {
            (b[4 * p] + b[4 * p + 1], b[4 * p + 2] + b[4 * p + 3])
        } else {
            (b[2 * p], b[2 * p + 1])
        };
        *w = pair(lo as u16 as u32, hi as u16 as u32);
    }
    w
}

/// Whether the AVX-512 VNNI kernel folds `B`'s quant offset away ([`GemmPack::QUANT_OFFSET`]
/// nonzero, Q6_K): signed weight quants after packing, activations biased to unsigned
/// ([`vnni_aux`]), each row's super-block sum started from its offset term, no correction
/// term per token. The one place that policy is decided.
pub(crate) const fn vnni_folds<B: GemmPack>() -> bool {
    B::QUANT_OFFSET != 0
}

/// The correction steps of the AVX-512 VNNI kernel for `B`: none where it folds the quant
/// offset ([`vnni_folds`], Q6_K), else [`GemmPack::CORR_STEPS`].
pub(crate) const fn vnni_corr_steps<B: GemmPack>() -> usize {
    if vnni_folds::<B>() {
        0
    } else {
        B::CORR_STEPS
    }
}

/// Words per activation super-block in [`vnni_aux`]`::<B>`.
pub(crate) const fn vnni_aux_words<B: GemmPack>() -> usize {
    1 + vnni_corr_steps::<B>() + STEPS
}

/// The `aux` of the AVX-512 VNNI K-quant GEMM for weights `B`: the `m` Q8_K rows `xq` (`k`
/// elements each) rewritten as the kernel reads them, `vnni_aux_words` words per
/// super-block, one after the other:
///
/// ```text
/// d         the block's scale (f32 bits)
/// corr[p]   its correction words (`corr_words`, vnni_corr_steps of them; none for Q6_K)
/// qs[p]     its 256 quants, four per word in element order; for a type with a quant
///           offset (Q6_K) biased to unsigned, `a + 128` (`a ^ 0x80`)
/// ```
///
/// One contiguous run per super-block, so that each token's part of a tile step touches the
/// fewest cache lines (the kernel streams every token's activations once per tile, and
/// its speed follows the lines it reads). With the biased quants the kernel multiplies
/// (`vpdpbusd`: unsigned × signed bytes) the signed weight quants `q` by `a + 128` and
/// starts each row's super-block sum at `-128 · Σ_g sc[g] · Σ_{j in g} q_j` (packed once
/// per tile), which gives the exact `Σ_g sc[g] · Σ_{j in g} q_j·a_j` without a per-token
/// correction term.
pub fn vnni_aux<B: GemmPack>(xq: &[u8], m: usize, k: usize) -> Vec<i32> {
    crate::formats::with_blocks::<crate::formats::q8_k::BlockQ8K, _>(xq, |blocks| {
        debug_assert_eq!(blocks.len(), m * k / QK_K);
        let bias = if vnni_folds::<B>() { 0x8080_8080u32 } else { 0 };
        let mut aux = Vec::with_capacity(blocks.len() * vnni_aux_words::<B>());
        for b in blocks {
            aux.push(b.d.to_bits() as i32);
            aux.extend_from_slice(&corr_words::<B>(b)[..vnni_corr_steps::<B>()]);
            aux.extend(b.qs.chunks_exact(4).map(|q| {
                (u32::from_le_bytes([q[0] as u8, q[1] as u8, q[2] as u8, q[3] as u8]) ^ bias) as i32
            }));
        }
        aux
    })
}

/// How many super-blocks ahead [`pack_tile`] asks for each row's weights (the rows of a
/// tile are sixteen streams, more than the hardware prefetcher follows well).
pub(crate) const PREFETCH_BLOCKS: usize = 2;

/// A legacy weight type (blocks of 32 elements, one scale, maybe a minimum) the GEMM can
/// unpack: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0. Rows of any multiple of 32 elements: a packed
/// super-block holds eight blocks (the row's last one fewer), laid out as the K-quants'
/// (`wq` the unsigned quants; `sc[j]` the f32 bits of block `j`'s scale, `sc[8 + j]` those
/// of its minimum; `corr`, `da`, `db` unused). The micro-kernel takes each block's exact
/// integer sum `Σ q·a` (minus `OFFSET·Σ a`, [`activation_sums`]) and accumulates it block
/// by block in f32 in the scalar reference's order, so its results have the reference's
/// bits.
pub trait LegacyPack: bytemuck::Pod {
    /// The activation block (Q8_0, or Q8_1 for the types with a minimum).
    type Act: LegacyAct;
    /// What the unsigned quants are offset by (`w = d·(q - OFFSET)`): 8 (Q4_0), 16 (Q5_0),
    /// 128 (Q8_0, whose signed quants are packed plus 128), 0 for the types with a minimum
    /// (`w = d·q + m`).
    const OFFSET: i32;
    /// The reference multiplies `sumi · d_w · d_a` left to right (Q4_0) rather than
    /// `sumi · (d_w · d_a)`.
    const LEFT_TO_RIGHT: bool = false;
    /// Steps (of four quants, eight per block) whose `vpmaddubsw` pairs add up in i16 without
    /// leaving it: `STEPS_I16 · 2 · max_q · 128 < 2^15` (the AVX2 micro-kernel sums that many
    /// in i16). 0 for Q8_0, whose unsigned quants (up to 255) overflow a single pair: its
    /// AVX2 kernel multiplies quants widened to i16 instead (`x86/gemm_i16.rs`).
    const STEPS_I16: usize;
    /// Writes the block's 32 unsigned quants in element order; returns its `(d, m)` (`m` 0
    /// where the type has none).
    fn unpack(&self, q: &mut [u8; 32]) -> (f32, f32);
}

/// An activation block of the legacy GEMM: Q8_0 or Q8_1.
pub trait LegacyAct: bytemuck::Pod {
    /// The 32 signed quants.
    fn qs(&self) -> &[i8; 32];
    /// The scale.
    fn d(&self) -> f32;
    /// `d·Σq` (Q8_1), 0 for Q8_0.
    fn s(&self) -> f32;
    /// `d` and `s` as stored (f16; `s` zero for Q8_0), for kernels that convert them
    /// themselves.
    fn ds(&self) -> (half::f16, half::f16);
}

impl LegacyAct for BlockQ8_0 {
    #[inline(always)]
    fn qs(&self) -> &[i8; 32] {
        &self.qs
    }
    #[inline(always)]
    fn d(&self) -> f32 {
        self.d.to_f32()
    }
    #[inline(always)]
    fn s(&self) -> f32 {
        0.0
    }
    #[inline(always)]
    fn ds(&self) -> (half::f16, half::f16) {
        (self.d, half::f16::ZERO)
    }
}

impl LegacyAct for BlockQ8_1 {
    #[inline(always)]
    fn qs(&self) -> &[i8; 32] {
        &self.qs
    }
    #[inline(always)]
    fn d(&self) -> f32 {
        self.d.to_f32()
    }
    #[inline(always)]
    fn s(&self) -> f32 {
        self.s.to_f32()
    }
    #[inline(always)]
    fn ds(&self) -> (half::f16, half::f16) {
        (self.d, self.s)
    }
}

/// The 32 nibbles of a Q4 block (`qs[j]`: elements `j` and `j + 16`), with the fifth bits
/// of `qh` (bit `j` for element `j`) for Q5.
#[inline(always)]
fn nibbles(qs: &[u8; 16], qh: u32, q: &mut [u8; 32]) {
    for j in 0..16 {
        q[j] = (qs[j] & 0xf) | ((((qh >> j) & 1) as u8) << 4);
        q[j + 16] = (qs[j] >> 4) | ((((qh >> (j + 16)) & 1) as u8) << 4);
    }
}

impl LegacyPack for BlockQ4_0 {
    type Act = BlockQ8_0;
    const OFFSET: i32 = 8;
    const STEPS_I16: usize = 8; // 8 · 2 · 15 · 128 = 30720
    const LEFT_TO_RIGHT: bool = true;
    #[inline(always)]
    fn unpack(&self, q: &mut [u8; 32]) -> (f32, f32) {
        nibbles(&self.qs, 0, q);
        (self.d.to_f32(), 0.0)
    }
}

impl LegacyPack for BlockQ4_1 {
    type Act = BlockQ8_1;
    const OFFSET: i32 = 0;
    const STEPS_I16: usize = 8; // 8 · 2 · 15 · 128 = 30720
    #[inline(always)]
    fn unpack(&self, q: &mut [u8; 32]) -> (f32, f32) {
        nibbles(&self.qs, 0, q);
        (self.d.to_f32(), self.m.to_f32())
    }
}

impl LegacyPack for BlockQ5_0 {
    type Act = BlockQ8_0;
    const OFFSET: i32 = 16;
    const STEPS_I16: usize = 4; // 4 · 2 · 31 · 128 = 31744
    #[inline(always)]
    fn unpack(&self, q: &mut [u8; 32]) -> (f32, f32) {
        nibbles(&self.qs, u32::from_le_bytes(self.qh), q);
        (self.d.to_f32(), 0.0)
    }
}

impl LegacyPack for BlockQ5_1 {
    type Act = BlockQ8_1;
    const OFFSET: i32 = 0;
    const STEPS_I16: usize = 4; // 4 · 2 · 31 · 128 = 31744
    #[inline(always)]
    fn unpack(&self, q: &mut [u8; 32]) -> (f32, f32) {
        nibbles(&self.qs, u32::from_le_bytes(self.qh), q);
        (self.d.to_f32(), self.m.to_f32())
    }
}

impl LegacyPack for BlockQ8_0 {
    type Act = BlockQ8_0;
    const OFFSET: i32 = 128;
    const STEPS_I16: usize = 0; // 2 · 255 · 128 > 2^15
    #[inline(always)]
    fn unpack(&self, q: &mut [u8; 32]) -> (f32, f32) {
        for (q, &v) in q.iter_mut().zip(&self.qs) {
            *q = v as u8 ^ 0x80;
        }
        (self.d.to_f32(), 0.0)
    }
}

/// `OFFSET` of the legacy type `ty` ([`LegacyPack`]); `None` for the others.
fn legacy_offset(ty: crate::GgmlType) -> Option<i32> {
    use crate::GgmlType as T;
    Some(match ty {
        T::Q4_0 => BlockQ4_0::OFFSET,
        T::Q4_1 => BlockQ4_1::OFFSET,
        T::Q5_0 => BlockQ5_0::OFFSET,
        T::Q5_1 => BlockQ5_1::OFFSET,
        T::Q8_0 => BlockQ8_0::OFFSET,
        _ => return None,
    })
}

/// What the GEMM of `ty` needs besides the quantized activations `xq` (`m` rows of `k`
/// elements): for the legacy types with an offset (Q4_0, Q5_0, Q8_0), `OFFSET·Σ` of each
/// Q8_0 activation block's quants (`[m][k / 32]`); empty for the others (the K-quants'
/// Q8_K activations carry their sums, Q8_1's its `s`).
pub fn activation_sums(ty: crate::GgmlType, xq: &[u8], m: usize, k: usize) -> Vec<i32> {
    let offset = match legacy_offset(ty) {
        Some(o) if o != 0 => o,
        _ => return Vec::new(),
    };
    crate::formats::with_blocks::<BlockQ8_0, _>(xq, |blocks| {
        debug_assert_eq!(blocks.len(), m * k / 32);
        blocks
            .iter()
            .map(|b| offset * b.qs.iter().map(|&v| v as i32).sum::<i32>())
            .collect()
    })
}

/// The portable transpose (`dst[c][r] = src[r][c]`), the reference for the x86 GEMM's
/// SIMD ones.
#[cfg(test)]
pub(crate) fn transpose_scalar(src: &Square, dst: &mut Square) {
    for (r, row) in src.iter().enumerate() {
        for (c, &v) in row.iter().enumerate() {
            dst[c][r] = v;
        }
    }
}

/// Unpacks the tile of weight rows `rows` (each `out.len()` blocks; at most [`TILE_ROWS`]
/// rows, the missing ones packed as zero) into `out`, one [`PackedSb`] per super-block, with
/// `transpose` (same contract as [`transpose_scalar`]), calling `prefetch` on each row's
/// block [`PREFETCH_BLOCKS`] ahead of the one being unpacked.
#[inline(always)]
pub(crate) fn pack_tile<B: GemmPack>(
    rows: &[&[B]],
    out: &mut [PackedSb],
    transpose: impl Fn(&Square, &mut Square),
    prefetch: impl Fn(&[B]),
) {
    pack_tile_with(
        rows.len(),
        out,
        transpose,
        |i, b, q, s| rows[i][b].unpack(q, s),
        |b| {
            for row in rows {
                if let Some(ahead) = row.get(b + PREFETCH_BLOCKS) {
                    prefetch(std::slice::from_ref(ahead));
                }
            }
        },
        B::lanes,
    );
}

/// [`pack_tile`] for a legacy type ([`LegacyPack`]): rows of `nb` blocks of 32, eight blocks
/// per packed super-block (`out.len() == nb.div_ceil(8)`), the missing ones zero.
#[inline(always)]
pub(crate) fn pack_tile_legacy<W: LegacyPack>(
    rows: &[&[W]],
    nb: usize,
    out: &mut [PackedSb],
    transpose: impl Fn(&Square, &mut Square),
    prefetch: impl Fn(&[W]),
) {
    debug_assert!(out.len() == nb.div_ceil(8) && rows.iter().all(|r| r.len() == nb));
    fn eight<W>(row: &[W], b: usize) -> &[W] {
        row.get(8 * b..(8 * b + 8).min(row.len())).unwrap_or(&[])
    }
    pack_tile_with(
        rows.len(),
        out,
        transpose,
        |i, b, q, s| {
            let blocks = eight(rows[i], b);
            for (j, q) in q.chunks_exact_mut(32).enumerate() {
                let q: &mut [u8; 32] = q.try_into().expect("32 bytes");
                (s[j], s[8 + j]) = match blocks.get(j) {
                    Some(w) => {
                        let (d, m) = w.unpack(q);
                        (d.to_bits(), m.to_bits())
                    }
                    None => {
                        q.fill(0);
                        (0, 0)
                    }
                };
            }
            (0.0, 0.0)
        },
        |b| {
            for row in rows {
                prefetch(eight(row, b + PREFETCH_BLOCKS));
            }
        },
        |t, sb| {
            for (sc, t) in sb.sc.iter_mut().zip(t) {
                for (s, &v) in sc.iter_mut().zip(t) {
                    *s = v as i32;
                }
            }
        },
    );
}

/// The packing both [`pack_tile`] and [`pack_tile_legacy`] are: for each super-block `b`,
/// `prefetch(b)`, then `unpack(row, b, quants, scale words)` of each of the `rows` rows
/// (returning the row's `(da, db)`), the quants transposed into `wq` and the scale words
/// into `lanes(transposed words, super-block)`.
#[inline(always)]
fn pack_tile_with(
    rows: usize,
    out: &mut [PackedSb],
    transpose: impl Fn(&Square, &mut Square),
    unpack: impl Fn(usize, usize, &mut [u8; QK_K], &mut [u32; 16]) -> (f32, f32),
    prefetch: impl Fn(usize),
    lanes: impl Fn(&Square, &mut PackedSb),
) {
    debug_assert!(rows <= TILE_ROWS);
    // q[c][i]: words 16c..16c + 16 of row i's quants; s[i]: row i's scale words. Rows past
    // `rows` stay zero.
    let mut q = [[[0u32; TILE_ROWS]; TILE_ROWS]; STEPS / TILE_ROWS];
    let mut s: Square = [[0; TILE_ROWS]; TILE_ROWS];
    let mut t: Square = [[0; TILE_ROWS]; TILE_ROWS];
    let mut row_q = [0u8; QK_K];
    for (b, sb) in out.iter_mut().enumerate() {
        sb.da = [0.0; TILE_ROWS];
        sb.db = [0.0; TILE_ROWS];
        prefetch(b);
        for i in 0..rows {
            (sb.da[i], sb.db[i]) = unpack(i, b, &mut row_q, &mut s[i]);
            for (c, q) in q.iter_mut().enumerate() {
                let words: &[u32; TILE_ROWS] = bytemuck::cast_ref(
                    <&[u8; 64]>::try_from(&row_q[64 * c..64 * c + 64]).expect("64 bytes"),
                );
                q[i] = *words;
            }
        }
        for (c, q) in q.iter().enumerate() {
            let dst: &mut Square = (&mut sb.wq[16 * c..16 * c + 16])
                .try_into()
                .expect("16 rows");
            transpose(q, dst);
        }
        transpose(&s, &mut t);
        lanes(&t, sb);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::{Block, VecDot};

    /// The packed form gives back each element's dequantized value: `da·sc·q + db·(corr
    /// weight)` with the correction weight of the element's bsum (Q4_K/Q5_K: the min;
    /// Q6_K: the scale, times `db = -32·d`).
    fn check<B: GemmPack + Block + VecDot>(seed: u64) {
        let nb = 2;
        let n = 5;
        let x: Vec<f32> = (0..n * nb * QK_K)
            .map(|e| {
                let v = ((e as u64 * 2_654_435_761 + seed) % 2001) as f32 / 1000.0 - 1.0;
                v * (1.0 + (e / 97 % 5) as f32)
            })
            .collect();
        let mut blocks = vec![<B as bytemuck::Zeroable>::zeroed(); n * nb];
        B::quantize(&x, &mut blocks);
        let mut want = vec![0f32; x.len()];
        B::dequantize(&blocks, &mut want);
        let rows: Vec<&[B]> = blocks.chunks(nb).collect();
        let mut sbs = vec![<PackedSb as bytemuck::Zeroable>::zeroed(); nb];
        pack_tile(&rows, &mut sbs, transpose_scalar, |_| ());
        let steps = STEPS / B::GROUPS;
        for (b, sb) in sbs.iter().enumerate() {
            for i in 0..TILE_ROWS {
                for e in 0..QK_K {
                    let (p, byte) = (e / 4, e % 4);
                    let q = (sb.wq[p][i] >> (8 * byte)) & 0xff;
                    let group = e / (4 * steps);
                    let sc = sb.sc[group][i];
                    // The correction weight of this element (Q6_K: of its bsum, e / 16;
                    // Q4_K/Q5_K: of its sub-block, e / 32).
                    let half = if B::SUMMED_MINS { e / 32 } else { e / 16 };
                    let c = sb.corr[half / 2][i];
                    let c = if half % 2 == 0 {
                        c as i16
                    } else {
                        (c >> 16) as i16
                    };
                    if B::SUMMED_MINS {
                        assert_eq!(sb.corr[4 + half / 4][i], 0, "Q4_K/Q5_K: four steps");
                    } else {
                        assert_eq!(c as i32, sc, "Q6_K: the sub-block's scale");
                    }
                    let got = sb.da[i] * (sc * q as i32) as f32 + sb.db[i] * c as f32;
                    if i >= n {
                        assert_eq!((q, sc, c, sb.da[i], sb.db[i]), (0, 0, 0, 0.0, 0.0));
                        continue;
                    }
                    let w = want[(i * nb + b) * QK_K + e];
                    assert!(
                        (got - w).abs() <= 1e-6 * (1.0 + w.abs()),
                        "{} row {i} block {b} element {e}: {got} vs {w}",
                        B::GGML_TYPE
                    );
                }
            }
        }
    }

    #[test]
    fn i16_step_bounds() {
        for (max_q, steps) in [
            (15, BlockQ4K::STEPS_I16),
            (31, BlockQ5K::STEPS_I16),
            (63, BlockQ6K::STEPS_I16),
        ] {
            assert!(steps * 2 * max_q * 128 < 1 << 15);
            assert_eq!(STEPS % steps, 0);
        }
        assert_eq!(STEPS / BlockQ6K::GROUPS % BlockQ6K::STEPS_I16, 0);
        assert_eq!(STEPS / BlockQ4K::GROUPS % BlockQ4K::STEPS_I16, 0);
        for (max_q, steps) in [
            (15, BlockQ4_0::STEPS_I16),
            (15, BlockQ4_1::STEPS_I16),
            (31, BlockQ5_0::STEPS_I16),
            (31, BlockQ5_1::STEPS_I16),
        ] {
            assert!(steps * 2 * max_q * 128 < 1 << 15);
            assert_eq!(8 % steps, 0);
        }
        assert_eq!(BlockQ8_0::STEPS_I16, 0);
    }

    /// A legacy tile gives back each element's dequantized value `d·(q - OFFSET) + m`
    /// (Q8_0: `d·q`), with rows of 9 blocks (a last super-block of one block) whose missing
    /// blocks and rows pack as zero.
    fn check_legacy<W: LegacyPack + Block>() {
        let nb = 9;
        let n = 3;
        let x: Vec<f32> = (0..n * nb * 32)
            .map(|e| ((e * 37 % 255) as f32 - 127.0) / 50.0 + (e / 32 % 3) as f32)
            .collect();
        let mut blocks = vec![<W as bytemuck::Zeroable>::zeroed(); n * nb];
        W::quantize(&x, &mut blocks);
        let mut want = vec![0f32; x.len()];
        W::dequantize(&blocks, &mut want);
        let rows: Vec<&[W]> = blocks.chunks(nb).collect();
        let mut sbs = vec![<PackedSb as bytemuck::Zeroable>::zeroed(); 2];
        pack_tile_legacy(&rows, nb, &mut sbs, transpose_scalar, |_| ());
        for (b, sb) in sbs.iter().enumerate() {
            for i in 0..TILE_ROWS {
                for e in 0..QK_K {
                    let q = (sb.wq[e / 4][i] >> (8 * (e % 4))) & 0xff;
                    let d = f32::from_bits(sb.sc[e / 32][i] as u32);
                    let m = f32::from_bits(sb.sc[8 + e / 32][i] as u32);
                    let blk = 8 * b + e / 32;
                    if i >= n || blk >= nb {
                        assert_eq!(
                            (q, d, m),
                            (0, 0.0, 0.0),
                            "{} row {i} element {e}",
                            W::GGML_TYPE
                        );
                        continue;
                    }
                    let got = d * (q as i32 - W::OFFSET) as f32 + m;
                    let w = want[(i * nb + blk) * 32 + e % 32];
                    assert!(
                        (got - w).abs() <= 1e-6 * (1.0 + w.abs()),
                        "{} row {i} block {blk} element {e}: {got} vs {w}",
                        W::GGML_TYPE
                    );
                }
            }
        }
    }

    #[test]
    fn packs_legacy_types() {
        check_legacy::<BlockQ4_0>();
        check_legacy::<BlockQ4_1>();
        check_legacy::<BlockQ5_0>();
        check_legacy::<BlockQ5_1>();
        check_legacy::<BlockQ8_0>();
    }

    #[test]
    fn packs_give_back_the_weights() {
        check::<BlockQ4K>(1);
        check::<BlockQ5K>(2);
        check::<BlockQ6K>(3);
    }
}
