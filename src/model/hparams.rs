//! Typed hyper-parameters, read from GGUF metadata through one table of key names.

use crate::error::{Error, Result};
use crate::gguf::Metadata;

/// The architectures Orcinus runs: all are configs of the same Llama graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Arch {
    /// `llama` (TheBloke's Mistral files say `llama` too).
    Llama,
    /// `mistral`.
    Mistral,
}

impl Arch {
    /// GGUF's name, the prefix of the architecture's keys.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Mistral => "mistral",
        }
    }
}

/// Metadata keys, relative to the `{arch}.` prefix. One table: every key name lives here.
mod key {
    pub const ARCH: &str = "general.architecture";
    pub const CONTEXT_LENGTH: &str = "context_length";
    pub const EMBEDDING_LENGTH: &str = "embedding_length";
    pub const BLOCK_COUNT: &str = "block_count";
    pub const FEED_FORWARD_LENGTH: &str = "feed_forward_length";
    pub const HEAD_COUNT: &str = "attention.head_count";
    pub const HEAD_COUNT_KV: &str = "attention.head_count_kv";
    pub const KEY_LENGTH: &str = "attention.key_length";
    pub const RMS_EPS: &str = "attention.layer_norm_rms_epsilon";
    pub const SLIDING_WINDOW: &str = "attention.sliding_window";
    pub const ROPE_FREQ_BASE: &str = "rope.freq_base";
    pub const ROPE_DIM: &str = "rope.dimension_count";
    pub const ROPE_SCALING_TYPE: &str = "rope.scaling.type";
    pub const ROPE_SCALING_FACTOR: &str = "rope.scaling.factor";
    pub const ROPE_SCALE_LINEAR: &str = "rope.scale_linear";
    pub const VOCAB_SIZE: &str = "vocab_size";
    pub const TOKENS: &str = "tokenizer.ggml.tokens";
}

/// Hyper-parameters of a Llama-family model.
#[derive(Debug, Clone, PartialEq)]
pub struct Hparams {
    /// Architecture.
    pub arch: Arch,
    /// Context length the model was trained for.
    pub n_ctx_train: usize,
    /// Embedding width (`dim`).
    pub n_embd: usize,
    /// Transformer blocks.
    pub n_layer: usize,
    /// SwiGLU hidden width.
    pub n_ff: usize,
    /// Query heads.
    pub n_head: usize,
    /// Key/value heads (GQA: `n_head` is a multiple).
    pub n_head_kv: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// RMSNorm epsilon.
    pub rms_eps: f32,
    /// RoPE base frequency.
    pub rope_freq_base: f32,
    /// RoPE position scale (linear scaling: positions are multiplied by this; 1 = none).
    pub rope_freq_scale: f32,
    /// Dimensions of each head that RoPE rotates.
    pub rope_dim: usize,
    /// Vocabulary size.
    pub n_vocab: usize,
    /// Sliding-window attention width, if the model uses one.
    pub sliding_window: Option<usize>,
}

impl Hparams {
    /// Reads the hyper-parameters from `md`.
    pub fn from_metadata(md: &Metadata) -> Result<Self> {
        let arch = match md.get_str(key::ARCH)? {
            "llama" => Arch::Llama,
            "mistral" => Arch::Mistral,
            other => {
                return Err(Error::Unsupported(format!(
                    "architecture `{other}` (supported: llama, mistral)"
                )))
            }
        };
        let k = |name: &str| format!("{}.{name}", arch.name());
        let usize_of = |name: &str| -> Result<usize> { Ok(md.get_u64(&k(name))? as usize) };
        let n_embd = usize_of(key::EMBEDDING_LENGTH)?;
        let n_head = usize_of(key::HEAD_COUNT)?;
        let n_head_kv = md
            .optional(&k(key::HEAD_COUNT_KV), Metadata::get_u64)?
            .map_or(n_head, |v| v as usize);
        if n_head == 0 || n_head_kv == 0 || n_head % n_head_kv != 0 {
            return Err(Error::Unsupported(format!(
                "head counts {n_head} / {n_head_kv} (query heads must be a positive multiple of kv heads)"
            )));
        }
        let head_dim = md
            .optional(&k(key::KEY_LENGTH), Metadata::get_u64)?
            .map_or(n_embd / n_head, |v| v as usize);
        let n_vocab = match md.optional(&k(key::VOCAB_SIZE), Metadata::get_u64)? {
            Some(v) => v as usize,
            None => md.get_arr::<String>(key::TOKENS)?.len(),
        };
        let scaling_key = k(key::ROPE_SCALING_TYPE);
        let scaling = if md.contains(&scaling_key) {
            Some(md.get_str(&scaling_key)?)
        } else {
            None
        };
        let linear = match scaling {
            Some("linear") => md.optional(&k(key::ROPE_SCALING_FACTOR), Metadata::get_f32)?,
            Some("none") | None => md.optional(&k(key::ROPE_SCALE_LINEAR), Metadata::get_f32)?,
            Some(other) => return Err(Error::Unsupported(format!("RoPE scaling type `{other}`"))),
        };
        let hp = Hparams {
            arch,
            n_ctx_train: usize_of(key::CONTEXT_LENGTH)?,
            n_embd,
            n_layer: usize_of(key::BLOCK_COUNT)?,
            n_ff: usize_of(key::FEED_FORWARD_LENGTH)?,
            n_head,
            n_head_kv,
            head_dim,
            rms_eps: md.get_f32(&k(key::RMS_EPS))?,
            rope_freq_base: md
                .optional(&k(key::ROPE_FREQ_BASE), Metadata::get_f32)?
                .unwrap_or(10000.0),
            rope_freq_scale: linear.filter(|&f| f > 0.0).map_or(1.0, |f| 1.0 / f),
            rope_dim: md
                .optional(&k(key::ROPE_DIM), Metadata::get_u64)?
                .map_or(head_dim, |v| v as usize),
            n_vocab,
            sliding_window: md
                .optional(&k(key::SLIDING_WINDOW), Metadata::get_u64)?
                .map(|v| v as usize)
                .filter(|&w| w > 0),
        };
        if hp.head_dim == 0
            || !hp.head_dim.is_multiple_of(2)
            || hp.rope_dim > hp.head_dim
            || !hp.rope_dim.is_multiple_of(2)
        {
            return Err(Error::Unsupported(format!(
                "head dimension {} / RoPE dimension {}",
                hp.head_dim, hp.rope_dim
            )));
        }
        if hp.n_layer == 0 || hp.n_embd == 0 || hp.n_ff == 0 || hp.n_vocab == 0 || hp.n_layer > 1024
        {
            return Err(Error::Unsupported(
                "empty or absurd model dimensions".into(),
            ));
        }
        Ok(hp)
    }
}
