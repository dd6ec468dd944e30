//! Block formats, one file per ggml type.
//!
//! Every block is `#[repr(C)]`, `Pod` (so a checked cast from the mmap works) and has a
//! compile-time size assertion against ggml's `block_*` struct. Each file has the scalar
//! reference `quantize` (ggml's `quantize_row_*_reference`, same bits) and `dequantize`
//! (ggml's `dequantize_row_*`, same bits), and each weight type its scalar `vec_dot` against
//! its activation type ([`VecDot`]: ggml's `vec_dot` / `vec_dot_type`, the generic C branch of
//! `ggml_vec_dot_*`, same float operations in the same order).

pub mod float;
pub(crate) mod k_common;
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

use crate::GgmlType;

/// A block of a ggml type: `BLOCK_SIZE` elements stored in `size_of::<Self>()` bytes.
pub trait Block: bytemuck::Pod {
    /// The ggml type whose block this is.
    const GGML_TYPE: GgmlType;
    /// Elements per block.
    const BLOCK_SIZE: usize;
    /// Reference quantizer: `x.len() == out.len() * BLOCK_SIZE`.
    fn quantize(x: &[f32], out: &mut [Self]);
    /// Reference dequantizer: `out.len() == blocks.len() * BLOCK_SIZE`.
    fn dequantize(blocks: &[Self], out: &mut [f32]);
    /// The quantizer ggml's matmul applies to activation rows of this type (its type-traits
    /// `from_float`), same length contract as [`Block::quantize`]. That is the reference
    /// quantizer for every type but Q8_0 and Q8_1, whose x86 SIMD `from_float` rounds
    /// differently (see [`q8_0`]).
    fn from_float(x: &[f32], out: &mut [Self]) {
        Self::quantize(x, out)
    }
}

/// A weight block type with a dot product against a row of its activation type: one entry of
/// ggml's type traits (`vec_dot`, `vec_dot_type`).
pub trait VecDot: Block {
    /// The block type activations are quantized to before the dot (ggml's `vec_dot_type`).
    type Activation: Block;
    /// Scalar reference dot product of one weight row `x` with one activation row `y` (the
    /// same number of elements: `x.len() * BLOCK_SIZE == y.len() * Activation::BLOCK_SIZE`).
    /// Integer sums per block, then the float accumulation of ggml b2757's generic C branch of
    /// `ggml_vec_dot_*`, in the same order, so the result has the same bits as that code.
    fn vec_dot(x: &[Self], y: &[Self::Activation]) -> f32;
}

