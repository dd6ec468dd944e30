//! Q8_0: 32 weights per block, one f16 scale, signed 8-bit quants.
//!
//! ```text
//! bytes 0..2   d   (f16)          weight = q * d,  d = amax / 127
//! bytes 2..34  qs  (32 x i8)      element j
//! ```
//! Matches ggml's `quantize_row_q8_0_reference` / `dequantize_row_q8_0` (llama.cpp b2757)
//! bit for bit. The quants are computed with the unrounded f32 `d`.
//!
//! Q8_0 is also the activation type of Q4_0, Q5_0 and Q8_0 weights. ggml does not quantize
//! activations with the reference code but with its type-traits `from_float`,
//! `quantize_row_q8_0`, which on x86 (AVX/AVX2, what llama.cpp runs on PCs) computes
//! `id = 127 / amax` rather than `1 / (amax / 127)` and rounds ties to even rather than away
//! from zero, so quants on exact ties (and the rare `x` where the two reciprocals round apart)
//! differ by one from the reference. Our [`Block::from_float`] is that x86 code, written as
//! portable scalar Rust (same bytes on every machine). ggml's NEON version differs from both
//! (`1 / d`, ties to even); its generic C version is the reference.
//!
//! The Q8_0 · Q8_0 dot is ggml's scalar `ggml_vec_dot_q8_0_q8_0`.

use super::{c_f32_to_i8, dot_i8x32, f16, f16_to_f32, Block, VecDot};
use crate::GgmlType;

/// Elements per block.
pub const QK8_0: usize = 32;

/// ggml's `block_q8_0`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ8_0 {
    /// Scale: `amax / 127`.
    pub d: half::f16,
    /// Quants, one per element, in [-127, 127].
    pub qs: [i8; QK8_0],
}
const _: () = assert!(std::mem::size_of::<BlockQ8_0>() == 34);

/// Largest |x| of a block, as C's `amax = MAX(amax, fabsf(v))`.
#[inline]
pub(crate) fn absmax(x: &[f32]) -> f32 {
    x.iter().fold(
        0.0f32,
        |amax, &v| if amax > v.abs() { amax } else { v.abs() },
    )
}

/// One lane of x86's `_mm256_round_ps(v, _MM_ROUND_NEAREST)` then `_mm256_cvtps_epi32`:
/// round half to even; NaN and out-of-range values give `i32::MIN` (the "integer indefinite").
#[inline]
pub(crate) fn x86_round_to_i32(v: f32) -> i32 {
    let r = v.round_ties_even();
    // -2^31 and 2^31 are exact in f32; NaN fails the test.
    if (-2_147_483_648.0..2_147_483_648.0).contains(&r) {
        r as i32
    } else {
        i32::MIN
    }
}

/// The block scale and quants of ggml's x86 `quantize_row_q8_0` / `quantize_row_q8_1`:
/// `d = amax / 127`, `q = round_even(x * (127 / amax))` saturated to i8 (`packs_epi32` then
/// `packs_epi16`). Also returns the wrapping sum of the quants before saturation (the i32 lanes
/// Q8_1 sums). When `127 / amax` overflows (`amax` below ~3.7e-37) every lane is `i32::MIN`:
/// all quants -128, sum 0, as on x86.
#[inline]
pub(crate) fn x86_quantize_block(x: &[f32], qs: &mut [i8; QK8_0]) -> (f32, i32) {
    let amax = absmax(x);
    let d = amax / 127.0;
    let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
    let mut sum = 0i32;
    for (q, &v) in qs.iter_mut().zip(x) {
        let i = x86_round_to_i32(v * id);
        sum = sum.wrapping_add(i);
        *q = i.clamp(-128, 127) as i8;
    }
    (d, sum)
}

impl Block for BlockQ8_0 {
    const GGML_TYPE: GgmlType = GgmlType::Q8_0;
    const BLOCK_SIZE: usize = QK8_0;

    /// ggml b2757's x86 (AVX/AVX2) `quantize_row_q8_0`, see the module documentation.
    fn from_float(x: &[f32], out: &mut [Self]) {
        for (x, y) in x.chunks_exact(QK8_0).zip(out.iter_mut()) {
            let (d, _) = x86_quantize_block(x, &mut y.qs);
            y.d = f16(d);
        }
    }

