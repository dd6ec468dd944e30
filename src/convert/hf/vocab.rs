//! The tokenizer of a checkpoint as GGUF metadata, following llama.cpp's converter
//! (`convert_hf_to_gguf.py`): `_create_vocab_sentencepiece` for `tokenizer.model`, then
//! gguf-py's `SpecialVocab` for special token ids, `add_bos` / `add_eos` and the chat template.
//!
//! SentencePiece vocabulary (`tokenizer.model`), as `_create_vocab_sentencepiece` builds it:
//!
//! - `config.vocab_size` slots, first all `[PAD{i}]` (score -10000, UNUSED);
//! - the model's pieces by id, typed UNKNOWN / CONTROL / UNUSED / BYTE, else NORMAL (a
//!   SentencePiece USER_DEFINED piece is NORMAL here, as in the converter);
//! - `added_tokens.json` entries: score -1000, USER_DEFINED;
//! - `tokenizer_config.json` `added_tokens_decoder` entries: score -1000, CONTROL when `special`
//!   or when the text looks special (`<|...|>`, ...), else USER_DEFINED with `▁` turned into a
//!   space;
//! - ids at or past `vocab_size` are ignored, as the converter ignores them (with a warning).
//!
//! Special ids come from the SentencePiece model (bos/eos/unk/pad), overridden by
//! `config.json`'s `{bos,eos,unk,pad}_token_id`, with `generation_config.json`'s `eos_token_id`
//! used when neither names an end-of-sequence token. Without `tokenizer.model`, a
//! `tokenizer.json` byte-level BPE vocabulary is converted by `super::bpe`.

use std::path::Path;

use serde_json::{Map, Value as Json};

use super::config::{first_id, HfConfig};
use crate::convert::spm::{PieceType, SpmModel};
use crate::gguf::{Array, Metadata, Value};
use crate::{Error, Result};

/// A JSON file of the checkpoint, if present, as an object.
pub(crate) fn read_json(path: &Path) -> Result<Option<Map<String, Json>>> {
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path.display(), e))?;
    match serde_json::from_str(&text) {
        Ok(Json::Object(m)) => Ok(Some(m)),
        Ok(_) => Err(Error::checkpoint(path, "not a JSON object")),
        Err(e) => Err(Error::checkpoint(path, format!("invalid JSON: {e}"))),
    }
}

/// Whether an added token's text looks like a control token although it is not marked
/// special (llama.cpp's `does_token_look_special`).
pub(super) fn looks_special(t: &str) -> bool {
    matches!(t, "<pad>" | "<mask>" | "<2mass>" | "[@BOS@]")
        || (t.starts_with("<|") && t.ends_with("|>"))
        || (t.starts_with("<｜") && t.ends_with("｜>"))
        || (t.starts_with("<unused") && t.ends_with('>'))
}

/// Writes the `tokenizer.*` keys for the checkpoint in `dir` to `md`.
pub fn tokenizer_metadata(dir: &Path, cfg: &HfConfig, md: &mut Metadata) -> Result<()> {
    let tc_path = dir.join("tokenizer_config.json");
    let tc = read_json(&tc_path)?;
    let spm_path = dir.join("tokenizer.model");
    let json_path = dir.join("tokenizer.json");
    // SentencePiece: config.json's ids override the model's. BPE (gguf-py's SpecialVocab):
    // tokenizer_config.json's names win, config.json fills in the rest.
    let (mut ids, config_overrides) = if spm_path.is_file() {
        (
            sentencepiece_vocab(dir, &spm_path, cfg, tc.as_ref(), md)?,
            true,
        )
    } else if json_path.is_file() {
        (
            super::bpe::bpe_vocab(&json_path, cfg, tc.as_ref(), md)?,
            false,
        )
    } else {
        return Err(Error::checkpoint(
            dir,
            "no tokenizer.model (SentencePiece) or tokenizer.json found",
        ));
    };
    // config.json's ids override the tokenizer model's; generation_config.json fills in EOS.
    for (slot, id) in [
        (&mut ids.bos, cfg.bos_token_id),
        (&mut ids.eos, cfg.eos_token_id),
    ] {
        if id.is_some() && (config_overrides || slot.is_none()) {
            *slot = id;
        }
    }
    let gen_path = dir.join("generation_config.json");
    if let Some(gen) = read_json(&gen_path)? {
        if ids.eos.is_none() {
            ids.eos =
                first_id(gen.get("eos_token_id")).map_err(|m| Error::checkpoint(&gen_path, m))?;
        }
    }
    for (key, id) in [
        ("tokenizer.ggml.bos_token_id", ids.bos),
        ("tokenizer.ggml.eos_token_id", ids.eos),
        ("tokenizer.ggml.unknown_token_id", ids.unk),
        ("tokenizer.ggml.padding_token_id", ids.pad),
    ] {
        if let Some(id) = id.filter(|&i| (i as usize) < cfg.vocab_size) {
            md.insert(key, Value::U32(id));
        }
    }
    if let Some(tc) = &tc {
        for which in ["bos", "eos"] {
            match tc.get(&format!("add_{which}_token")) {
                Some(Json::Bool(b)) => {
                    md.insert(format!("tokenizer.ggml.add_{which}_token"), Value::Bool(*b));
                }
                None | Some(Json::Null) => {}
                Some(v) => {
                    return Err(Error::checkpoint(
                        &tc_path,
                        format!("`add_{which}_token` is {v}, not a bool"),
                    ))
                }
            }
        }
    }
    if let Some(t) = chat_template(dir, tc.as_ref(), &tc_path)? {
        md.insert("tokenizer.chat_template", Value::String(t));
    }
    Ok(())
}

