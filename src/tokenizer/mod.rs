//! Tokenizers built only from GGUF metadata, matching llama.cpp's `llama_vocab`.
//!
//! Two families are supported, picked by `tokenizer.ggml.model`:
//! - `"llama"`: SentencePiece BPE ([`TokenizerKind::Spm`]; Llama 2, Mistral). Spaces become
//!   `▁`, a `▁` is prefixed at the start of the text and after every special token when
//!   `tokenizer.ggml.add_space_prefix` (default true), pieces merge by highest score, and
//!   characters the vocabulary lacks fall back to `<0xXX>` byte tokens. On Mistral-7B's
//!   `tokenizer.model` this gives the same ids as Python `sentencepiece` (`tests/tokenizer_spm.rs`).
//! - `"gpt2"`: byte-level BPE ([`TokenizerKind::Bpe`]; SmolLM, Llama 3, Qwen 2, ...), with the
//!   pre-tokenizer named by `tokenizer.ggml.pre` (see `pretok.rs` for the supported names;
//!   absent or unknown names get llama.cpp's default recipe) and merges by lowest rank.
//!
//! Special tokens: control (type 3), user-defined (4) and unknown (2) tokens are cut out of the
//! text before tokenizing, longest text first, as llama.cpp's `tokenizer_st_partition` does.
//! With `parse_special == false` control and unknown tokens are left as plain text; plain
//! user-defined tokens are still matched (as in llama.cpp and Hugging Face `tokenizers`).
//! Orcinus treats a user-defined token that looks like a control token (`<|...|>`, `<s>`,
//! `</s>`) as control: it is then not matched in plain text and decodes to nothing, and the
//! end-of-generation texts llama.cpp lists (`<|im_end|>`, `<|endoftext|>`, `<|eot_id|>`, ...)
//! are control and end generation, as in llama.cpp.
//!
//! ```no_run
//! use orcinus::tokenizer::Tokenizer;
//! let f = orcinus::gguf::File::open("model.gguf")?;
//! let tok = Tokenizer::from_metadata(f.metadata())?;
//! let ids = tok.encode("<|im_start|>user\nHi<|im_end|>\n", tok.add_bos_default(), true)?;
//! let mut out = tok.stream_decoder();
//! for &id in &ids {
//!     print!("{}", out.push(id)); // control tokens print nothing
//! }
//! print!("{}", out.finish());
//! # Ok::<(), orcinus::Error>(())
//! ```

mod bpe;
mod pretok;
mod spm;
mod stream;
mod vocab;

use std::fmt;

pub use stream::StreamDecoder;

use crate::error::{Error, Result};
use crate::gguf::Metadata;
use vocab::{attr, keys, Family, Vocab};

/// Which tokenizer algorithm a vocabulary uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TokenizerKind {
    /// SentencePiece BPE over `▁`-escaped text with byte fallback (`tokenizer.ggml.model = "llama"`).
    Spm,
    /// GPT-2 style byte-level BPE with merges (`tokenizer.ggml.model = "gpt2"`).
    Bpe,
}

#[derive(Debug)]
enum Model {
    Spm,
    Bpe(bpe::Bpe),
}

/// A piece of the input after special tokens are cut out.
#[derive(Debug, Clone, Copy)]
enum Frag<'t> {
    Text(&'t str),
    Token(u32),
}

/// A tokenizer built from a GGUF file's `tokenizer.ggml.*` metadata. Immutable, `Send + Sync`;
/// share it behind an `Arc`.
pub struct Tokenizer {
    vocab: Vocab,
    model: Model,
    add_bos: bool,
    add_space_prefix: bool,
    /// Ids matched as whole tokens in `encode`, longest text first.
    specials: Vec<u32>,
    /// Decoded bytes of every token, concatenated: token `i` is
    /// `pieces[piece_ends[i - 1]..piece_ends[i]]` (`piece_ends`: `[n_vocab]`).
    pieces: Vec<u8>,
    piece_ends: Vec<usize>,
}

impl fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokenizer")
            .field("kind", &self.kind())
            .field("vocab_size", &self.vocab_size())
            .field("bos", &self.vocab.bos)
            .field("eos", &self.vocab.eos)
            .field("add_bos", &self.add_bos)
            .field("add_space_prefix", &self.add_space_prefix)
            .finish_non_exhaustive()
    }
}

