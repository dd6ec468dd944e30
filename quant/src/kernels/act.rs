//! Elementwise f32 kernels built on one exponential: the softmax of attention scores and the
//! SwiGLU gate of the feed-forward block. Chosen per [`Isa`] like the dot products.
//!
//! [`exp`] is a fused-multiply-add formula (round `x·log2 e` to `n`, reduce by `n·ln 2` in two
//! parts, a degree-7 polynomial, scale by `2ⁿ`); every SIMD version runs the same operations in
//! the same order, so each instruction set gives the scalar reference's bits, and the softmax
//! sums in sixteen fixed lanes, so its normalizer has the same bits too. The scalar kernels
//! are the reference the SIMD ones are tested against; they replace libm's `expf`, which was
//! ~8–10% of a SmolLM2 prompt (a call per score and per gate element).

use std::sync::OnceLock;

use super::{available_isas, isa, Isa};

/// In-place softmax: `x[i] = e^(x[i] − max) / Σ_j e^(x[j] − max)` (−∞ entries become 0).
/// Returns `max` and the sum `Σ_j e^(x[j] − max)` (sixteen f32 lane sums added in f64), with
/// which the softmaxes of a row's parts merge into the row's (attention split across
/// threads).
pub type SoftmaxFn = fn(x: &mut [f32]) -> (f32, f64);

/// SwiGLU: `gate[i] = silu(gate[i]) · up[i]` with `silu(g) = g / (1 + e^−g)`.
pub type SwigluFn = fn(gate: &mut [f32], up: &[f32]);

/// The elementwise kernels of one instruction set.
#[derive(Clone, Copy, Debug)]
pub struct ActKernels {
    /// See [`SoftmaxFn`].
    pub softmax: SoftmaxFn,
    /// See [`SwigluFn`].
    pub swiglu: SwigluFn,
}

/// The portable kernels.
pub const SCALAR: ActKernels = ActKernels {
    softmax: softmax_scalar,
    swiglu: swiglu_scalar,
};

/// The kernels for `isa` (the scalar ones for an `isa` this CPU lacks).
pub fn act_kernels_for(isa: Isa) -> ActKernels {
    if !available_isas().contains(&isa) {
        return SCALAR;
    }
    #[cfg(target_arch = "x86_64")]
    {
        super::x86::act_kernels(isa).unwrap_or(SCALAR)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        SCALAR
    }
}

/// The kernels for [`isa()`] (chosen once).
pub fn act_kernels() -> ActKernels {
    static K: OnceLock<ActKernels> = OnceLock::new();
    *K.get_or_init(|| act_kernels_for(isa()))
}

// The constants of `exp`, shared with the SIMD versions.
/// `log2 e`.
pub(crate) const LOG2E: f32 = std::f32::consts::LOG2_E;
/// `1.5 · 2²³`: added and subtracted, it rounds `x·log2 e` to an integer.
pub(crate) const ROUND: f32 = 12_582_912.0;
/// `ln 2` to 16 bits, so that `n · LN2_HI` is exact for every `n` in range.
pub(crate) const LN2_HI: f32 = 0.693_145_75;
/// `ln 2 − LN2_HI`.
pub(crate) const LN2_LO: f32 = 1.428_606_8e-6;
/// `1/k!` for `k` = 7 down to 2 (then 1 and 1): `e^r` on `|r| ≤ ln2 / 2` (the Taylor
/// remainder is about 0.1 ulp there at most).
pub(crate) const POLY: [f32; 6] = [
    1.0 / 5040.0,
    1.0 / 720.0,
    1.0 / 120.0,
    1.0 / 24.0,
    1.0 / 6.0,
    0.5,
];
/// Above this (just under `ln 2^127.5`), `exp` is +∞.
pub(crate) const EXP_HI: f32 = 88.376_2;
/// Below this (`ln 2^−126`), `exp` is 0: results that would be under `f32::MIN_POSITIVE`
/// flush to zero.
pub(crate) const EXP_LO: f32 = -87.336_55;

