//! Hugging Face checkpoints (`LlamaForCausalLM`, `MistralForCausalLM` in safetensors) to GGUF,
//! as llama.cpp's `convert_hf_to_gguf.py` converts them, optionally quantized in the same pass.
//!
//! A checkpoint directory holds `config.json` ([`config`]), `model.safetensors` or shards
//! listed by `model.safetensors.index.json` ([`safetensors`]) and a tokenizer ([`vocab`]).
//! [`convert`] streams it into one GGUF file through the same pipeline as
//! [`crate::quantize::quantize_file`]: one tensor at a time, a band of rows at a time converted
//! to f32 and then to the output type (the rows of a band in parallel), written to a temporary
//! file renamed over the output only when complete.
//!
//! Tensors (PyTorch shape `[rows, cols]` becomes GGUF `ne = [cols, rows]`):
//!
//! ```text
//! model.embed_tokens.weight                    token_embd.weight        [vocab, hidden]
//! model.layers.N.input_layernorm.weight        blk.N.attn_norm.weight   [hidden]          F32
//! model.layers.N.self_attn.q_proj.weight       blk.N.attn_q.weight      [n_head*hd, hidden]  permuted
//! model.layers.N.self_attn.k_proj.weight       blk.N.attn_k.weight      [n_kv*hd, hidden]    permuted
//! model.layers.N.self_attn.v_proj.weight       blk.N.attn_v.weight      [n_kv*hd, hidden]
//! model.layers.N.self_attn.o_proj.weight       blk.N.attn_output.weight [hidden, n_head*hd]
//! model.layers.N.post_attention_layernorm.weight blk.N.ffn_norm.weight  [hidden]          F32
//! model.layers.N.mlp.gate_proj.weight          blk.N.ffn_gate.weight    [inter, hidden]
//! model.layers.N.mlp.up_proj.weight            blk.N.ffn_up.weight      [inter, hidden]
//! model.layers.N.mlp.down_proj.weight          blk.N.ffn_down.weight    [hidden, inter]
//! model.norm.weight                            output_norm.weight       [hidden]          F32
//! lm_head.weight                               output.weight            [vocab, hidden]   (absent when tied)
//! ```
//!
//! Q and K rows are reordered from Hugging Face's rotate-half RoPE layout to GGUF's
//! interleaved pairs ([`rope_source_row`]). 1-D tensors are written as F32; 2-D weights get
//! the type of [`crate::quantize::tensor_type`] for the file type, as in GGUF → GGUF
//! quantization (F32/F16/BF16 file types: that type for every 2-D weight).

mod bpe;
pub mod config;
pub mod safetensors;
pub mod vocab;

use std::collections::HashMap;
use std::path::Path;

use config::HfConfig;
use safetensors::Checkpoint;

use crate::gguf::{Metadata, Value};
use crate::quantize::{
    self, fallback_type, preferred_type, FileType, Job, MixContext, PlannedTensor, QuantizeOptions,
    RowOrder, Source, Summary, KEY_FILE_TYPE, KEY_QUANTIZATION_VERSION, QUANTIZATION_VERSION,
};
use crate::{Error, Result};

/// The row of a Hugging Face Q or K weight (`nrows` rows in `n_head` heads) that row `r` of
/// the GGUF tensor comes from: llama.cpp's
/// `w.reshape(n_head, 2, rows // n_head // 2, cols).swapaxes(1, 2).reshape(rows, cols)`.
///
/// Within a head of `hd` rows, GGUF row `2i + j` (the `j`-th of the `i`-th rotated pair) is
/// Hugging Face row `j * hd/2 + i` (rotate-half keeps a pair `hd/2` rows apart).
pub fn rope_source_row(r: usize, nrows: usize, n_head: usize) -> usize {
    let hd = nrows / n_head;
    let (head, within) = (r / hd, r % hd);
    head * hd + (within % 2) * (hd / 2) + within / 2
}

/// What a Hugging Face tensor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Embed,
    Output,
    OutputNorm,
    AttnNorm,
    FfnNorm,
    Q,
    K,
    V,
    O,
    Gate,
    Up,
    Down,
}

