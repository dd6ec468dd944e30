//! Which ggml type each tensor gets for a file type: llama.cpp's quantization mixes.
//!
//! This ports the rule of llama.cpp's `llama_tensor_get_type` (`src/llama-quant.cpp` of
//! ggml-org/llama.cpp at commit `007dbbf3`) for dense Llama-architecture models without an
//! importance matrix; `tests/quantize.rs` checks that the files it gives are byte for byte those
//! of llama.cpp `0c1e5709` (the one llama-cpp-python 0.3.36 vendors) for every file type below.
//! (Older llama.cpp releases made Q2_K/Q3_K fall back to IQ4_NL, which Orcinus does not have;
//! current ones use Q4_0.) In short:
//!
//! - tensors that are not 2-D `*weight` matrices (norms, biases) are never quantized;
//! - `output.weight` — and `token_embd.weight` when there is no `output.weight` (tied
//!   embeddings) — gets Q6_K in every quantized mix except Q8_0 (which keeps Q8_0), or Q8_0 when
//!   its rows are not whole blocks of the mix's type;
//! - `attn_v` and `ffn_down` get more bits in some layers (see [`use_more_bits`]), `attn_output`
//!   in the Q2_K/Q3_K mixes, and `attn_v` depends on grouped-query attention (`n_head /
//!   n_head_kv >= 4`) in Q2_K and on the 70B shape (80 layers with GQA);
//! - finally a K-quant chosen for a row length that is not a multiple of 256 falls back to a
//!   32-block type ([`fallback_type`]).
//!
//! llama.cpp counts `attn_v` / `ffn_down` tensors as it visits them in (layer, name) order; for
//! a Llama model, with one of each per block, that count is the block index, which is what
//! [`tensor_type`] reads from the `blk.N.` prefix. Rules for architectures and features Orcinus
//! does not run (Falcon, mixture-of-experts, IQ types, imatrix-only rules) are left out.

use std::fmt;
use std::str::FromStr;

use orcinus_quant::GgmlType;

use crate::error::{Error, Result};
use crate::gguf::Metadata;

/// A llama.cpp file type (`LLAMA_FTYPE_*`): the mix a whole file is quantized to, stored as
/// `general.file_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum FileType {
    /// Everything in F32.
    F32,
    /// 2-D weights in F16.
    F16,
    /// 2-D weights in BF16.
    BF16,
    /// Q8_0.
    Q8_0,
    /// Q4_0, output Q6_K.
    Q4_0,
    /// Q4_1, output Q6_K.
    Q4_1,
    /// Q5_0, output Q6_K.
    Q5_0,
    /// Q5_1, output Q6_K.
    Q5_1,
    /// Q2_K with Q3_K/Q4_K for the sensitive tensors.
    Q2K,
    /// Q3_K, output Q6_K.
    Q3KS,
    /// Q3_K with Q4_K/Q5_K for the sensitive tensors.
    Q3KM,
    /// Q3_K with Q5_K for the sensitive tensors.
    Q3KL,
    /// Q4_K, first `attn_v`s and `ffn_down`s Q5_K.
    Q4KS,
    /// Q4_K, half the `attn_v`s and `ffn_down`s Q6_K.
    Q4KM,
    /// Q5_K, output Q6_K.
    Q5KS,
    /// Q5_K, half the `attn_v`s and `ffn_down`s Q6_K.
    Q5KM,
    /// Q6_K.
    Q6K,
}