/// Special token ids found so far.
#[derive(Debug, Default)]
pub(super) struct SpecialIds {
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub unk: Option<u32>,
    pub pad: Option<u32>,
}

/// `_create_vocab_sentencepiece` (see the [module docs](self)); writes the vocabulary keys and
/// returns the SentencePiece model's special ids.
fn sentencepiece_vocab(
    dir: &Path,
    spm_path: &Path,
    cfg: &HfConfig,
    tc: Option<&Map<String, Json>>,
    md: &mut Metadata,
) -> Result<SpecialIds> {
    let sp = SpmModel::read(spm_path)?;
    let n = cfg.vocab_size;
    let mut tokens: Vec<String> = (0..n).map(|i| format!("[PAD{i}]")).collect();
    let mut scores = vec![-10000f32; n];
    let mut types = vec![PieceType::Unused as i32; n];
    for (id, (text, score, ty)) in sp.pieces.iter().enumerate().take(n) {
        let ty = match ty {
            PieceType::UserDefined => PieceType::Normal,
            t => *t,
        };
        tokens[id] = text.clone();
        scores[id] = *score;
        types[id] = ty as i32;
    }
    let added_path = dir.join("added_tokens.json");
    if let Some(added) = read_json(&added_path)? {
        for (text, id) in &added {
            let id = id.as_u64().ok_or_else(|| {
                Error::checkpoint(&added_path, format!("`{text}` has id {id}, not an integer"))
            })? as usize;
            if id < n {
                tokens[id] = text.clone();
                scores[id] = -1000.0;
                types[id] = PieceType::UserDefined as i32;
            }
        }
    }
    for (id, text, special) in added_tokens_decoder(tc, &dir.join("tokenizer_config.json"))? {
        if id < n {
            let (text, ty) = added_piece(&text, special);
            (tokens[id], types[id], scores[id]) = (text, ty as i32, -1000.0);
        }
    }
    md.insert("tokenizer.ggml.model", Value::String("llama".into()));
    md.insert("tokenizer.ggml.pre", Value::String("default".into()));
    md.insert("tokenizer.ggml.tokens", Value::Array(Array::String(tokens)));
    md.insert("tokenizer.ggml.scores", Value::Array(Array::F32(scores)));
    md.insert("tokenizer.ggml.token_type", Value::Array(Array::I32(types)));
    let id = |i: i32| u32::try_from(i).ok();
    Ok(SpecialIds {
        bos: id(sp.bos_id),
        eos: id(sp.eos_id),
        unk: id(sp.unk_id),
        pad: id(sp.pad_id),
    })
}

/// `tokenizer_config.json`'s `added_tokens_decoder` (`tc`, read from `tc_path`), as
/// `(id, content, special)` in file order; empty when absent.
pub(super) fn added_tokens_decoder(
    tc: Option<&Map<String, Json>>,
    tc_path: &Path,
) -> Result<Vec<(usize, String, bool)>> {
    let Some(dec) = tc.and_then(|tc| tc.get("added_tokens_decoder")) else {
        return Ok(Vec::new());
    };
    let dec = dec
        .as_object()
        .ok_or_else(|| Error::checkpoint(tc_path, "`added_tokens_decoder` is not an object"))?;
    dec.iter()
        .map(|(id, data)| {
            let bad =
                || Error::checkpoint(tc_path, format!("bad added_tokens_decoder entry `{id}`"));
            let id: usize = id.parse().map_err(|_| bad())?;
            let text = data.get("content").and_then(Json::as_str).ok_or_else(bad)?;
            let special = data.get("special").and_then(Json::as_bool).unwrap_or(false);
            Ok((id, text.to_string(), special))
        })
        .collect()
}

/// An added token's GGUF text and type, as llama.cpp's converter writes them: CONTROL with
/// the text kept when `special` or when it looks special, else USER_DEFINED with `▁` turned
/// into a space.
pub(super) fn added_piece(text: &str, special: bool) -> (String, PieceType) {
    if special || looks_special(text) {
        (text.to_string(), PieceType::Control)
    } else {
        (text.replace('\u{2581}', " "), PieceType::UserDefined)
    }
}

/// The chat template: `tokenizer_config.json`'s `chat_template` (a string, or a list of named
/// templates of which `default` is taken), else `chat_template.jinja`, else
/// `chat_template.json`.
fn chat_template(
    dir: &Path,
    tc: Option<&Map<String, Json>>,
    tc_path: &Path,
) -> Result<Option<String>> {
    match tc.and_then(|tc| tc.get("chat_template")) {
        Some(Json::String(s)) => return Ok(Some(s.clone())),
        Some(Json::Array(list)) => {
            let default = list
                .iter()
                .find(|t| t.get("name").and_then(Json::as_str) == Some("default"));
            return Ok(default
                .and_then(|t| t.get("template"))
                .and_then(Json::as_str)
                .map(str::to_string));
        }
        None | Some(Json::Null) => {}
        Some(v) => {
            return Err(Error::checkpoint(
                tc_path,
                format!("`chat_template` is {}, not a string", v),
            ))
        }
    }
    let jinja = dir.join("chat_template.jinja");
    if jinja.is_file() {
        let t = std::fs::read_to_string(&jinja).map_err(|e| Error::io(jinja.display(), e))?;
        return Ok(Some(t));
    }
    let json_path = dir.join("chat_template.json");
    Ok(read_json(&json_path)?.and_then(|m| {
        m.get("chat_template")
            .and_then(Json::as_str)
            .map(str::to_string)
    }))
}
