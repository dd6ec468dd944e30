//! Q2_K: 256 weights per super-block in 16 sub-blocks of 16; 2-bit quants with a 4-bit scale
//! and a 4-bit min per sub-block, and f16 super-block scales for both (2.625 bits per weight).
//!
//! ```text
//! bytes  0..16  scales (16 x u8)   sub-block s: scale = scales[s] & 15, min = scales[s] >> 4
//! bytes 16..80  qs     (64 x u8)   element e = 128*h + 32*k + i (h < 2, k < 4, i < 32):
//!                                  q = (qs[32*h + i] >> 2k) & 3
//! bytes 80..82  d      (f16)       weight = d * scale * q - dmin * min,   s = e / 16
//! bytes 82..84  dmin   (f16)
//! ```
//! Matches ggml's `quantize_row_q2_K_reference` / `dequantize_row_q2_K` (llama.cpp b2757,
//! `QK_K == 256`) bit for bit; the dot with Q8_K activations is ggml's scalar
//! `ggml_vec_dot_q2_K_q8_K`.

use super::k_common::{make_qkx2_quants, Qkx2Search};
use super::q8_k::BlockQ8K;
use super::{f16, f16_to_f32, nearest_int, Block, VecDot};
use crate::{GgmlType, QK_K};

/// ggml's `block_q2_K`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ2K {
    /// Per sub-block of 16: 4-bit scale (low nibble) and 4-bit min (high nibble), `[QK_K / 16]`.
    pub scales: [u8; QK_K / 16],
    /// 2-bit quants, four per byte, `[QK_K / 4]` (layout above).
    pub qs: [u8; QK_K / 4],
    /// Super-block scale for the quantized scales.
    pub d: half::f16,
    /// Super-block scale for the quantized mins.
    pub dmin: half::f16,
}
const _: () = assert!(std::mem::size_of::<BlockQ2K>() == 84);

/// The search ggml's Q2_K reference runs on each sub-block of 16.
const SEARCH: Qkx2Search = Qkx2Search {
    nmax: 3,
    rmin: -0.5,
    rdelta: 0.1,
    nstep: 15,
    use_mad: true,
};

impl Block for BlockQ2K {
    const GGML_TYPE: GgmlType = GgmlType::Q2K;
    const BLOCK_SIZE: usize = QK_K;

    fn quantize(x: &[f32], out: &mut [Self]) {
        const Q4SCALE: f32 = 15.0;
        for (x, y) in x.chunks_exact(QK_K).zip(out.iter_mut()) {
            let mut l = [0u8; QK_K];
            let mut scales = [0.0f32; QK_K / 16];
            let mut mins = [0.0f32; QK_K / 16];
            // As the min is subtracted, scales are never negative.
            let (mut max_scale, mut max_min) = (0.0f32, 0.0f32);
            for j in 0..QK_K / 16 {
                let xs = &x[16 * j..16 * j + 16];
                let mut weights = [0.0f32; 16];
                for (w, &v) in weights.iter_mut().zip(xs) {
                    *w = v.abs();
                }
                let (scale, min) =
                    make_qkx2_quants(xs, &weights, &mut l[16 * j..16 * j + 16], SEARCH);
                scales[j] = scale;
                mins[j] = min;
                if scale > max_scale {
                    max_scale = scale;
                }
                if min > max_min {
                    max_min = min;
                }
            }

            if max_scale > 0.0 {
                let iscale = Q4SCALE / max_scale;
                for (s, &scale) in y.scales.iter_mut().zip(&scales) {
                    // C stores an int into a uint8_t: wrapping.
                    *s = nearest_int(iscale * scale) as u8;
                }
                y.d = f16(max_scale / Q4SCALE);
            } else {
                y.scales = [0; QK_K / 16];
                y.d = f16(0.0);
            }
            if max_min > 0.0 {
                let iscale = Q4SCALE / max_min;
                for (s, &min) in y.scales.iter_mut().zip(&mins) {
                    *s |= (nearest_int(iscale * min) << 4) as u8;
                }
                y.dmin = f16(max_min / Q4SCALE);
            } else {
                y.dmin = f16(0.0);
            }

            // Re-quantize against the rounded scales; sub-blocks whose scale rounded to zero
            // keep the quants of the search.
            let (d_all, dmin_all) = (y.d.to_f32(), y.dmin.to_f32());
            for j in 0..QK_K / 16 {
                let d = d_all * (y.scales[j] & 0xf) as f32;
                if d == 0.0 {
                    continue;
                }
                let dm = dmin_all * (y.scales[j] >> 4) as f32;
                for ii in 0..16 {
                    let q = nearest_int((x[16 * j + ii] + dm) / d);
                    l[16 * j + ii] = q.clamp(0, 3) as u8;
                }
            }

            for h in 0..QK_K / 128 {
                let l = &l[128 * h..128 * h + 128];
                for i in 0..32 {
                    y.qs[32 * h + i] =
                        l[i] | (l[i + 32] << 2) | (l[i + 64] << 4) | (l[i + 96] << 6);
                }
            }
        }
    }