/// One row per file type: (type, llama.cpp's name, `LLAMA_FTYPE_*` value, default tensor type).
const FILE_TYPES: [(FileType, &str, u32, GgmlType); 17] = [
    (FileType::F32, "F32", 0, GgmlType::F32),
    (FileType::F16, "F16", 1, GgmlType::F16),
    (FileType::BF16, "BF16", 32, GgmlType::BF16),
    (FileType::Q8_0, "Q8_0", 7, GgmlType::Q8_0),
    (FileType::Q4_0, "Q4_0", 2, GgmlType::Q4_0),
    (FileType::Q4_1, "Q4_1", 3, GgmlType::Q4_1),
    (FileType::Q5_0, "Q5_0", 8, GgmlType::Q5_0),
    (FileType::Q5_1, "Q5_1", 9, GgmlType::Q5_1),
    (FileType::Q2K, "Q2_K", 10, GgmlType::Q2K),
    (FileType::Q3KS, "Q3_K_S", 11, GgmlType::Q3K),
    (FileType::Q3KM, "Q3_K_M", 12, GgmlType::Q3K),
    (FileType::Q3KL, "Q3_K_L", 13, GgmlType::Q3K),
    (FileType::Q4KS, "Q4_K_S", 14, GgmlType::Q4K),
    (FileType::Q4KM, "Q4_K_M", 15, GgmlType::Q4K),
    (FileType::Q5KS, "Q5_K_S", 16, GgmlType::Q5K),
    (FileType::Q5KM, "Q5_K_M", 17, GgmlType::Q5K),
    (FileType::Q6K, "Q6_K", 18, GgmlType::Q6K),
];

/// Names llama.cpp's `quantize` tool also accepts.
const ALIASES: [(&str, FileType); 3] = [
    ("Q3_K", FileType::Q3KM),
    ("Q4_K", FileType::Q4KM),
    ("Q5_K", FileType::Q5KM),
];

impl FileType {
    fn row(self) -> &'static (FileType, &'static str, u32, GgmlType) {
        FILE_TYPES
            .iter()
            .find(|r| r.0 == self)
            .expect("every file type has a row")
    }

    /// Every supported file type, unquantized first.
    pub fn all() -> impl Iterator<Item = FileType> {
        FILE_TYPES.iter().map(|r| r.0)
    }

    /// llama.cpp's name (`"Q4_K_M"`).
    pub fn name(self) -> &'static str {
        self.row().1
    }

    /// The `LLAMA_FTYPE_*` value, stored as `general.file_type`.
    pub fn id(self) -> u32 {
        self.row().2
    }

    /// The file type with `LLAMA_FTYPE_*` value `id`, if Orcinus writes it.
    pub fn from_id(id: u32) -> Option<Self> {
        FILE_TYPES.iter().find(|r| r.2 == id).map(|r| r.0)
    }

    /// The file type called `name` (case-insensitive; `Q4_K` etc. as aliases of `Q4_K_M`, as in
    /// llama.cpp's `quantize`).
    pub fn from_name(name: &str) -> Option<Self> {
        FILE_TYPES
            .iter()
            .map(|r| (r.1, r.0))
            .chain(ALIASES)
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, t)| t)
    }

    /// The type of most 2-D weights (llama.cpp's `llama_ftype_get_default_type`).
    pub fn default_type(self) -> GgmlType {
        self.row().3
    }

    /// Whether the mix is block-quantized (false for F32/F16/BF16).
    pub fn is_quantized(self) -> bool {
        self.default_type().is_quantized()
    }
}

impl fmt::Display for FileType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for FileType {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        FileType::from_name(s).ok_or_else(|| {
            let names: Vec<&str> = FileType::all().map(FileType::name).collect();
            format!(
                "unknown file type `{s}` (one of {}; Q3_K, Q4_K, Q5_K mean the _M mixes)",
                names.join(", ")
            )
        })
    }
}

/// What the mix rule needs to know about the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MixContext {
    /// Transformer blocks (`{arch}.block_count`); llama.cpp's `n_attention_wv` and
    /// `n_ffn_down` for a Llama model.
    pub n_layer: usize,
    /// Query heads.
    pub n_head: usize,
    /// Key/value heads (equal to `n_head` without grouped-query attention).
    pub n_head_kv: usize,
    /// Whether the model has an `output.weight`; without one the output shares
    /// `token_embd.weight`, which then gets the output's type.
    pub has_output: bool,
}

