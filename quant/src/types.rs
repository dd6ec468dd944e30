//! The one table of ggml types: every fact about a type lives in its row.

use std::fmt;

use crate::formats::{self, Block, VecDot};
use crate::QuantError;

/// A ggml tensor element type, as GGUF stores it (the `ggml_type` enum).
///
/// Only the types Orcinus reads and writes are listed; other ids are refused with
/// [`QuantError::UnsupportedType`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum GgmlType {
    /// IEEE binary32.
    F32,
    /// IEEE binary16.
    F16,
    /// 4-bit, one f16 scale per 32.
    Q4_0,
    /// 4-bit, f16 scale and min per 32.
    Q4_1,
    /// 5-bit, one f16 scale per 32.
    Q5_0,
    /// 5-bit, f16 scale and min per 32.
    Q5_1,
    /// 8-bit, one f16 scale per 32.
    Q8_0,
    /// 8-bit, f16 scale and f16 `d * sum(q)` per 32 (activation type of Q4_1/Q5_1).
    Q8_1,
    /// 2-bit K-quant (super-blocks of 256).
    Q2K,
    /// 3-bit K-quant.
    Q3K,
    /// 4-bit K-quant.
    Q4K,
    /// 5-bit K-quant.
    Q5K,
    /// 6-bit K-quant.
    Q6K,
    /// 8-bit K-quant with f32 scale and block sums (activation type of the K-quants).
    Q8K,
    /// bfloat16.
    BF16,
}

/// One row of the type table.
#[derive(Clone, Copy)]
pub struct TypeInfo {
    /// The type.
    pub ty: GgmlType,
    /// ggml's name for it (`"Q4_K"`, `"F16"`, ...), as `gguf` and `llama.cpp` print it.
    pub name: &'static str,
    /// ggml type id stored in GGUF tensor infos.
    pub id: u32,
    /// Elements per block.
    pub block_size: usize,
    /// Bytes per block.
    pub type_size: usize,
    /// Whether this is a block-quantized type (false for F32/F16/BF16).
    pub is_quantized: bool,
    /// The type activations are converted to for a dot product with a row of this type
    /// (ggml's `vec_dot_type`); the type itself for types without a dot product (Q8_1, Q8_K).
    pub vec_dot_type: GgmlType,
    /// Reference dequantizer: `src.len() == nb * type_size`, `dst.len() == nb * block_size`
    /// (checked by [`GgmlType::dequantize`]).
    pub(crate) dequantize: fn(&[u8], &mut [f32]),
    /// Reference quantizer, same length contract as `dequantize` with roles swapped.
    pub(crate) quantize: fn(&[f32], &mut [u8]),
    /// Activation quantizer (ggml's `from_float`), same contract as `quantize`.
    pub(crate) from_float: fn(&[f32], &mut [u8]),
    /// Scalar dot product of a row of this type (first) with a row of `vec_dot_type` holding
    /// the same number of elements (ggml's `vec_dot`); `None` where ggml has none.
    pub(crate) vec_dot: Option<VecDotFn>,
}

/// A row dot product on raw bytes: weight row, activation row (lengths checked by the caller:
/// the activation row holds as many elements as the weight row, in the weight type's
/// [`GgmlType::vec_dot_type`]).
pub type VecDotFn = fn(&[u8], &[u8]) -> f32;

impl fmt::Debug for TypeInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypeInfo")
            .field("name", &self.name)
            .field("id", &self.id)
            .field("block_size", &self.block_size)
            .field("type_size", &self.type_size)
            .field("vec_dot_type", &self.vec_dot_type)
            .finish()
    }
}

/// The row of a type without a dot product (an activation-only type).
const fn row<B: Block>(name: &'static str, id: u32, is_quantized: bool) -> TypeInfo {
    TypeInfo {
        ty: B::GGML_TYPE,
        name,
        id,
        block_size: B::BLOCK_SIZE,
        type_size: std::mem::size_of::<B>(),
        is_quantized,
        vec_dot_type: B::GGML_TYPE,
        dequantize: formats::dequantize_bytes::<B>,
        quantize: formats::quantize_bytes::<B>,
        from_float: formats::from_float_bytes::<B>,
        vec_dot: None,
    }
}

/// The row of a weight type, with its dot product and activation type.
const fn dot_row<B: VecDot>(name: &'static str, id: u32, is_quantized: bool) -> TypeInfo {
    TypeInfo {
        vec_dot_type: <B::Activation as Block>::GGML_TYPE,
        vec_dot: Some(formats::vec_dot_bytes::<B>),
        ..row::<B>(name, id, is_quantized)
    }
}

