//! Q5_1: 32 weights per block, an f16 scale and an f16 minimum, 5-bit unsigned quants.
//!
//! ```text
//! bytes 0..2   d   (f16)          weight = q * d + m
//! bytes 2..4   m   (f16)          m = min of the block
//! bytes 4..8   qh  (u32, LE)      bit j = bit 4 of q[j]
//! bytes 8..24  qs  (16 x u8)      qs[j] = (q[j] & 15) | (q[j + 16] & 15) << 4
//! ```
//! Matches ggml's `quantize_row_q5_1_reference` / `dequantize_row_q5_1` (llama.cpp b2757)
//! bit for bit. The quants are computed with the unrounded f32 `d` and `min`. The dot with
//! Q8_1 activations is ggml's scalar `ggml_vec_dot_q5_1_q8_1` (as Q4_1's, see there).

use super::q8_1::BlockQ8_1;
use super::{c_f32_to_i8, f16, f16_to_f32, unpack_q5, Block, VecDot};
use crate::GgmlType;

/// Elements per block.
pub const QK5_1: usize = 32;

/// ggml's `block_q5_1`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ5_1 {
    /// Scale: `(max - min) / 31`.
    pub d: half::f16,
    /// Minimum of the block (the weight of quant 0).
    pub m: half::f16,
    /// Fifth bits of the 32 quants, a little-endian `u32` (bytes, as the block is 2-aligned).
    pub qh: [u8; 4],
    /// Low nibbles: byte j holds element j (low) and element j + 16 (high).
    pub qs: [u8; QK5_1 / 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ5_1>() == 24);

impl Block for BlockQ5_1 {
    const GGML_TYPE: GgmlType = GgmlType::Q5_1;
    const BLOCK_SIZE: usize = QK5_1;

    fn quantize(x: &[f32], out: &mut [Self]) {
        for (x, y) in x.chunks_exact(QK5_1).zip(out.iter_mut()) {
            let (mut min, mut max) = (f32::MAX, -f32::MAX);
            for &v in x {
                if v < min {
                    min = v;
                }
                if v > max {
                    max = v;
                }
            }
            let d = (max - min) / 31.0;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            y.d = f16(d);
            y.m = f16(min);
            let mut qh = 0u32;
            for j in 0..QK5_1 / 2 {
                let x0 = (x[j] - min) * id;
                let x1 = (x[QK5_1 / 2 + j] - min) * id;
                // C: (uint8_t)(x + 0.5f), truncating and, unlike Q4_1, not clamped.
                let q0 = c_f32_to_i8(x0 + 0.5) as u8;
                let q1 = c_f32_to_i8(x1 + 0.5) as u8;
                y.qs[j] = (q0 & 0x0f) | ((q1 & 0x0f) << 4);
                qh |= (((q0 & 0x10) >> 4) as u32) << j;
                qh |= (((q1 & 0x10) >> 4) as u32) << (j + QK5_1 / 2);
            }
            y.qh = qh.to_le_bytes();
        }
    }

    fn dequantize(blocks: &[Self], out: &mut [f32]) {
        for (b, y) in blocks.iter().zip(out.chunks_exact_mut(QK5_1)) {
            let d = b.d.to_f32();
            let m = b.m.to_f32();
            let qh = u32::from_le_bytes(b.qh);
            for j in 0..QK5_1 / 2 {
                let xh0 = ((qh >> j) << 4) as u8 & 0x10;
                let xh1 = (qh >> (j + 12)) as u8 & 0x10;
                let x0 = ((b.qs[j] & 0x0f) | xh0) as i32;
                let x1 = ((b.qs[j] >> 4) | xh1) as i32;
                // Two roundings (no fused multiply-add), as C compiled with -ffp-contract=off.
                y[j] = x0 as f32 * d + m;
                y[j + QK5_1 / 2] = x1 as f32 * d + m;
            }
        }
    }
}

impl VecDot for BlockQ5_1 {
    type Activation = BlockQ8_1;

