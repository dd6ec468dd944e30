//! AVX-512 kernels: the 256-bit bodies of `avx2.rs` / `avx2_k.rs` built with AVX512-VNNI
//! (`vpdpbusd` and `vpdpwssd` in their 256-bit AVX512-VL forms, which fuse the
//! `vpmaddubsw`/`vpmaddwd`/`vpaddd` chains, and use 32 vector registers, so the multi-row
//! kernels keep an unpacked weight block in registers), and a 512-bit F16 kernel.
//!
//! The K-quant super-blocks split into 32-element sub-blocks with their own scales and the
//! activations of two of them are not adjacent, so 512-bit vectors would need cross-lane
//! shuffles per sub-block; we stay at 256 bits there (as ggml's AVX512 builds mostly do).
//! Without VNNI the [`super::super::Isa::Avx512`] table is the 512-bit F16 kernel plus the
//! AVX2 kernels.

use std::arch::x86_64::*;

use half::f16;

use super::super::{vec_dot_bytes, vec_dot_rows_bytes, RowKernel, VecDotFn, VecDotRowsFn};
use super::{avx2, avx2_k};
use crate::formats::f16_to_f32;
use crate::formats::q4_0::BlockQ4_0;
use crate::formats::q4_1::BlockQ4_1;
use crate::formats::q4_k::BlockQ4K;
use crate::formats::q5_0::BlockQ5_0;
use crate::formats::q5_1::BlockQ5_1;
use crate::formats::q5_k::BlockQ5K;
use crate::formats::q6_k::BlockQ6K;
use crate::formats::q8_0::BlockQ8_0;
use crate::formats::q8_1::BlockQ8_1;
use crate::formats::q8_k::BlockQ8K;
use crate::GgmlType;

/// The AVX-512 (with VNNI) kernel of `ty`, if it has one.
pub(super) fn vec_dot(ty: GgmlType) -> Option<VecDotFn> {
    Some(match ty {
        GgmlType::F16 => vec_dot_bytes::<F16Avx512>,
        GgmlType::Q4_0 => vec_dot_bytes::<Q4_0Vnni>,
        GgmlType::Q4_1 => vec_dot_bytes::<Q4_1Vnni>,
        GgmlType::Q5_0 => vec_dot_bytes::<Q5_0Vnni>,
        GgmlType::Q5_1 => vec_dot_bytes::<Q5_1Vnni>,
        GgmlType::Q8_0 => vec_dot_bytes::<Q8_0Vnni>,
        GgmlType::Q4K => vec_dot_bytes::<Q4KVnni>,
        GgmlType::Q5K => vec_dot_bytes::<Q5KVnni>,
        GgmlType::Q6K => vec_dot_bytes::<Q6KVnni>,
        _ => return None,
    })
}

/// The AVX-512 kernels that need no VNNI.
pub(super) fn vec_dot_no_vnni(ty: GgmlType) -> Option<VecDotFn> {
    match ty {
        GgmlType::F16 => Some(vec_dot_bytes::<F16Avx512>),
        _ => None,
    }
}

/// The AVX-512 (with VNNI) multi-row kernel of `ty`, if it has one.
pub(super) fn vec_dot_rows(ty: GgmlType) -> Option<VecDotRowsFn> {
    Some(match ty {
        GgmlType::Q4_0 => vec_dot_rows_bytes::<Q4_0Vnni>,
        GgmlType::Q4_1 => vec_dot_rows_bytes::<Q4_1Vnni>,
        GgmlType::Q5_0 => vec_dot_rows_bytes::<Q5_0Vnni>,
        GgmlType::Q5_1 => vec_dot_rows_bytes::<Q5_1Vnni>,
        GgmlType::Q8_0 => vec_dot_rows_bytes::<Q8_0Vnni>,
        GgmlType::Q4K => vec_dot_rows_bytes::<Q4KVnni>,
        GgmlType::Q5K => vec_dot_rows_bytes::<Q5KVnni>,
        GgmlType::Q6K => vec_dot_rows_bytes::<Q6KVnni>,
        _ => return None,
    })
}

// SAFETY (each `unsafe impl`): `rows` needs the features in its `target_feature`; the `*Vnni`
// kernels are only handed out by `vec_dot`/`vec_dot_rows` above, which `x86::vec_dot` consults
// after `kernels::available_isas` found AVX-512 F+BW+VL (with AVX2, FMA, F16C) and
// `kernels::has_avx512_vnni` found VNNI; `F16Avx512` needs AVX-512 F+BW+VL only.