/// The type table, in ggml id order. Adding a type = one variant, one row, one file.
pub static TYPE_TABLE: [TypeInfo; 15] = [
    dot_row::<f32>("F32", 0, false),
    dot_row::<half::f16>("F16", 1, false),
    dot_row::<formats::q4_0::BlockQ4_0>("Q4_0", 2, true),
    dot_row::<formats::q4_1::BlockQ4_1>("Q4_1", 3, true),
    dot_row::<formats::q5_0::BlockQ5_0>("Q5_0", 6, true),
    dot_row::<formats::q5_1::BlockQ5_1>("Q5_1", 7, true),
    dot_row::<formats::q8_0::BlockQ8_0>("Q8_0", 8, true),
    row::<formats::q8_1::BlockQ8_1>("Q8_1", 9, true),
    dot_row::<formats::q2_k::BlockQ2K>("Q2_K", 10, true),
    dot_row::<formats::q3_k::BlockQ3K>("Q3_K", 11, true),
    dot_row::<formats::q4_k::BlockQ4K>("Q4_K", 12, true),
    dot_row::<formats::q5_k::BlockQ5K>("Q5_K", 13, true),
    dot_row::<formats::q6_k::BlockQ6K>("Q6_K", 14, true),
    row::<formats::q8_k::BlockQ8K>("Q8_K", 15, true),
    dot_row::<half::bf16>("BF16", 30, false),
];

impl GgmlType {
    /// Every supported type, in table order.
    pub fn all() -> impl Iterator<Item = GgmlType> {
        TYPE_TABLE.iter().map(|r| r.ty)
    }

