//! The crate's typed error.

use std::fmt;

use orcinus_quant::{GgmlType, QuantError};

use crate::gguf::ValueType;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in Orcinus' library code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A GGUF file is malformed or unsupported. `offset` is the byte offset in the file where
    /// the problem was found.
    #[error("GGUF error at byte {offset}: {kind}")]
    Gguf {
        /// Byte offset in the file.
        offset: u64,
        /// What is wrong.
        kind: GgufErrorKind,
    },
    /// A metadata key the caller needs is absent.
    #[error("missing metadata key `{0}`")]
    MissingKey(String),
    /// A metadata key holds a value of another type than the caller needs.
    #[error("metadata key `{key}` has type {found}, expected {expected}")]
    WrongType {
        /// The key.
        key: String,
        /// What the caller asked for.
        expected: &'static str,
        /// What the file holds.
        found: ValueType,
    },
    /// No tensor of this name.
    #[error("no tensor named `{0}`")]
    TensorNotFound(String),
    /// A tensor's shape is not what the caller needs.
    #[error("shape mismatch for `{name}`: expected {expected:?}, found {found:?}")]
    ShapeMismatch {
        /// Tensor name.
        name: String,
        /// Expected `ne` (GGUF order).
        expected: Vec<u64>,
        /// Actual `ne`.
        found: Vec<u64>,
    },
    /// A model uses something Orcinus does not support (architecture, head layout, ...).
    #[error("unsupported model: {0}")]
    Unsupported(String),
    /// Memory for a buffer (e.g. the KV cache of a huge context) could not be allocated.
    #[error("out of memory: cannot allocate {0}")]
    OutOfMemory(String),
    /// The session's context (KV cache) is full.
    #[error("context full: {needed} positions needed, the context holds {n_ctx} (start a new session or use a larger -c)")]
    ContextFull {
        /// Positions the request needs.
        needed: usize,
        /// Context size.
        n_ctx: usize,
    },
    /// Generation was cancelled through a cancellation handle.
    #[error("cancelled")]
    Cancelled,
    /// Tokenizer metadata is missing, inconsistent or unsupported, or a tokenizer was asked for
    /// something its vocabulary cannot give (e.g. BOS when the file has none).
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A quantization's input is already quantized and requantizing was not allowed (see
    /// [`crate::quantize::QuantizeOptions::allow_requantize`]).
    #[error("the input is already quantized (`{tensor}` is {ty}): requantizing loses quality, so it is refused unless allowed (--allow-requantize); start from an F32/F16/BF16 file for the best result")]
    Requantize {
        /// The first tensor that would be requantized.
        tensor: String,
        /// Its type in the input.
        ty: GgmlType,
    },
    /// A Hugging Face checkpoint file (`config.json`, a safetensors file, a tokenizer file) is
    /// missing, malformed or inconsistent (see [`crate::convert::hf`]).
    #[error("{path}: {msg}")]
    Checkpoint {
        /// The file (or directory).
        path: String,
        /// What is wrong.
        msg: String,
    },
    /// A chat template could not be compiled or rendered (see [`crate::chat`]).
    #[error("chat template: {0}")]
    Template(crate::chat::TemplateError),
    /// A writer was used out of order or given data of the wrong size.
    #[error("GGUF writer: {0}")]
    Writer(String),
    /// An error from the quantization crate.
    #[error(transparent)]
    Quant(#[from] QuantError),
    /// An I/O error, with the path or operation it happened on.
    #[error("{context}")]
    Io {
        /// What was being done (usually a path).
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn checkpoint(path: impl AsRef<std::path::Path>, msg: impl fmt::Display) -> Self {
        Error::Checkpoint {
            path: path.as_ref().display().to_string(),
            msg: msg.to_string(),
        }
    }

    pub(crate) fn io(context: impl fmt::Display, source: std::io::Error) -> Self {
        Error::Io {
            context: context.to_string(),
            source,
        }
    }
}

/// The ways a GGUF file can be malformed or unsupported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GgufErrorKind {
    /// The file does not start with `GGUF`.
    #[error("not a GGUF file (magic {0:02x?})")]
    BadMagic([u8; 4]),
    /// The file is a big-endian GGUF file.
    #[error("big-endian GGUF (version {0} byte-swapped) is not supported")]
    BigEndian(u32),
    /// GGUF v1 (32-bit counts) or an unknown future version.
    #[error("GGUF version {0} is not supported (only v2 and v3)")]
    UnsupportedVersion(u32),
    /// The file ends before a value it announces.
    #[error("truncated: need {needed} bytes for {what}, only {available} left")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Bytes needed.
        needed: u64,
        /// Bytes left in the file.
        available: u64,
    },
    /// A count cannot fit in the bytes left in the file.
    #[error("{what} count {count} cannot fit in the {available} bytes left")]
    CountTooLarge {
        /// What is counted.
        what: &'static str,
        /// The count.
        count: u64,
        /// Bytes left.
        available: u64,
    },
    /// A string is not valid UTF-8.
    #[error("{0} is not valid UTF-8")]
    InvalidUtf8(&'static str),
    /// A bool stored as a byte other than 0 or 1.
    #[error("bool value byte {0} is neither 0 nor 1")]
    InvalidBool(u8),
    /// Unknown metadata value type id.
    #[error("unknown metadata value type {0}")]
    UnknownValueType(u32),
    /// Arrays nested deeper than Orcinus accepts.
    #[error("metadata arrays nested deeper than {0}")]
    NestingTooDeep(usize),
    /// The same metadata key twice.
    #[error("duplicate metadata key `{0}`")]
    DuplicateKey(String),
    /// `general.alignment` is not a power of two that fits.
    #[error("bad general.alignment {0} (must be a power of two, 1..=65536)")]
    BadAlignment(u64),
    /// A tensor has more than 4 dimensions.
    #[error("tensor `{name}` has {n_dims} dimensions (at most 4)")]
    TooManyDims {
        /// Tensor name.
        name: String,
        /// Claimed dimension count.
        n_dims: u32,
    },
    /// A tensor's element count overflows or its rows are not whole blocks.
    #[error("tensor `{name}`: bad shape {ne:?} for type {ty}: {why}")]
    BadShape {
        /// Tensor name.
        name: String,
        /// Dimensions (GGUF order).
        ne: Vec<u64>,
        /// Type name.
        ty: &'static str,
        /// Reason.
        why: &'static str,
    },
    /// A tensor type id Orcinus does not know.
    #[error("unsupported tensor type id {id} (tensor `{name}`)")]
    UnsupportedQuant {
        /// The ggml type id.
        id: u32,
        /// Tensor name.
        name: String,
    },
    /// A tensor's data offset is not a multiple of the alignment.
    #[error("tensor `{name}`: offset {offset} is not aligned to {alignment}")]
    Misaligned {
        /// Tensor name.
        name: String,
        /// Offset relative to the data section.
        offset: u64,
        /// Alignment.
        alignment: u64,
    },
    /// A tensor's data lies (partly) outside the file.
    #[error("tensor `{name}`: data [{start}, {end}) lies outside the file ({file_len} bytes)")]
    OutOfBounds {
        /// Tensor name.
        name: String,
        /// Absolute start.
        start: u64,
        /// Absolute end.
        end: u64,
        /// File length.
        file_len: u64,
    },
    /// Two tensors share bytes.
    #[error("tensors `{0}` and `{1}` overlap")]
    Overlap(String, String),
    /// Two tensors with one name.
    #[error("duplicate tensor name `{0}`")]
    DuplicateTensor(String),
}

impl GgufErrorKind {
    pub(crate) fn at(self, offset: u64) -> Error {
        Error::Gguf { offset, kind: self }
    }
}
