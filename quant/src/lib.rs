//! # orcinus-quant
//!
//! The block quantization formats that GGUF files store (ggml's `block_*` structs), with a
//! scalar **reference** quantizer and dequantizer for each, written to give the same bits as
//! ggml's reference code (llama.cpp's `quantize_row_*_ref` / `dequantize_row_*`).
//!
//! There is exactly one table describing the types: [`GgmlType::info`] returns the row of
//! [`TYPE_TABLE`] for a type (name, ggml type id, elements per block, bytes per block and the
//! reference functions). Each quantized type lives in one file under `formats/`, holding its
//! `#[repr(C)]` block with a compile-time size assertion, a bit-layout diagram, `quantize` and
//! `dequantize`.
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
//! ```
#![warn(missing_docs)]

mod error;
pub mod formats;
pub mod matmul;
mod types;

pub use error::QuantError;
pub use matmul::{QMatMul, WeightStorage};
pub use types::{GgmlType, TypeInfo, TYPE_TABLE};

/// Elements per super-block of the K-quants (ggml's `QK_K`).
pub const QK_K: usize = 256;
