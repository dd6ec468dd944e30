//! The vocabulary as llama.cpp builds it from GGUF metadata (`llama_vocab::impl::load`):
//! token strings, scores, per-token attributes, special ids and the end-of-generation set.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::gguf::{Array, Metadata, Value};

/// The GGUF keys the tokenizer reads, in one place.
pub(super) mod keys {
    pub const MODEL: &str = "tokenizer.ggml.model";
    pub const PRE: &str = "tokenizer.ggml.pre";
    pub const TOKENS: &str = "tokenizer.ggml.tokens";
    pub const SCORES: &str = "tokenizer.ggml.scores";
    pub const TOKEN_TYPE: &str = "tokenizer.ggml.token_type";
    pub const MERGES: &str = "tokenizer.ggml.merges";
    pub const BOS_ID: &str = "tokenizer.ggml.bos_token_id";
    pub const EOS_ID: &str = "tokenizer.ggml.eos_token_id";
    pub const UNK_ID: &str = "tokenizer.ggml.unknown_token_id";
    pub const EOT_ID: &str = "tokenizer.ggml.eot_token_id";
    pub const EOM_ID: &str = "tokenizer.ggml.eom_token_id";
    pub const ADD_BOS: &str = "tokenizer.ggml.add_bos_token";
    pub const ADD_SPACE_PREFIX: &str = "tokenizer.ggml.add_space_prefix";
}

/// Token attribute bits (llama.cpp's `llama_token_attr`, the subset GGUF token types give).
/// A token with none of them is "undefined" and decodes to nothing.
pub(super) mod attr {
    /// `token_type` 1.
    pub const NORMAL: u8 = 1 << 0;
    /// `token_type` 2.
    pub const UNKNOWN: u8 = 1 << 1;
    /// `token_type` 3, or a token Orcinus treats as control (see [`super::Vocab::load`]).
    pub const CONTROL: u8 = 1 << 2;
    /// `token_type` 4.
    pub const USER_DEFINED: u8 = 1 << 3;
    /// `token_type` 5.
    pub const UNUSED: u8 = 1 << 4;
    /// `token_type` 6 (`<0xXX>`).
    pub const BYTE: u8 = 1 << 5;
}

/// Texts llama.cpp puts in the end-of-generation set (and forces to control) whatever their
/// token type, from `llama_vocab::impl::load`.
const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<｜end▁of▁sentence｜>",
    "[e~[",
];

/// Fill-in-the-middle pad / repo / file-separator texts: llama.cpp detects them by text, makes
/// them control and ends generation on them.
const FIM_EOG_TEXTS: &[&str] = &[
    "<|fim_pad|>",
    "<fim-pad>",
    "<fim_pad>",
    "<PAD>",
    "[PAD]",
    "<|fim_repo|>",
    "<|repo_name|>",
    "<fim-repo>",
    "<REPO>",
    "<reponame>",
    "<|file_sep|>",
];

/// Whether a user-defined token's text looks like a control token (`<|...|>`, `<s>`, `</s>`).
/// Some converters (e.g. TheBloke's Mistral-7B-OpenOrca) store ChatML markers as user-defined;
/// Orcinus treats them as control so that plain text never turns into them.
fn looks_like_control(text: &str) -> bool {
    (text.len() >= 4 && text.starts_with("<|") && text.ends_with("|>"))
        || text == "<s>"
        || text == "</s>"
}

/// Which tokenizer family the file uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Family {
    /// `tokenizer.ggml.model == "llama"`.
    Spm,
    /// `tokenizer.ggml.model == "gpt2"`.
    Bpe,
}

/// The vocabulary: strings, scores and attributes indexed by token id, plus special ids.
#[derive(Debug)]
pub(super) struct Vocab {
    /// Token text by id (`[n_vocab]`); empty texts are renamed `[EMPTY_<id>]` as llama.cpp does.
    pub texts: Vec<String>,
    /// SentencePiece scores by id (`[n_vocab]`; all 0 when the file has none).
    pub scores: Vec<f32>,
    /// [`attr`] bits by id (`[n_vocab]`).
    pub attrs: Vec<u8>,
    /// Text to id.
    pub ids: HashMap<String, u32>,
    /// Beginning-of-sequence id.
    pub bos: Option<u32>,
    /// End-of-sequence id.
    pub eos: Option<u32>,
    /// Unknown-token id (SPM byte fallback of last resort).
    pub unk: Option<u32>,
    /// End-of-generation ids, sorted.
    pub eog: Vec<u32>,
}

/// A token id from metadata: absent or negative means none; past the vocabulary is an error.
fn special_id(md: &Metadata, key: &str, n: usize, default: Option<u32>) -> Result<Option<u32>> {
    let Some(v) = md.get(key) else {
        return Ok(default.filter(|&id| (id as usize) < n));
    };
    let id = v.as_i128().ok_or_else(|| Error::WrongType {
        key: key.to_string(),
        expected: "uint32",
        found: v.ty(),
    })?;
    if id < 0 {
        return Ok(None);
    }
    if id >= n as i128 {
        return Err(Error::Tokenizer(format!(
            "`{key}` = {id} is out of range for a vocabulary of {n} tokens"
        )));
    }
    Ok(Some(id as u32))
}

/// `tokenizer.ggml.scores`: float32 or (as some converters write) int32, one per token.
fn scores(md: &Metadata, n: usize) -> Result<Vec<f32>> {
    let scores: Vec<f32> = match md.get(keys::SCORES) {
        None => return Ok(vec![0.0; n]),
        Some(Value::Array(Array::I32(v))) => v.iter().map(|&s| s as f32).collect(),
        Some(_) => md.get_arr::<f32>(keys::SCORES)?.to_vec(),
    };
    check_len(keys::SCORES, scores.len(), n)?;
    Ok(scores)
}

