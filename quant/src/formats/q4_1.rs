//! Q4_1: 32 weights per block, an f16 scale and an f16 minimum, 4-bit unsigned quants.
//!
//! ```text
//! bytes 0..2   d   (f16)          weight = q * d + m
//! bytes 2..4   m   (f16)          m = min of the block
//! bytes 4..20  qs  (16 x u8)      qs[j] = q[j] | q[j + 16] << 4
//! ```
//! Matches ggml's `quantize_row_q4_1_reference` / `dequantize_row_q4_1` (llama.cpp b2757)
//! bit for bit. The quants are computed with the unrounded f32 `d` and `min`; only the stored
//! scale and minimum are rounded to f16. The dot with Q8_1 activations is ggml's scalar
//! `ggml_vec_dot_q4_1_q8_1`: `Σ q·q8` per block, times `d·d8`, plus `m·s8` (the Q8_1 block's
//! `d8·Σq8` carries the minimum's term).

use super::q8_1::BlockQ8_1;
use super::{c_f32_to_i8, f16, f16_to_f32, Block, VecDot};
use crate::GgmlType;

/// Elements per block.
pub const QK4_1: usize = 32;

/// ggml's `block_q4_1`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ4_1 {
    /// Scale: `(max - min) / 15`.
    pub d: half::f16,
    /// Minimum of the block (the weight of quant 0).
    pub m: half::f16,
    /// Nibbles: low nibble of byte j is element j, high nibble is element j + 16.
    pub qs: [u8; QK4_1 / 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ4_1>() == 20);

impl Block for BlockQ4_1 {
    const GGML_TYPE: GgmlType = GgmlType::Q4_1;
    const BLOCK_SIZE: usize = QK4_1;

    fn quantize(x: &[f32], out: &mut [Self]) {
        for (x, y) in x.chunks_exact(QK4_1).zip(out.iter_mut()) {
            // Two independent tests, as in C (a single value can set both).
            let (mut min, mut max) = (f32::MAX, -f32::MAX);
            for &v in x {
                if v < min {
                    min = v;
                }
                if v > max {
                    max = v;
                }
            }
            let d = (max - min) / 15.0;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            y.d = f16(d);
            y.m = f16(min);
            for j in 0..QK4_1 / 2 {
                let x0 = (x[j] - min) * id;
                let x1 = (x[QK4_1 / 2 + j] - min) * id;
                // C: MIN(15, (int8_t)(x + 0.5f)), a truncating conversion.
                let q0 = c_f32_to_i8(x0 + 0.5).min(15) as u8;
                let q1 = c_f32_to_i8(x1 + 0.5).min(15) as u8;
                y.qs[j] = q0 | (q1 << 4);
            }
        }
    }

    fn dequantize(blocks: &[Self], out: &mut [f32]) {
        for (b, y) in blocks.iter().zip(out.chunks_exact_mut(QK4_1)) {
            let d = b.d.to_f32();
            let m = b.m.to_f32();
            for j in 0..QK4_1 / 2 {
                let x0 = (b.qs[j] & 0x0f) as i32;
                let x1 = (b.qs[j] >> 4) as i32;
                // Two roundings (no fused multiply-add), as C compiled with -ffp-contract=off.
                y[j] = x0 as f32 * d + m;
                y[j + QK4_1 / 2] = x1 as f32 * d + m;
            }
        }
    }
}

impl VecDot for BlockQ4_1 {
    type Activation = BlockQ8_1;

