//! Q3_K: 256 weights per super-block in 16 sub-blocks of 16; signed 3-bit quants (2 low bits
//! plus a high-bit mask) with a signed 6-bit scale per sub-block and one f16 super-block scale
//! (3.4375 bits per weight).
//!
//! ```text
//! bytes   0..32   hmask  (32 x u8)  element e: high bit = (hmask[e % 32] >> (e / 32)) & 1
//! bytes  32..96   qs     (64 x u8)  element e = 128*h + 32*k + i (h < 2, k < 4, i < 32):
//!                                   low bits = (qs[32*h + i] >> 2k) & 3
//! bytes  96..108  scales (12 x u8)  6-bit scale s of sub-block j (offset 32):
//!                                   low 4 bits: j < 8 ? scales[j] & 15 : scales[j - 8] >> 4
//!                                   high 2 bits: (scales[8 + j % 4] >> 2*(j / 4)) & 3
//! bytes 108..110  d      (f16)      weight = d * (s - 32) * (low - (high ? 0 : 4))
//! ```
//! Matches ggml's `quantize_row_q3_K_reference` / `dequantize_row_q3_K` (llama.cpp b2757,
//! `QK_K == 256`) bit for bit.

use super::k_common::{lane_sums, make_q3_quants, KDotAcc};
use super::q8_k::BlockQ8K;
use super::{f16, f16_to_f32, nearest_int, Block, VecDot};
use crate::{GgmlType, QK_K};

/// ggml's `block_q3_K`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ3K {
    /// High bit of each quant, `[QK_K / 8]`: bit `e / 32` of byte `e % 32`.
    pub hmask: [u8; QK_K / 8],
    /// Low 2 bits of each quant, four per byte, `[QK_K / 4]` (layout above).
    pub qs: [u8; QK_K / 4],
    /// Sixteen 6-bit sub-block scales, packed (layout above), `[12]`.
    pub scales: [u8; 12],
    /// Super-block scale.
    pub d: half::f16,
}
const _: () = assert!(std::mem::size_of::<BlockQ3K>() == 110);

/// The signed scale (`-32..=31`) of sub-block `j`.
#[inline]
fn sub_scale(scales: &[u8; 12], j: usize) -> i32 {
    let low = if j < 8 {
        scales[j] & 0xf
    } else {
        scales[j - 8] >> 4
    };
    let high = (scales[8 + j % 4] >> (2 * (j / 4))) & 3;
    (low | (high << 4)) as i32 - 32
}

impl Block for BlockQ3K {
    const GGML_TYPE: GgmlType = GgmlType::Q3K;
    const BLOCK_SIZE: usize = QK_K;

    fn quantize(x: &[f32], out: &mut [Self]) {
        for (x, y) in x.chunks_exact(QK_K).zip(out.iter_mut()) {
            let mut l = [0i8; QK_K];
            let mut scales = [0.0f32; QK_K / 16];
            // The scale of largest magnitude, with its sign (first one wins ties).
            let (mut max_scale, mut amax) = (0.0f32, 0.0f32);
            for j in 0..QK_K / 16 {
                scales[j] = make_q3_quants(
                    4,
                    &x[16 * j..16 * j + 16],
                    &mut l[16 * j..16 * j + 16],
                    true,
                );
                let scale = scales[j].abs();
                if scale > amax {
                    amax = scale;
                    max_scale = scales[j];
                }
            }

            y.scales = [0; 12];
            if max_scale != 0.0 {
                let iscale = -32.0 / max_scale;
                for (j, &scale) in scales.iter().enumerate() {
                    // C: `int8_t l = nearest_int(...)` (wrapping), then clamped and offset.
                    let q = (nearest_int(iscale * scale) as i8 as i32).clamp(-32, 31) + 32;
                    if j < 8 {
                        y.scales[j] = (q & 0xf) as u8;
                    } else {
                        y.scales[j - 8] |= ((q & 0xf) << 4) as u8;
                    }
                    y.scales[j % 4 + 8] |= ((q >> 4) << (2 * (j / 4))) as u8;
                }
                y.d = f16(1.0 / iscale);
            } else {
                y.d = f16(0.0);
            }

            // Re-quantize against the rounded scales; sub-blocks whose scale rounded to zero
            // keep the quants of the search.
            let d_all = y.d.to_f32();
            for j in 0..QK_K / 16 {
                let d = d_all * sub_scale(&y.scales, j) as f32;
                if d == 0.0 {
                    continue;
                }
                for ii in 0..16 {
                    let q = nearest_int(x[16 * j + ii] / d).clamp(-4, 3);
                    l[16 * j + ii] = (q + 4) as i8;
                }
            }

            // The high bit of element e goes to bit e / 32 of hmask[e % 32].
            y.hmask = [0; QK_K / 8];
            for (e, q) in l.iter_mut().enumerate() {
                if *q > 3 {
                    y.hmask[e % (QK_K / 8)] |= 1 << (e / (QK_K / 8));
                    *q -= 4;
                }
            }
            for h in 0..QK_K / 128 {
                let l = &l[128 * h..128 * h + 128];
                for i in 0..32 {
                    // C packs ints and stores the low byte.
                    let packed = l[i] as i32
                        | (l[i + 32] as i32) << 2
                        | (l[i + 64] as i32) << 4
                        | (l[i + 96] as i32) << 6;
                    y.qs[32 * h + i] = packed as u8;
                }
            }
        }
    }