/// `e^x` within 2 ulp for `EXP_LO ≤ x ≤ EXP_HI` (tested against f64), 0 below, +∞ above,
/// NaN for NaN. The reference every SIMD version of it matches bit for bit.
#[inline]
pub fn exp(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    if x > EXP_HI {
        return f32::INFINITY;
    }
    if x < EXP_LO {
        return 0.0;
    }
    let z = x.mul_add(LOG2E, ROUND);
    let n = z - ROUND;
    let r = (-n).mul_add(LN2_HI, x);
    let r = (-n).mul_add(LN2_LO, r);
    let mut p = POLY[0];
    for c in &POLY[1..] {
        p = p.mul_add(r, *c);
    }
    let p = p.mul_add(r, 1.0).mul_add(r, 1.0);
    // `n` is an integer in -126..=127 here.
    p * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// Lanes of the softmax sum: element `i` is added (in f32, in order) to lane `i % LANES`, and
/// the lanes are then added in f64, lane 0 first.
pub(crate) const LANES: usize = 16;

/// The scalar [`SoftmaxFn`].
pub fn softmax_scalar(x: &mut [f32]) -> (f32, f64) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut lanes = [0f32; LANES];
    for chunk in x.chunks_mut(LANES) {
        for (v, l) in chunk.iter_mut().zip(lanes.iter_mut()) {
            *v = exp(*v - max);
            *l += *v;
        }
    }
    (max, softmax_scale(x, &lanes))
}

/// `x *= 1 / Σ lanes` (the sum in f64, lane 0 first): the end of every softmax. Returns the
/// sum.
pub(crate) fn softmax_scale(x: &mut [f32], lanes: &[f32; LANES]) -> f64 {
    let sum: f64 = lanes.iter().map(|&l| f64::from(l)).sum();
    let inv = (1.0 / sum) as f32;
    for v in x.iter_mut() {
        *v *= inv;
    }
    sum
}

/// `silu(g) · u`.
#[inline]
pub fn swiglu_one(g: f32, u: f32) -> f32 {
    g / (1.0 + exp(-g)) * u
}

