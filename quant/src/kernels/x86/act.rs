//! AVX2+FMA and AVX-512 softmax and SwiGLU (contracts and the scalar reference in
//! `kernels/act.rs`): the reference's `exp` with the same fused multiply-adds in the same
//! order, so every lane has the scalar bits.

use std::arch::x86_64::*;

use super::super::act::{
    exp, softmax_scale, swiglu_one, ActKernels, EXP_HI, EXP_LO, LANES, LN2_HI, LN2_LO, LOG2E, POLY,
    ROUND,
};
use super::super::Isa;

/// The kernels of `isa` (the caller checked that the CPU has it).
pub(in crate::kernels) fn act_kernels(isa: Isa) -> Option<ActKernels> {
    match isa {
        Isa::Scalar => None,
        Isa::Avx2 | Isa::AvxVnni => Some(ActKernels {
            softmax: softmax_avx2,
            swiglu: swiglu_avx2,
        }),
        Isa::Avx512 => Some(ActKernels {
            softmax: softmax_avx512,
            swiglu: swiglu_avx512,
        }),
    }
}

// SAFETY (each call of a `#[target_feature]` body below): these wrappers are only handed out
// by `act_kernels` for an instruction set `kernels::available_isas` detected: AVX2 and FMA for
// `Avx2`/`AvxVnni`; AVX-512 F (listed only together with AVX2 and FMA) for `Avx512`.

fn softmax_avx2(x: &mut [f32]) -> (f32, f64) {
    // SAFETY: see above.
    unsafe { softmax_256(x) }
}

fn softmax_avx512(x: &mut [f32]) -> (f32, f64) {
    // SAFETY: see above.
    unsafe { softmax_512(x) }
}

fn swiglu_avx2(gate: &mut [f32], up: &[f32]) {
    assert_eq!(gate.len(), up.len(), "swiglu: gate and up lengths");
    // SAFETY: see above; the lengths are equal.
    unsafe { swiglu_256(gate, up) }
}

fn swiglu_avx512(gate: &mut [f32], up: &[f32]) {
    assert_eq!(gate.len(), up.len(), "swiglu: gate and up lengths");
    // SAFETY: see above; the lengths are equal.
    unsafe { swiglu_512(gate, up) }
}

/// `exp` of each lane, as `act::exp`.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn exp_256(x: __m256) -> __m256 {
    let s = _mm256_set1_ps;
    let z = _mm256_fmadd_ps(x, s(LOG2E), s(ROUND));
    let n = _mm256_sub_ps(z, s(ROUND));
    let r = _mm256_fnmadd_ps(n, s(LN2_HI), x);
    let r = _mm256_fnmadd_ps(n, s(LN2_LO), r);
    let mut p = s(POLY[0]);
    for c in &POLY[1..] {
        p = _mm256_fmadd_ps(p, r, s(*c));
    }
    let p = _mm256_fmadd_ps(_mm256_fmadd_ps(p, r, s(1.0)), r, s(1.0));
    let e = _mm256_slli_epi32::<23>(_mm256_add_epi32(
        _mm256_cvtps_epi32(n),
        _mm256_set1_epi32(127),
    ));
    let y = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
    let y = _mm256_blendv_ps(
        y,
        s(f32::INFINITY),
        _mm256_cmp_ps::<_CMP_GT_OQ>(x, s(EXP_HI)),
    );
    let y = _mm256_blendv_ps(y, s(0.0), _mm256_cmp_ps::<_CMP_LT_OQ>(x, s(EXP_LO)));
    _mm256_blendv_ps(y, x, _mm256_cmp_ps::<_CMP_UNORD_Q>(x, x))
}

