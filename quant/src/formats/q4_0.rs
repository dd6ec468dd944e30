//! Q4_0: 32 weights per block, one f16 scale, 4-bit unsigned quants with offset 8.
//!
//! ```text
//! bytes 0..2   d   (f16)          weight = (q - 8) * d
//! bytes 2..18  qs  (16 x u8)      qs[j] = q[j] | q[j + 16] << 4
//! ```
//! Matches ggml's `quantize_row_q4_0_reference` / `dequantize_row_q4_0` bit for bit; the dot
//! with Q8_0 activations is ggml's scalar `ggml_vec_dot_q4_0_q8_0`.

use super::q8_0::BlockQ8_0;
use super::{c_f32_to_i8, dot_i8x32, f16, f16_to_f32, Block, VecDot};
use crate::GgmlType;

/// Elements per block.
pub const QK4_0: usize = 32;

/// ggml's `block_q4_0`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ4_0 {
    /// Scale.
    pub d: half::f16,
    /// Nibbles: low nibble of byte j is element j, high nibble is element j + 16.
    pub qs: [u8; QK4_0 / 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ4_0>() == 18);

impl Block for BlockQ4_0 {
    const GGML_TYPE: GgmlType = GgmlType::Q4_0;
    const BLOCK_SIZE: usize = QK4_0;

    fn quantize(x: &[f32], out: &mut [Self]) {
        for (x, y) in x.chunks_exact(QK4_0).zip(out.iter_mut()) {
            // The value of largest magnitude, with its sign (first one wins ties).
            let (mut amax, mut max) = (0.0f32, 0.0f32);
            for &v in x {
                if amax < v.abs() {
                    amax = v.abs();
                    max = v;
                }
            }
            let d = max / -8.0;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            y.d = f16(d);
            for j in 0..QK4_0 / 2 {
                let x0 = x[j] * id;
                let x1 = x[QK4_0 / 2 + j] * id;
                // C: MIN(15, (int8_t)(x + 8.5f)), a truncating conversion.
                let q0 = c_f32_to_i8(x0 + 8.5).min(15) as u8;
                let q1 = c_f32_to_i8(x1 + 8.5).min(15) as u8;
                y.qs[j] = q0 | (q1 << 4);
            }
        }
    }

    fn dequantize(blocks: &[Self], out: &mut [f32]) {
        for (b, y) in blocks.iter().zip(out.chunks_exact_mut(QK4_0)) {
            let d = b.d.to_f32();
            for j in 0..QK4_0 / 2 {
                let x0 = (b.qs[j] & 0x0f) as i32 - 8;
                let x1 = (b.qs[j] >> 4) as i32 - 8;
                y[j] = x0 as f32 * d;
                y[j + QK4_0 / 2] = x1 as f32 * d;
            }
        }
    }
}

impl VecDot for BlockQ4_0 {
    type Activation = BlockQ8_0;

    fn vec_dot(x: &[Self], y: &[BlockQ8_0]) -> f32 {
        let mut sumf = 0f32;
        for (x, y) in x.iter().zip(y) {
            // The quants minus 8, element order.
            let mut a = [0i8; QK4_0];
            for j in 0..QK4_0 / 2 {
                a[j] = (x.qs[j] & 0x0f) as i8 - 8;
                a[j + QK4_0 / 2] = (x.qs[j] >> 4) as i8 - 8;
            }
            let sumi = dot_i8x32(&a, &y.qs);
            // C: sumi*d_x*d_y, left to right.
            sumf += sumi as f32 * f16_to_f32(x.d) * f16_to_f32(y.d);
        }
        sumf
    }
}