impl Tokenizer {
    /// Builds the tokenizer from `tokenizer.ggml.*` metadata: `model`, `tokens`, optional
    /// `scores` and `token_type` (same length as `tokens`), `merges` (for `"gpt2"`), `pre`,
    /// special ids (`bos_token_id`, `eos_token_id`, `unknown_token_id`, `eot_token_id`,
    /// `eom_token_id`), `add_bos_token` and `add_space_prefix`.
    ///
    /// Errors: [`Error::MissingKey`] / [`Error::WrongType`] for absent or mistyped keys, and
    /// [`Error::Tokenizer`] for an unknown `model`, array lengths that disagree, duplicate
    /// tokens, or a special id past the vocabulary.
    pub fn from_metadata(md: &Metadata) -> Result<Self> {
        let name = md.get_str(keys::MODEL)?;
        let family = match name {
            "llama" => Family::Spm,
            "gpt2" => Family::Bpe,
            other => {
                return Err(Error::Tokenizer(format!(
                    "unsupported `{}` {other:?} (Orcinus supports \"llama\" and \"gpt2\")",
                    keys::MODEL
                )))
            }
        };
        let vocab = Vocab::load(md, family)?;
        let (model, add_bos, add_space_prefix) = match family {
            Family::Spm => (Model::Spm, true, true),
            Family::Bpe => {
                let pre = if md.contains(keys::PRE) {
                    Some(md.get_str(keys::PRE)?)
                } else {
                    None
                };
                let config = pretok::PreConfig::from_name(pre);
                let merges = md.get_arr::<String>(keys::MERGES)?;
                (
                    Model::Bpe(bpe::Bpe::new(merges, config)?),
                    config.add_bos,
                    false,
                )
            }
        };
        let add_bos = md
            .optional(keys::ADD_BOS, Metadata::get_bool)?
            .unwrap_or(add_bos);
        let add_space_prefix = md
            .optional(keys::ADD_SPACE_PREFIX, Metadata::get_bool)?
            .unwrap_or(add_space_prefix);
        if add_bos && vocab.bos.is_none() {
            return Err(Error::Tokenizer(format!(
                "`{}` is true but the vocabulary has no BOS token",
                keys::ADD_BOS
            )));
        }
        let specials = vocab.special_tokens();
        let mut tok = Self {
            vocab,
            model,
            add_bos,
            add_space_prefix,
            specials,
            pieces: Vec::new(),
            piece_ends: Vec::new(),
        };
        for id in 0..tok.vocab.len() as u32 {
            let p = tok.compute_piece(id);
            tok.pieces.extend_from_slice(&p);
            tok.piece_ends.push(tok.pieces.len());
        }
        Ok(tok)
    }

    /// Token ids of `text`. `add_bos` prepends BOS (pass [`Self::add_bos_default`] for
    /// llama.cpp's behaviour); `parse_special` lets control tokens written in `text` (e.g.
    /// `<|im_start|>`, `<s>`) become single tokens; without it they are tokenized as plain text.
    ///
    /// Errors: [`Error::Tokenizer`] when `add_bos` is asked of a vocabulary without BOS, or
    /// when an SPM vocabulary has neither a byte token nor UNK for a character it lacks.
    pub fn encode(&self, text: &str, add_bos: bool, parse_special: bool) -> Result<Vec<u32>> {
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        if add_bos {
            out.push(self.vocab.bos.ok_or_else(|| {
                Error::Tokenizer("BOS requested but the vocabulary has no BOS token".to_string())
            })?);
        }
        let frags = self.partition(text, parse_special);
        match &self.model {
            Model::Spm => {
                // llama.cpp: prefix a space at the start and after every special token
                let mut prev_special = true;
                let mut buf = String::new();
                for f in frags {
                    match f {
                        Frag::Text(s) => {
                            buf.clear();
                            if self.add_space_prefix && prev_special {
                                buf.push('▁');
                            }
                            buf.extend(s.chars().map(|c| if c == ' ' { '▁' } else { c }));
                            spm::encode(&self.vocab, &buf, &mut out)?;
                            prev_special = false;
                        }
                        Frag::Token(id) => {
                            out.push(id);
                            prev_special = true;
                        }
                    }
                }
            }
            Model::Bpe(bpe) => {
                for f in frags {
                    match f {
                        Frag::Text(s) => bpe.encode(&self.vocab, s, &mut out),
                        Frag::Token(id) => out.push(id),
                    }
                }
            }
        }
        Ok(out)
    }

