//! The building blocks of the Llama graph, written to follow ggml's CPU operators
//! (`ggml_rms_norm`, `ggml_rope` normal mode, `ggml_soft_max_ext`, `ggml_silu`) so results stay
//! close to llama.cpp's.

use orcinus_quant::kernels::act::act_kernels;

/// `out = x / sqrt(mean(x²) + eps) * w` (RMSNorm; the sum of squares accumulates in f64 as
/// ggml does).
pub fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let sum: f64 = x.iter().map(|&v| f64::from(v * v)).sum();
    let mean = (sum / x.len() as f64) as f32;
    let scale = 1.0 / (mean + eps).sqrt();
    for ((o, &v), &g) in out.iter_mut().zip(x).zip(w) {
        *o = (v * scale) * g;
    }
}

/// RoPE angles for one position: `cos`/`sin` of `pos · base^(-2i/n_rot) · freq_scale` for
/// `i < n_rot/2`, computed as ggml does (the angle is multiplied by `theta_scale` step by step
/// in f32).
pub fn rope_cache(
    pos: usize,
    n_rot: usize,
    freq_base: f32,
    freq_scale: f32,
    cos: &mut [f32],
    sin: &mut [f32],
) {
    let theta_scale = freq_base.powf(-2.0 / n_rot as f32);
    let mut theta = pos as f32;
    for i in 0..n_rot / 2 {
        let t = freq_scale * theta;
        cos[i] = t.cos();
        sin[i] = t.sin();
        theta *= theta_scale;
    }
}

/// Rotates adjacent pairs `(x[2i], x[2i+1])` of one head by the cached angles (GGUF's
/// llama-style layout: the converter permuted Q/K so that pairs are adjacent). Dimensions
/// past `2·cos.len()` are left alone.
pub fn rope_apply(head: &mut [f32], cos: &[f32], sin: &[f32]) {
    for (i, (&c, &s)) in cos.iter().zip(sin).enumerate() {
        let (x0, x1) = (head[2 * i], head[2 * i + 1]);
        head[2 * i] = x0 * c - x1 * s;
        head[2 * i + 1] = x0 * s + x1 * c;
    }
}

/// In-place softmax (max-subtracted; −∞ entries become 0) by this CPU's kernel
/// ([`orcinus_quant::kernels::act`]: our own vectorized `exp`; the sum in sixteen f32 lane
/// sums added in f64 at the end, where ggml adds each vector's f32 sum in double). Returns
/// the maximum and the sum of the exponentials, with which the softmaxes of a row's parts
/// merge (see [`orcinus_quant::kernels::act::SoftmaxFn`]).
pub fn softmax(x: &mut [f32]) -> (f32, f64) {
    (act_kernels().softmax)(x)
}

/// SwiGLU gate: `gate[i] = silu(gate[i]) · up[i]`, `silu(x) = x / (1 + e^−x)` as ggml computes
/// it, by this CPU's kernel.
pub fn swiglu(gate: &mut [f32], up: &[f32]) {
    (act_kernels().swiglu)(gate, up)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rms_norm_unit_weight_has_unit_rms() {
        let x: Vec<f32> = (0..64).map(|i| i as f32 - 20.0).collect();
        let mut y = vec![0.0; 64];
        rms_norm(&x, &[1.0; 64], 0.0, &mut y);
        let ms: f32 = y.iter().map(|v| v * v).sum::<f32>() / 64.0;
        assert!((ms - 1.0).abs() < 1e-5);
    }

    #[test]
    fn rope_preserves_norm_and_position_zero_is_identity() {
        let (mut c, mut s) = (vec![0.0; 4], vec![0.0; 4]);
        rope_cache(0, 8, 10000.0, 1.0, &mut c, &mut s);
        let mut h: Vec<f32> = (0..8).map(|i| i as f32).collect();
        let orig = h.clone();
        rope_apply(&mut h, &c, &s);
        assert_eq!(h, orig);
        rope_cache(17, 8, 10000.0, 1.0, &mut c, &mut s);
        rope_apply(&mut h, &c, &s);
        let n0: f32 = orig.iter().map(|v| v * v).sum();
        let n1: f32 = h.iter().map(|v| v * v).sum();
        assert!((n0 - n1).abs() < 1e-3);
        // The first pair turns by exactly 17 radians.
        let want0 = orig[0] * 17f32.cos() - orig[1] * 17f32.sin();
        assert!((h[0] - want0).abs() < 1e-5);
    }

    #[test]
    fn softmax_sums_to_one_and_masks() {
        let mut x = [1.0, 2.0, f32::NEG_INFINITY, 3.0];
        softmax(&mut x);
        assert_eq!(x[2], 0.0);
        assert!((x.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(x[3] > x[1] && x[1] > x[0]);
    }
}
