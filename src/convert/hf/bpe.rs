//! A `tokenizer.json` (Hugging Face `tokenizers`) byte-level BPE vocabulary as GGUF metadata,
//! following llama.cpp's converter (`_set_vocab_gpt2`, `get_vocab_base`, gguf-py's
//! `SpecialVocab`):
//!
//! - `config.vocab_size` slots; an id that neither the model's vocabulary nor the added tokens
//!   name is `[PAD{i}]` (UNUSED); an id at or past `vocab_size` is an error (the converter
//!   asserts);
//! - the model's tokens are NORMAL; added tokens are CONTROL when `special` or when the text
//!   looks special (`<|...|>`, ...), else USER_DEFINED with `▁` turned into a space;
//! - merges as `"left right"` strings, from either of `tokenizers`' two formats (strings, or
//!   pairs, whose spaces become `Ġ` as gguf-py writes them);
//! - special ids: `tokenizer_config.json`'s `bos_token`, `eos_token`, ... looked up among the
//!   added tokens, then `config.json`'s `*_token_id` for those still missing;
//! - `tokenizer.ggml.pre`: llama.cpp names the pre-tokenizer by hashing the ids its test text
//!   gets; we recognise it from its definition instead, for the families Orcinus' tokenizer
//!   runs ([`pre_name`]). Anything else is refused with [`Error::Unsupported`] rather than
//!   written with a guess that would tokenize differently from the checkpoint.
//!
//! Not done (as the converter does through `transformers`): re-normalizing the text of added
//! tokens marked `normalized: false` by encoding and decoding it.

use std::collections::HashMap;
use std::path::Path;

use serde_json::{Map, Value as Json};

use super::config::HfConfig;
use super::vocab::{added_piece, added_tokens_decoder, read_json, SpecialIds};
use crate::gguf::{Array, Metadata, Value};
use crate::{Error, Result};

/// GGUF token types (llama.cpp's `llama_token_type`; added tokens take theirs from
/// `vocab::added_piece`).
const NORMAL: i32 = 1;
const UNUSED: i32 = 5;

/// The Llama-3 split regex (llama.cpp's `llama-bpe`).
const LLAMA3_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// The same with single digits (llama.cpp's `qwen2`).
const QWEN2_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

fn field<'a>(v: &'a Json, key: &str) -> &'a Json {
    v.get(key).unwrap_or(&Json::Null)
}

/// Whether `v` is a `ByteLevel` pre-tokenizer with `use_regex` as given and no prefix space.
fn is_byte_level(v: &Json, use_regex: bool) -> bool {
    field(v, "type") == "ByteLevel"
        && field(v, "add_prefix_space").as_bool() != Some(true)
        && field(v, "use_regex").as_bool().unwrap_or(true) == use_regex
}

/// The `tokenizer.ggml.pre` name of a `tokenizer.json`'s normalizer and pre-tokenizer, or
/// `None` when it is not one Orcinus knows:
///
/// - `ByteLevel` with the GPT-2 regex: `gpt-2`;
/// - `Digits` (one by one) then that `ByteLevel`: `smollm` (SmolLM, StarCoder);
/// - `Split` on the Llama-3 regex (digits in threes) then `ByteLevel` without regex:
///   `llama-bpe`; the same regex with single digits: `qwen2`.
///
/// The normalizer must be absent or NFC (Qwen 2's; llama.cpp ignores it).
pub(crate) fn pre_name(tj: &Json) -> Option<&'static str> {
    match field(tj, "normalizer") {
        Json::Null => {}
        n if field(n, "type") == "NFC" => {}
        _ => return None,
    }
    let pre = field(tj, "pre_tokenizer");
    if is_byte_level(pre, true) {
        return Some("gpt-2");
    }
    if field(pre, "type") != "Sequence" {
        return None;
    }
    match field(pre, "pretokenizers").as_array()?.as_slice() {
        [d, b] if field(d, "type") == "Digits" && is_byte_level(b, true) => {
            (field(d, "individual_digits").as_bool() == Some(true)).then_some("smollm")
        }
        [s, b] if field(s, "type") == "Split" && is_byte_level(b, false) => {
            if field(s, "behavior") != "Isolated" || field(s, "invert").as_bool() == Some(true) {
                return None;
            }
            match field(field(s, "pattern"), "Regex").as_str()? {
                LLAMA3_REGEX => Some("llama-bpe"),
                QWEN2_REGEX => Some("qwen2"),
                _ => None,
            }
        }
        _ => None,
    }
}

