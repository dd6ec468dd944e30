//! Synthetic benchmark models: a real model's exact tensor names, shapes, types and metadata,
//! with random weights.
//!
//! [`SynthPreset::Mistral7B`] is Mistral-7B-OpenOrca as TheBloke's GGUF files have it (llama
//! architecture, 32 blocks, 4096 wide, 32 query / 8 key-value heads of 128, SwiGLU 14336,
//! context 32768, RoPE base 10000, RMS epsilon 1e-5, Mistral's SentencePiece vocabulary plus
//! `<|im_end|>` = 32000 and `<|im_start|>` = 32001, BOS 1, EOS 32000, ChatML template), so a
//! benchmark on it does exactly the work the real file needs, without the 4 GB download.
//! [`SynthPreset::Tiny`] keeps the metadata and tokenizer with small shapes, for tests.
//!
//! Each tensor gets the type llama.cpp's mix gives it ([`crate::quantize::tensor_type`]), and
//! is quantized with the reference quantizers, so a `Q4_K_M` file has the same layout, sizes
//! and kernels as a real one. [`synth_to_path`] streams: the weights are generated a few rows
//! at a time, quantized in parallel and written with the streaming [`crate::gguf::Writer`],
//! so memory stays bounded (tens of MB) whatever the model's size.
//!
//! ## The weights
//! Values are drawn from a bell-shaped distribution (the sum of four uniforms, a cheap
//! approximation of a normal that never exceeds ±3.5σ): σ = 0.02 around 0 for matrices (the
//! initialisation of Llama-family models, about what trained ones hold), σ = 0.02 around 1 for
//! norm weights. The forward pass on such a model is numerically tame (finite logits of order
//! 1), though its text is gibberish.
//!
//! The values of a tensor depend only on the seed, the tensor's name and the position in the
//! tensor ([`ChaCha8Rng`] with the name's hash as its stream), never on the thread count or the
//! file type: the same seed gives the same file byte for byte, and the files of two types are
//! quantizations of the same f32 weights.
//!
//! ```no_run
//! use orcinus::convert::spm::SpmModel;
//! use orcinus::quantize::FileType;
//! use orcinus::synth::{synth_to_path, SynthOptions, SynthPreset};
//! let tok = SpmModel::read("target/fixtures/tokenizer.model.v1".as_ref())?;
//! let s = synth_to_path(
//!     SynthPreset::Tiny,
//!     FileType::Q4KM,
//!     &tok,
//!     "tiny-q4_k_m.gguf".as_ref(),
//!     SynthOptions::default(),
//! )?;
//! println!("{} bytes", s.file_size);
//! # Ok::<(), orcinus::Error>(())
//! ```

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use orcinus_quant::GgmlType;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::chat::CHAT_TEMPLATE_KEY;
use crate::convert::spm::{PieceType, SpmModel};
use crate::error::{Error, Result};
use crate::gguf::{Metadata, Value};
use crate::quantize::{
    self, allows_quantization, FileType, MixContext, PlannedTensor, ProgressFn, Summary,
};

/// The seed [`SynthOptions::default`] uses.
pub const DEFAULT_SEED: u64 = 42;

/// Standard deviation of the generated values.
const SIGMA: f32 = 0.02;

/// Mistral-7B-OpenOrca's ChatML template (its `tokenizer_config.json`).
pub const CHATML_TEMPLATE: &str =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] \
+ '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ \
'<|im_start|>assistant\\n' }}{% endif %}";

/// The tokens OpenOrca adds to Mistral's 32000 SentencePiece pieces, in id order (32000, 32001).
pub const ADDED_TOKENS: [&str; 2] = ["<|im_end|>", "<|im_start|>"];

/// End-of-sequence id: `<|im_end|>`, as OpenOrca's `generation_config.json` and GGUF files
/// have it (Mistral's own `</s>` is 2).
pub const EOS_ID: u32 = 32000;

/// A model shape to synthesise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SynthPreset {
    /// Mistral-7B-OpenOrca: 32 blocks, 4096 wide, 7.24 B parameters.
    Mistral7B,
    /// The same metadata and tokenizer with 2 blocks, 256 wide (for tests).
    Tiny,
}

