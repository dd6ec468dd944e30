//! `config.json` of a `LlamaForCausalLM` / `MistralForCausalLM` checkpoint.

use std::path::Path;

use serde_json::{Map, Value as Json};

use crate::{Error, Result};

/// The architectures (`config.json` `architectures[0]`) the converter reads.
pub const SUPPORTED_ARCHITECTURES: [&str; 2] = ["LlamaForCausalLM", "MistralForCausalLM"];

/// The hyper-parameters of a Llama-family checkpoint, as `config.json` states them.
#[derive(Debug, Clone, PartialEq)]
pub struct HfConfig {
    /// `architectures[0]`, one of [`SUPPORTED_ARCHITECTURES`].
    pub architecture: String,
    /// `hidden_size`: embedding width.
    pub hidden_size: usize,
    /// `num_hidden_layers`: transformer blocks.
    pub n_layer: usize,
    /// `num_attention_heads`: query heads.
    pub n_head: usize,
    /// `num_key_value_heads` (default: `n_head`).
    pub n_head_kv: usize,
    /// `head_dim` when the file states it (default: `hidden_size / n_head`).
    pub head_dim: Option<usize>,
    /// `intermediate_size`: SwiGLU hidden width.
    pub intermediate_size: usize,
    /// `rms_norm_eps`.
    pub rms_norm_eps: f32,
    /// `rope_theta` (or `rope_parameters.rope_theta`), if stated.
    pub rope_theta: Option<f32>,
    /// `max_position_embeddings`: the training context.
    pub max_position_embeddings: usize,
    /// `vocab_size`: rows of the embedding matrix.
    pub vocab_size: usize,
    /// `tie_word_embeddings` (default false): the output matrix is the embedding matrix.
    pub tie_word_embeddings: bool,
    /// `sliding_window`, when set (Mistral).
    pub sliding_window: Option<usize>,
    /// `rope_scaling` (or `rope_parameters`) of type `linear`: its factor.
    pub rope_linear_factor: Option<f32>,
    /// `bos_token_id`, if stated.
    pub bos_token_id: Option<u32>,
    /// `eos_token_id`, if stated (the first one of a list).
    pub eos_token_id: Option<u32>,
}

impl HfConfig {
    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.head_dim.unwrap_or(self.hidden_size / self.n_head)
    }

    /// Reads `config.json` at `path`.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        Self::parse(&text, path)
    }

    /// Parses the text of a `config.json` (read from `path`, which errors name): a malformed
    /// file is [`Error::Checkpoint`], an architecture or feature the converter does not handle
    /// [`Error::Unsupported`].
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        Self::parse_inner(text).map_err(|e| match e {
            Bad::Malformed(m) => Error::checkpoint(path, m),
            Bad::Unsupported(m) => Error::Unsupported(format!("{}: {m}", path.display())),
        })
    }

    fn parse_inner(text: &str) -> std::result::Result<Self, Bad> {
        let json: Json = serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
        let c = json.as_object().ok_or("not a JSON object".to_string())?;
        let architecture = match c.get("architectures").and_then(|a| a.as_array()) {
            Some(a) => match a.as_slice() {
                [Json::String(s)] => s.clone(),
                _ => return Err(format!("`architectures` {a:?}: expected one name").into()),
            },
            None => return Err("no `architectures` list".to_string().into()),
        };
        if !SUPPORTED_ARCHITECTURES.contains(&architecture.as_str()) {
            return Err(Bad::Unsupported(format!(
                "unsupported architecture `{architecture}` (supported: {})",
                SUPPORTED_ARCHITECTURES.join(", ")
            )));
        }
        let n_head = uint(c, "num_attention_heads")?;
        let hidden_size = uint(c, "hidden_size")?;
        let cfg = HfConfig {
            architecture,
            hidden_size,
            n_layer: uint(c, "num_hidden_layers")?,
            n_head,
            n_head_kv: opt_uint(c, "num_key_value_heads")?.unwrap_or(n_head),
            head_dim: opt_uint(c, "head_dim")?,
            intermediate_size: uint(c, "intermediate_size")?,
            rms_norm_eps: float(c, "rms_norm_eps")?.ok_or("no `rms_norm_eps`".to_string())?,
            rope_theta: match float(c, "rope_theta")? {
                Some(t) => Some(t),
                None => match c.get("rope_parameters") {
                    Some(Json::Object(p)) => float(p, "rope_theta")?,
                    _ => None,
                },
            },
            max_position_embeddings: uint(c, "max_position_embeddings")?,
            vocab_size: uint(c, "vocab_size")?,
            tie_word_embeddings: match c.get("tie_word_embeddings") {
                None | Some(Json::Null) => false,
                Some(Json::Bool(b)) => *b,
                Some(v) => return Err(format!("`tie_word_embeddings` is {v}, not a bool").into()),
            },
            sliding_window: opt_uint(c, "sliding_window")?.filter(|&w| w > 0),
            rope_linear_factor: rope_scaling(c).map_err(Bad::Unsupported)?,
            bos_token_id: opt_uint(c, "bos_token_id")?.map(|v| v as u32),
            eos_token_id: first_id(c.get("eos_token_id"))?,
        };
        let bad = |what: &str| Err(Bad::Unsupported(what.to_string()));
        if cfg.n_head == 0 || cfg.n_head_kv == 0 || !cfg.n_head.is_multiple_of(cfg.n_head_kv) {
            return bad(&format!(
                "head counts {} / {} (query heads must be a positive multiple of key/value heads)",
                cfg.n_head, cfg.n_head_kv
            ));
        }
        let hd = cfg.head_dim();
        if hd == 0 || !hd.is_multiple_of(2) || (cfg.head_dim.is_none() && hidden_size % n_head != 0)
        {
            return bad(&format!(
                "head dimension {hd} (must be even and divide hidden_size)"
            ));
        }
        if cfg.n_layer == 0
            || cfg.hidden_size == 0
            || cfg.intermediate_size == 0
            || cfg.vocab_size == 0
        {
            return bad("empty model dimensions");
        }
        Ok(cfg)
    }
}