    fn vec_dot(x: &[Self], y: &[BlockQ8_1]) -> f32 {
        let mut sumf = 0f32;
        for (x, y) in x.iter().zip(y) {
            let q = unpack_q5(&x.qs, x.qh);
            let mut sumi = 0i32;
            for (&q, &b) in q.iter().zip(&y.qs) {
                sumi += q as i32 * b as i32;
            }
            // C: (d_x*d_y)*sumi + m_x*s_y, no fused multiply-add.
            sumf += (f16_to_f32(x.d) * f16_to_f32(y.d)) * sumi as f32
                + f16_to_f32(x.m) * f16_to_f32(y.s);
        }
        sumf
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytemuck::Zeroable;

    fn quantize_one(x: &[f32]) -> BlockQ5_1 {
        let mut b = [BlockQ5_1::zeroed()];
        BlockQ5_1::quantize(x, &mut b);
        b[0]
    }

    fn dequantize_one(b: BlockQ5_1) -> Vec<f32> {
        let mut y = vec![0.0; QK5_1];
        BlockQ5_1::dequantize(&[b], &mut y);
        y
    }

    #[test]
    fn layout() {
        let mut bytes = [0u8; 24];
        bytes[0..2].copy_from_slice(&half::f16::from_f32(0.25).to_bits().to_le_bytes());
        bytes[2..4].copy_from_slice(&half::f16::from_f32(1.0).to_bits().to_le_bytes());
        // q[0] = 0x1f, q[16] = 0x1e, q[17] = 0x10.
        bytes[4..8].copy_from_slice(&(1u32 | 3 << 16).to_le_bytes());
        bytes[8] = 0xef;
        let b: BlockQ5_1 = bytemuck::pod_read_unaligned(&bytes);
        let y = dequantize_one(b);
        assert_eq!(y[0], 31.0 * 0.25 + 1.0);
        assert_eq!(y[16], 30.0 * 0.25 + 1.0);
        assert_eq!(y[17], 16.0 * 0.25 + 1.0);
        assert_eq!(y[1], 1.0);
    }

    #[test]
    fn exact_grid_and_ties() {
        // min 0, max 31: d = 1, and half-integers sit exactly on C's truncation tie.
        let mut x = [0.0f32; QK5_1];
        x[1] = 31.0;
        for (j, v) in x.iter_mut().enumerate().skip(2) {
            *v = (j - 2) as f32 + 0.5;
        }
        let b = quantize_one(&x);
        assert_eq!((b.d.to_f32(), b.m.to_f32()), (1.0, 0.0));
        let y = dequantize_one(b);
        assert_eq!((y[0], y[1]), (0.0, 31.0));
        for (j, &v) in y.iter().enumerate().skip(2) {
            assert_eq!(v, (j - 1) as f32, "element {j}");
        }
    }

    #[test]
    fn constant_and_tiny_blocks() {
        let b = quantize_one(&[7.5; QK5_1]);
        assert_eq!((b.d.to_f32(), b.qs, b.qh), (0.0, [0; 16], [0; 4]));
        assert!(dequantize_one(b).iter().all(|&v| v == 7.5));
        // 1/d overflows: x86-64 turns C's undefined (uint8_t)(inf or NaN) into 0.
        let mut x = [0.0f32; QK5_1];
        x[9] = 1e-40;
        let b = quantize_one(&x);
        assert_eq!((b.qs, b.qh), ([0; 16], [0; 4]));
    }

    #[test]
    fn roundtrip_error_within_half_step() {
        let x: Vec<f32> = (0..QK5_1 * 8)
            .map(|i| (i as f32 * 0.53).sin() + 2.0)
            .collect();
        let mut b = vec![BlockQ5_1::zeroed(); 8];
        BlockQ5_1::quantize(&x, &mut b);
        let mut y = vec![0.0; x.len()];
        BlockQ5_1::dequantize(&b, &mut y);
        for (blk, (xs, ys)) in b.iter().zip(x.chunks(QK5_1).zip(y.chunks(QK5_1))) {
            let tol = blk.d.to_f32() * 0.51 + 31.0 * blk.d.to_f32() * 1e-3 + 3e-3;
            for (a, b) in xs.iter().zip(ys) {
                assert!((a - b).abs() <= tol, "{a} vs {b} (tol {tol})");
            }
        }
    }
}
