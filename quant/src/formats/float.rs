//! The unquantized element types: F32, F16 and BF16 (blocks of one element).

use super::Block;
use half::{bf16, f16};

impl Block for f32 {
    const BLOCK_SIZE: usize = 1;
    fn quantize(x: &[f32], out: &mut [Self]) {
        out.copy_from_slice(x);
    }
    fn dequantize(blocks: &[Self], out: &mut [f32]) {
        out.copy_from_slice(blocks);
    }
}

impl Block for f16 {
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

impl Block for bf16 {
    const BLOCK_SIZE: usize = 1;
    fn quantize(x: &[f32], out: &mut [Self]) {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = f32_to_bf16(v);
        }
    }
    fn dequantize(blocks: &[Self], out: &mut [f32]) {
        for (o, &v) in out.iter_mut().zip(blocks) {
            *o = f32::from_bits((v.to_bits() as u32) << 16);
        }
    }
}
