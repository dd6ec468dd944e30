//! # Orcinus
//!
//! Pure-Rust GGUF inference for Llama/Mistral-class models. This crate reads and writes GGUF
//! files ([`gguf`]); the block formats and kernels live in [`quant`] (the `orcinus-quant` crate).
#![warn(missing_docs)]

pub mod chat;
pub mod convert;
mod error;
pub mod generate;
pub mod gguf;
pub mod model;
pub mod npy;
pub mod quantize;
pub mod sampling;
pub mod synth;
pub mod tokenizer;

pub use error::{Error, GgufErrorKind, Result};
pub use orcinus_quant as quant;

/// The README's Rust examples, compiled as doctests so they stay true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
