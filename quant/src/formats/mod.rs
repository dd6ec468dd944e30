//! Block formats, one file per ggml type.
//!
//! Every block is `#[repr(C)]`, `Pod` (so a checked cast from the mmap works) and has a
//! compile-time size assertion against ggml's `block_*` struct. Each file has the scalar
//! reference `quantize` (ggml's `quantize_row_*_reference`, same bits) and `dequantize`
//! (ggml's `dequantize_row_*`, same bits).

pub mod float;
mod k_common;
pub mod q2_k;
pub mod q3_k;
pub mod q4_0;
pub mod q4_1;
pub mod q4_k;
pub mod q5_0;
pub mod q5_1;
pub mod q5_k;
pub mod q6_k;
pub mod q8_0;
pub mod q8_1;
pub mod q8_k;

/// A block of a ggml type: `BLOCK_SIZE` elements stored in `size_of::<Self>()` bytes.
pub trait Block: bytemuck::Pod {
    /// Elements per block.
    const BLOCK_SIZE: usize;
    /// Reference quantizer: `x.len() == out.len() * BLOCK_SIZE`.
    fn quantize(x: &[f32], out: &mut [Self]);
    /// Reference dequantizer: `out.len() == blocks.len() * BLOCK_SIZE`.
    fn dequantize(blocks: &[Self], out: &mut [f32]);
}

/// Views `bytes` as blocks; falls back to a copy when `bytes` is not aligned for `B`
/// (the mmap of a GGUF file is always aligned; arbitrary `Vec<u8>` may not be).
fn with_blocks<B: Block, R>(bytes: &[u8], f: impl FnOnce(&[B]) -> R) -> R {
    match bytemuck::try_cast_slice::<u8, B>(bytes) {
        Ok(blocks) => f(blocks),
        Err(_) => {
            let blocks: Vec<B> = bytes
                .chunks_exact(std::mem::size_of::<B>())
                .map(bytemuck::pod_read_unaligned)
                .collect();
            f(&blocks)
        }
    }
}

pub(crate) fn dequantize_bytes<B: Block>(src: &[u8], dst: &mut [f32]) {
    with_blocks::<B, _>(src, |blocks| B::dequantize(blocks, dst))
}

pub(crate) fn quantize_bytes<B: Block>(src: &[f32], dst: &mut [u8]) {
    match bytemuck::try_cast_slice_mut::<u8, B>(dst) {
        Ok(blocks) => B::quantize(src, blocks),
        Err(_) => {
            let mut blocks = vec![B::zeroed(); dst.len() / std::mem::size_of::<B>()];
            B::quantize(src, &mut blocks);
            dst.copy_from_slice(bytemuck::cast_slice(&blocks));
        }
    }
}

/// ggml's `nearest_int`: round to nearest, ties to even, through the 1.5·2^23 trick.
/// Valid for |fval| <= 4194303 (ggml asserts that; every caller stays far below).
#[inline]
pub(crate) fn nearest_int(fval: f32) -> i32 {
    let val = fval + 12582912.0;
    let i = val.to_bits() as i32;
    (i & 0x007f_ffff) - 0x0040_0000
}

/// C's conversion of a float to `int8_t` or `uint8_t` (`(int8_t)x`, or `roundf(x)` stored in an
/// `int8_t`) as x86-64 compilers emit it: `cvttss2si` to 32 bits, then the low byte.
///
/// For |x| < 128 this is truncation toward zero, the same as Rust's `as`. Outside that range C
/// leaves the result undefined; x86-64 keeps the low byte of the truncated value, and for NaN,
/// ±inf and |x| >= 2^31 `cvttss2si` returns 0x8000_0000, whose low byte is 0. ggml's reference
/// quantizers reach that only when `1/d` overflows (scales below ~3e-39, i.e. rows of tiny
/// subnormals); we follow x86-64 there, where Rust's saturating `as` would give other bits.
/// Callers wanting `uint8_t` take `as u8` of the result (the same byte).
#[inline]
pub(crate) fn c_f32_to_i8(x: f32) -> i8 {
    // -2^31 and 2^31 are exact in f32; NaN fails both comparisons.
    let i = if (-2_147_483_648.0..2_147_483_648.0).contains(&x) {
        x as i32
    } else {
        i32::MIN
    };
    i as i8
}

/// f32 → f16, round to nearest even (ggml's `GGML_FP32_TO_FP16`).
#[inline]
pub(crate) fn f16(x: f32) -> half::f16 {
    half::f16::from_f32(x)
}