/// The scalar [`SwigluFn`].
pub fn swiglu_scalar(gate: &mut [f32], up: &[f32]) {
    assert_eq!(gate.len(), up.len(), "swiglu: gate and up lengths");
    for (g, &u) in gate.iter_mut().zip(up) {
        *g = swiglu_one(*g, u);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Units in the last place between `got` and the f64 `want` rounded to f32.
    fn ulps(got: f32, want: f64) -> u32 {
        let w = want as f32;
        (got.to_bits() as i64 - w.to_bits() as i64).unsigned_abs() as u32
    }

    #[test]
    fn exp_is_within_two_ulp_and_handles_the_edges() {
        let mut worst = 0;
        let n = 4_000_000;
        for i in 0..=n {
            let x = EXP_LO + (EXP_HI - EXP_LO) * (i as f32 / n as f32);
            worst = worst.max(ulps(exp(x), f64::from(x).exp()));
        }
        for x in [
            -1e-30f32, 0.0, -0.0, 1e-30, 1e-7, -1e-7, 0.5, -0.5, 88.0, -87.0,
        ] {
            worst = worst.max(ulps(exp(x), f64::from(x).exp()));
        }
        assert!(worst <= 2, "exp: {worst} ulp");
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(-100.0), 0.0);
        assert_eq!(exp(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp(89.0), f32::INFINITY);
        assert!(exp(f32::NAN).is_nan());
    }

    #[test]
    fn scalar_softmax_and_swiglu_match_f64() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for n in [1usize, 7, 16, 33, 500] {
            let x: Vec<f32> = (0..n).map(|_| rng.gen_range(-30.0..30.0)).collect();
            let mut got = x.clone();
            softmax_scalar(&mut got);
            let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let e: Vec<f64> = x.iter().map(|&v| f64::from(v - max).exp()).collect();
            let s: f64 = e.iter().sum();
            for (g, e) in got.iter().zip(&e) {
                assert!(
                    (f64::from(*g) - e / s).abs() <= 1e-6 * (e / s) + 1e-30,
                    "n={n}"
                );
            }
            let up: Vec<f32> = (0..n).map(|_| rng.gen_range(-3.0..3.0)).collect();
            let mut g = x.clone();
            swiglu_scalar(&mut g, &up);
            for ((g, &x), &u) in g.iter().zip(&x).zip(&up) {
                let want = f64::from(x) / (1.0 + (-f64::from(x)).exp()) * f64::from(u);
                assert!((f64::from(*g) - want).abs() <= 1e-6 * want.abs() + 1e-30);
            }
        }
        let mut masked = [0.0, f32::NEG_INFINITY, 0.0];
        softmax_scalar(&mut masked);
        assert_eq!(masked, [0.5, 0.0, 0.5]);
    }

    /// Every instruction set's kernels give the scalar ones' bits.
    #[test]
    fn every_isa_equals_scalar_bit_for_bit() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        for &isa in available_isas() {
            let k = act_kernels_for(isa);
            for n in [0usize, 1, 5, 8, 15, 16, 17, 31, 64, 100, 513] {
                let mut x: Vec<f32> = (0..n).map(|_| rng.gen_range(-40.0..40.0)).collect();
                if n > 3 {
                    x[2] = f32::NEG_INFINITY;
                    x[3] = -200.0;
                }
                let (mut got, mut want) = (x.clone(), x.clone());
                let stats = (k.softmax)(&mut got);
                let want_stats = softmax_scalar(&mut want);
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&want), "{isa} softmax n={n}");
                assert_eq!(stats.0.to_bits(), want_stats.0.to_bits(), "{isa} max n={n}");
                assert_eq!(stats.1.to_bits(), want_stats.1.to_bits(), "{isa} sum n={n}");
                // A NaN score does not become the maximum, wherever it sits (the outputs are
                // then NaN, with payloads that may differ by ISA; the maximum may not).
                for pos in 0..n {
                    let mut y = x.clone();
                    y[pos] = f32::NAN;
                    let (mut got, mut want) = (y.clone(), y.clone());
                    let (m, _) = (k.softmax)(&mut got);
                    let (mw, _) = softmax_scalar(&mut want);
                    let hi = y
                        .iter()
                        .copied()
                        .filter(|v| !v.is_nan())
                        .fold(f32::NEG_INFINITY, f32::max);
                    assert_eq!((m, mw), (hi, hi), "{isa} n={n} NaN at {pos}");
                }
                // The largest score at every position (vector lanes and the scalar tail).
                for pos in 0..n {
                    let mut y = x.clone();
                    y[pos] = 50.0;
                    let (mut got, mut want) = (y.clone(), y.clone());
                    let stats = (k.softmax)(&mut got);
                    assert_eq!(stats, softmax_scalar(&mut want), "{isa} n={n} max at {pos}");
                    assert_eq!(stats.0, 50.0, "{isa} n={n} max at {pos}");
                    assert_eq!(bits(&got), bits(&want), "{isa} softmax n={n} max at {pos}");
                }

                let mut g: Vec<f32> = (0..n).map(|_| rng.gen_range(-100.0..100.0)).collect();
                if n > 4 {
                    g[0] = 95.0;
                    g[1] = -95.0;
                    g[4] = f32::NAN;
                }
                let up: Vec<f32> = (0..n).map(|_| rng.gen_range(-3.0..3.0)).collect();
                let (mut got, mut want) = (g.clone(), g);
                (k.swiglu)(&mut got, &up);
                swiglu_scalar(&mut want, &up);
                assert_eq!(bits(&got), bits(&want), "{isa} swiglu n={n}");
            }
        }
    }
}
