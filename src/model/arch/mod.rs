//! Architectures, as configurations of one graph.

pub mod llama;