/// Why a config is refused.
enum Bad {
    Malformed(String),
    Unsupported(String),
}

impl From<String> for Bad {
    fn from(m: String) -> Self {
        Bad::Malformed(m)
    }
}

fn uint(c: &Map<String, Json>, key: &str) -> std::result::Result<usize, String> {
    opt_uint(c, key)?.ok_or_else(|| format!("no `{key}`"))
}

fn opt_uint(c: &Map<String, Json>, key: &str) -> std::result::Result<Option<usize>, String> {
    match c.get(key) {
        None | Some(Json::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|v| usize::try_from(v).ok())
            .filter(|&v| v <= u32::MAX as usize)
            .map(Some)
            .ok_or_else(|| format!("`{key}` is {v}, not a non-negative integer")),
    }
}

fn float(c: &Map<String, Json>, key: &str) -> std::result::Result<Option<f32>, String> {
    match c.get(key) {
        None | Some(Json::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .map(|f| Some(f as f32))
            .ok_or_else(|| format!("`{key}` is {v}, not a number")),
    }
}

/// An id or the first of a list of ids (`eos_token_id` may be either).
pub(crate) fn first_id(v: Option<&Json>) -> std::result::Result<Option<u32>, String> {
    let v = match v {
        Some(Json::Array(a)) => a.first(),
        other => other,
    };
    match v {
        None | Some(Json::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|v| u32::try_from(v).ok())
            .map(Some)
            .ok_or_else(|| format!("token id {v} is not a non-negative integer")),
    }
}

/// `rope_scaling` (or transformers 5's `rope_parameters`): none, or linear with its factor;
/// other kinds are refused.
fn rope_scaling(c: &Map<String, Json>) -> std::result::Result<Option<f32>, String> {
    let s = match c.get("rope_scaling").or_else(|| c.get("rope_parameters")) {
        None | Some(Json::Null) => return Ok(None),
        Some(Json::Object(s)) => s,
        Some(v) => return Err(format!("`rope_scaling` is {v}, not an object")),
    };
    let kind = s
        .get("rope_type")
        .or_else(|| s.get("type"))
        .and_then(Json::as_str)
        .unwrap_or("");
    match kind {
        "linear" => Ok(Some(
            float(s, "factor")?.ok_or("linear `rope_scaling` without a `factor`")?,
        )),
        "default" => Ok(None),
        other => Err(format!(
            "`rope_scaling` type `{other}` (only linear is supported)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> std::result::Result<HfConfig, String> {
        HfConfig::parse(text, Path::new("config.json")).map_err(|e| e.to_string())
    }

    const MISTRAL: &str = r#"{"architectures": ["MistralForCausalLM"], "hidden_size": 32,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "intermediate_size": 64, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
        "max_position_embeddings": 512, "vocab_size": 32002, "tie_word_embeddings": false,
        "sliding_window": 16, "head_dim": null, "eos_token_id": [2, 32000]}"#;

    #[test]
    fn reads_mistral_config() {
        let c = parse(MISTRAL).unwrap();
        assert_eq!((c.n_head, c.n_head_kv, c.head_dim()), (4, 2, 8));
        assert_eq!(c.sliding_window, Some(16));
        assert_eq!(c.eos_token_id, Some(2));
        assert_eq!(c.rope_linear_factor, None);
    }

    #[test]
    fn refuses_other_architectures_and_rope_kinds() {
        let gpt2 = MISTRAL.replace("MistralForCausalLM", "GPT2LMHeadModel");
        assert!(parse(&gpt2).unwrap_err().contains("GPT2LMHeadModel"));
        let yarn = MISTRAL.replace(
            "\"head_dim\": null",
            "\"rope_scaling\": {\"type\": \"yarn\", \"factor\": 4.0}",
        );
        assert!(parse(&yarn).unwrap_err().contains("yarn"));
        let linear = MISTRAL.replace(
            "\"head_dim\": null",
            "\"rope_scaling\": {\"type\": \"linear\", \"factor\": 4.0}",
        );
        assert_eq!(parse(&linear).unwrap().rope_linear_factor, Some(4.0));
        let bad_heads = MISTRAL.replace("\"num_key_value_heads\": 2", "\"num_key_value_heads\": 3");
        assert!(parse(&bad_heads).unwrap_err().contains("head counts"));
    }
}
