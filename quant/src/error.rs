use crate::GgmlType;

/// Errors from the quantization entry points. Preconditions (lengths, block multiples) are
/// checked once here, at the public boundary, never inside the kernels.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum QuantError {
    /// The ggml type id is not one Orcinus supports.
    #[error("unsupported ggml type id {0}")]
    UnsupportedType(u32),
    /// The element count is not a whole number of blocks of this type.
    #[error("{ty}: {n} elements is not a multiple of the block size {block}")]
    NotBlockMultiple {
        /// The type.
        ty: GgmlType,
        /// Number of elements asked for.
        n: usize,
        /// Elements per block.
        block: usize,
    },
    /// Input and output buffers disagree on the number of elements or bytes.
    #[error("{ty}: buffer length mismatch: {what}: expected {expected}, got {got}")]
    LengthMismatch {
        /// The type.
        ty: GgmlType,
        /// Which buffer.
        what: &'static str,
        /// Expected length.
        expected: usize,
        /// Actual length.
        got: usize,
    },
    /// The type exists but the operation is not available for it.
    #[error("{ty}: {op} is not supported for this type")]
    Unsupported {
        /// The type.
        ty: GgmlType,
        /// The operation.
        op: &'static str,
    },
    /// A size computation overflowed.
    #[error("size overflow")]
    Overflow,
}