    /// This type's row of [`TYPE_TABLE`].
    pub fn info(self) -> &'static TypeInfo {
        // The table is in enum order; the test `table_matches_enum` guards that.
        &TYPE_TABLE[self as usize]
    }

    /// The type with ggml id `id`.
    pub fn from_id(id: u32) -> Result<Self, QuantError> {
        TYPE_TABLE
            .iter()
            .find(|r| r.id == id)
            .map(|r| r.ty)
            .ok_or(QuantError::UnsupportedType(id))
    }

    /// The type ggml names `name` (`"Q4_K"`, case-insensitive).
    pub fn from_name(name: &str) -> Option<Self> {
        TYPE_TABLE
            .iter()
            .find(|r| r.name.eq_ignore_ascii_case(name))
            .map(|r| r.ty)
    }

    /// ggml's name for this type.
    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// ggml type id.
    pub fn id(self) -> u32 {
        self.info().id
    }

    /// Elements per block.
    pub fn block_size(self) -> usize {
        self.info().block_size
    }

    /// Bytes per block.
    pub fn type_size(self) -> usize {
        self.info().type_size
    }

    /// Whether this is a block-quantized type.
    pub fn is_quantized(self) -> bool {
        self.info().is_quantized
    }

    /// Bytes needed for `n` elements, or an error if `n` is not a whole number of blocks or the
    /// size overflows.
    pub fn row_bytes(self, n: usize) -> Result<usize, QuantError> {
        let info = self.info();
        if !n.is_multiple_of(info.block_size) {
            return Err(QuantError::NotBlockMultiple {
                ty: self,
                n,
                block: info.block_size,
            });
        }
        (n / info.block_size)
            .checked_mul(info.type_size)
            .ok_or(QuantError::Overflow)
    }

    /// Bits per weight of this type.
    pub fn bits_per_weight(self) -> f64 {
        let info = self.info();
        (info.type_size * 8) as f64 / info.block_size as f64
    }

    /// Dequantizes `src` (whole blocks of this type) into `dst` with the reference code.
    /// `dst.len()` must be the number of elements `src` holds.
    pub fn dequantize(self, src: &[u8], dst: &mut [f32]) -> Result<(), QuantError> {
        self.check_bytes(dst.len(), src.len(), "quantized bytes")?;
        (self.info().dequantize)(src, dst);
        Ok(())
    }

    /// Quantizes `src` into `dst` (whole blocks of this type) with the reference code, giving
    /// the same bytes as ggml's reference quantizer.
    pub fn quantize(self, src: &[f32], dst: &mut [u8]) -> Result<(), QuantError> {
        self.check_bytes(src.len(), dst.len(), "quantized bytes")?;
        (self.info().quantize)(src, dst);
        Ok(())
    }

    /// Quantizes an activation row `src` into `dst` (whole blocks of this type) as ggml's
    /// matmul does before a dot product (its type-traits `from_float`). The same bytes as
    /// [`GgmlType::quantize`] for every type but Q8_0 and Q8_1, whose quantizer is ggml's x86
    /// SIMD one (ties round to even; see `formats::q8_0`).
    pub fn from_float(self, src: &[f32], dst: &mut [u8]) -> Result<(), QuantError> {
        self.check_bytes(src.len(), dst.len(), "quantized bytes")?;
        (self.info().from_float)(src, dst);
        Ok(())
    }

    /// The type an activation row is converted to (with [`GgmlType::from_float`]) before its dot
    /// product with a row of this type: ggml's `vec_dot_type` (Q8_0 for Q4_0, Q5_0 and Q8_0;
    /// Q8_1 for Q4_1 and Q5_1; Q8_K for the K-quants; the type itself for F32, F16 and BF16
    /// and for the activation-only Q8_1 and Q8_K).
    pub fn vec_dot_type(self) -> GgmlType {
        self.info().vec_dot_type
    }

    /// Whether [`GgmlType::vec_dot`] is available (every type but Q8_1 and Q8_K).
    pub fn has_vec_dot(self) -> bool {
        self.info().vec_dot.is_some()
    }

    /// Dot product of `n` elements: `x` a row of this type (a weight row), `y` a row of
    /// [`GgmlType::vec_dot_type`] (an activation row quantized by its `from_float`).
    ///
    /// The scalar reference code of each format: integer sums per block, then the float
    /// accumulation of ggml b2757's generic C `ggml_vec_dot_*` in the same order, so the result
    /// has the bits that code gives (ggml's SIMD kernels add in another order and differ from
    /// it in the last bits). Fails with [`QuantError::Unsupported`] for Q8_1 and Q8_K.
    pub fn vec_dot(self, x: &[u8], y: &[u8], n: usize) -> Result<f32, QuantError> {
        let vec_dot = self.info().vec_dot.ok_or(QuantError::Unsupported {
            ty: self,
            op: "vec_dot",
        })?;
        self.check_bytes(n, x.len(), "weight row bytes")?;
        self.vec_dot_type()
            .check_bytes(n, y.len(), "activation row bytes")?;
        Ok(vec_dot(x, y))
    }

    /// Checks that `got` bytes hold exactly `n` elements of this type.
    fn check_bytes(self, n: usize, got: usize, what: &'static str) -> Result<(), QuantError> {
        let expected = self.row_bytes(n)?;
        if got != expected {
            return Err(QuantError::LengthMismatch {
                ty: self,
                what,
                expected,
                got,
            });
        }
        Ok(())
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_enum() {
        for (i, r) in TYPE_TABLE.iter().enumerate() {
            assert_eq!(r.ty as usize, i, "row {} out of enum order", r.name);
            assert_eq!(GgmlType::from_id(r.id).unwrap(), r.ty);
            assert_eq!(GgmlType::from_name(r.name).unwrap(), r.ty);
        }
        assert_eq!(GgmlType::from_id(4), Err(QuantError::UnsupportedType(4)));
    }

    #[test]
    fn sizes_match_ggml() {
        // (type, block elements, bytes) as in ggml-common.h.
        let expect = [
            (GgmlType::F32, 1, 4),
            (GgmlType::F16, 1, 2),
            (GgmlType::Q4_0, 32, 18),
            (GgmlType::Q4_1, 32, 20),
            (GgmlType::Q5_0, 32, 22),
            (GgmlType::Q5_1, 32, 24),
            (GgmlType::Q8_0, 32, 34),
            (GgmlType::Q8_1, 32, 36),
            (GgmlType::Q2K, 256, 84),
            (GgmlType::Q3K, 256, 110),
            (GgmlType::Q4K, 256, 144),
            (GgmlType::Q5K, 256, 176),
            (GgmlType::Q6K, 256, 210),
            (GgmlType::Q8K, 256, 292),
            (GgmlType::BF16, 1, 2),
        ];
        for (ty, bs, ts) in expect {
            assert_eq!((ty.block_size(), ty.type_size()), (bs, ts), "{ty}");
        }
    }

    #[test]
    fn length_errors() {
        let mut out = [0u8; 18];
        assert!(matches!(
            GgmlType::Q4_0.quantize(&[0.0; 31], &mut out),
            Err(QuantError::NotBlockMultiple { .. })
        ));
        assert!(matches!(
            GgmlType::Q4_0.quantize(&[0.0; 64], &mut out),
            Err(QuantError::LengthMismatch { .. })
        ));
    }
}