/// The hyper-parameters of a preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SynthShape {
    /// `general.name`.
    pub name: &'static str,
    /// Transformer blocks.
    pub n_layer: u64,
    /// Embedding width.
    pub n_embd: u64,
    /// Query heads.
    pub n_head: u64,
    /// Key/value heads.
    pub n_head_kv: u64,
    /// SwiGLU hidden width.
    pub n_ff: u64,
    /// Training context length.
    pub n_ctx: u64,
    /// Vocabulary: Mistral's 32000 pieces and [`ADDED_TOKENS`].
    pub n_vocab: u64,
}

impl SynthShape {
    /// Width of one head (`n_embd / n_head`).
    pub fn head_dim(&self) -> u64 {
        self.n_embd / self.n_head
    }
}

/// One row per preset: (preset, CLI name, shape).
const PRESETS: [(SynthPreset, &str, SynthShape); 2] = [
    (
        SynthPreset::Mistral7B,
        "mistral-7b",
        SynthShape {
            name: "synthetic mistral-7b-openorca (random weights)",
            n_layer: 32,
            n_embd: 4096,
            n_head: 32,
            n_head_kv: 8,
            n_ff: 14336,
            n_ctx: 32768,
            n_vocab: 32002,
        },
    ),
    (
        SynthPreset::Tiny,
        "tiny",
        SynthShape {
            name: "synthetic tiny mistral-openorca (random weights)",
            n_layer: 2,
            n_embd: 256,
            n_head: 4,
            n_head_kv: 2,
            n_ff: 512,
            n_ctx: 32768,
            n_vocab: 32002,
        },
    ),
];

impl SynthPreset {
    fn row(self) -> &'static (SynthPreset, &'static str, SynthShape) {
        PRESETS
            .iter()
            .find(|r| r.0 == self)
            .expect("every preset has a row")
    }

    /// Every preset.
    pub fn all() -> impl Iterator<Item = SynthPreset> {
        PRESETS.iter().map(|r| r.0)
    }

    /// The preset's name on the command line (`"mistral-7b"`, `"tiny"`).
    pub fn name(self) -> &'static str {
        self.row().1
    }

    /// The preset called `name` (case-insensitive).
    pub fn from_name(name: &str) -> Option<Self> {
        PRESETS
            .iter()
            .find(|r| r.1.eq_ignore_ascii_case(name))
            .map(|r| r.0)
    }

    /// Its hyper-parameters.
    pub fn shape(self) -> SynthShape {
        self.row().2
    }
}

impl fmt::Display for SynthPreset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SynthPreset {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        SynthPreset::from_name(s).ok_or_else(|| {
            let names: Vec<&str> = SynthPreset::all().map(SynthPreset::name).collect();
            format!("unknown preset `{s}` (one of {})", names.join(", "))
        })
    }
}

/// The tensors of a Llama model of `shape`: `(name, ne)` with `ne` in GGUF order, in the order
/// llama.cpp's quantizer writes them (outside the blocks first, then block by block, by name).
pub fn tensor_shapes(shape: &SynthShape) -> Vec<(String, Vec<u64>)> {
    let (e, ff, vocab) = (shape.n_embd, shape.n_ff, shape.n_vocab);
    let (q, kv) = (
        shape.n_head * shape.head_dim(),
        shape.n_head_kv * shape.head_dim(),
    );
    let mut v = vec![
        ("token_embd.weight".to_string(), vec![e, vocab]),
        ("output_norm.weight".to_string(), vec![e]),
        ("output.weight".to_string(), vec![e, vocab]),
    ];
    for i in 0..shape.n_layer {
        for (t, ne) in [
            ("attn_norm", vec![e]),
            ("attn_q", vec![e, q]),
            ("attn_k", vec![e, kv]),
            ("attn_v", vec![e, kv]),
            ("attn_output", vec![q, e]),
            ("ffn_norm", vec![e]),
            ("ffn_gate", vec![e, ff]),
            ("ffn_up", vec![e, ff]),
            ("ffn_down", vec![ff, e]),
        ] {
            v.push((format!("blk.{i}.{t}.weight"), ne));
        }
    }
    v.sort_by(|a, b| quantize::output_order(&a.0).cmp(&quantize::output_order(&b.0)));
    v
}