impl MixContext {
    /// The context of a model from its metadata (`general.architecture`, then the
    /// `{arch}.block_count`, `{arch}.attention.head_count[_kv]` keys) and its tensor names.
    /// Mixture-of-experts models are refused: their rules are not ported.
    pub fn from_metadata<'a>(
        md: &Metadata,
        tensor_names: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self> {
        let arch = md.get_str("general.architecture")?;
        if arch == "falcon" {
            return Err(Error::Unsupported(
                "quantization mixes for the falcon architecture".into(),
            ));
        }
        let key = |k: &str| format!("{arch}.{k}");
        if md
            .optional(&key("expert_count"), Metadata::get_u32)?
            .unwrap_or(0)
            > 1
        {
            return Err(Error::Unsupported(
                "quantization mixes for mixture-of-experts models".into(),
            ));
        }
        let n_layer = md.get_u32(&key("block_count"))? as usize;
        let n_head = md.get_u32(&key("attention.head_count"))? as usize;
        let n_head_kv = md
            .optional(&key("attention.head_count_kv"), Metadata::get_u32)?
            .map_or(n_head, |n| n as usize);
        let has_output = tensor_names.into_iter().any(|n| n == OUTPUT);
        Ok(MixContext {
            n_layer,
            n_head,
            n_head_kv,
            has_output,
        })
    }

    /// Query heads per key/value head (llama.cpp's `n_gqa()`, 0 without KV heads).
    fn n_gqa(&self) -> usize {
        self.n_head.checked_div(self.n_head_kv).unwrap_or(0)
    }

    /// llama.cpp's `LLM_TYPE_70B` for the Llama architecture: 80 blocks with GQA.
    fn is_70b(&self) -> bool {
        self.n_layer == 80 && self.n_head != self.n_head_kv
    }
}

const OUTPUT: &str = "output.weight";
const TOKEN_EMBD: &str = "token_embd.weight";

/// The tensor roles the rule distinguishes (llama.cpp's `tensor_category`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Category {
    TokenEmbd,
    /// `attn_v`, or a fused `attn_qkv` / `attn_kv_b`: the "more sensitive" ones.
    AttnV,
    AttnOutput,
    FfnDown,
    Output,
    Other,
}

fn category(name: &str) -> Category {
    let has = |p: &str| name.contains(p);
    if name == OUTPUT {
        Category::Output
    } else if name == TOKEN_EMBD {
        Category::TokenEmbd
    } else if has("attn_qkv.weight") || has("attn_kv_b.weight") || has("attn_v.weight") {
        Category::AttnV
    } else if has("attn_output.weight") {
        Category::AttnOutput
    } else if has("ffn_down") && !has("ffn_up") && !has("ffn_gate") {
        Category::FfnDown
    } else {
        Category::Other
    }
}

/// Number of dimensions, ignoring trailing dimensions of size 1 (ggml's `ggml_n_dims`).
fn n_dims(ne: &[u64]) -> usize {
    ne.iter().rposition(|&d| d != 1).map_or(1, |i| i + 1)
}

/// Whether a tensor is quantized at all: 2-D (or 3-D) `*weight` tensors except norms and the
/// few small tables llama.cpp keeps (llama.cpp's `tensor_allows_quantization`, for the tensor
/// names of the architectures Orcinus runs).
pub fn allows_quantization(name: &str, ne: &[u64]) -> bool {
    const KEEP: [&str; 5] = [
        "_norm.weight",
        "ffn_gate_inp.weight",
        "position_embd.weight",
        "token_types.weight",
        "attn_rel_b.weight",
    ];
    n_dims(ne) >= 2 && name.ends_with("weight") && !KEEP.iter().any(|k| name.contains(k))
}

/// The block index `N` of a `blk.N.` tensor name.
pub(crate) fn layer_of(name: &str) -> Option<usize> {
    let rest = name.strip_prefix("blk.")?;
    rest[..rest.find('.')?].parse().ok()
}

