//! Orcinus: pure-Rust GGUF inference.
pub use orcinus_quant as quant;