    /// Cuts special tokens out of `text`: for each special token, longest first, every
    /// occurrence in the remaining text pieces (llama.cpp's `tokenizer_st_partition`).
    fn partition<'t>(&self, text: &'t str, parse_special: bool) -> Vec<Frag<'t>> {
        if text.is_empty() {
            return Vec::new();
        }
        let mut frags = vec![Frag::Text(text)];
        for &id in &self.specials {
            if !parse_special && self.vocab.attr(id) & (attr::CONTROL | attr::UNKNOWN) != 0 {
                continue;
            }
            let tok = self.vocab.texts[id as usize].as_str();
            if !frags
                .iter()
                .any(|f| matches!(f, Frag::Text(s) if s.contains(tok)))
            {
                continue;
            }
            let mut next = Vec::with_capacity(frags.len() + 2);
            for f in frags {
                let Frag::Text(mut s) = f else {
                    next.push(f);
                    continue;
                };
                while let Some(p) = s.find(tok) {
                    if p > 0 {
                        next.push(Frag::Text(&s[..p]));
                    }
                    next.push(Frag::Token(id));
                    s = &s[p + tok.len()..];
                }
                if !s.is_empty() {
                    next.push(Frag::Text(s));
                }
            }
            frags = next;
        }
        frags
    }

    /// The text of `ids`, as llama.cpp's `llama_detokenize(.., remove_special = false,
    /// unparse_special = false)`: control and unknown tokens render as nothing, user-defined
    /// ones as their text, byte tokens as their byte; when `add_space_prefix` is set (SPM) the
    /// first token loses one leading space, so `decode(encode(x, false, false)) == x` for text
    /// without `▁` (which encodes like a space) and without characters the vocabulary has no
    /// byte token for (byte-level BPE drops those, as llama.cpp does). Invalid
    /// UTF-8 (e.g. a cut-off byte sequence) becomes U+FFFD, at the very end only. Ids past the
    /// vocabulary contribute nothing. Unlike llama.cpp, no "clean-up" of spaces before
    /// punctuation is done (llama.cpp does it for a few BPE pre-tokenizers, not SPM or smollm).
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut bytes = Vec::with_capacity(ids.len() * 4);
        for (i, &id) in ids.iter().enumerate() {
            bytes.extend_from_slice(self.piece(id, i == 0));
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// A [`StreamDecoder`] over this tokenizer.
    pub fn stream_decoder(&self) -> StreamDecoder<'_> {
        StreamDecoder::new(self)
    }

    /// The bytes token `id` contributes to decoded text (SPM: `▁` becomes a space, `<0xXX>`
    /// its byte; BPE: the GPT-2 byte mapping undone; control and unknown tokens: nothing). The
    /// leading-space removal of [`Self::decode`] is not applied.
    pub fn token_bytes(&self, id: u32) -> Vec<u8> {
        self.piece(id, false).to_vec()
    }

    /// The decoded bytes of `id`; `first` applies `decode`'s leading-space removal.
    fn piece(&self, id: u32, first: bool) -> &[u8] {
        let i = id as usize;
        if i >= self.piece_ends.len() {
            return &[];
        }
        let start = if i == 0 { 0 } else { self.piece_ends[i - 1] };
        let p = &self.pieces[start..self.piece_ends[i]];
        if first && self.add_space_prefix {
            p.strip_prefix(b" ").unwrap_or(p)
        } else {
            p
        }
    }

    /// llama.cpp's `token_to_piece(id, special = false)`.
    fn compute_piece(&self, id: u32) -> Vec<u8> {
        let a = self.vocab.attr(id);
        let text = &self.vocab.texts[id as usize];
        let normal = || match self.model {
            Model::Spm => text.replace('▁', " ").into_bytes(),
            Model::Bpe(_) => {
                let mut v = Vec::with_capacity(text.len());
                for c in text.chars() {
                    match bpe::char_to_byte(c) {
                        Some(b) => v.push(b),
                        // not a GPT-2 stand-in character: keep it (llama.cpp writes a marker)
                        None => v.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
                    }
                }
                v
            }
        };
        if a & (attr::UNKNOWN | attr::CONTROL) != 0 {
            Vec::new()
        } else if a & attr::USER_DEFINED != 0 {
            text.as_bytes().to_vec()
        } else if a & attr::NORMAL != 0 {
            normal()
        } else if a & attr::BYTE != 0 {
            // a BYTE token that is not `<0xXX>` (some BPE conversions) decodes like a normal one
            self.vocab
                .byte_value(id)
                .map(|b| vec![b])
                .unwrap_or_else(normal)
        } else {
            Vec::new() // unused or undefined
        }
    }

    /// The raw vocabulary string of `id` (`▁`/`Ġ` not undone; empty strings in the file read as
    /// `[EMPTY_<id>]`, as in llama.cpp).
    pub fn token_str(&self, id: u32) -> Option<&str> {
        self.vocab.texts.get(id as usize).map(String::as_str)
    }

    /// The id of the vocabulary string `s`.
    pub fn token_id(&self, s: &str) -> Option<u32> {
        self.vocab.ids.get(s).copied()
    }

    /// Number of tokens in the vocabulary.
    pub fn vocab_size(&self) -> usize {
        self.vocab.len()
    }

    /// Beginning-of-sequence token (`tokenizer.ggml.bos_token_id`; llama.cpp's default when
    /// absent: 1 for SPM, 11 for BPE, if in range).
    pub fn bos_id(&self) -> Option<u32> {
        self.vocab.bos
    }

    /// End-of-sequence token (`tokenizer.ggml.eos_token_id`; default 2 for SPM, 11 for BPE).
    pub fn eos_id(&self) -> Option<u32> {
        self.vocab.eos
    }

    /// Whether llama.cpp prepends BOS: `tokenizer.ggml.add_bos_token`, else true for SPM and
    /// for the llama3 family of BPE pre-tokenizers, false for other BPE vocabularies.
    pub fn add_bos_default(&self) -> bool {
        self.add_bos
    }

    /// Whether `id` is a control token: `token_type` 3, an end-of-generation text llama.cpp
    /// forces to control, or a user-defined token that looks like one (`<|...|>`, `<s>`, `</s>`).
    pub fn is_control(&self, id: u32) -> bool {
        self.vocab.attr(id) & attr::CONTROL != 0
    }

    /// Whether generation should stop at `id`: EOS, EOT, EOM, and the tokens llama.cpp ends
    /// generation on by text (`<|im_end|>`, `<|endoftext|>`, `<|eot_id|>`, `<end_of_turn>`,
    /// `</s>`, FIM pad/repo/separator tokens, ...) when the vocabulary has them.
    pub fn is_eog(&self, id: u32) -> bool {
        self.vocab.eog.binary_search(&id).is_ok()
    }

    /// The tokenizer algorithm.
    pub fn kind(&self) -> TokenizerKind {
        match self.model {
            Model::Spm => TokenizerKind::Spm,
            Model::Bpe(_) => TokenizerKind::Bpe,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::{Array, Value};

    /// A tiny SentencePiece vocabulary: specials, bytes 0x00..=0xFF, and a few pieces.
    pub(super) fn tiny_spm() -> Tokenizer {
        let mut tokens = vec!["<unk>".to_string(), "<s>".into(), "</s>".into()];
        let mut types = vec![2, 3, 3];
        for b in 0..=255u8 {
            tokens.push(format!("<0x{b:02X}>"));
            types.push(6);
        }
        for p in ["▁", "h", "i", "▁h", "▁hi", "é", "<|im_end|>", "<tool>"] {
            tokens.push(p.into());
            types.push(if p.starts_with('<') { 4 } else { 1 });
        }
        let scores: Vec<f32> = (0..tokens.len()).map(|i| -(i as f32)).collect();
        let mut md = Metadata::new();
        md.insert(keys::MODEL, Value::String("llama".into()));
        md.insert(keys::TOKENS, Value::Array(Array::String(tokens)));
        md.insert(keys::SCORES, Value::Array(Array::F32(scores)));
        md.insert(keys::TOKEN_TYPE, Value::Array(Array::I32(types)));
        Tokenizer::from_metadata(&md).unwrap()
    }

    #[test]
    fn send_sync() {
        fn check<T: Send + Sync>() {}
        check::<Tokenizer>();
    }

    #[test]
    fn spm_basics() {
        let t = tiny_spm();
        let id = |s| t.token_id(s).unwrap();
        assert_eq!(t.encode("hi", false, false).unwrap(), [id("▁hi")]);
        assert_eq!(t.encode("hi", true, false).unwrap(), [1, id("▁hi")]);
        // 'x' is not a piece: byte fallback
        assert_eq!(
            t.encode("x", false, false).unwrap(),
            [id("▁"), id("<0x78>")]
        );
        assert_eq!(
            t.decode(&t.encode(" hi  x é", false, false).unwrap()),
            " hi  x é"
        );
        assert_eq!(t.encode("", false, false).unwrap(), Vec::<u32>::new());
        // user-defined: always parsed; control-looking user-defined: only with parse_special
        assert_eq!(
            t.encode("<tool>hi", false, false).unwrap(),
            [id("<tool>"), id("▁hi")]
        );
        assert_eq!(
            t.encode("<|im_end|>", false, true).unwrap(),
            [id("<|im_end|>")]
        );
        assert_ne!(
            t.encode("<|im_end|>", false, false).unwrap(),
            [id("<|im_end|>")]
        );
        assert!(t.is_eog(2) && t.is_eog(id("<|im_end|>")) && !t.is_eog(1));
        assert!(t.is_control(id("<|im_end|>")) && !t.is_control(id("<tool>")));
        assert_eq!(
            t.decode(&[1, id("▁hi"), id("<|im_end|>"), id("<tool>")]),
            " hi<tool>"
        );
    }

    #[test]
    fn stream_decoder_matches_decode_on_bad_bytes() {
        let t = tiny_spm();
        let b = |x: u8| t.token_id(&format!("<0x{x:02X}>")).unwrap();
        // E6 starts a 3-byte sequence that 41 breaks; E6 97 A5 is complete; E6 97 is cut off
        let ids = [
            b(0xE6),
            b(0x41),
            b(0xE6),
            b(0x97),
            b(0xA5),
            b(0xE6),
            b(0x97),
        ];
        let mut dec = t.stream_decoder();
        let chunks: Vec<String> = ids.iter().map(|&id| dec.push(id)).collect();
        assert_eq!(chunks, ["", "\u{FFFD}A", "", "", "日", "", ""]);
        assert_eq!(dec.finish(), "\u{FFFD}");
        assert_eq!(t.decode(&ids), "\u{FFFD}A日\u{FFFD}");
        assert_eq!(dec.push(t.token_id("▁hi").unwrap()), "hi"); // a new text after finish
    }

    #[test]
    fn metadata_errors() {
        let mut md = Metadata::new();
        md.insert(keys::MODEL, Value::String("bert".into()));
        md.insert(keys::TOKENS, Value::Array(Array::String(vec!["a".into()])));
        assert!(matches!(
            Tokenizer::from_metadata(&md),
            Err(Error::Tokenizer(_))
        ));
        md.insert(keys::MODEL, Value::String("llama".into()));
        md.insert(keys::SCORES, Value::Array(Array::F32(vec![0.0, 1.0])));
        assert!(matches!(
            Tokenizer::from_metadata(&md),
            Err(Error::Tokenizer(_))
        ));
        md.insert(keys::SCORES, Value::Array(Array::F32(vec![0.0])));
        md.insert(keys::BOS_ID, Value::U32(7));
        assert!(matches!(
            Tokenizer::from_metadata(&md),
            Err(Error::Tokenizer(_))
        ));
        md.insert(keys::BOS_ID, Value::U32(0));
        md.insert(keys::TOKEN_TYPE, Value::Array(Array::U8(vec![1])));
        assert!(matches!(
            Tokenizer::from_metadata(&md),
            Err(Error::WrongType { .. })
        ));
        md.insert(keys::TOKEN_TYPE, Value::Array(Array::I32(vec![1])));
        assert!(Tokenizer::from_metadata(&md).is_ok());
        md.insert(keys::MODEL, Value::String("gpt2".into()));
        assert!(matches!(
            Tokenizer::from_metadata(&md),
            Err(Error::MissingKey(_))
        ));
    }
}