/// Per-layer tensors: (Hugging Face suffix after `model.layers.N.`, GGUF suffix, role).
const LAYER_TENSORS: [(&str, &str, Role); 9] = [
    ("input_layernorm.weight", "attn_norm.weight", Role::AttnNorm),
    ("self_attn.q_proj.weight", "attn_q.weight", Role::Q),
    ("self_attn.k_proj.weight", "attn_k.weight", Role::K),
    ("self_attn.v_proj.weight", "attn_v.weight", Role::V),
    ("self_attn.o_proj.weight", "attn_output.weight", Role::O),
    (
        "post_attention_layernorm.weight",
        "ffn_norm.weight",
        Role::FfnNorm,
    ),
    ("mlp.gate_proj.weight", "ffn_gate.weight", Role::Gate),
    ("mlp.up_proj.weight", "ffn_up.weight", Role::Up),
    ("mlp.down_proj.weight", "ffn_down.weight", Role::Down),
];

/// Tensors outside the layers: (Hugging Face name, GGUF name, role).
const GLOBAL_TENSORS: [(&str, &str, Role); 3] = [
    (
        "model.embed_tokens.weight",
        "token_embd.weight",
        Role::Embed,
    ),
    ("model.norm.weight", "output_norm.weight", Role::OutputNorm),
    ("lm_head.weight", "output.weight", Role::Output),
];

/// The GGUF name, role and layer of a Hugging Face tensor name.
fn map_name(hf: &str) -> Option<(String, Role, Option<usize>)> {
    if let Some((_, g, role)) = GLOBAL_TENSORS.iter().find(|(h, _, _)| *h == hf) {
        return Some((g.to_string(), *role, None));
    }
    let rest = hf.strip_prefix("model.layers.")?;
    let (n, suffix) = rest.split_once('.')?;
    let layer: usize = n.parse().ok()?;
    let (_, g, role) = LAYER_TENSORS.iter().find(|(h, _, _)| *h == suffix)?;
    Some((format!("blk.{layer}.{g}"), *role, Some(layer)))
}

impl Role {
    /// The PyTorch shape `cfg` gives this tensor.
    fn shape(self, cfg: &HfConfig) -> Vec<u64> {
        let (h, hd) = (cfg.hidden_size as u64, cfg.head_dim() as u64);
        let (q, kv) = (cfg.n_head as u64 * hd, cfg.n_head_kv as u64 * hd);
        let (v, ff) = (cfg.vocab_size as u64, cfg.intermediate_size as u64);
        match self {
            Role::Embed | Role::Output => vec![v, h],
            Role::OutputNorm | Role::AttnNorm | Role::FfnNorm => vec![h],
            Role::Q => vec![q, h],
            Role::K | Role::V => vec![kv, h],
            Role::O => vec![h, q],
            Role::Gate | Role::Up => vec![ff, h],
            Role::Down => vec![h, ff],
        }
    }

    /// The row order of the GGUF tensor.
    fn rows(self, cfg: &HfConfig) -> RowOrder {
        match self {
            Role::Q => RowOrder::RopePermute { n_head: cfg.n_head },
            Role::K => RowOrder::RopePermute {
                n_head: cfg.n_head_kv,
            },
            _ => RowOrder::Identity,
        }
    }
}

/// A checkpoint directory, opened and checked against its config.
#[derive(Debug)]
pub struct HfCheckpoint {
    dir: std::path::PathBuf,
    /// The checkpoint's `config.json`.
    pub config: HfConfig,
    files: Checkpoint,
    /// GGUF name → (Hugging Face name, row order), for every tensor written.
    tensors: HashMap<String, (String, RowOrder)>,
}

