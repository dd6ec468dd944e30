//! Scale searches shared by the K-quant reference quantizers.
//!
//! Each function is a transcription of the `static` helper of the same name in ggml's
//! `ggml-quants.c` (llama.cpp b2757). They must give the same bits as the C, so float
//! arithmetic is done in `f32`, in the C's order, with no fused multiply-add (the C is built
//! with `-ffp-contract=off`). `L` arrays keep ggml's element types (`i8` where C has `int8_t`).
//!
//! ggml's `make_qkx1_quants` is not here: in b2757 no reference quantizer calls it (its calls
//! in Q4_K/Q5_K are commented out in favour of `make_qkx2_quants`).

use super::{f16, nearest_int};
use crate::QK_K;

/// ggml's `make_qx_quants`: symmetric quantization of `x` to `L[i] in [0, 2 * nmax)`
/// (stored with offset `nmax`), returning the scale.
///
/// `rmse_type` selects the per-element weight (1: `x²`, 2: 1, 3: `|x|`, else `sqrt|x|`;
/// `qw` overrides it); 0 skips the search, a negative value returns after the first pass.
/// The K-quant references call it with `rmse_type = 1`, `qw = None` (Q6_K).
pub(crate) fn make_qx_quants(
    nmax: i32,
    x: &[f32],
    l_out: &mut [i8],
    mut rmse_type: i32,
    qw: Option<&[f32]>,
) -> f32 {
    let n = x.len();
    debug_assert_eq!(l_out.len(), n);
    let (mut max, mut amax) = (0.0f32, 0.0f32);
    for &v in x {
        let ax = v.abs();
        if ax > amax {
            amax = ax;
            max = v;
        }
    }
    if amax < 1e-30 {
        l_out.fill(0);
        return 0.0;
    }
    let nmax_f = nmax as f32;
    let mut iscale = -nmax_f / max;
    if rmse_type == 0 {
        for (l, &v) in l_out.iter_mut().zip(x) {
            let q = nearest_int(iscale * v);
            *l = (nmax + q.clamp(-nmax, nmax - 1)) as i8;
        }
        return 1.0 / iscale;
    }
    let return_early = rmse_type < 0;
    if return_early {
        rmse_type = -rmse_type;
    }
    let weight = |i: usize| -> f32 {
        match qw {
            Some(qw) => qw[i],
            None => match rmse_type {
                1 => x[i] * x[i],
                2 => 1.0,
                3 => x[i].abs(),
                _ => x[i].abs().sqrt(),
            },
        }
    };
    let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
    for i in 0..n {
        let q = nearest_int(iscale * x[i]).clamp(-nmax, nmax - 1);
        l_out[i] = (q + nmax) as i8;
        let w = weight(i);
        let qf = q as f32;
        sumlx += w * x[i] * qf;
        suml2 += w * qf * qf;
    }
    let mut scale = sumlx / suml2;
    if return_early {
        return if suml2 > 0.0 {
            0.5 * (scale + 1.0 / iscale)
        } else {
            1.0 / iscale
        };
    }
    let mut best = scale * sumlx;
    for is in -9..=9 {
        if is == 0 {
            continue;
        }
        iscale = -(nmax_f + 0.1 * is as f32) / max;
        sumlx = 0.0;
        suml2 = 0.0;
        for (i, &v) in x.iter().enumerate() {
            let q = nearest_int(iscale * v).clamp(-nmax, nmax - 1) as f32;
            let w = weight(i);
            sumlx += w * v * q;
            suml2 += w * q * q;
        }
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            for (l, &v) in l_out.iter_mut().zip(x) {
                let q = nearest_int(iscale * v);
                *l = (nmax + q.clamp(-nmax, nmax - 1)) as i8;
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// ggml's `make_q3_quants`: symmetric quantization of `x` to `L[i] in [0, 2 * nmax)` (offset
/// `nmax`), with `do_rmse` a greedy per-element refinement weighted by `x²` (at most 5 sweeps).
/// Returns the scale. An all-zero `x` gives `L = 0` (not `nmax`) and scale 0, as in C.
pub(crate) fn make_q3_quants(nmax: i32, x: &[f32], l_out: &mut [i8], do_rmse: bool) -> f32 {
    debug_assert_eq!(l_out.len(), x.len());
    let (mut max, mut amax) = (0.0f32, 0.0f32);
    for &v in x {
        let ax = v.abs();
        if ax > amax {
            amax = ax;
            max = v;
        }
    }
    if amax == 0.0 {
        l_out.fill(0);
        return 0.0;
    }
    let iscale = -(nmax as f32) / max;
    if !do_rmse {
        for (l, &v) in l_out.iter_mut().zip(x) {
            *l = (nearest_int(iscale * v).clamp(-nmax, nmax - 1) + nmax) as i8;
        }
        return 1.0 / iscale;
    }
    let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
    for (l, &v) in l_out.iter_mut().zip(x) {
        let q = nearest_int(iscale * v).clamp(-nmax, nmax - 1);
        *l = q as i8;
        let w = v * v;
        let qf = q as f32;
        sumlx += w * v * qf;
        suml2 += w * qf * qf;
    }
    for _ in 0..5 {
        let mut n_changed = 0;
        for (l, &v) in l_out.iter_mut().zip(x) {
            let w = v * v;
            let lf = *l as f32;
            let mut slx = sumlx - w * v * lf;
            if slx > 0.0 {
                let mut sl2 = suml2 - w * lf * lf;
                let new_l = nearest_int(v * sl2 / slx).clamp(-nmax, nmax - 1);
                if new_l != *l as i32 {
                    let nf = new_l as f32;
                    slx += w * v * nf;
                    sl2 += w * nf * nf;
                    if sl2 > 0.0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                        *l = new_l as i8;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed += 1;
                    }
                }
            }
        }
        if n_changed == 0 {
            break;
        }
    }
    for l in l_out.iter_mut() {
        *l += nmax as i8;
    }
    sumlx / suml2
}

/// Parameters of the scale sweep in [`make_qkx2_quants`]: it tries the inverse scales
/// `(rmin + rdelta * is + nmax) / (max - min)` for `is in 0..=nstep`.
#[derive(Clone, Copy)]
pub(crate) struct Qkx2Search {
    /// Largest quant value (`L in [0, nmax]`).
    pub nmax: i32,
    /// First offset from `nmax` tried.
    pub rmin: f32,
    /// Step between offsets.
    pub rdelta: f32,
    /// Number of steps (`nstep + 1` tries); below 1 the sweep is skipped.
    pub nstep: i32,
    /// Weighted absolute error when true, weighted squared error otherwise.
    pub use_mad: bool,
}

/// ggml's `make_qkx2_quants`: affine quantization `x ≈ scale * L - the_min`, `L in [0, nmax]`,
/// minimizing the weighted error over a sweep of scales with a least-squares fit of scale and
/// min at each. Writes `L` (one per element of `x`, at most 32) and returns `(scale, the_min)`;
/// `the_min >= 0` is the negated offset, as ggml stores it.
pub(crate) fn make_qkx2_quants(
    x: &[f32],
    weights: &[f32],
    l_out: &mut [u8],
    p: Qkx2Search,
) -> (f32, f32) {
    let n = x.len();
    debug_assert!(n <= 32 && weights.len() == n && l_out.len() == n);
    let nmax = p.nmax;
    let (mut min, mut max) = (x[0], x[0]);
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..n {
        if x[i] < min {
            min = x[i];
        }
        if x[i] > max {
            max = x[i];
        }
        let w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        l_out.fill(0);
        return (0.0, -min);
    }
    let mut iscale = nmax as f32 / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_mad = 0.0f32;
    for i in 0..n {
        let q = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
        l_out[i] = q as u8;
        let diff = scale * q as f32 + min - x[i];
        let diff = if p.use_mad { diff.abs() } else { diff * diff };
        best_mad += weights[i] * diff;
    }
    if p.nstep < 1 {
        return (scale, -min);
    }
    let mut laux = [0u8; 32];
    let laux = &mut laux[..n];
    for is in 0..=p.nstep {
        iscale = (p.rmin + p.rdelta * is as f32 + nmax as f32) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0.0f32, 0.0f32, 0.0f32);
        for i in 0..n {
            let q = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
            laux[i] = q as u8;
            let w = weights[i];
            let qf = q as f32;
            sum_l += w * qf;
            sum_l2 += w * qf * qf;
            sum_xl += w * qf * x[i];
        }
        let det = sum_w * sum_l2 - sum_l * sum_l;
        if det > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut mad = 0.0f32;
            for i in 0..n {
                let diff = this_scale * laux[i] as f32 + this_min - x[i];
                let diff = if p.use_mad { diff.abs() } else { diff * diff };
                mad += weights[i] * diff;
            }
            if mad < best_mad {
                l_out.copy_from_slice(laux);
                best_mad = mad;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// Bytes of packed 6-bit scales and mins in Q4_K/Q5_K (ggml's `K_SCALE_SIZE`).
pub(crate) const K_SCALE_SIZE: usize = 12;

/// ggml's `get_scale_min_k4`: the 6-bit scale and min of sub-block `j` (0..8).
///
/// ```text
/// byte 0..4   sc[j] (bits 0..6) | sc[j+4] >> 4 (bits 6..8)
/// byte 4..8   m[j]  (bits 0..6) | m[j+4]  >> 4 (bits 6..8)
/// byte 8..12  sc[j+4] & 15 (bits 0..4) | (m[j+4] & 15) << 4
/// ```
#[inline]
pub(crate) fn get_scale_min_k4(j: usize, q: &[u8; K_SCALE_SIZE]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        let d = (q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4);
        let m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
        (d, m)
    }
}

/// Packs eight 6-bit scales and mins the way `get_scale_min_k4` reads them (the packing loop
/// of `quantize_row_q4_K_reference`).
pub(crate) fn pack_scale_min_k4(ls: &[u8; 8], lm: &[u8; 8]) -> [u8; K_SCALE_SIZE] {
    let mut q = [0u8; K_SCALE_SIZE];
    for j in 0..8 {
        if j < 4 {
            q[j] = ls[j];
            q[j + 4] = lm[j];
        } else {
            q[j + 4] = (ls[j] & 0xf) | ((lm[j] & 0xf) << 4);
            q[j - 4] |= (ls[j] >> 4) << 6;
            q[j] |= (lm[j] >> 4) << 6;
        }
    }
    q
}

/// The result of [`quantize_scale_min_k4`]: a Q4_K/Q5_K super-block before its quants are
/// bit-packed.
pub(crate) struct ScaleMinK4 {
    /// Super-block scale of the scales.
    pub d: half::f16,
    /// Super-block scale of the mins.
    pub dmin: half::f16,
    /// Packed 6-bit scales and mins.
    pub scales: [u8; K_SCALE_SIZE],
    /// Quants, `[QK_K]`, each in `0..=nmax`.
    pub l: [u8; QK_K],
}

/// The part of `quantize_row_q4_K_reference` and `quantize_row_q5_K_reference` that they share
/// (`QK_K == 256`): per 32-element sub-block, weights `sqrt(mean(x²)) + |x|` and
/// [`make_qkx2_quants`] (`rdelta = 0.1`, squared error); scales and mins to 6 bits against the
/// largest; then every element re-quantized against the f16-rounded super-block scales.
///
/// Q4_K passes `nmax = 15, rmin = -1, nstep = 20`; Q5_K `nmax = 31, rmin = -0.5, nstep = 15`.
pub(crate) fn quantize_scale_min_k4(x: &[f32], nmax: i32, rmin: f32, nstep: i32) -> ScaleMinK4 {
    debug_assert_eq!(x.len(), QK_K);
    let search = Qkx2Search {
        nmax,
        rmin,
        rdelta: 0.1,
        nstep,
        use_mad: false,
    };
    let mut l = [0u8; QK_K];
    let mut scales = [0.0f32; QK_K / 32];
    let mut mins = [0.0f32; QK_K / 32];
    let (mut max_scale, mut max_min) = (0.0f32, 0.0f32);
    for j in 0..QK_K / 32 {
        let xs = &x[32 * j..32 * j + 32];
        let mut sum_x2 = 0.0f32;
        for &v in xs {
            sum_x2 += v * v;
        }
        let av_x = (sum_x2 / 32.0).sqrt();
        let mut weights = [0.0f32; 32];
        for (w, &v) in weights.iter_mut().zip(xs) {
            *w = av_x + v.abs();
        }
        let (scale, min) = make_qkx2_quants(xs, &weights, &mut l[32 * j..32 * j + 32], search);
        scales[j] = scale;
        mins[j] = min;
        if scale > max_scale {
            max_scale = scale;
        }
        if min > max_min {
            max_min = min;
        }
    }

    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let mut ls = [0u8; 8];
    let mut lm = [0u8; 8];
    for j in 0..QK_K / 32 {
        // C: `uint8_t ls = nearest_int(...)` (a wrapping conversion), then MIN(63, ls).
        ls[j] = (nearest_int(inv_scale * scales[j]) as u8).min(63);
        lm[j] = (nearest_int(inv_min * mins[j]) as u8).min(63);
    }
    let packed = pack_scale_min_k4(&ls, &lm);
    let d = f16(max_scale / 63.0);
    let dmin = f16(max_min / 63.0);

    for j in 0..QK_K / 32 {
        let (sc, m) = get_scale_min_k4(j, &packed);
        let dj = d.to_f32() * sc as f32;
        if dj == 0.0 {
            continue;
        }
        let dm = dmin.to_f32() * m as f32;
        for ii in 0..32 {
            let q = nearest_int((x[32 * j + ii] + dm) / dj).clamp(0, nmax);
            l[32 * j + ii] = q as u8;
        }
    }
    ScaleMinK4 {
        d,
        dmin,
        scales: packed,
        l,
    }
}

/// The eight integer lanes of ggml's scalar K-quant dot products (`aux32` in
/// `ggml_vec_dot_q{3,4,5,6}_K_q8_K`): `lanes[l] = Σ scale[e / SUB] · a[e] · q8[e]` over the
/// elements `e ≡ l (mod 8)` of one super-block, `a` the weight quants as signed integers and
/// `SUB` the sub-block length (16 or 32).
///
/// Integer sums are exact, so only the lane split matters for the bits of the result, not the
/// order in which C adds the 16-bit products; this order is the one compilers vectorize.
#[inline]
pub(crate) fn lane_sums<const SUB: usize>(
    a: &[i8; QK_K],
    q8: &[i8; QK_K],
    scales: &[i32],
) -> [i32; 8] {
    let mut aux32 = [0i32; 8];
    for ((a, q8), &scale) in a.chunks_exact(SUB).zip(q8.chunks_exact(SUB)).zip(scales) {
        let mut lanes = [0i32; 8];
        for (a, q8) in a.chunks_exact(8).zip(q8.chunks_exact(8)) {
            for l in 0..8 {
                lanes[l] += a[l] as i32 * q8[l] as i32;
            }
        }
        for l in 0..8 {
            aux32[l] += scale * lanes[l];
        }
    }
    aux32
}

/// The float accumulators of ggml's scalar K-quant dots: eight lane sums `sums[l] += d · aux32[l]`
/// per super-block, a running `sumf` that the minimum terms are taken from, and at the end
/// `sumf += sums[0]; ...; sumf += sums[7]`.
#[derive(Default)]
pub(crate) struct KDotAcc {
    sums: [f32; 8],
    sumf: f32,
}

impl KDotAcc {
    /// `sums[l] += d * aux32[l]` for each lane.
    #[inline]
    pub(crate) fn add_lanes(&mut self, d: f32, aux32: &[i32; 8]) {
        for (s, &a) in self.sums.iter_mut().zip(aux32) {
            *s += d * a as f32;
        }
    }

    /// `sumf -= dmin * sumi` (the minimum's term of Q4_K and Q5_K).
    #[inline]
    pub(crate) fn sub_min(&mut self, dmin: f32, sumi: i32) {
        self.sumf -= dmin * sumi as f32;
    }

    /// The dot product: the lanes added to `sumf` in order.
    #[inline]
    pub(crate) fn finish(self) -> f32 {
        let mut sumf = self.sumf;
        for s in self.sums {
            sumf += s;
        }
        sumf
    }
}

/// `Σ bsums[j] · mins[j / 2]`: the minimum's term of a Q4_K/Q5_K super-block against a Q8_K one
/// (each 6-bit min covers two 16-element sums).
#[inline]
pub(crate) fn min_term(bsums: &[i16; QK_K / 16], mins: &[i32; 8]) -> i32 {
    bsums
        .iter()
        .enumerate()
        .map(|(j, &b)| b as i32 * mins[j / 2])
        .sum()
}

#[cfg(test)]
pub(crate) mod test_util {
    //! Shared test data for the K-quant unit tests.
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// `n` deterministic values: roughly Gaussian (sum of four uniforms) with a per-32 scale
    /// that varies over two decades, and an occasional outlier, like real weight rows.
    pub(crate) fn weights_like(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut out = Vec::with_capacity(n);
        let mut scale = 1.0f32;
        for i in 0..n {
            if i % 32 == 0 {
                scale = 10f32.powf(rng.gen_range(-1.0..1.0));
            }
            let g: f32 = (0..4).map(|_| rng.gen_range(-1.0f32..1.0)).sum::<f32>() * 0.866;
            let outlier = if rng.gen_range(0..64) == 0 { 4.0 } else { 1.0 };
            out.push(g * scale * outlier);
        }
        out
    }

    /// RMS of `a - b` divided by the RMS of `a`.
    pub(crate) fn relative_rmse(a: &[f32], b: &[f32]) -> f64 {
        let (mut err, mut sig) = (0.0f64, 0.0f64);
        for (&x, &y) in a.iter().zip(b) {
            err += ((x - y) as f64).powi(2);
            sig += (x as f64).powi(2);
        }
        (err / sig).sqrt()
    }

    /// Quantizes `x` to blocks of `B`, dequantizes, and returns the relative RMSE.
    pub(crate) fn round_trip<B: super::super::Block>(x: &[f32]) -> f64 {
        let mut blocks = vec![B::zeroed(); x.len() / B::BLOCK_SIZE];
        B::quantize(x, &mut blocks);
        let mut y = vec![0.0f32; x.len()];
        B::dequantize(&blocks, &mut y);
        relative_rmse(x, &y)
    }

    /// Quantizes zeros and checks they come back as zeros (either sign).
    pub(crate) fn zeros_round_trip<B: super::super::Block>() {
        let x = vec![0.0f32; 2 * B::BLOCK_SIZE];
        // Fill with garbage first: quantize must write every byte it reads back.
        let mut blocks = vec![B::zeroed(); 2];
        bytemuck::cast_slice_mut::<B, u8>(&mut blocks).fill(0xa5);
        B::quantize(&x, &mut blocks);
        let mut y = vec![1.0f32; x.len()];
        B::dequantize(&blocks, &mut y);
        assert!(y.iter().all(|&v| v == 0.0), "{y:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_min_k4_packing_round_trips() {
        // Values above 15 exercise the high bits stored in bytes 0..8.
        let ls = [0, 17, 33, 63, 1, 16, 47, 62];
        let lm = [63, 2, 48, 15, 61, 32, 0, 31];
        let q = pack_scale_min_k4(&ls, &lm);
        for j in 0..8 {
            assert_eq!(get_scale_min_k4(j, &q), (ls[j], lm[j]), "sub-block {j}");
        }
        // Hand-checked bytes: j = 4 has ls = 1, lm = 61 (0b11_1101).
        assert_eq!(q[8], 0x1 | (0xd << 4));
        assert_eq!(q[4] >> 6, 61 >> 4);
    }

    #[test]
    fn qx_quants_exact_grid() {
        // On a grid the first pass fits exactly (scale -0.5, L - 4 = x / scale), no other
        // candidate scale does better, and all sums are exact in f32.
        let x = [2.0f32, 1.5, 1.0, 0.5, 0.0, -0.5, -1.0, -1.5];
        let mut l = [0i8; 8];
        let scale = make_qx_quants(4, &x, &mut l, 1, None);
        let back: Vec<f32> = l.iter().map(|&q| scale * (q as i32 - 4) as f32).collect();
        assert_eq!(back, x);
        assert_eq!(scale, -0.5);
    }

    #[test]
    fn q3_quants_all_zero() {
        let mut l = [7i8; 16];
        assert_eq!(make_q3_quants(4, &[0.0; 16], &mut l, true), 0.0);
        assert_eq!(l, [0; 16]);
    }

    #[test]
    fn qkx2_constant_positive() {
        // min is clamped to 0, so a positive constant block is quantized as scale * nmax.
        let x = [3.0f32; 16];
        let w = [1.0f32; 16];
        let mut l = [0u8; 16];
        let p = Qkx2Search {
            nmax: 3,
            rmin: -0.5,
            rdelta: 0.1,
            nstep: 15,
            use_mad: true,
        };
        let (scale, min) = make_qkx2_quants(&x, &w, &mut l, p);
        assert_eq!(min, 0.0);
        for &q in &l {
            assert_eq!(scale * q as f32, 3.0);
        }
    }
}