    fn dequantize(blocks: &[Self], out: &mut [f32]) {
        for (b, y) in blocks.iter().zip(out.chunks_exact_mut(QK_K)) {
            let d_all = b.d.to_f32();
            for (j, y) in y.chunks_exact_mut(16).enumerate() {
                let dl = d_all * sub_scale(&b.scales, j) as f32;
                for (ii, y) in y.iter_mut().enumerate() {
                    let e = 16 * j + ii;
                    let (h, k, i) = (e / 128, (e / 32) % 4, e % 32);
                    let low = ((b.qs[32 * h + i] >> (2 * k)) & 3) as i32;
                    let high = b.hmask[i] & (1 << (e / 32)) != 0;
                    *y = dl * (low - if high { 0 } else { 4 }) as f32;
                }
            }
        }
    }
}

impl VecDot for BlockQ3K {
    type Activation = BlockQ8K;

    fn vec_dot(x: &[Self], y: &[BlockQ8K]) -> f32 {
        let mut acc = KDotAcc::default();
        for (x, y) in x.iter().zip(y) {
            // The signed 3-bit quants, element order.
            let mut a = [0i8; QK_K];
            for (g, a) in a.chunks_exact_mut(32).enumerate() {
                let (q3, shift) = (&x.qs[32 * (g / 4)..32 * (g / 4) + 32], 2 * (g % 4));
                for ((a, &q), &hm) in a.iter_mut().zip(q3).zip(&x.hmask) {
                    let low = ((q >> shift) & 3) as i8;
                    *a = low - if hm & (1 << g) != 0 { 0 } else { 4 };
                }
            }
            let mut scales = [0i32; QK_K / 16];
            for (j, s) in scales.iter_mut().enumerate() {
                *s = sub_scale(&x.scales, j);
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
        let x = test_util::weights_like(64 * QK_K, 3);
        let err = test_util::round_trip::<BlockQ3K>(&x);
        // Measured 0.1729 (this data, seed 3); bound about 10% above.
        assert!(err < 0.19, "relative RMSE {err}");
    }

    #[test]
    fn zeros() {
        test_util::zeros_round_trip::<BlockQ3K>();
    }

    #[test]
    fn dequantize_by_hand() {
        let mut b = BlockQ3K::zeroed();
        b.d = half::f16::from_f32(0.5);
        // Sub-block 0: s = 32 + 3 (low 3, high 2 -> 0b10_0011 = 35).
        b.scales[0] = 3;
        b.scales[8] = 0b10;
        // Sub-block 13 (elements 208..224): s = 32 - 5 = 27 = 0b01_1011.
        b.scales[13 - 8] = 0xb << 4;
        b.scales[8 + 13 % 4] = 0b01 << (2 * (13 / 4));
        b.qs[2] = 0b10; // element 2: low = 2
        b.hmask[2] = 1; // element 2: high bit set -> q = 2
        b.qs[32 + 17] = 0b11 << 4; // element 128 + 64 + 17 = 209: low = 3
        b.hmask[17] = 1 << (209 / 32); // element 209: high bit set -> q = 3
        let mut y = [f32::NAN; QK_K];
        BlockQ3K::dequantize(&[b], &mut y);
        assert_eq!(y[2], 0.5 * 3.0 * 2.0);
        assert_eq!(y[0], 0.5 * 3.0 * -4.0);
        assert_eq!(y[209], 0.5 * -5.0 * 3.0);
        assert_eq!(y[208], 0.5 * -5.0 * -4.0);
        assert_eq!(y[16], 0.5 * -32.0 * -4.0); // scale byte 0: s = 0
    }
}
