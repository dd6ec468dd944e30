//! Q5_0: 32 weights per block, one f16 scale, 5-bit unsigned quants with offset 16.
//!
//! ```text
//! bytes 0..2   d   (f16)          weight = (q - 16) * d
//! bytes 2..6   qh  (u32, LE)      bit j = bit 4 of q[j]
//! bytes 6..22  qs  (16 x u8)      qs[j] = (q[j] & 15) | (q[j + 16] & 15) << 4
//! ```
//! Matches ggml's `quantize_row_q5_0_reference` / `dequantize_row_q5_0` (llama.cpp b2757)
//! bit for bit. The quants are computed with the unrounded f32 `d`. The dot with Q8_0
//! activations is ggml's scalar `ggml_vec_dot_q5_0_q8_0`.

use super::q8_0::BlockQ8_0;
use super::{c_f32_to_i8, dot_i8x32, f16, f16_to_f32, unpack_q5, Block, VecDot};
use crate::GgmlType;

/// Elements per block.
pub const QK5_0: usize = 32;

/// ggml's `block_q5_0`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ5_0 {
    /// Scale: `max / -16`, `max` the element of largest magnitude.
    pub d: half::f16,
    /// Fifth bits of the 32 quants, a little-endian `u32` (bytes, as the block is 2-aligned).
    pub qh: [u8; 4],
    /// Low nibbles: byte j holds element j (low) and element j + 16 (high).
    pub qs: [u8; QK5_0 / 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ5_0>() == 22);

impl Block for BlockQ5_0 {
    const GGML_TYPE: GgmlType = GgmlType::Q5_0;
    const BLOCK_SIZE: usize = QK5_0;

    fn quantize(x: &[f32], out: &mut [Self]) {
        for (x, y) in x.chunks_exact(QK5_0).zip(out.iter_mut()) {
            // The value of largest magnitude, with its sign (first one wins ties).
            let (mut amax, mut max) = (0.0f32, 0.0f32);
            for &v in x {
                if amax < v.abs() {
                    amax = v.abs();
                    max = v;
                }
            }
            let d = max / -16.0;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            y.d = f16(d);
            let mut qh = 0u32;
            for j in 0..QK5_0 / 2 {
                let x0 = x[j] * id;
                let x1 = x[QK5_0 / 2 + j] * id;
                // C: MIN(31, (int8_t)(x + 16.5f)), a truncating conversion.
                let q0 = c_f32_to_i8(x0 + 16.5).min(31) as u8;
                let q1 = c_f32_to_i8(x1 + 16.5).min(31) as u8;
                y.qs[j] = (q0 & 0x0f) | ((q1 & 0x0f) << 4);
                qh |= (((q0 & 0x10) >> 4) as u32) << j;
                qh |= (((q1 & 0x10) >> 4) as u32) << (j + QK5_0 / 2);
            }
            y.qh = qh.to_le_bytes();
        }
    }

    fn dequantize(blocks: &[Self], out: &mut [f32]) {
        for (b, y) in blocks.iter().zip(out.chunks_exact_mut(QK5_0)) {
            let d = b.d.to_f32();
            let qh = u32::from_le_bytes(b.qh);
            for j in 0..QK5_0 / 2 {
                let xh0 = ((qh >> j) << 4) as u8 & 0x10;
                let xh1 = (qh >> (j + 12)) as u8 & 0x10;
                let x0 = ((b.qs[j] & 0x0f) | xh0) as i32 - 16;
                let x1 = ((b.qs[j] >> 4) | xh1) as i32 - 16;
                y[j] = x0 as f32 * d;
                y[j + QK5_0 / 2] = x1 as f32 * d;
            }
        }
    }
}

impl VecDot for BlockQ5_0 {
    type Activation = BlockQ8_0;