impl HfCheckpoint {
    /// Opens the checkpoint in `dir`: reads `config.json`, maps the safetensors files and checks
    /// every tensor's name and shape against the config (every expected tensor present, no
    /// unknown ones).
    pub fn open(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            return Err(Error::checkpoint(dir, "not a directory"));
        }
        let cfg_path = dir.join("config.json");
        if !cfg_path.is_file() {
            return Err(Error::checkpoint(
                dir,
                "no config.json (not a Hugging Face checkpoint directory?)",
            ));
        }
        let config = HfConfig::read(&cfg_path)?;
        let files = Checkpoint::open(dir)?;
        let mut tensors = HashMap::new();
        for hf in files.names() {
            if hf.ends_with("rotary_emb.inv_freq") {
                continue; // recomputed from rope_theta, as llama.cpp skips it
            }
            let Some((gguf, role, layer)) = map_name(hf) else {
                return Err(Error::Unsupported(format!(
                    "tensor `{hf}` is not a weight of a Llama/Mistral model"
                )));
            };
            if role == Role::Output && config.tie_word_embeddings {
                continue; // tied: the output is the embedding matrix
            }
            if layer.is_some_and(|l| l >= config.n_layer) {
                return Err(Error::Unsupported(format!(
                    "tensor `{hf}`: the config has {} layers",
                    config.n_layer
                )));
            }
            let (entry, _) = files.get(hf).expect("listed tensor");
            let expected = role.shape(&config);
            if entry.shape != expected {
                let ne = |s: &[u64]| s.iter().rev().copied().collect();
                return Err(Error::ShapeMismatch {
                    name: hf.to_string(),
                    expected: ne(&expected),
                    found: ne(&entry.shape),
                });
            }
            tensors.insert(gguf, (hf.to_string(), role.rows(&config)));
        }
        let mut expected: Vec<String> = GLOBAL_TENSORS
            .iter()
            .filter(|(_, _, r)| *r != Role::Output || !config.tie_word_embeddings)
            .map(|(_, g, _)| g.to_string())
            .collect();
        for l in 0..config.n_layer {
            expected.extend(LAYER_TENSORS.iter().map(|(_, g, _)| format!("blk.{l}.{g}")));
        }
        if let Some(missing) = expected.iter().find(|g| !tensors.contains_key(*g)) {
            let hf = hf_name(missing);
            return Err(Error::checkpoint(dir, format!("tensor `{hf}` is missing")));
        }
        Ok(HfCheckpoint {
            dir: dir.to_path_buf(),
            config,
            files,
            tensors,
        })
    }

    /// What happens to each tensor when the checkpoint is written as `ftype`, in output order
    /// (blocks in order, by name within each, as quantized GGUF files are laid out).
    pub fn plan(&self, ftype: FileType) -> Vec<PlannedTensor> {
        let ctx = MixContext {
            n_layer: self.config.n_layer,
            n_head: self.config.n_head,
            n_head_kv: self.config.n_head_kv,
            has_output: !self.config.tie_word_embeddings,
        };
        let mut names: Vec<&String> = self.tensors.keys().collect();
        names.sort_by(|a, b| quantize::output_order(a).cmp(&quantize::output_order(b)));
        names
            .into_iter()
            .map(|name| {
                let (entry, _) = self.files.get(&self.tensors[name].0).expect("checked");
                let ne: Vec<u64> = entry.shape.iter().rev().copied().collect();
                let preferred = preferred_type(ftype, name, &ne, &ctx);
                let to = fallback_type(preferred, ne[0]);
                PlannedTensor {
                    name: name.clone(),
                    ne,
                    from: entry.ty,
                    to,
                    fallback_from: (to != preferred).then_some(preferred),
                }
            })
            .collect()
    }

    /// The GGUF metadata of the converted file: architecture and hyper-parameters, then the
    /// tokenizer (see [`vocab`]).
    pub fn metadata(&self, ftype: FileType) -> Result<Metadata> {
        let c = &self.config;
        let mut md = Metadata::new();
        let s = |v: &str| Value::String(v.to_string());
        let u = |v: usize| Value::U32(v as u32);
        md.insert("general.architecture", s("llama"));
        md.insert("general.type", s("model"));
        let name = self
            .dir
            .canonicalize()
            .ok()
            .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "model".into());
        md.insert("general.name", s(&name));
        md.insert("llama.block_count", u(c.n_layer));
        md.insert("llama.context_length", u(c.max_position_embeddings));
        md.insert("llama.embedding_length", u(c.hidden_size));
        md.insert("llama.feed_forward_length", u(c.intermediate_size));
        md.insert("llama.attention.head_count", u(c.n_head));
        md.insert("llama.attention.head_count_kv", u(c.n_head_kv));
        if let Some(theta) = c.rope_theta {
            md.insert("llama.rope.freq_base", Value::F32(theta));
        }
        md.insert(
            "llama.attention.layer_norm_rms_epsilon",
            Value::F32(c.rms_norm_eps),
        );
        if let Some(hd) = c.head_dim {
            md.insert("llama.attention.key_length", u(hd));
            md.insert("llama.attention.value_length", u(hd));
        }
        md.insert(KEY_FILE_TYPE, Value::U32(ftype.id()));
        md.insert("llama.vocab_size", u(c.vocab_size));
        md.insert("llama.rope.dimension_count", u(c.head_dim()));
        if let Some(f) = c.rope_linear_factor {
            md.insert("llama.rope.scaling.type", s("linear"));
            md.insert("llama.rope.scaling.factor", Value::F32(f));
        }
        if let Some(w) = c.sliding_window {
            md.insert("llama.attention.sliding_window", u(w));
        }
        md.insert(KEY_QUANTIZATION_VERSION, Value::U32(QUANTIZATION_VERSION));
        vocab::tokenizer_metadata(&self.dir, c, &mut md)?;
        Ok(md)
    }

    /// Writes the checkpoint to `output` as `ftype` (see the [module docs](self)).
    pub fn convert(
        &self,
        output: &Path,
        ftype: FileType,
        mut opts: QuantizeOptions<'_>,
    ) -> Result<Summary> {
        let md = self.metadata(ftype)?;
        let plan = self.plan(ftype);
        let job = Job {
            metadata: &md,
            plan: &plan,
            ftype,
            input_size: self.files.size(),
            threads: opts.threads,
            progress: opts.progress.take(),
        };
        // Each tensor's pages are released once the next one is asked for (it is written by
        // then), so the resident set stays about one tensor wide.
        let mut previous: Option<&str> = None;
        let result = quantize::write_gguf(output, job, &mut |t| {
            let (hf, rows) = &self.tensors[&t.name];
            if let Some(p) = previous.replace(hf) {
                self.files.release(p);
            }
            let (_, data) = self.files.get(hf).expect("checked");
            Ok(Source { data, rows: *rows })
        });
        if let Some(p) = previous {
            self.files.release(p);
        }
        result
    }
}