    fn quantize(x: &[f32], out: &mut [Self]) {
        for (x, y) in x.chunks_exact(QK8_0).zip(out.iter_mut()) {
            let d = absmax(x) / 127.0;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            y.d = f16(d);
            for (q, &v) in y.qs.iter_mut().zip(x) {
                // C: int8_t = roundf(x * id); roundf rounds half away from zero, as `round`.
                *q = c_f32_to_i8((v * id).round());
            }
        }
    }

    fn dequantize(blocks: &[Self], out: &mut [f32]) {
        for (b, y) in blocks.iter().zip(out.chunks_exact_mut(QK8_0)) {
            let d = b.d.to_f32();
            for (o, &q) in y.iter_mut().zip(&b.qs) {
                *o = q as f32 * d;
            }
        }
    }
}

impl VecDot for BlockQ8_0 {
    type Activation = BlockQ8_0;

    fn vec_dot(x: &[Self], y: &[BlockQ8_0]) -> f32 {
        let mut sumf = 0f32;
        for (x, y) in x.iter().zip(y) {
            let sumi = dot_i8x32(&x.qs, &y.qs);
            // C: sumi*(d_x*d_y).
            sumf += sumi as f32 * (f16_to_f32(x.d) * f16_to_f32(y.d));
        }
        sumf
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytemuck::Zeroable;

    fn quantize_one(x: &[f32]) -> BlockQ8_0 {
        let mut b = [BlockQ8_0::zeroed()];
        BlockQ8_0::quantize(x, &mut b);
        b[0]
    }

    #[test]
    fn layout() {
        let mut bytes = [0u8; 34];
        bytes[0..2].copy_from_slice(&half::f16::from_f32(0.5).to_bits().to_le_bytes());
        bytes[2] = (-7i8) as u8;
        bytes[33] = 127;
        let b: BlockQ8_0 = bytemuck::pod_read_unaligned(&bytes);
        let mut y = [0.0f32; QK8_0];
        BlockQ8_0::dequantize(&[b], &mut y);
        assert_eq!((y[0], y[1], y[31]), (-3.5, 0.0, 63.5));
    }

    #[test]
    fn ties_round_away_from_zero() {
        // amax 127: d = 1, id = 1, so half-integers are exact ties.
        let mut x = [0.0f32; QK8_0];
        x[0] = -127.0;
        let ties = [0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 126.5, -126.5];
        x[1..9].copy_from_slice(&ties);
        let b = quantize_one(&x);
        assert_eq!(b.d.to_f32(), 1.0);
        assert_eq!(b.qs[..9], [-127, 1, -1, 2, -2, 3, -3, 127, -127]);
    }

    #[test]
    fn zero_and_tiny_blocks() {
        let b = quantize_one(&[0.0; QK8_0]);
        assert_eq!(bytemuck::bytes_of(&b), &[0u8; 34]);
        // amax / 127 is a subnormal whose reciprocal overflows: x86-64 turns C's undefined
        // (int8_t)(±inf or NaN) into 0 (Rust's saturating `as` would give ±127).
        let mut x = [0.0f32; QK8_0];
        x[0] = 1e-37;
        x[1] = -5e-38;
        let b = quantize_one(&x);
        assert_eq!(b.qs, [0; QK8_0]);
    }

    #[test]
    fn roundtrip_error_within_half_step() {
        let x: Vec<f32> = (0..QK8_0 * 8)
            .map(|i| (i as f32 * 0.29).sin() * 0.1)
            .collect();
        let mut b = vec![BlockQ8_0::zeroed(); 8];
        BlockQ8_0::quantize(&x, &mut b);
        let mut y = vec![0.0; x.len()];
        BlockQ8_0::dequantize(&b, &mut y);
        for (blk, (xs, ys)) in b.iter().zip(x.chunks(QK8_0).zip(y.chunks(QK8_0))) {
            let d = blk.d.to_f32();
            let tol = d * 0.5 + 127.0 * d * 5e-4;
            for (a, b) in xs.iter().zip(ys) {
                assert!((a - b).abs() <= tol, "{a} vs {b} (tol {tol})");
            }
        }
    }
}