/// `exp` of each lane, as `act::exp`.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn exp_512(x: __m512) -> __m512 {
    let s = _mm512_set1_ps;
    let z = _mm512_fmadd_ps(x, s(LOG2E), s(ROUND));
    let n = _mm512_sub_ps(z, s(ROUND));
    let r = _mm512_fnmadd_ps(n, s(LN2_HI), x);
    let r = _mm512_fnmadd_ps(n, s(LN2_LO), r);
    let mut p = s(POLY[0]);
    for c in &POLY[1..] {
        p = _mm512_fmadd_ps(p, r, s(*c));
    }
    let p = _mm512_fmadd_ps(_mm512_fmadd_ps(p, r, s(1.0)), r, s(1.0));
    let e = _mm512_slli_epi32::<23>(_mm512_add_epi32(
        _mm512_cvtps_epi32(n),
        _mm512_set1_epi32(127),
    ));
    let y = _mm512_mul_ps(p, _mm512_castsi512_ps(e));
    let y = _mm512_mask_blend_ps(
        _mm512_cmp_ps_mask::<_CMP_GT_OQ>(x, s(EXP_HI)),
        y,
        s(f32::INFINITY),
    );
    let y = _mm512_mask_blend_ps(_mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, s(EXP_LO)), y, s(0.0));
    _mm512_mask_blend_ps(_mm512_cmp_ps_mask::<_CMP_UNORD_Q>(x, x), y, x)
}

/// The softmax's maximum, the scalar reference's: a maximum is exact in any order, and
/// `vmaxps(x, m)` keeps `m` where `x` is NaN, as `f32::max` ignores NaN. Eight lanes with no
/// NaN test, where the compiler's fold of `f32::max` tested and blended every element (and
/// ran its head one element at a time): the softmax's share of a SmolLM2 prompt's samples
/// fell by ~8% (AVX2 profile).
#[target_feature(enable = "avx2")]
unsafe fn max_256(x: &[f32]) -> f32 {
    let (n, p) = (x.len(), x.as_ptr());
    let mut m = _mm256_set1_ps(f32::NEG_INFINITY);
    let mut i = 0;
    // SAFETY (pointer offsets): `i + 8 <= n`.
    while i + 8 <= n {
        m = _mm256_max_ps(_mm256_loadu_ps(p.add(i)), m);
        i += 8;
    }
    let mut lanes = [0f32; 8];
    _mm256_storeu_ps(lanes.as_mut_ptr(), m);
    lanes
        .iter()
        .chain(&x[i..])
        .copied()
        .fold(f32::NEG_INFINITY, f32::max)
}

#[target_feature(enable = "avx2,fma")]
unsafe fn softmax_256(x: &mut [f32]) -> (f32, f64) {
    let max = max_256(x);
    let (n, p, vmax) = (x.len(), x.as_mut_ptr(), _mm256_set1_ps(max));
    // Lanes 0..8 and 8..16 of the reference's sixteen.
    let (mut lo, mut hi) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let mut i = 0;
    // SAFETY (pointer offsets): `i + 16 <= n` or `i + 8 <= n`.
    while i + 16 <= n {
        let e0 = exp_256(_mm256_sub_ps(_mm256_loadu_ps(p.add(i)), vmax));
        let e1 = exp_256(_mm256_sub_ps(_mm256_loadu_ps(p.add(i + 8)), vmax));
        _mm256_storeu_ps(p.add(i), e0);
        _mm256_storeu_ps(p.add(i + 8), e1);
        lo = _mm256_add_ps(lo, e0);
        hi = _mm256_add_ps(hi, e1);
        i += 16;
    }
    if i + 8 <= n {
        let e0 = exp_256(_mm256_sub_ps(_mm256_loadu_ps(p.add(i)), vmax));
        _mm256_storeu_ps(p.add(i), e0);
        lo = _mm256_add_ps(lo, e0);
        i += 8;
    }
    let mut lanes = [0f32; LANES];
    _mm256_storeu_ps(lanes.as_mut_ptr(), lo);
    _mm256_storeu_ps(lanes.as_mut_ptr().add(8), hi);
    for (j, v) in x.iter_mut().enumerate().skip(i) {
        *v = exp(*v - max);
        lanes[j % LANES] += *v;
    }
    (max, softmax_scale(x, &lanes))
}