    fn vec_dot(x: &[Self], y: &[BlockQ8_1]) -> f32 {
        let mut sumf = 0f32;
        for (x, y) in x.iter().zip(y) {
            let mut sumi = 0i32;
            for j in 0..QK4_1 / 2 {
                let v0 = (x.qs[j] & 0x0f) as i32;
                let v1 = (x.qs[j] >> 4) as i32;
                sumi += v0 * y.qs[j] as i32 + v1 * y.qs[j + QK4_1 / 2] as i32;
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

    fn quantize_one(x: &[f32]) -> BlockQ4_1 {
        let mut b = [BlockQ4_1::zeroed()];
        BlockQ4_1::quantize(x, &mut b);
        b[0]
    }

    fn dequantize_one(b: BlockQ4_1) -> Vec<f32> {
        let mut y = vec![0.0; QK4_1];
        BlockQ4_1::dequantize(&[b], &mut y);
        y
    }

    #[test]
    fn layout() {
        let mut bytes = [0u8; 20];
        bytes[0..2].copy_from_slice(&half::f16::from_f32(2.0).to_bits().to_le_bytes());
        bytes[2..4].copy_from_slice(&half::f16::from_f32(-1.0).to_bits().to_le_bytes());
        bytes[4] = 0x53; // element 0 = 3, element 16 = 5
        let b: BlockQ4_1 = bytemuck::pod_read_unaligned(&bytes);
        let y = dequantize_one(b);
        assert_eq!(y[0], 3.0 * 2.0 - 1.0);
        assert_eq!(y[16], 5.0 * 2.0 - 1.0);
        assert_eq!(y[1], -1.0);
    }

    #[test]
    fn exact_grid_and_ties() {
        // min 0, max 15: d = 1 exactly, so x = k + 0.5 lands exactly on C's truncation tie
        // (x + 0.5 is an integer) and must round up.
        let mut x = [0.0f32; QK4_1];
        x[1] = 15.0;
        for (j, v) in x.iter_mut().enumerate().skip(2) {
            *v = (j % 15) as f32 + 0.5;
        }
        let b = quantize_one(&x);
        assert_eq!(b.d.to_f32(), 1.0);
        assert_eq!(b.m.to_f32(), 0.0);
        let y = dequantize_one(b);
        assert_eq!(y[0], 0.0);
        assert_eq!(y[1], 15.0);
        for (j, &v) in y.iter().enumerate().skip(2) {
            assert_eq!(v, (j % 15) as f32 + 1.0, "element {j}");
        }
    }

    #[test]
    fn constant_and_zero_blocks() {
        let b = quantize_one(&[0.0; QK4_1]);
        assert_eq!(bytemuck::bytes_of(&b), &[0u8; 20]);
        // All equal: d = 0, every quant 0, the value is carried by m.
        let b = quantize_one(&[-3.25; QK4_1]);
        assert_eq!(b.d.to_f32(), 0.0);
        assert_eq!(b.qs, [0; 16]);
        assert!(dequantize_one(b).iter().all(|&v| v == -3.25));
    }

    #[test]
    fn tiny_scale_follows_x86() {
        // (max - min) / 15 is so small that 1/d overflows: C's (int8_t)(inf) is undefined and
        // x86-64 gives 0, so every quant is 0 (Rust's saturating `as` would give 15).
        let mut x = [0.0f32; QK4_1];
        x[3] = 1e-40;
        let b = quantize_one(&x);
        assert_eq!(b.qs, [0; 16]);
    }

    #[test]
    fn roundtrip_error_within_half_step() {
        let x: Vec<f32> = (0..QK4_1 * 8)
            .map(|i| (i as f32 * 0.71).sin() * 3.0)
            .collect();
        let mut b = vec![BlockQ4_1::zeroed(); 8];
        BlockQ4_1::quantize(&x, &mut b);
        let mut y = vec![0.0; x.len()];
        BlockQ4_1::dequantize(&b, &mut y);
        for (blk, (xs, ys)) in b.iter().zip(x.chunks(QK4_1).zip(y.chunks(QK4_1))) {
            // Half a step, plus the f16 rounding of d (15 steps) and of m.
            let tol = blk.d.to_f32() * 0.51 + 15.0 * blk.d.to_f32() * 1e-3 + 1e-3;
            for (a, b) in xs.iter().zip(ys) {
                assert!((a - b).abs() <= tol, "{a} vs {b} (tol {tol})");
            }
        }
    }
}
