//! # orcinus-quant
//!
//! The block quantization formats that GGUF files store (ggml's `block_*` structs), with a
//! scalar **reference** quantizer and dequantizer for each, written to give the same bits as
//! ggml's reference code (llama.cpp's `quantize_row_*_ref` / `dequantize_row_*`).
//!
//! There is exactly one table describing the types: [`GgmlType::info`] returns the row of
//! [`TYPE_TABLE`] for a type (name, ggml type id, elements per block, bytes per block, the
//! activation type of its dot product and the reference functions). Each quantized type lives
//! in one file under `formats/`, holding its `#[repr(C)]` block with a compile-time size
//! assertion, a bit-layout diagram, `quantize`, `dequantize` and the scalar `vec_dot`.
//!
//! Matrix products go through [`QMatMul`], which computes as llama.cpp's CPU backend does:
//! activations quantized to the weight type's [`GgmlType::vec_dot_type`] by
//! [`GgmlType::from_float`], then one [`GgmlType::vec_dot`] per output.
//!
//! This crate knows nothing about models.
//!
//! ```
//! use orcinus_quant::GgmlType;
//! let x: Vec<f32> = (0..256).map(|i| (i as f32 * 0.37).sin()).collect();
//! let ty = GgmlType::Q4K;
//! let mut bytes = vec![0u8; ty.row_bytes(x.len()).unwrap()];
//! ty.quantize(&x, &mut bytes).unwrap();
//! let mut y = vec![0f32; x.len()];
//! ty.dequantize(&bytes, &mut y).unwrap();
//! assert!(x.iter().zip(&y).all(|(a, b)| (a - b).abs() < 0.1));
//!
//! // A dot product as llama.cpp computes it: the activations go to Q8_K first.
//! let at = ty.vec_dot_type();
//! assert_eq!(at, GgmlType::Q8K);
//! let mut act = vec![0u8; at.row_bytes(x.len()).unwrap()];
//! at.from_float(&x, &mut act).unwrap();
//! let dot = ty.vec_dot(&bytes, &act, x.len()).unwrap();
//! let exact: f32 = x.iter().map(|v| v * v).sum();
//! assert!((dot - exact).abs() < 0.02 * exact);
//! ```
#![warn(missing_docs)]

mod error;
pub mod formats;
pub mod kernels;
pub mod matmul;
mod types;

pub use error::QuantError;
pub use matmul::{
    forward_shared, forward_shared_isa, AlignedF32, MatMulScratch, QMatMul, WeightStorage,
};
pub use types::{GgmlType, TypeInfo, VecDotFn, TYPE_TABLE};

/// Elements per super-block of the K-quants (ggml's `QK_K`).
pub const QK_K: usize = 256;