    fn dequantize(blocks: &[Self], out: &mut [f32]) {
        for (b, y) in blocks.iter().zip(out.chunks_exact_mut(QK_K)) {
            let d = b.d.to_f32();
            let min = b.dmin.to_f32();
            for (e, y) in y.iter_mut().enumerate() {
                let (h, k, i) = (e / 128, (e / 32) % 4, e % 32);
                let sc = b.scales[e / 16];
                let dl = d * (sc & 0xf) as f32;
                let ml = min * (sc >> 4) as f32;
                let q = (b.qs[32 * h + i] >> (2 * k)) & 3;
                *y = dl * q as f32 - ml;
            }
        }
    }
}

impl VecDot for BlockQ2K {
    type Activation = BlockQ8K;

    fn vec_dot(x: &[Self], y: &[BlockQ8K]) -> f32 {
        let mut sumf = 0f32;
        for (x, y) in x.iter().zip(y) {
            // The minimum's term, from the activation's 16-element sums.
            let summs: i32 = y
                .bsums
                .iter()
                .zip(&x.scales)
                .map(|(&b, &sc)| b as i32 * (sc >> 4) as i32)
                .sum();
            let dall = y.d * f16_to_f32(x.d);
            let dmin = y.d * f16_to_f32(x.dmin);
            // Σ over sub-blocks s of scale_s · Σ q8·q (one exact integer).
            let mut isum = 0i32;
            for h in 0..QK_K / 128 {
                let q2 = &x.qs[32 * h..32 * h + 32];
                for k in 0..4 {
                    let q8 = &y.qs[128 * h + 32 * k..128 * h + 32 * k + 32];
                    for half in 0..2 {
                        let s = 8 * h + 2 * k + half;
                        let range = 16 * half..16 * half + 16;
                        let isuml: i32 = q2[range.clone()]
                            .iter()
                            .zip(&q8[range])
                            .map(|(&q, &a)| a as i32 * ((q >> (2 * k)) & 3) as i32)
                            .sum();
                        isum += (x.scales[s] & 0xf) as i32 * isuml;
                    }
                }
            }
            // C: sumf += dall * isum - dmin * summs.
            sumf += dall * isum as f32 - dmin * summs as f32;
        }
        sumf
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::k_common::test_util;
    use bytemuck::Zeroable;

    #[test]
    fn round_trip_error() {
        let x = test_util::weights_like(64 * QK_K, 2);
        let err = test_util::round_trip::<BlockQ2K>(&x);
        // Measured 0.3385 (this data, seed 2); bound about 10% above.
        assert!(err < 0.37, "relative RMSE {err}");
    }

    #[test]
    fn zeros() {
        test_util::zeros_round_trip::<BlockQ2K>();
    }

    #[test]
    fn dequantize_by_hand() {
        let mut b = BlockQ2K::zeroed();
        b.d = half::f16::from_f32(0.5);
        b.dmin = half::f16::from_f32(0.25);
        b.scales[0] = 3 | (2 << 4); // elements 0..16: scale 1.5, min 0.5
        b.scales[6] = 4 | (1 << 4); // elements 96..112: scale 2, min 0.25
        b.scales[10] = 15 | (1 << 4); // elements 160..176: scale 7.5, min 0.25
        b.scales[12] = 1 | (4 << 4); // elements 192..208: scale 0.5, min 1
        b.scales[14] = 2; // elements 224..240: scale 1, min 0
        b.qs[1] = 0b11_10_01_00; // elements 1, 33, 65, 97 get q = 0, 1, 2, 3
        b.qs[32 + 3] = 0b01_00_00_00; // element 128 + 96 + 3 = 227 gets q = 1
        b.qs[32 + 5] = 0b00_11_00_00; // element 128 + 64 + 5 = 197 gets q = 3
        b.qs[32 + 8] = 0b00_00_10_00; // element 128 + 32 + 8 = 168 gets q = 2
        let mut y = [f32::NAN; QK_K];
        BlockQ2K::dequantize(&[b], &mut y);
        assert_eq!(y[0], -0.5);
        assert_eq!(y[1], -0.5);
        assert_eq!(y[33], 0.0); // scale 0, min 0 in sub-block 2
        assert_eq!(y[97], 2.0 * 3.0 - 0.25);
        assert_eq!(y[160], -0.25);
        assert_eq!(y[168], 7.5 * 2.0 - 0.25);
        assert_eq!(y[197], 0.5 * 3.0 - 1.0);
        assert_eq!(y[227], 1.0);
    }
}