/// The tensors of `preset` written as `ftype`, in file order, with the type llama.cpp's mix
/// gives each ([`crate::quantize::tensor_type`]); `from` is F32, the type the weights are
/// generated in. Nothing is generated or read: this is what [`synth_to_path`] will write.
pub fn plan(preset: SynthPreset, ftype: FileType) -> Vec<PlannedTensor> {
    let shape = preset.shape();
    let ctx = MixContext {
        n_layer: shape.n_layer as usize,
        n_head: shape.n_head as usize,
        n_head_kv: shape.n_head_kv as usize,
        has_output: true,
    };
    tensor_shapes(&shape)
        .into_iter()
        .map(|(name, ne)| PlannedTensor::new(&name, &ne, GgmlType::F32, ftype, &ctx))
        .collect()
}

/// The metadata of `preset` written as `ftype`, with the tokenizer of `tokenizer` (Mistral's
/// 32000-piece SentencePiece model; [`ADDED_TOKENS`] are appended as user-defined tokens with
/// score -1000, as llama.cpp's converter adds them). Keys are in the order llama.cpp's
/// converter and quantizer write them.
///
/// Errors: [`Error::Tokenizer`] when `tokenizer` does not have the 32000 pieces the
/// vocabulary needs.
pub fn metadata(preset: SynthPreset, ftype: FileType, tokenizer: &SpmModel) -> Result<Metadata> {
    let s = preset.shape();
    let want = s.n_vocab as usize - ADDED_TOKENS.len();
    if tokenizer.pieces.len() != want {
        return Err(Error::Tokenizer(format!(
            "the {preset} preset needs Mistral's {want}-piece SentencePiece model \
             (tokenizer.model.v1); this one has {} pieces",
            tokenizer.pieces.len()
        )));
    }
    let u32v = |v: u64| Value::U32(v as u32);
    let mut md = Metadata::new();
    md.insert("general.architecture", Value::String("llama".into()));
    md.insert("general.name", Value::String(s.name.into()));
    md.insert("llama.context_length", u32v(s.n_ctx));
    md.insert("llama.embedding_length", u32v(s.n_embd));
    md.insert("llama.block_count", u32v(s.n_layer));
    md.insert("llama.feed_forward_length", u32v(s.n_ff));
    md.insert("llama.rope.dimension_count", u32v(s.head_dim()));
    md.insert("llama.attention.head_count", u32v(s.n_head));
    md.insert("llama.attention.head_count_kv", u32v(s.n_head_kv));
    md.insert("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5));
    md.insert("llama.rope.freq_base", Value::F32(10000.0));
    md.insert(quantize::KEY_FILE_TYPE, Value::U32(ftype.id()));
    let added: Vec<(String, PieceType)> = ADDED_TOKENS
        .iter()
        .map(|t| (t.to_string(), PieceType::UserDefined))
        .collect();
    tokenizer.gguf_metadata(&added, &mut md);
    md.insert("tokenizer.ggml.eos_token_id", Value::U32(EOS_ID));
    md.insert("tokenizer.ggml.add_bos_token", Value::Bool(true));
    md.insert("tokenizer.ggml.add_eos_token", Value::Bool(false));
    md.insert(CHAT_TEMPLATE_KEY, Value::String(CHATML_TEMPLATE.into()));
    Ok(quantize::output_metadata(&md, ftype))
}

/// How to synthesise.
pub struct SynthOptions<'a> {
    /// Seed of the weights (the same seed gives the same file).
    pub seed: u64,
    /// Worker threads (0: one per core).
    pub threads: usize,
    /// Progress reports: output bytes written and their total (see [`ProgressFn`]).
    pub progress: Option<ProgressFn<'a>>,
}

impl Default for SynthOptions<'_> {
    fn default() -> Self {
        SynthOptions {
            seed: DEFAULT_SEED,
            threads: 0,
            progress: None,
        }
    }
}

impl fmt::Debug for SynthOptions<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SynthOptions")
            .field("seed", &self.seed)
            .field("threads", &self.threads)
            .finish_non_exhaustive()
    }
}

