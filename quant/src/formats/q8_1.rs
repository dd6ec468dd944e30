//! Q8_1: 32 weights per block, an f16 scale, an f16 `d * sum(q)`, signed 8-bit quants.
//!
//! ```text
//! bytes 0..2   d   (f16)          weight = q * d,  d = amax / 127
//! bytes 2..4   s   (f16)          s = d * sum(qs), with the unrounded f32 d
//! bytes 4..36  qs  (32 x i8)      element j
//! ```
//! The activation type that Q4_1 and Q5_1 dot products take (`s` carries their `m` term).
//! Matches ggml's `quantize_row_q8_1_reference` (llama.cpp b2757) bit for bit. ggml has no
//! dequantizer for it; ours is the natural `q * d`, as `dequantize_row_q8_0`. Activations are
//! quantized with [`Block::from_float`], ggml's x86 `quantize_row_q8_1` (which rounds as
//! Q8_0's, see [`super::q8_0`]; `s` is `d` times the sum of the quants it stored).

use super::q8_0::{absmax, x86_quantize_block};
use super::{c_f32_to_i8, f16, Block};
use crate::GgmlType;

/// Elements per block.
pub const QK8_1: usize = 32;

/// ggml's `block_q8_1`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ8_1 {
    /// Scale: `amax / 127`.
    pub d: half::f16,
    /// `d * sum(qs)`, computed with the f32 `d` before it is rounded to f16.
    pub s: half::f16,
    /// Quants, one per element, in [-127, 127].
    pub qs: [i8; QK8_1],
}
const _: () = assert!(std::mem::size_of::<BlockQ8_1>() == 36);

impl Block for BlockQ8_1 {
    const GGML_TYPE: GgmlType = GgmlType::Q8_1;
    const BLOCK_SIZE: usize = QK8_1;

    /// ggml b2757's x86 (AVX2) `quantize_row_q8_1`: the quants of Q8_0's `from_float`, and
    /// `s = d * Σq` over the 32 lanes before they are saturated to i8.
    fn from_float(x: &[f32], out: &mut [Self]) {
        for (x, y) in x.chunks_exact(QK8_1).zip(out.iter_mut()) {
            let (d, sum) = x86_quantize_block(x, &mut y.qs);
            y.d = f16(d);
            y.s = f16(d * sum as f32);
        }
    }

    fn quantize(x: &[f32], out: &mut [Self]) {
        for (x, y) in x.chunks_exact(QK8_1).zip(out.iter_mut()) {
            let d = absmax(x) / 127.0;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            y.d = f16(d);
            let mut sum = 0i32;
            for (q, &v) in y.qs.iter_mut().zip(x) {
                // C: int8_t = roundf(x * id); the sum is over the stored int8 values.
                *q = c_f32_to_i8((v * id).round());
                sum += *q as i32;
            }
            y.s = f16(sum as f32 * d);
        }
    }

    fn dequantize(blocks: &[Self], out: &mut [f32]) {
        for (b, y) in blocks.iter().zip(out.chunks_exact_mut(QK8_1)) {
            let d = b.d.to_f32();
            for (o, &q) in y.iter_mut().zip(&b.qs) {
                *o = q as f32 * d;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::q8_0::BlockQ8_0;
    use super::*;
    use bytemuck::Zeroable;

    #[test]
    fn layout() {
        let mut bytes = [0u8; 36];
        bytes[0..2].copy_from_slice(&half::f16::from_f32(0.25).to_bits().to_le_bytes());
        bytes[4] = (-8i8) as u8;
        bytes[35] = 100;
        let b: BlockQ8_1 = bytemuck::pod_read_unaligned(&bytes);
        let mut y = [0.0f32; QK8_1];
        BlockQ8_1::dequantize(&[b], &mut y);
        assert_eq!((y[0], y[1], y[31]), (-2.0, 0.0, 25.0));
    }

    #[test]
    fn same_quants_as_q8_0_and_sum() {
        let x: Vec<f32> = (0..QK8_1 * 4)
            .map(|i| (i as f32 * 0.61).sin() * 2.0 + 0.3)
            .collect();
        let mut a = vec![BlockQ8_1::zeroed(); 4];
        let mut b = vec![BlockQ8_0::zeroed(); 4];
        BlockQ8_1::quantize(&x, &mut a);
        BlockQ8_0::quantize(&x, &mut b);
        for ((a, b), xs) in a.iter().zip(&b).zip(x.chunks(QK8_1)) {
            assert_eq!((a.d, a.qs), (b.d, b.qs));
            let sum: i32 = a.qs.iter().map(|&q| q as i32).sum();
            let d = absmax(xs) / 127.0;
            assert_eq!(a.s, half::f16::from_f32(sum as f32 * d));
        }
    }

    #[test]
    fn zero_block() {
        let mut b = [BlockQ8_1::zeroed()];
        BlockQ8_1::quantize(&[0.0; QK8_1], &mut b);
        assert_eq!(bytemuck::bytes_of(&b[0]), &[0u8; 36]);
    }
}