#[target_feature(enable = "avx512f,avx2")]
unsafe fn softmax_512(x: &mut [f32]) -> (f32, f64) {
    let max = max_256(x);
    let (n, p, vmax) = (x.len(), x.as_mut_ptr(), _mm512_set1_ps(max));
    let mut acc = _mm512_setzero_ps();
    let mut i = 0;
    // SAFETY (pointer offsets): `i + 16 <= n`, or the mask covers `i..n`.
    while i + 16 <= n {
        let e = exp_512(_mm512_sub_ps(_mm512_loadu_ps(p.add(i)), vmax));
        _mm512_storeu_ps(p.add(i), e);
        acc = _mm512_add_ps(acc, e);
        i += 16;
    }
    if i < n {
        let k: __mmask16 = (1 << (n - i)) - 1;
        let e = exp_512(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, p.add(i)), vmax));
        _mm512_mask_storeu_ps(p.add(i), k, e);
        acc = _mm512_mask_add_ps(acc, k, acc, e);
    }
    let mut lanes = [0f32; LANES];
    _mm512_storeu_ps(lanes.as_mut_ptr(), acc);
    (max, softmax_scale(x, &lanes))
}

/// `-v` (the sign bit flipped, as Rust's `-` on f32).
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn neg_256(v: __m256) -> __m256 {
    _mm256_castsi256_ps(_mm256_xor_si256(
        _mm256_castps_si256(v),
        _mm256_set1_epi32(i32::MIN),
    ))
}

#[target_feature(enable = "avx2,fma")]
unsafe fn swiglu_256(gate: &mut [f32], up: &[f32]) {
    let (n, g, u) = (gate.len(), gate.as_mut_ptr(), up.as_ptr());
    let mut i = 0;
    // SAFETY (pointer offsets): `i + 8 <= n == up.len()`.
    while i + 8 <= n {
        let gv = _mm256_loadu_ps(g.add(i));
        let d = _mm256_add_ps(_mm256_set1_ps(1.0), exp_256(neg_256(gv)));
        let y = _mm256_mul_ps(_mm256_div_ps(gv, d), _mm256_loadu_ps(u.add(i)));
        _mm256_storeu_ps(g.add(i), y);
        i += 8;
    }
    for (gv, &uv) in gate[i..].iter_mut().zip(&up[i..]) {
        *gv = swiglu_one(*gv, uv);
    }
}

#[target_feature(enable = "avx512f")]
unsafe fn swiglu_512(gate: &mut [f32], up: &[f32]) {
    let (n, g, u) = (gate.len(), gate.as_mut_ptr(), up.as_ptr());
    let one = |gv: __m512, uv: __m512| {
        let neg = _mm512_castsi512_ps(_mm512_xor_si512(
            _mm512_castps_si512(gv),
            _mm512_set1_epi32(i32::MIN),
        ));
        let d = _mm512_add_ps(_mm512_set1_ps(1.0), exp_512(neg));
        _mm512_mul_ps(_mm512_div_ps(gv, d), uv)
    };
    let mut i = 0;
    // SAFETY (pointer offsets): `i + 16 <= n == up.len()`, or the mask covers `i..n`.
    while i + 16 <= n {
        let y = one(_mm512_loadu_ps(g.add(i)), _mm512_loadu_ps(u.add(i)));
        _mm512_storeu_ps(g.add(i), y);
        i += 16;
    }
    if i < n {
        let k: __mmask16 = (1 << (n - i)) - 1;
        let y = one(
            _mm512_maskz_loadu_ps(k, g.add(i)),
            _mm512_maskz_loadu_ps(k, u.add(i)),
        );
        _mm512_mask_storeu_ps(g.add(i), k, y);
    }
}