fn check_len(key: &str, len: usize, n: usize) -> Result<()> {
    if len != n {
        return Err(Error::Tokenizer(format!(
            "`{key}` has {len} entries but `{}` has {n}",
            keys::TOKENS
        )));
    }
    Ok(())
}

impl Vocab {
    /// Reads the vocabulary. `family` picks llama.cpp's default special ids (SPM: BOS 1, EOS 2,
    /// UNK 0; BPE: BOS = EOS = 11), which metadata keys override.
    ///
    /// Attributes follow `token_type` (1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused,
    /// 6 byte; anything else undefined; all normal when the key is absent), then:
    /// - tokens whose text is in llama.cpp's end-of-generation or FIM lists become control and
    ///   end generation, as in llama.cpp;
    /// - user-defined tokens that look like control tokens (`<|...|>`, `<s>`, `</s>`) become
    ///   control (Orcinus' rule; llama.cpp only does this for the texts in its lists).
    pub fn load(md: &Metadata, family: Family) -> Result<Self> {
        let raw = md.get_arr::<String>(keys::TOKENS)?;
        let n = raw.len();
        if n == 0 || n > u32::MAX as usize {
            return Err(Error::Tokenizer(format!(
                "`{}` has {n} tokens",
                keys::TOKENS
            )));
        }
        let scores = scores(md, n)?;
        let types = if md.contains(keys::TOKEN_TYPE) {
            let t = md.get_arr::<i32>(keys::TOKEN_TYPE)?;
            check_len(keys::TOKEN_TYPE, t.len(), n)?;
            t.to_vec()
        } else {
            vec![1; n]
        };

        let mut texts = Vec::with_capacity(n);
        let mut ids = HashMap::with_capacity(n);
        for (i, t) in raw.iter().enumerate() {
            let text = if t.is_empty() {
                format!("[EMPTY_{i}]")
            } else {
                t.clone()
            };
            if let Some(prev) = ids.insert(text.clone(), i as u32) {
                return Err(Error::Tokenizer(format!(
                    "duplicate token {text:?} in the vocabulary (ids {prev} and {i})"
                )));
            }
            texts.push(text);
        }
        let mut attrs: Vec<u8> = types
            .iter()
            .map(|&t| match t {
                1 => attr::NORMAL,
                2 => attr::UNKNOWN,
                3 => attr::CONTROL,
                4 => attr::USER_DEFINED,
                5 => attr::UNUSED,
                6 => attr::BYTE,
                _ => 0,
            })
            .collect();

        let (bos, eos, unk) = match family {
            Family::Spm => (Some(1), Some(2), Some(0)),
            Family::Bpe => (Some(11), Some(11), None),
        };
        let bos = special_id(md, keys::BOS_ID, n, bos)?;
        let eos = special_id(md, keys::EOS_ID, n, eos)?;
        let unk = special_id(md, keys::UNK_ID, n, unk)?;
        let eot = special_id(md, keys::EOT_ID, n, None)?;
        let eom = special_id(md, keys::EOM_ID, n, None)?;

        let mut eog: Vec<u32> = [eos, eot, eom].into_iter().flatten().collect();
        for &text in EOG_TEXTS.iter().chain(FIM_EOG_TEXTS) {
            if let Some(&id) = ids.get(text) {
                eog.push(id);
                attrs[id as usize] |= attr::CONTROL;
            }
        }
        eog.sort_unstable();
        eog.dedup();
        for (a, text) in attrs.iter_mut().zip(&texts) {
            if *a & attr::USER_DEFINED != 0 && looks_like_control(text) {
                *a |= attr::CONTROL;
            }
        }

        Ok(Self {
            texts,
            scores,
            attrs,
            ids,
            bos,
            eos,
            unk,
            eog,
        })
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.texts.len()
    }

    /// The attribute bits of `id` (0 for ids past the vocabulary).
    pub fn attr(&self, id: u32) -> u8 {
        self.attrs.get(id as usize).copied().unwrap_or(0)
    }

    /// The byte a `<0xXX>` token stands for, if `id` is one.
    pub fn byte_value(&self, id: u32) -> Option<u8> {
        let t = self.texts.get(id as usize)?.as_bytes();
        if t.len() == 6 && t.starts_with(b"<0x") && t[5] == b'>' {
            u8::from_str_radix(std::str::from_utf8(&t[3..5]).ok()?, 16).ok()
        } else {
            None
        }
    }

    /// Ids that `encode(.., parse_special)` matches as whole tokens, longest text first
    /// (llama.cpp's `cache_special_tokens`: control, user-defined and unknown tokens; ties by id).
    pub fn special_tokens(&self) -> Vec<u32> {
        let mask = attr::CONTROL | attr::USER_DEFINED | attr::UNKNOWN;
        let mut v: Vec<u32> = (0..self.len() as u32)
            .filter(|&id| self.attrs[id as usize] & mask != 0)
            .collect();
        v.sort_by_key(|&id| std::cmp::Reverse(self.texts[id as usize].len()));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_lookalikes() {
        assert!(looks_like_control("<|im_start|>"));
        assert!(looks_like_control("<s>"));
        assert!(!looks_like_control("<|"));
        assert!(!looks_like_control("<|>"));
        assert!(!looks_like_control("<pad>"));
    }
}
