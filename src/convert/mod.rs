//! Converting other formats into GGUF: SentencePiece tokenizer models ([`spm`]).

pub mod spm;
