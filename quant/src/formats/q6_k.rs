//! Q6_K: 256 weights per super-block in 16 sub-blocks of 16; signed 6-bit quants (4 low bits
//! plus 2 high bits) with a signed 8-bit scale per sub-block and one f16 super-block scale
//! (6.5625 bits per weight).
//!
//! ```text
//! bytes   0..128  ql     (128 x u8)  element e = 128*h + 32*k + i (h < 2, k < 4, i < 32):
//!                                    low 4 bits = (ql[64*h + 32*(k % 2) + i] >> 4*(k / 2)) & 15
//! bytes 128..192  qh     (64 x u8)   high 2 bits = (qh[32*h + i] >> 2k) & 3
//! bytes 192..208  scales (16 x i8)   scale of sub-block e / 16
//! bytes 208..210  d      (f16)       weight = d * scale * (q - 32),  q = low | high << 4
//! ```
//! Matches ggml's `quantize_row_q6_K_reference` / `dequantize_row_q6_K` (llama.cpp b2757,
//! `QK_K == 256`) bit for bit; the dot with Q8_K activations is ggml's scalar
//! `ggml_vec_dot_q6_K_q8_K`.

use super::k_common::{lane_sums, make_qx_quants, KDotAcc};
use super::q8_k::BlockQ8K;
use super::{f16, f16_to_f32, nearest_int, Block, VecDot};
use crate::{GgmlType, QK_K};

/// ggml's `block_q6_K`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ6K {
    /// Low 4 bits of each quant, two per byte, `[QK_K / 2]` (layout above).
    pub ql: [u8; QK_K / 2],
    /// High 2 bits of each quant, four per byte, `[QK_K / 4]` (layout above).
    pub qh: [u8; QK_K / 4],
    /// Signed 8-bit scale per sub-block of 16, `[QK_K / 16]`.
    pub scales: [i8; QK_K / 16],
    /// Super-block scale.
    pub d: half::f16,
}
const _: () = assert!(std::mem::size_of::<BlockQ6K>() == 210);

impl Block for BlockQ6K {
    const GGML_TYPE: GgmlType = GgmlType::Q6K;
    const BLOCK_SIZE: usize = QK_K;

    fn quantize(x: &[f32], out: &mut [Self]) {
        for (x, y) in x.chunks_exact(QK_K).zip(out.iter_mut()) {
            let mut l = [0i8; QK_K];
            let mut scales = [0.0f32; QK_K / 16];
            // The scale of largest magnitude, with its sign (first one wins ties).
            let (mut max_scale, mut max_abs_scale) = (0.0f32, 0.0f32);
            for ib in 0..QK_K / 16 {
                let xs = &x[16 * ib..16 * ib + 16];
                let scale = make_qx_quants(32, xs, &mut l[16 * ib..16 * ib + 16], 1, None);
                scales[ib] = scale;
                let abs_scale = scale.abs();
                if abs_scale > max_abs_scale {
                    max_abs_scale = abs_scale;
                    max_scale = scale;
                }
            }

            if max_abs_scale == 0.0 {
                *y = bytemuck::Zeroable::zeroed();
                y.d = f16(0.0);
                continue;
            }

            let iscale = -128.0 / max_scale;
            y.d = f16(1.0 / iscale);
            for (s, &scale) in y.scales.iter_mut().zip(&scales) {
                // C: MIN(127, nearest_int(...)) stored into an int8_t (wrapping).
                *s = nearest_int(iscale * scale).min(127) as i8;
            }

            // Re-quantize against the rounded scales; sub-blocks whose scale rounded to zero
            // keep the quants of the search.
            let d_all = y.d.to_f32();
            for j in 0..QK_K / 16 {
                let d = d_all * y.scales[j] as f32;
                if d == 0.0 {
                    continue;
                }
                for ii in 0..16 {
                    let q = nearest_int(x[16 * j + ii] / d).clamp(-32, 31);
                    l[16 * j + ii] = (q + 32) as i8;
                }
            }

            for h in 0..QK_K / 128 {
                // C works on the int8_t quants promoted to int and stores the low byte.
                let lq = |k: usize, i: usize| l[128 * h + 32 * k + i] as i32;
                for i in 0..32 {
                    let (q1, q2, q3, q4) = (
                        lq(0, i) & 0xf,
                        lq(1, i) & 0xf,
                        lq(2, i) & 0xf,
                        lq(3, i) & 0xf,
                    );
                    y.ql[64 * h + i] = (q1 | (q3 << 4)) as u8;
                    y.ql[64 * h + 32 + i] = (q2 | (q4 << 4)) as u8;
                    y.qh[32 * h + i] = ((lq(0, i) >> 4)
                        | ((lq(1, i) >> 4) << 2)
                        | ((lq(2, i) >> 4) << 4)
                        | ((lq(3, i) >> 4) << 6)) as u8;
                }
            }
        }
    }

