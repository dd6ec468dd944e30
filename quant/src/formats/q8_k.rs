//! Q8_K: 256 weights per block, signed 8-bit quants with one f32 scale and the sums of each
//! 16 quants (the activation type the K-quant dot products use; not stored in model files).
//!
//! ```text
//! bytes   0..4    d      (f32)         weight = d * qs[e]
//! bytes   4..260  qs     (256 x i8)
//! bytes 260..292  bsums  (16 x i16)    bsums[s] = sum of qs[16*s .. 16*s + 16]
//! ```
//! Matches ggml's `quantize_row_q8_K_reference` / `dequantize_row_q8_K` (llama.cpp b2757)
//! bit for bit, with one addition: for an all-zero block ggml leaves `bsums` unwritten, and we
//! write zeros (which is what it holds whenever the output buffer starts zeroed).
//! ggml's activation quantizer for it (`from_float`, `quantize_row_q8_K`) is the reference
//! one on every platform in b2757, so [`Block::from_float`] keeps its default.

use super::{nearest_int, Block};
use crate::{GgmlType, QK_K};

/// ggml's `block_q8_K`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ8K {
    /// Scale (f32, not rounded to f16).
    pub d: f32,
    /// Quants, `[QK_K]`, in `-128..=127` (the reference produces `-127..=127`).
    pub qs: [i8; QK_K],
    /// Sum of each 16 consecutive quants, `[QK_K / 16]`.
    pub bsums: [i16; QK_K / 16],
}
const _: () = assert!(std::mem::size_of::<BlockQ8K>() == 292);

impl Block for BlockQ8K {
    const GGML_TYPE: GgmlType = GgmlType::Q8K;
    const BLOCK_SIZE: usize = QK_K;

    fn quantize(x: &[f32], out: &mut [Self]) {
        for (x, y) in x.chunks_exact(QK_K).zip(out.iter_mut()) {
            // The value of largest magnitude, with its sign (first one wins ties).
            let (mut max, mut amax) = (0.0f32, 0.0f32);
            for &v in x {
                let ax = v.abs();
                if ax > amax {
                    amax = ax;
                    max = v;
                }
            }
            if amax == 0.0 {
                *y = bytemuck::Zeroable::zeroed();
                continue;
            }
            // -127 rather than -128: ggml changed it for IQ2_XXS's AVX kernels.
            let iscale = -127.0 / max;
            for (q, &v) in y.qs.iter_mut().zip(x) {
                // C: MIN(127, v) stored into an int8_t (wrapping).
                *q = nearest_int(iscale * v).min(127) as i8;
            }
            for (s, qs) in y.bsums.iter_mut().zip(y.qs.chunks_exact(16)) {
                *s = qs.iter().map(|&q| q as i32).sum::<i32>() as i16;
            }
            y.d = 1.0 / iscale;
        }
    }

    fn dequantize(blocks: &[Self], out: &mut [f32]) {
        for (b, y) in blocks.iter().zip(out.chunks_exact_mut(QK_K)) {
            for (y, &q) in y.iter_mut().zip(&b.qs) {
                *y = b.d * q as f32;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::k_common::test_util;
    use bytemuck::Zeroable;

    #[test]
    fn round_trip_error() {
        let x = test_util::weights_like(64 * QK_K, 8);
        let err = test_util::round_trip::<BlockQ8K>(&x);
        // Measured 0.01635 (this data, seed 8); bound about 10% above.
        assert!(err < 0.018, "relative RMSE {err}");
    }

    #[test]
    fn zeros() {
        test_util::zeros_round_trip::<BlockQ8K>();
    }

    #[test]
    fn quantize_by_hand() {
        // max = -2 gives iscale = 63.5: 1.0 -> 63.5 and -1.0 -> -63.5 round half to even.
        let mut x = [0.0f32; QK_K];
        x[0] = 1.0;
        x[1] = -2.0;
        x[2] = -1.0;
        x[3] = 0.5; // 31.75 -> 32
        x[16] = 2.0; // 127 (MIN(127, ...) is a no-op here)
        x[17] = 1.5; // 95.25 -> 95
        let mut b = [BlockQ8K::zeroed()];
        BlockQ8K::quantize(&x, &mut b);
        let b = &b[0];
        assert_eq!(b.d, 1.0 / 63.5);
        assert_eq!(&b.qs[..4], &[64, -127, -64, 32]);
        assert_eq!(&b.qs[16..18], &[127, 95]);
        assert_eq!(&b.bsums[..3], &[64 - 127 - 64 + 32, 127 + 95, 0]);
        let mut y = [0.0f32; QK_K];
        BlockQ8K::dequantize(std::slice::from_ref(b), &mut y);
        assert_eq!(y[1], b.d * -127.0);
    }
}