/// One merge of `model.merges`: `"a b"`, or `["a", "b"]` (spaces in a part become `Ġ`).
fn merge(v: &Json) -> Option<String> {
    match v {
        Json::String(s) => Some(s.clone()),
        Json::Array(pair) => match pair.as_slice() {
            [Json::String(a), Json::String(b)] => {
                let esc = |s: &str| s.replace(' ', "\u{120}");
                Some(format!("{} {}", esc(a), esc(b)))
            }
            _ => None,
        },
        _ => None,
    }
}

/// Writes the vocabulary keys for `tokenizer.json` at `path` (see the [module docs](self)) and
/// returns the special ids `tokenizer_config.json` names.
pub(super) fn bpe_vocab(
    path: &Path,
    cfg: &HfConfig,
    tc: Option<&Map<String, Json>>,
    md: &mut Metadata,
) -> Result<SpecialIds> {
    let bad = |m: String| Error::checkpoint(path, m);
    let tj = Json::Object(read_json(path)?.ok_or_else(|| bad("missing".into()))?);
    let model = field(&tj, "model");
    match field(model, "type").as_str() {
        Some("BPE") => {}
        other => {
            return Err(Error::Unsupported(format!(
                "{}: a {} tokenizer model; only byte-level BPE tokenizer.json files (or a \
                 SentencePiece tokenizer.model) are converted",
                path.display(),
                other.unwrap_or("untyped")
            )))
        }
    }
    if field(model, "byte_fallback").as_bool() == Some(true) {
        return Err(Error::Unsupported(format!(
            "{}: a BPE with byte fallback (SentencePiece-style); convert from tokenizer.model",
            path.display()
        )));
    }
    let pre = pre_name(&tj).ok_or_else(|| {
        Error::Unsupported(format!(
            "{}: pre-tokenizer {} (normalizer {}) is not one Orcinus tokenizes like \
             (GPT-2 byte-level, SmolLM's digits + byte-level, Llama 3's or Qwen 2's split)",
            path.display(),
            field(&tj, "pre_tokenizer"),
            field(&tj, "normalizer")
        ))
    })?;

    let n = cfg.vocab_size;
    let mut tokens: Vec<Option<String>> = vec![None; n];
    let mut types = vec![UNUSED; n];
    let vocab = field(model, "vocab")
        .as_object()
        .ok_or_else(|| bad("`model.vocab` is not an object".into()))?;
    let slot = |id: &Json, what: &str| -> Result<usize> {
        let id = id
            .as_u64()
            .ok_or_else(|| bad(format!("{what} has id {id}, not a non-negative integer")))?;
        usize::try_from(id)
            .ok()
            .filter(|&i| i < n)
            .ok_or_else(|| bad(format!("{what} has id {id}, past vocab_size {n}")))
    };
    for (text, id) in vocab {
        let i = slot(id, &format!("token `{text}`"))?;
        if tokens[i].is_some() {
            return Err(bad(format!("id {i} is given to two tokens")));
        }
        tokens[i] = Some(text.clone());
        types[i] = NORMAL;
    }
    // Added tokens: tokenizer.json's list, then tokenizer_config.json's decoder (the same
    // tokens as transformers writes them; either may be absent).
    let mut added: Vec<(usize, String, bool)> = Vec::new();
    if let Some(list) = field(&tj, "added_tokens").as_array() {
        for t in list {
            let text = field(t, "content")
                .as_str()
                .ok_or_else(|| bad(format!("added token {t} has no `content`")))?;
            let special = field(t, "special").as_bool().unwrap_or(false);
            added.push((
                slot(field(t, "id"), &format!("added token `{text}`"))?,
                text.into(),
                special,
            ));
        }
    }
    let tc_path = path.with_file_name("tokenizer_config.json");
    for (i, text, special) in added_tokens_decoder(tc, &tc_path)? {
        if i >= n {
            return Err(Error::checkpoint(
                &tc_path,
                format!("added token `{text}` has id {i}, past vocab_size {n}"),
            ));
        }
        added.push((i, text, special));
    }
    for (i, text, special) in &added {
        let (text, ty) = added_piece(text, *special);
        (tokens[*i], types[*i]) = (Some(text), ty as i32);
    }
    let tokens: Vec<String> = tokens
        .into_iter()
        .enumerate()
        .map(|(i, t)| t.unwrap_or_else(|| format!("[PAD{i}]")))
        .collect();
    let merges = field(model, "merges")
        .as_array()
        .ok_or_else(|| bad("`model.merges` is not a list".into()))?
        .iter()
        .map(|m| merge(m).ok_or_else(|| bad(format!("merge {m} is neither \"a b\" nor [a, b]"))))
        .collect::<Result<Vec<_>>>()?;

    // tokenizer_config.json's names for the special tokens, among the added tokens.
    let mut ids: HashMap<&str, u32> = HashMap::new();
    for (i, text, _) in &added {
        ids.entry(text.as_str()).or_insert(*i as u32);
    }
    let mut special = SpecialIds::default();
    if let Some(tc) = tc {
        for (slot, key) in [
            (&mut special.bos, "bos_token"),
            (&mut special.eos, "eos_token"),
            (&mut special.unk, "unk_token"),
            (&mut special.pad, "pad_token"),
        ] {
            let name = match tc.get(key) {
                Some(Json::String(s)) => Some(s.as_str()),
                Some(o @ Json::Object(_)) => field(o, "content").as_str(),
                _ => None,
            };
            *slot = name.and_then(|s| ids.get(s).copied());
        }
    }

    md.insert("tokenizer.ggml.model", Value::String("gpt2".into()));
    md.insert("tokenizer.ggml.pre", Value::String(pre.into()));
    md.insert("tokenizer.ggml.tokens", Value::Array(Array::String(tokens)));
    md.insert("tokenizer.ggml.token_type", Value::Array(Array::I32(types)));
    md.insert("tokenizer.ggml.merges", Value::Array(Array::String(merges)));
    Ok(special)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn with_pre(pre: Json) -> Json {
        json!({"normalizer": null, "pre_tokenizer": pre})
    }

    #[test]
    fn pre_tokenizers_are_recognised_by_definition() {
        let bl = json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true});
        let bl_noregex =
            json!({"type": "ByteLevel", "add_prefix_space": false, "use_regex": false});
        let split = |r: &str| json!({"type": "Split", "pattern": {"Regex": r}, "behavior": "Isolated", "invert": false});
        assert_eq!(pre_name(&with_pre(bl.clone())), Some("gpt-2"));
        let digits = json!({"type": "Digits", "individual_digits": true});
        assert_eq!(
            pre_name(&with_pre(
                json!({"type": "Sequence", "pretokenizers": [digits, bl]})
            )),
            Some("smollm")
        );
        let seq = |r: &str| json!({"type": "Sequence", "pretokenizers": [split(r), bl_noregex]});
        assert_eq!(pre_name(&with_pre(seq(LLAMA3_REGEX))), Some("llama-bpe"));
        assert_eq!(pre_name(&with_pre(seq(QWEN2_REGEX))), Some("qwen2"));
        let mut nfc = with_pre(seq(QWEN2_REGEX));
        nfc["normalizer"] = json!({"type": "NFC"});
        assert_eq!(pre_name(&nfc), Some("qwen2"));
        // Unknown regex, prefix space, other normalizers, other shapes: not guessed.
        assert_eq!(pre_name(&with_pre(seq(r"\w+|\s+"))), None);
        let prefixed = json!({"type": "ByteLevel", "add_prefix_space": true, "use_regex": true});
        assert_eq!(pre_name(&with_pre(prefixed)), None);
        let mut nfkc = with_pre(json!({"type": "ByteLevel", "use_regex": true}));
        nfkc["normalizer"] = json!({"type": "NFKC"});
        assert_eq!(pre_name(&nfkc), None);
        assert_eq!(pre_name(&with_pre(json!({"type": "Whitespace"}))), None);
        assert_eq!(pre_name(&with_pre(Json::Null)), None);
    }

    #[test]
    fn merges_in_both_formats() {
        assert_eq!(merge(&json!("Ġ t")).as_deref(), Some("Ġ t"));
        assert_eq!(merge(&json!(["Ġ", "t"])).as_deref(), Some("Ġ t"));
        assert_eq!(merge(&json!([" a", "b"])).as_deref(), Some("\u{120}a b"));
        assert_eq!(merge(&json!(["a"])), None);
        assert_eq!(merge(&json!(3)), None);
    }
}
