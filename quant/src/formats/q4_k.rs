//! Q4_K: 256 weights per super-block in 8 sub-blocks of 32; 4-bit unsigned quants with a
//! 6-bit scale and a 6-bit min per sub-block, and f16 super-block scales for both
//! (4.5 bits per weight).
//!
//! ```text
//! bytes  0..2    d      (f16)
//! bytes  2..4    dmin   (f16)
//! bytes  4..16   scales (12 x u8)   6-bit scale sc and min m of sub-block j, packed as in
//!                                   `get_scale_min_k4` (see `k_common`)
//! bytes 16..144  qs     (128 x u8)  element e = 64*c + 32*k + i (c < 4, k < 2, i < 32):
//!                                   q = (qs[32*c + i] >> 4k) & 15
//! weight = d * sc * q - dmin * m,   j = e / 32
//! ```
//! Matches ggml's `quantize_row_q4_K_reference` / `dequantize_row_q4_K` (llama.cpp b2757,
//! `QK_K == 256`) bit for bit; the dot with Q8_K activations is ggml's scalar
//! `ggml_vec_dot_q4_K_q8_K`.

use super::k_common::{
    get_scale_min_k4, lane_sums, min_term, quantize_scale_min_k4, KDotAcc, K_SCALE_SIZE,
};
use super::q8_k::BlockQ8K;
use super::{f16_to_f32, Block, VecDot};
use crate::{GgmlType, QK_K};

/// ggml's `block_q4_K`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ4K {
    /// Super-block scale for the quantized scales.
    pub d: half::f16,
    /// Super-block scale for the quantized mins.
    pub dmin: half::f16,
    /// Eight 6-bit scales and eight 6-bit mins, packed, `[12]`.
    pub scales: [u8; K_SCALE_SIZE],
    /// 4-bit quants, two per byte, `[QK_K / 2]` (layout above).
    pub qs: [u8; QK_K / 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ4K>() == 144);

impl Block for BlockQ4K {
    const GGML_TYPE: GgmlType = GgmlType::Q4K;
    const BLOCK_SIZE: usize = QK_K;

    fn quantize(x: &[f32], out: &mut [Self]) {
        for (x, y) in x.chunks_exact(QK_K).zip(out.iter_mut()) {
            let sb = quantize_scale_min_k4(x, 15, -1.0, 20);
            y.d = sb.d;
            y.dmin = sb.dmin;
            y.scales = sb.scales;
            for c in 0..QK_K / 64 {
                let l = &sb.l[64 * c..64 * c + 64];
                for i in 0..32 {
                    y.qs[32 * c + i] = l[i] | (l[i + 32] << 4);
                }
            }
        }
    }

    fn dequantize(blocks: &[Self], out: &mut [f32]) {
        for (b, y) in blocks.iter().zip(out.chunks_exact_mut(QK_K)) {
            let d = b.d.to_f32();
            let min = b.dmin.to_f32();
            for (j, y) in y.chunks_exact_mut(32).enumerate() {
                let (sc, m) = get_scale_min_k4(j, &b.scales);
                let d1 = d * sc as f32;
                let m1 = min * m as f32;
                let (c, shift) = (j / 2, 4 * (j % 2));
                for (y, &q) in y.iter_mut().zip(&b.qs[32 * c..32 * c + 32]) {
                    *y = d1 * ((q >> shift) & 0xf) as f32 - m1;
                }
            }
        }
    }
}

impl VecDot for BlockQ4K {
    type Activation = BlockQ8K;

    fn vec_dot(x: &[Self], y: &[BlockQ8K]) -> f32 {
        let mut acc = KDotAcc::default();
        for (x, y) in x.iter().zip(y) {
            let mut a = [0i8; QK_K];
            for (c, q4) in x.qs.chunks_exact(32).enumerate() {
                for (i, &q) in q4.iter().enumerate() {
                    a[64 * c + i] = (q & 0xf) as i8;
                    a[64 * c + 32 + i] = (q >> 4) as i8;
                }
            }
            let (mut scales, mut mins) = ([0i32; 8], [0i32; 8]);
            for j in 0..8 {
                let (sc, m) = get_scale_min_k4(j, &x.scales);
                scales[j] = sc as i32;
                mins[j] = m as i32;
            }
            let sumi = min_term(&y.bsums, &mins);
            let aux32 = lane_sums::<32>(&a, &y.qs, &scales);
            acc.add_lanes(f16_to_f32(x.d) * y.d, &aux32);
            acc.sub_min(f16_to_f32(x.dmin) * y.d, sumi);
        }
        acc.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::k_common::{pack_scale_min_k4, test_util};
    use bytemuck::Zeroable;

    #[test]
    fn round_trip_error() {
        let x = test_util::weights_like(64 * QK_K, 4);
        let err = test_util::round_trip::<BlockQ4K>(&x);
        // Measured 0.0735 (this data, seed 4); bound about 10% above.
        assert!(err < 0.081, "relative RMSE {err}");
    }

    #[test]
    fn zeros() {
        test_util::zeros_round_trip::<BlockQ4K>();
    }

    #[test]
    fn dequantize_by_hand() {
        let mut b = BlockQ4K::zeroed();
        b.d = half::f16::from_f32(0.5);
        b.dmin = half::f16::from_f32(0.25);
        // Sub-block 0: sc 2, m 3. Sub-block 5: sc 40, m 17 (high bits in bytes 1 and 5).
        b.scales = pack_scale_min_k4(&[2, 0, 0, 0, 0, 40, 0, 0], &[3, 0, 0, 0, 0, 17, 0, 0]);
        b.qs[7] = 0x5; // element 7: q = 5
        b.qs[64 + 9] = 0xc0; // element 2*64 + 32 + 9 = 169 (sub-block 5): q = 12
        let mut y = [f32::NAN; QK_K];
        BlockQ4K::dequantize(&[b], &mut y);
        assert_eq!(y[7], 0.5 * 2.0 * 5.0 - 0.25 * 3.0);
        assert_eq!(y[0], -0.75);
        assert_eq!(y[169], 0.5 * 40.0 * 12.0 - 0.25 * 17.0);
        assert_eq!(y[160], -0.25 * 17.0);
        assert_eq!(y[40], 0.0);
    }

    #[test]
    fn quantize_reproduces_a_grid() {
        // Each sub-block is q * 63/1024 for q in 0..16: the search finds scale 63/1024 and
        // min 0 (up to rounding), the 6-bit scales are all 63 and d = 1/1024 is exact in f16,
        // so every value comes back exactly.
        let x: Vec<f32> = (0..QK_K).map(|e| (e % 16) as f32 * 63.0 / 1024.0).collect();
        let mut b = [BlockQ4K::zeroed()];
        BlockQ4K::quantize(&x, &mut b);
        assert_eq!(b[0].d.to_f32(), 1.0 / 1024.0);
        let mut y = vec![0.0f32; QK_K];
        BlockQ4K::dequantize(&b, &mut y);
        assert_eq!(x, y);
    }
}
