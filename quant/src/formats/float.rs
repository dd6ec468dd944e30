//! The unquantized element types: F32, F16 and BF16 (blocks of one element).
//!
//! Each is its own activation type (ggml's `vec_dot_type`): an F16 weight row is dotted with
//! activations rounded to F16, a BF16 row with activations rounded to BF16. The dot products are
//! ggml's scalar ones: each product formed in f32 (exact for F16 inputs, and for BF16 ones short
//! of overflow and underflow), the sum accumulated in f64 from first element to last and rounded
//! to f32 once.

use super::{f16_to_f32, Block, VecDot};
use crate::GgmlType;
use half::{bf16, f16};

/// `Σ (to_f32(x[i]) * to_f32(y[i])) as f64`, in index order, rounded to f32 (ggml's scalar
/// `ggml_vec_dot_f32` / `_f16` / `_bf16` loop, `ggml_float` being `double`). The elements are
/// converted a chunk at a time, a loop that vectorizes; the sum itself is sequential.
#[inline(always)]
fn dot_f64<T: Copy>(x: &[T], y: &[T], to_f32: impl Fn(T) -> f32) -> f32 {
    const CHUNK: usize = 64;
    let (mut xf, mut yf) = ([0f32; CHUNK], [0f32; CHUNK]);
    let mut sumf = 0f64;
    for (xc, yc) in x.chunks(CHUNK).zip(y.chunks(CHUNK)) {
        let len = xc.len().min(yc.len());
        for ((a, b), (&u, &v)) in xf.iter_mut().zip(&mut yf).zip(xc.iter().zip(yc)) {
            *a = to_f32(u);
            *b = to_f32(v);
        }
        for (&a, &b) in xf[..len].iter().zip(&yf[..len]) {
            sumf += (a * b) as f64;
        }
    }
    sumf as f32
}

/// The dot products of one float weight row `w` with `out.len()` activation rows `a`
/// (`[out.len()][w.len()]`), both as f32 holding their F32/F16/BF16 values exactly: the same
/// bits as [`VecDot::vec_dot`] of each pair (products in f32, summed in f64 in index order; NaN
/// payloads aside), four rows at a time so that four independent sums overlap (one alone waits
/// on each add).
pub(crate) fn dot_f64_rows(w: &[f32], a: &[f32], out: &mut [f32]) {
    let k = w.len();
    if k == 0 {
        out.fill(0.0);
        return;
    }
    for (o, a) in out.chunks_mut(4).zip(a.chunks(4 * k)) {
        if o.len() == 4 {
            let (a0, rest) = a.split_at(k);
            let (a1, rest) = rest.split_at(k);
            let (a2, a3) = rest.split_at(k);
            let mut s = [0f64; 4];
            for ((((&w, &x0), &x1), &x2), &x3) in w.iter().zip(a0).zip(a1).zip(a2).zip(a3) {
                s[0] += (w * x0) as f64;
                s[1] += (w * x1) as f64;
                s[2] += (w * x2) as f64;
                s[3] += (w * x3) as f64;
            }
            for (o, s) in o.iter_mut().zip(s) {
                *o = s as f32;
            }
        } else {
            for (o, a) in o.iter_mut().zip(a.chunks_exact(k)) {
                *o = f32::vec_dot(w, a);
            }
        }
    }
}

impl Block for f32 {
    const GGML_TYPE: GgmlType = GgmlType::F32;
    const BLOCK_SIZE: usize = 1;
    fn quantize(x: &[f32], out: &mut [Self]) {
        out.copy_from_slice(x);
    }
    fn dequantize(blocks: &[Self], out: &mut [f32]) {
        out.copy_from_slice(blocks);
    }
}

/// ggml b2757's scalar `ggml_vec_dot_f32`.
impl VecDot for f32 {
    type Activation = f32;
    fn vec_dot(x: &[f32], y: &[f32]) -> f32 {
        let mut sumf = 0f64;
        for (&a, &b) in x.iter().zip(y) {
            sumf += (a * b) as f64;
        }
        sumf as f32
    }
}

impl Block for f16 {
    const GGML_TYPE: GgmlType = GgmlType::F16;
    const BLOCK_SIZE: usize = 1;
    /// Round to nearest even, as ggml's `ggml_fp32_to_fp16_row`.
    fn quantize(x: &[f32], out: &mut [Self]) {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = f16::from_f32(v);
        }
    }
    fn dequantize(blocks: &[Self], out: &mut [f32]) {
        for (o, &v) in out.iter_mut().zip(blocks) {
            *o = v.to_f32();
        }
    }
}

/// f32 → bf16 as ggml's `ggml_compute_fp32_to_bf16` (and gguf-py): NaN is kept quiet, every
/// other value (subnormals included) rounds to nearest even.
#[inline]
pub fn f32_to_bf16(x: f32) -> bf16 {
    let u = x.to_bits();
    if (u & 0x7fff_ffff) > 0x7f80_0000 {
        return bf16::from_bits(((u >> 16) | 64) as u16);
    }
    bf16::from_bits((u.wrapping_add(0x7fff + ((u >> 16) & 1)) >> 16) as u16)
}

/// ggml b2757's scalar `ggml_vec_dot_f16`.
impl VecDot for f16 {
    type Activation = f16;
    fn vec_dot(x: &[f16], y: &[f16]) -> f32 {
        dot_f64(x, y, f16_to_f32)
    }
}

impl Block for bf16 {
    const GGML_TYPE: GgmlType = GgmlType::BF16;
    const BLOCK_SIZE: usize = 1;
    fn quantize(x: &[f32], out: &mut [Self]) {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = f32_to_bf16(v);
        }
    }
    fn dequantize(blocks: &[Self], out: &mut [f32]) {
        for (o, &v) in out.iter_mut().zip(blocks) {
            *o = bf16_to_f32(v);
        }
    }
}

#[inline]
fn bf16_to_f32(v: bf16) -> f32 {
    f32::from_bits((v.to_bits() as u32) << 16)
}

/// ggml's scalar `ggml_vec_dot_bf16` (added after b2757, same shape as the F16 one).
impl VecDot for bf16 {
    type Activation = bf16;
    fn vec_dot(x: &[bf16], y: &[bf16]) -> f32 {
        dot_f64(x, y, bf16_to_f32)
    }
}