/// Writes `preset` as `ftype`, with random weights (see the [module docs](self)) and the
/// tokenizer of `tokenizer` (see [`metadata`]), to `output`. Like
/// [`crate::quantize::quantize_file`], the file is written to `OUTPUT.tmp-<pid>` and renamed
/// only when complete; on an error or cancellation nothing is left behind. The summary's
/// `input_size` is 0.
pub fn synth_to_path(
    preset: SynthPreset,
    ftype: FileType,
    tokenizer: &SpmModel,
    output: &Path,
    mut opts: SynthOptions<'_>,
) -> Result<Summary> {
    let md = metadata(preset, ftype, tokenizer)?;
    let plan = plan(preset, ftype);
    let pool = quantize::thread_pool(opts.threads)?;
    let mut total = 0;
    for t in &plan {
        total += t.output_bytes()?;
    }
    let mut progress = quantize::Progress::new(opts.progress.as_mut(), total);
    let seed = opts.seed;
    let file_size = quantize::write_file(output, &md, &plan, |w| {
        for t in &plan {
            progress.report(&t.name, 0)?;
            let gen = Generator::new(seed, t);
            let row_bytes = t.to.row_bytes(t.ne[0] as usize)? as u64;
            quantize::write_rows(
                t.to,
                &t.ne,
                w,
                &pool,
                &|first, rows| {
                    gen.fill(first, rows);
                    Ok(())
                },
                &mut |rows| progress.report(&t.name, rows as u64 * row_bytes),
            )?;
        }
        Ok(())
    })?;
    Summary::new(ftype, &plan, 0, file_size)
}

/// The random values of one tensor.
struct Generator {
    seed: u64,
    /// The tensor's stream: a hash of its name.
    stream: u64,
    ncols: usize,
    mean: f32,
}

impl Generator {
    fn new(seed: u64, t: &PlannedTensor) -> Self {
        Generator {
            seed,
            stream: fnv1a(t.name.as_bytes()),
            ncols: t.ne[0] as usize,
            mean: if allows_quantization(&t.name, &t.ne) {
                0.0
            } else {
                1.0 // norm weights
            },
        }
    }

    /// Fills `rows` (whole rows) with the values of the tensor from row `first_row` on.
    fn fill(&self, first_row: usize, rows: &mut [f32]) {
        // Four 16-bit uniforms per value: their sum has mean 4 * 32767.5 and standard
        // deviation 65536 / sqrt(3).
        const MEAN: f32 = 131_070.0;
        let scale = SIGMA * 3f32.sqrt() / 65536.0;
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(self.stream);
        // Two 32-bit words per value.
        rng.set_word_pos(2 * (first_row as u128) * (self.ncols as u128));
        for x in rows {
            let r = rng.next_u64();
            let s = (r & 0xffff) + (r >> 16 & 0xffff) + (r >> 32 & 0xffff) + (r >> 48);
            *x = self.mean + (s as f32 - MEAN) * scale;
        }
    }
}

/// 64-bit FNV-1a.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data_size(preset: SynthPreset, ftype: FileType) -> u64 {
        plan(preset, ftype)
            .iter()
            .map(|t| t.output_bytes().unwrap())
            .sum()
    }

    #[test]
    fn mistral_sizes() {
        let p = plan(SynthPreset::Mistral7B, FileType::Q4KM);
        assert_eq!(p.len(), 291);
        assert_eq!(
            data_size(SynthPreset::Mistral7B, FileType::Q4KM),
            4_367_715_392
        );
        assert_eq!(
            data_size(SynthPreset::Mistral7B, FileType::Q5KM),
            5_130_686_528
        );
        assert_eq!(
            data_size(SynthPreset::Mistral7B, FileType::Q8_0),
            7_695_139_840
        );
        let n: u64 = p.iter().map(PlannedTensor::n_elements).sum();
        assert_eq!(n, 7_241_748_480);
    }

    #[test]
    fn values_do_not_depend_on_chunking() {
        let t = &plan(SynthPreset::Tiny, FileType::F32)[0];
        let g = Generator::new(7, t);
        let mut all = vec![0f32; 4 * 256];
        g.fill(0, &mut all);
        let mut part = vec![0f32; 2 * 256];
        g.fill(2, &mut part);
        assert_eq!(&all[512..], &part[..]);
        let mean = all.iter().sum::<f32>() / all.len() as f32;
        let var = all.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / all.len() as f32;
        assert!(mean.abs() < 0.003, "{mean}");
        assert!((var.sqrt() - SIGMA).abs() < 0.002, "{}", var.sqrt());
        assert!(all.iter().all(|x| x.abs() <= 3.5 * SIGMA));
    }

    #[test]
    fn preset_names() {
        for p in SynthPreset::all() {
            assert_eq!(p.name().parse::<SynthPreset>(), Ok(p));
        }
        assert!("llama-70b"
            .parse::<SynthPreset>()
            .unwrap_err()
            .contains("mistral-7b, tiny"));
    }
}