/// The Hugging Face name of a GGUF tensor name (for messages).
fn hf_name(gguf: &str) -> String {
    if let Some((h, _, _)) = GLOBAL_TENSORS.iter().find(|(_, g, _)| *g == gguf) {
        return h.to_string();
    }
    if let Some((layer, suffix)) = gguf.strip_prefix("blk.").and_then(|r| r.split_once('.')) {
        if let Some((h, _, _)) = LAYER_TENSORS.iter().find(|(_, g, _)| *g == suffix) {
            return format!("model.layers.{layer}.{h}");
        }
    }
    gguf.to_string()
}

/// Converts the checkpoint in `dir` to the GGUF file `output` as `ftype`
/// ([`HfCheckpoint::open`] then [`HfCheckpoint::convert`]).
///
/// ```no_run
/// use orcinus::convert::hf;
/// use orcinus::quantize::{FileType, QuantizeOptions};
/// let s = hf::convert(
///     "Mistral-7B-v0.1".as_ref(),
///     "mistral-q4_k_m.gguf".as_ref(),
///     FileType::Q4KM,
///     QuantizeOptions::default(),
/// )?;
/// println!("{:.2} bits per weight", s.bits_per_weight);
/// # Ok::<(), orcinus::Error>(())
/// ```
pub fn convert(
    dir: &Path,
    output: &Path,
    ftype: FileType,
    opts: QuantizeOptions<'_>,
) -> Result<Summary> {
    HfCheckpoint::open(dir)?.convert(output, ftype, opts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rope_permutation_matches_the_reshape() {
        // n_head 2, head_dim 6: HF rows [h][j][i] (j in 0..2, i in 0..3) -> GGUF rows [h][i][j].
        let rows: Vec<usize> = (0..12).map(|r| rope_source_row(r, 12, 2)).collect();
        assert_eq!(rows, [0, 3, 1, 4, 2, 5, 6, 9, 7, 10, 8, 11]);
    }

    #[test]
    fn names_map_both_ways() {
        for hf in [
            "model.embed_tokens.weight",
            "lm_head.weight",
            "model.norm.weight",
            "model.layers.12.self_attn.k_proj.weight",
            "model.layers.0.mlp.down_proj.weight",
        ] {
            let (g, _, _) = map_name(hf).unwrap();
            assert_eq!(hf_name(&g), hf);
        }
        assert_eq!(
            map_name("model.layers.3.post_attention_layernorm.weight")
                .unwrap()
                .0,
            "blk.3.ffn_norm.weight"
        );
        assert!(map_name("model.layers.0.self_attn.q_proj.bias").is_none());
    }
}