pub(super) struct F16Avx512;
unsafe impl RowKernel for F16Avx512 {
    type W = f16;
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl")]
    unsafe fn rows<const R: usize>(x: &[f16], y: [&[f16]; R]) -> [f32; R] {
        std::array::from_fn(|r| f16_dot(x, y[r]))
    }
}

pub(super) struct Q4_0Vnni;
unsafe impl RowKernel for Q4_0Vnni {
    type W = BlockQ4_0;
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn rows<const R: usize>(x: &[BlockQ4_0], y: [&[BlockQ8_0]; R]) -> [f32; R] {
        avx2::q4_0::<true, R>(x, y)
    }
}

pub(super) struct Q4_1Vnni;
unsafe impl RowKernel for Q4_1Vnni {
    type W = BlockQ4_1;
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn rows<const R: usize>(x: &[BlockQ4_1], y: [&[BlockQ8_1]; R]) -> [f32; R] {
        avx2::q4_1::<true, R>(x, y)
    }
}

pub(super) struct Q5_0Vnni;
unsafe impl RowKernel for Q5_0Vnni {
    type W = BlockQ5_0;
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn rows<const R: usize>(x: &[BlockQ5_0], y: [&[BlockQ8_0]; R]) -> [f32; R] {
        avx2::q5_0::<true, R>(x, y)
    }
}

pub(super) struct Q5_1Vnni;
unsafe impl RowKernel for Q5_1Vnni {
    type W = BlockQ5_1;
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn rows<const R: usize>(x: &[BlockQ5_1], y: [&[BlockQ8_1]; R]) -> [f32; R] {
        avx2::q5_1::<true, R>(x, y)
    }
}

pub(super) struct Q8_0Vnni;
unsafe impl RowKernel for Q8_0Vnni {
    type W = BlockQ8_0;
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn rows<const R: usize>(x: &[BlockQ8_0], y: [&[BlockQ8_0]; R]) -> [f32; R] {
        avx2::q8_0::<true, R>(x, y)
    }
}

pub(super) struct Q4KVnni;
unsafe impl RowKernel for Q4KVnni {
    type W = BlockQ4K;
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn rows<const R: usize>(x: &[BlockQ4K], y: [&[BlockQ8K]; R]) -> [f32; R] {
        avx2_k::q4k::<true, R>(x, y)
    }
}

pub(super) struct Q5KVnni;
unsafe impl RowKernel for Q5KVnni {
    type W = BlockQ5K;
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn rows<const R: usize>(x: &[BlockQ5K], y: [&[BlockQ8K]; R]) -> [f32; R] {
        avx2_k::q5k::<true, R>(x, y)
    }
}

pub(super) struct Q6KVnni;
unsafe impl RowKernel for Q6KVnni {
    type W = BlockQ6K;
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn rows<const R: usize>(x: &[BlockQ6K], y: [&[BlockQ8K]; R]) -> [f32; R] {
        avx2_k::q6k::<true, R>(x, y)
    }
}

/// F16 · F16 with 16-lane vectors: products in f32 (exact), four 16-lane f32 sums.
#[inline(always)]
unsafe fn f16_dot(x: &[f16], y: &[f16]) -> f32 {
    let n = x.len().min(y.len());
    let (xp, yp) = (x.as_ptr().cast::<__m256i>(), y.as_ptr().cast::<__m256i>());
    let mut acc = [_mm512_setzero_ps(); 4];
    let mut j = 0;
    while (j + 4) * 16 <= n {
        for (u, a) in acc.iter_mut().enumerate() {
            *a = _mm512_fmadd_ps(cvt(xp, j + u), cvt(yp, j + u), *a);
        }
        j += 4;
    }
    while (j + 1) * 16 <= n {
        acc[0] = _mm512_fmadd_ps(cvt(xp, j), cvt(yp, j), acc[0]);
        j += 1;
    }
    let s = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
    let mut sum = _mm512_reduce_add_ps(s);
    for k in j * 16..n {
        sum += f16_to_f32(x[k]) * f16_to_f32(y[k]);
    }
    sum
}

/// Sixteen f16 at `p + 16·j` as f32.
#[inline(always)]
unsafe fn cvt(p: *const __m256i, j: usize) -> __m512 {
    _mm512_cvtph_ps(_mm256_loadu_si256(p.add(j)))
}
