//! GGUF files: a validating, memory-mapped reader and a streaming writer.
//!
//! GGUF v2 and v3 (little-endian) are read; v1 and big-endian files are refused with a typed
//! error. See [`File`] for reading and [`Writer`] for writing.
//!
//! ```no_run
//! let f = orcinus::gguf::File::open("model.gguf")?;
//! println!("{}", f.metadata().get_str("general.architecture")?);
//! for t in f.tensors() {
//!     println!("{} {:?} {}", t.info.name, t.info.ne, t.info.ty);
//! }
//! let w = f.tensor("token_embd.weight")?.to_f32()?;
//! # Ok::<(), orcinus::Error>(())
//! ```

mod reader;
mod value;
mod writer;

pub use reader::{parse_header, File, Header, Tensor, TensorInfo, MAX_ARRAY_DEPTH};
pub use value::{Array, ArrayElem, Metadata, Value, ValueType};
pub use writer::{TensorSpec, Writer};

/// The four bytes every GGUF file starts with.
pub const GGUF_MAGIC: [u8; 4] = *b"GGUF";
/// Alignment of tensor data when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// The key that sets the alignment.
pub const KEY_ALIGNMENT: &str = "general.alignment";
/// Most dimensions a tensor may have.
pub const MAX_DIMS: usize = 4;
