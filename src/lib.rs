//! # Orcinus
//!
//! Pure-Rust GGUF inference for Llama/Mistral-class models. This crate reads and writes GGUF
//! files ([`gguf`]); the block formats and kernels live in [`quant`] (the `orcinus-quant` crate).
#![warn(missing_docs)]

mod error;
pub mod gguf;
pub mod npy;

pub use error::{Error, GgufErrorKind, Result};
pub use orcinus_quant as quant;

/// The README's Rust examples, compiled as doctests so they stay true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