    fn vec_dot(x: &[Self], y: &[BlockQ8_0]) -> f32 {
        let mut sumf = 0f32;
        for (x, y) in x.iter().zip(y) {
            let q = unpack_q5(&x.qs, x.qh);
            let mut a = [0i8; QK5_0];
            for (a, &q) in a.iter_mut().zip(&q) {
                *a = q as i8 - 16;
            }
            let sumi = dot_i8x32(&a, &y.qs);
            // C: (d_x*d_y)*sumi.
            sumf += (f16_to_f32(x.d) * f16_to_f32(y.d)) * sumi as f32;
        }
        sumf
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytemuck::Zeroable;

    fn quantize_one(x: &[f32]) -> BlockQ5_0 {
        let mut b = [BlockQ5_0::zeroed()];
        BlockQ5_0::quantize(x, &mut b);
        b[0]
    }

    fn dequantize_one(b: BlockQ5_0) -> Vec<f32> {
        let mut y = vec![0.0; QK5_0];
        BlockQ5_0::dequantize(&[b], &mut y);
        y
    }

    #[test]
    fn layout() {
        let mut bytes = [0u8; 22];
        bytes[0..2].copy_from_slice(&half::f16::from_f32(0.5).to_bits().to_le_bytes());
        // q[0] = 0x13 (fifth bit in qh bit 0), q[16] = 0x02, q[31] = 0x10 (qh bit 31).
        bytes[2..6].copy_from_slice(&(1u32 | 1 << 31).to_le_bytes());
        bytes[6] = 0x23;
        let b: BlockQ5_0 = bytemuck::pod_read_unaligned(&bytes);
        let y = dequantize_one(b);
        assert_eq!(y[0], (0x13 - 16) as f32 * 0.5);
        assert_eq!(y[16], (0x02 - 16) as f32 * 0.5);
        assert_eq!(y[31], 0.0);
        assert_eq!(y[1], -8.0);
    }

    #[test]
    fn exact_grid_and_ties() {
        // max = -16 gives d = 1 and id = 1; x + 16.5 is an integer for half-integer x, C's
        // truncation then rounds the tie up. The +16 end is clamped by MIN(31, .).
        let mut x = [0.0f32; QK5_0];
        x[0] = -16.0;
        for (j, v) in x.iter_mut().enumerate().skip(1) {
            *v = j as f32 - 15.5;
        }
        let b = quantize_one(&x);
        assert_eq!(b.d.to_f32(), 1.0);
        let y = dequantize_one(b);
        assert_eq!(y[0], -16.0);
        for (j, &v) in y.iter().enumerate().skip(1) {
            assert_eq!(v, (j as f32 - 15.0).min(15.0), "element {j}");
        }
    }

    #[test]
    fn zero_and_tiny_blocks() {
        // All zero: d = 0, every quant 16 (the zero point).
        let b = quantize_one(&[0.0; QK5_0]);
        assert_eq!(b.d.to_f32(), 0.0);
        assert_eq!(b.qs, [0; 16]);
        assert_eq!(u32::from_le_bytes(b.qh), u32::MAX);
        // 1/d overflows: x86-64 turns C's undefined (int8_t)(±inf or NaN) into 0.
        let mut x = [0.0f32; QK5_0];
        x[5] = -1e-40;
        x[6] = 1e-41;
        let b = quantize_one(&x);
        assert_eq!((b.qs, b.qh), ([0; 16], [0; 4]));
    }

    #[test]
    fn roundtrip_error_within_a_step() {
        let x: Vec<f32> = (0..QK5_0 * 8)
            .map(|i| (i as f32 * 0.37).cos() * 7.0)
            .collect();
        let mut b = vec![BlockQ5_0::zeroed(); 8];
        BlockQ5_0::quantize(&x, &mut b);
        let mut y = vec![0.0; x.len()];
        BlockQ5_0::dequantize(&b, &mut y);
        for (blk, (xs, ys)) in b.iter().zip(x.chunks(QK5_0).zip(y.chunks(QK5_0))) {
            // Half a step, except for values of the sign opposite to the largest one, which
            // the grid reaches only to 15 steps of the 16 (the clamp adds up to one step).
            let d = blk.d.to_f32().abs();
            let tol = d + 16.0 * d * 1e-3;
            for (a, b) in xs.iter().zip(ys) {
                assert!((a - b).abs() <= tol, "{a} vs {b} (tol {tol})");
            }
        }
    }
}