    fn dequantize(blocks: &[Self], out: &mut [f32]) {
        for (b, y) in blocks.iter().zip(out.chunks_exact_mut(QK_K)) {
            let d = b.d.to_f32();
            for (e, y) in y.iter_mut().enumerate() {
                let (h, k, i) = (e / 128, (e / 32) % 4, e % 32);
                let low = (b.ql[64 * h + 32 * (k % 2) + i] >> (4 * (k / 2))) & 0xf;
                let high = (b.qh[32 * h + i] >> (2 * k)) & 3;
                let q = (low | (high << 4)) as i32 - 32;
                *y = d * b.scales[e / 16] as f32 * q as f32;
            }
        }
    }
}

impl VecDot for BlockQ6K {
    type Activation = BlockQ8K;

    fn vec_dot(x: &[Self], y: &[BlockQ8K]) -> f32 {
        let mut acc = KDotAcc::default();
        for (x, y) in x.iter().zip(y) {
            // The 6-bit quants minus 32, element order (layout above).
            let mut a = [0i8; QK_K];
            for h in 0..QK_K / 128 {
                let (ql, qh) = (&x.ql[64 * h..64 * h + 64], &x.qh[32 * h..32 * h + 32]);
                let a = &mut a[128 * h..128 * h + 128];
                for i in 0..32 {
                    let q1 = (ql[i] & 0xf) | ((qh[i] & 3) << 4);
                    let q2 = (ql[i + 32] & 0xf) | (((qh[i] >> 2) & 3) << 4);
                    let q3 = (ql[i] >> 4) | (((qh[i] >> 4) & 3) << 4);
                    let q4 = (ql[i + 32] >> 4) | (((qh[i] >> 6) & 3) << 4);
                    a[i] = q1 as i8 - 32;
                    a[i + 32] = q2 as i8 - 32;
                    a[i + 64] = q3 as i8 - 32;
                    a[i + 96] = q4 as i8 - 32;
                }
            }
            let mut scales = [0i32; QK_K / 16];
            for (s, &sc) in scales.iter_mut().zip(&x.scales) {
                *s = sc as i32;
            }
            let aux32 = lane_sums::<16>(&a, &y.qs, &scales);
            acc.add_lanes(f16_to_f32(x.d) * y.d, &aux32);
        }
        acc.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::k_common::test_util;
    use bytemuck::Zeroable;

    #[test]
    fn round_trip_error() {
        let x = test_util::weights_like(64 * QK_K, 6);
        let err = test_util::round_trip::<BlockQ6K>(&x);
        // Measured 0.0215 (this data, seed 6); bound about 10% above.
        assert!(err < 0.0235, "relative RMSE {err}");
    }

    #[test]
    fn zeros() {
        test_util::zeros_round_trip::<BlockQ6K>();
    }

    #[test]
    fn dequantize_by_hand() {
        let mut b = BlockQ6K::zeroed();
        b.d = half::f16::from_f32(0.5);
        b.scales[0] = 3;
        b.scales[14] = -7;
        b.ql[1] = 0x8; // element 1: low 8
        b.qh[1] = 0b10; // element 1: high 2 -> q = 40
                        // Element 128 + 96 + 5 = 229 (sub-block 14): k = 3 -> ql[64 + 32 + 5] high nibble,
                        // qh[32 + 5] bits 6..8.
        b.ql[101] = 0x30; // low 3
        b.qh[37] = 0b01 << 6; // high 1 -> q = 19
        let mut y = [f32::NAN; QK_K];
        BlockQ6K::dequantize(&[b], &mut y);
        assert_eq!(y[1], 0.5 * 3.0 * 8.0);
        assert_eq!(y[0], 0.5 * 3.0 * -32.0);
        assert_eq!(y[229], 0.5 * -7.0 * -13.0);
        assert_eq!(y[224], 0.5 * -7.0 * -32.0);
    }

    #[test]
    fn quantize_by_hand() {
        // Every sub-block is (i - 8) / 4 for i in 0..16: the largest magnitude is -2 (first),
        // so the search starts at iscale = -32 / -2 = 16, where L - 32 = 4 * (i - 8) fits
        // exactly (scale 1/16, which no other candidate beats). Then iscale = -128 / (1/16),
        // d = 1/iscale = -2^-11, every scale is nearest_int(-128) = -128, and d * -128 = 1/16
        // gives back every value.
        let x: Vec<f32> = (0..QK_K).map(|e| ((e % 16) as f32 - 8.0) / 4.0).collect();
        let mut b = [BlockQ6K::zeroed()];
        BlockQ6K::quantize(&x, &mut b);
        assert_eq!(b[0].d.to_f32(), -1.0 / 2048.0);
        assert_eq!(b[0].scales, [-128; 16]);
        let mut y = vec![0.0f32; QK_K];
        BlockQ6K::dequantize(&b, &mut y);
        assert_eq!(x, y);
    }
}