/// llama.cpp's `use_more_bits`: the first and last eighth of the layers, and every third layer
/// in between, get more bits. For 32 layers: 0–3, 6, 9, …, 27, 28–31.
pub fn use_more_bits(i_layer: usize, n_layer: usize) -> bool {
    i_layer < n_layer / 8
        || i_layer >= 7 * n_layer / 8
        || (i_layer as i64 - (n_layer / 8) as i64).rem_euclid(3) == 2
}

/// The type a tensor gets in the mix (before the row-length fallback): llama.cpp's
/// `llama_tensor_get_type_impl` for dense Llama models. Tensors that are not quantized at all
/// ([`allows_quantization`] false) get F32, as the converters write them.
pub fn preferred_type(ftype: FileType, name: &str, ne: &[u64], ctx: &MixContext) -> GgmlType {
    use FileType as F;
    use GgmlType as T;
    if !allows_quantization(name, ne) {
        return T::F32;
    }
    let default = ftype.default_type();
    if !default.is_quantized() {
        return default;
    }
    let cat = category(name);
    // A tensor without a `blk.N.` prefix counts as the first layer (llama.cpp's counter would).
    let layer = layer_of(name).unwrap_or(0);
    let n = ctx.n_layer;
    let mut ty = default;
    // With tied embeddings the token embeddings are the output matrix too.
    let output_like = cat == Category::Output || (cat == Category::TokenEmbd && !ctx.has_output);
    match cat {
        _ if output_like => {
            if !ne[0].is_multiple_of(default.block_size() as u64) {
                ty = T::Q8_0;
            } else if default != T::Q8_0 {
                ty = T::Q6K;
            }
        }
        Category::AttnV => {
            ty = match ftype {
                F::Q2K if ctx.n_gqa() >= 4 => T::Q4K,
                F::Q2K => T::Q3K,
                F::Q3KM if layer < 2 => T::Q5K,
                F::Q3KM => T::Q4K,
                F::Q3KL => T::Q5K,
                F::Q4KM | F::Q5KM if use_more_bits(layer, n) => T::Q6K,
                F::Q4KS if layer < 4 => T::Q5K,
                _ => default,
            };
            // 70B: attn_v is 8x smaller than attn_q (8 heads share it), so more bits are cheap.
            if ctx.is_70b() && matches!(ty, T::Q3K | T::Q4K) {
                ty = T::Q5K;
            }
        }
        Category::FfnDown => {
            ty = match ftype {
                F::Q2K => T::Q3K,
                F::Q3KM if layer < n / 16 => T::Q5K,
                F::Q3KM => T::Q4K,
                F::Q3KL => T::Q5K,
                F::Q4KM | F::Q5KM if use_more_bits(layer, n) => T::Q6K,
                F::Q4KS if layer < n / 8 => T::Q5K,
                _ => default,
            };
        }
        Category::AttnOutput => {
            ty = match ftype {
                F::Q2K => T::Q3K,
                F::Q3KM => T::Q4K,
                F::Q3KL => T::Q5K,
                _ => default,
            };
        }
        Category::TokenEmbd | Category::Output | Category::Other => {}
    }
    ty
}

/// llama.cpp's `tensor_type_fallback`: a K-quant (256-element super-blocks) cannot hold rows
/// whose length `ncols` is not a multiple of 256, so Q2_K/Q3_K become Q4_0, Q4_K → Q5_0,
/// Q5_K → Q5_1, Q6_K → Q8_0; F16 if even that does not fit. Other types are returned as they
/// are.
pub fn fallback_type(ty: GgmlType, ncols: u64) -> GgmlType {
    use GgmlType as T;
    if ncols.is_multiple_of(ty.block_size() as u64) {
        return ty;
    }
    let fallback = match ty {
        T::Q2K | T::Q3K => T::Q4_0,
        T::Q4K => T::Q5_0,
        T::Q5K => T::Q5_1,
        T::Q6K => T::Q8_0,
        _ => return ty,
    };
    if ncols.is_multiple_of(fallback.block_size() as u64) {
        fallback
    } else {
        T::F16
    }
}