/// Views `bytes` as blocks; falls back to a copy when `bytes` is not aligned for `B`
/// (the mmap of a GGUF file is always aligned; arbitrary `Vec<u8>` may not be).
pub(crate) fn with_blocks<B: bytemuck::Pod, R>(bytes: &[u8], f: impl FnOnce(&[B]) -> R) -> R {
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

pub(crate) fn vec_dot_bytes<W: VecDot>(x: &[u8], y: &[u8]) -> f32 {
    with_blocks::<W, _>(x, |x| {
        with_blocks::<W::Activation, _>(y, |y| W::vec_dot(x, y))
    })
}

pub(crate) fn dequantize_bytes<B: Block>(src: &[u8], dst: &mut [f32]) {
    with_blocks::<B, _>(src, |blocks| B::dequantize(blocks, dst))
}

pub(crate) fn quantize_bytes<B: Block>(src: &[f32], dst: &mut [u8]) {
    with_blocks_mut::<B>(dst, |blocks| B::quantize(src, blocks))
}

pub(crate) fn from_float_bytes<B: Block>(src: &[f32], dst: &mut [u8]) {
    with_blocks_mut::<B>(dst, |blocks| B::from_float(src, blocks))
}

/// Views `bytes` as blocks to write, through an aligned copy when it is not aligned for `B`.
pub(crate) fn with_blocks_mut<B: Block>(dst: &mut [u8], f: impl FnOnce(&mut [B])) {
    match bytemuck::try_cast_slice_mut::<u8, B>(dst) {
        Ok(blocks) => f(blocks),
        Err(_) => {
            let mut blocks = vec![B::zeroed(); dst.len() / std::mem::size_of::<B>()];
            f(&mut blocks);
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

/// `HIGH_BIT[b]`: byte `i` (little-endian) is `0x10` where bit `i` of `b` is set: eight fifth
/// bits of Q5_0/Q5_1 quants at once, placed above their low nibbles.
pub(crate) static HIGH_BIT: [u64; 256] = {
    let mut t = [0u64; 256];
    let mut b = 0;
    while b < 256 {
        let mut i = 0;
        while i < 8 {
            if b >> i & 1 != 0 {
                t[b] |= 0x10 << (8 * i);
            }
            i += 1;
        }
        b += 1;
    }
    t
};

/// The 32 five-bit quants of a Q5_0/Q5_1 block, element order: low nibbles from `qs` (element
/// `j` low, `j + 16` high nibble of byte `j`), fifth bits from the little-endian `qh`.
#[inline(always)]
pub(crate) fn unpack_q5(qs: &[u8; 16], qh: [u8; 4]) -> [u8; 32] {
    let mut high = [0u8; 32];
    for (h, &b) in high.chunks_exact_mut(8).zip(&qh) {
        h.copy_from_slice(&HIGH_BIT[b as usize].to_le_bytes());
    }
    let mut q = [0u8; 32];
    for j in 0..16 {
        q[j] = (qs[j] & 0x0f) | high[j];
        q[j + 16] = (qs[j] >> 4) | high[j + 16];
    }
    q
}

/// `Σ a[i]·b[i]` over one block of 32 signed 8-bit quants: the exact integer part of the
/// legacy (32-element) dot products, written so that it vectorizes.
#[inline(always)]
pub(crate) fn dot_i8x32(a: &[i8; 32], b: &[i8; 32]) -> i32 {
    let mut sum = 0i32;
    for (&a, &b) in a.iter().zip(b) {
        sum += a as i32 * b as i32;
    }
    sum
}

/// f16 → f32, exact (ggml's `GGML_FP16_TO_FP32`), for the dot-product kernels: a few integer
/// and one float operation, without branches, that inline into loops the compiler vectorizes
/// (`half`'s conversion checks for F16C at run time on every call, and a branch here keeps the
/// integer loops around it scalar). NaN comes back quiet, as from F16C's `vcvtph2ps`.
#[inline(always)]
pub(crate) fn f16_to_f32(h: half::f16) -> f32 {
    let h = h.to_bits();
    let abs = (h & 0x7fff) as u32;
    // Normal or subnormal: the f16 bits shifted into an f32 are its value times 2^-112 (an f32
    // subnormal for an f16 one), so one exact multiplication by 2^112 rescales it.
    let finite = (f32::from_bits(abs << 13) * f32::from_bits(0x7780_0000)).to_bits();
    // Infinity or NaN: exponent all ones, NaN with its quiet bit set.
    let special = 0x7f80_0000 | (abs & 0x3ff) << 13 | ((abs > 0x7c00) as u32) << 22;
    let mag = if abs >= 0x7c00 { special } else { finite };
    f32::from_bits(mag | ((h & 0x8000) as u32) << 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_to_f32_is_exact_for_every_value() {
        for bits in 0..=u16::MAX {
            let h = half::f16::from_bits(bits);
            let (ours, theirs) = (f16_to_f32(h), h.to_f32());
            if theirs.is_nan() {
                assert!(ours.is_nan(), "{bits:#06x}");
                assert_eq!(
                    ours.to_bits() & 0x0040_0000,
                    0x0040_0000,
                    "{bits:#06x} quiet"
                );
                assert_eq!(
                    ours.to_bits() >> 31,
                    (bits >> 15) as u32,
                    "{bits:#06x} sign"
                );
            } else {
                assert_eq!(ours.to_bits(), theirs.to_bits(), "{bits:#06x}");
            }
        }
    }
}
