//! Converting other formats into GGUF: SentencePiece tokenizer models ([`spm`]) and Hugging
//! Face safetensors checkpoints of Llama/Mistral models ([`hf`]).

pub mod hf;
pub mod spm;