/// The type tensor `name` of shape `ne` (GGUF order) gets when a model is written as `ftype`:
/// [`preferred_type`], then [`fallback_type`] for rows that are not whole super-blocks.
///
/// ```
/// use orcinus::quant::GgmlType;
/// use orcinus::quantize::{tensor_type, FileType, MixContext};
/// let ctx = MixContext { n_layer: 32, n_head: 32, n_head_kv: 8, has_output: true };
/// let t = |name: &str, ne: &[u64]| tensor_type(FileType::Q4KM, name, ne, &ctx);
/// assert_eq!(t("output.weight", &[4096, 32000]), GgmlType::Q6K);
/// assert_eq!(t("blk.6.attn_v.weight", &[4096, 1024]), GgmlType::Q6K);
/// assert_eq!(t("blk.7.attn_v.weight", &[4096, 1024]), GgmlType::Q4K);
/// assert_eq!(t("blk.7.attn_norm.weight", &[4096]), GgmlType::F32);
/// // 576-wide rows are not whole Q4_K super-blocks:
/// assert_eq!(t("blk.7.attn_q.weight", &[576, 576]), GgmlType::Q5_0);
/// ```
pub fn tensor_type(ftype: FileType, name: &str, ne: &[u64], ctx: &MixContext) -> GgmlType {
    let ty = preferred_type(ftype, name, ne, ctx);
    fallback_type(ty, ne.first().copied().unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::TensorSpec;
    use GgmlType as T;

    /// Mistral-7B's tensors: (name, ne).
    fn mistral() -> Vec<(String, Vec<u64>)> {
        let (e, kv, ff, vocab) = (4096u64, 1024u64, 14336u64, 32002u64);
        let mut v = vec![
            ("token_embd.weight".to_string(), vec![e, vocab]),
            ("output_norm.weight".to_string(), vec![e]),
            ("output.weight".to_string(), vec![e, vocab]),
        ];
        for i in 0..32 {
            for (t, ne) in [
                ("attn_norm", vec![e]),
                ("attn_q", vec![e, e]),
                ("attn_k", vec![e, kv]),
                ("attn_v", vec![e, kv]),
                ("attn_output", vec![e, e]),
                ("ffn_norm", vec![e]),
                ("ffn_gate", vec![e, ff]),
                ("ffn_up", vec![e, ff]),
                ("ffn_down", vec![ff, e]),
            ] {
                v.push((format!("blk.{i}.{t}.weight"), ne));
            }
        }
        v
    }

    const MISTRAL: MixContext = MixContext {
        n_layer: 32,
        n_head: 32,
        n_head_kv: 8,
        has_output: true,
    };

    const MORE_BITS_32: [usize; 16] = [0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31];

    /// Checks the K_M mix of Mistral-7B tensor by tensor and returns the total data size.
    fn check_k_m(ftype: FileType, base: GgmlType) -> u64 {
        let mut total = 0;
        for (name, ne) in mistral() {
            let ty = tensor_type(ftype, &name, &ne, &MISTRAL);
            let bumped = MORE_BITS_32.iter().any(|i| {
                name == format!("blk.{i}.attn_v.weight")
                    || name == format!("blk.{i}.ffn_down.weight")
            });
            let expected = if ne.len() == 1 {
                T::F32
            } else if name == "output.weight" || bumped {
                T::Q6K
            } else {
                base
            };
            assert_eq!(ty, expected, "{name}");
            total += TensorSpec::new(name, &ne, ty).size().unwrap();
        }
        total
    }

    #[test]
    fn mistral_q4_k_m() {
        assert_eq!(check_k_m(FileType::Q4KM, T::Q4K), 4_367_715_392);
    }

    #[test]
    fn mistral_q5_k_m() {
        assert_eq!(check_k_m(FileType::Q5KM, T::Q5K), 5_130_686_528);
    }

    #[test]
    fn mistral_q8_0_is_uniform() {
        let mut total = 0;
        for (name, ne) in mistral() {
            let ty = tensor_type(FileType::Q8_0, &name, &ne, &MISTRAL);
            assert_eq!(ty, if ne.len() == 1 { T::F32 } else { T::Q8_0 }, "{name}");
            total += TensorSpec::new(name, &ne, ty).size().unwrap();
        }
        assert_eq!(total, 7_695_139_840);
    }

    #[test]
    fn use_more_bits_layers() {
        let pick = |n| (0..n).filter(|&i| use_more_bits(i, n)).collect::<Vec<_>>();
        assert_eq!(pick(32), MORE_BITS_32);
        assert_eq!(
            pick(30),
            [0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 26, 27, 28, 29]
        );
    }

    #[test]
    fn small_mixes() {
        let t = |f, name: &str| tensor_type(f, name, &[4096, 4096], &MISTRAL);
        // Q2_K: GQA 4 gives attn_v Q4_K; ffn_down and attn_output Q3_K; the rest Q2_K.
        assert_eq!(t(FileType::Q2K, "blk.9.attn_v.weight"), T::Q4K);
        assert_eq!(t(FileType::Q2K, "blk.9.ffn_down.weight"), T::Q3K);
        assert_eq!(t(FileType::Q2K, "blk.9.attn_output.weight"), T::Q3K);
        assert_eq!(t(FileType::Q2K, "blk.9.attn_q.weight"), T::Q2K);
        assert_eq!(t(FileType::Q2K, "token_embd.weight"), T::Q2K);
        assert_eq!(t(FileType::Q2K, "output.weight"), T::Q6K);
        let no_gqa = MixContext {
            n_head_kv: 32,
            ..MISTRAL
        };
        assert_eq!(
            tensor_type(FileType::Q2K, "blk.9.attn_v.weight", &[4096, 4096], &no_gqa),
            T::Q3K
        );
        // Q3_K_M: attn_v Q5_K in layers 0-1 then Q4_K; ffn_down Q5_K in the first 1/16.
        assert_eq!(t(FileType::Q3KM, "blk.1.attn_v.weight"), T::Q5K);
        assert_eq!(t(FileType::Q3KM, "blk.2.attn_v.weight"), T::Q4K);
        assert_eq!(t(FileType::Q3KM, "blk.1.ffn_down.weight"), T::Q5K);
        assert_eq!(t(FileType::Q3KM, "blk.2.ffn_down.weight"), T::Q4K);
        assert_eq!(t(FileType::Q3KM, "blk.2.attn_output.weight"), T::Q4K);
        assert_eq!(t(FileType::Q3KM, "blk.2.ffn_up.weight"), T::Q3K);
        // Q3_K_L: Q5_K for all three; Q3_K_S: pure Q3_K but the output.
        for n in ["attn_v", "ffn_down", "attn_output"] {
            assert_eq!(t(FileType::Q3KL, &format!("blk.20.{n}.weight")), T::Q5K);
            assert_eq!(t(FileType::Q3KS, &format!("blk.0.{n}.weight")), T::Q3K);
        }
        // Q4_K_S: Q5_K for attn_v 0-3 and ffn_down 0-3 (n/8).
        assert_eq!(t(FileType::Q4KS, "blk.3.attn_v.weight"), T::Q5K);
        assert_eq!(t(FileType::Q4KS, "blk.4.attn_v.weight"), T::Q4K);
        assert_eq!(t(FileType::Q4KS, "blk.3.ffn_down.weight"), T::Q5K);
        assert_eq!(t(FileType::Q4KS, "blk.4.ffn_down.weight"), T::Q4K);
        // Legacy quants and Q5_K_S / Q6_K: uniform but a Q6_K output.
        for f in [
            FileType::Q4_0,
            FileType::Q5_1,
            FileType::Q5KS,
            FileType::Q6K,
        ] {
            assert_eq!(t(f, "output.weight"), T::Q6K);
            assert_eq!(t(f, "blk.0.ffn_down.weight"), f.default_type());
        }
        // Unquantized mixes: every 2-D weight in that type.
        assert_eq!(t(FileType::F16, "output.weight"), T::F16);
        assert_eq!(t(FileType::BF16, "blk.0.attn_v.weight"), T::BF16);
        assert_eq!(t(FileType::F32, "token_embd.weight"), T::F32);
    }

    #[test]
    fn seventy_b_attn_v() {
        let ctx = MixContext {
            n_layer: 80,
            n_head: 64,
            n_head_kv: 8,
            has_output: true,
        };
        let t = |f| tensor_type(f, "blk.40.attn_v.weight", &[8192, 1024], &ctx);
        assert_eq!(t(FileType::Q3KS), T::Q5K);
        assert_eq!(t(FileType::Q4KM), T::Q5K);
        assert_eq!(t(FileType::Q2K), T::Q5K);
    }

    #[test]
    fn tied_embeddings_and_narrow_rows() {
        // SmolLM2-135M: 576-wide, no output.weight, 30 layers, 9 heads / 3 KV heads.
        let ctx = MixContext {
            n_layer: 30,
            n_head: 9,
            n_head_kv: 3,
            has_output: false,
        };
        let t = |f, name: &str, ne: &[u64]| tensor_type(f, name, ne, &ctx);
        let embd = [576, 49152];
        for f in [
            FileType::Q4KM,
            FileType::Q6K,
            FileType::Q8_0,
            FileType::Q4_0,
        ] {
            assert_eq!(t(f, "token_embd.weight", &embd), T::Q8_0, "{f}");
        }
        assert_eq!(t(FileType::F16, "token_embd.weight", &embd), T::F16);
        assert_eq!(
            t(FileType::Q4KM, "blk.4.attn_q.weight", &[576, 576]),
            T::Q5_0
        );
        assert_eq!(
            t(FileType::Q4KM, "blk.5.attn_v.weight", &[576, 192]),
            T::Q8_0
        );
        assert_eq!(
            t(FileType::Q4KM, "blk.4.attn_v.weight", &[576, 192]),
            T::Q5_0
        );
        assert_eq!(
            t(FileType::Q4KM, "blk.5.ffn_down.weight", &[1536, 576]),
            T::Q6K
        );
        assert_eq!(
            t(FileType::Q4KM, "blk.4.ffn_down.weight", &[1536, 576]),
            T::Q4K
        );
        assert_eq!(
            t(FileType::Q5KM, "blk.4.ffn_up.weight", &[576, 1536]),
            T::Q5_1
        );
        assert_eq!(
            t(FileType::Q2K, "blk.4.ffn_up.weight", &[576, 1536]),
            T::Q4_0
        );
        // Rows not even whole 32-blocks: F16.
        assert_eq!(fallback_type(T::Q4K, 100), T::F16);
        assert_eq!(fallback_type(T::Q4_0, 100), T::Q4_0);
    }

    #[test]
    fn norms_and_odd_shapes_stay_f32() {
        let t = |name: &str, ne: &[u64]| tensor_type(FileType::Q4KM, name, ne, &MISTRAL);
        assert_eq!(t("output_norm.weight", &[4096]), T::F32);
        assert_eq!(t("blk.0.attn_norm.weight", &[4096, 1]), T::F32);
        assert_eq!(t("blk.0.attn_q.bias", &[4096, 4]), T::F32);
        assert!(allows_quantization(
            "blk.0.ffn_up.weight",
            &[4096, 14336, 1]
        ));
    }

    #[test]
    fn file_type_table() {
        for f in FileType::all() {
            assert_eq!(FileType::from_id(f.id()), Some(f));
            assert_eq!(FileType::from_name(f.name()), Some(f));
            assert_eq!(f.name().parse::<FileType>(), Ok(f));
        }
        assert_eq!(FileType::from_name("q4_k"), Some(FileType::Q4KM));
        assert_eq!(FileType::Q4KM.id(), 15);
        assert_eq!(FileType::BF16.id(), 32);
        assert!("Q4_K_X".parse::<FileType>().unwrap_err().contains("Q4_K_M"));
    }
}
