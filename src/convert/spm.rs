//! SentencePiece `tokenizer.model` files (a serialized `sentencepiece.ModelProto`), read without
//! protobuf or Python, and turned into GGUF tokenizer metadata as llama.cpp's converter
//! (`convert_hf_to_gguf.py`, `_create_vocab_sentencepiece`) writes it.
//!
//! Only the fields a GGUF needs are decoded; everything else is skipped by wire type, so newer
//! SentencePiece fields do not break the reader. Every length is checked against the bytes left
//! (a hostile file gives [`Error::Tokenizer`], never a panic or a huge allocation).
//!
//! ```text
//! ModelProto      1: repeated SentencePiece pieces   2: TrainerSpec   3: NormalizerSpec
//! SentencePiece   1: string piece   2: float score   3: enum type (1 NORMAL, 2 UNKNOWN,
//!                 3 CONTROL, 4 USER_DEFINED, 5 UNUSED, 6 BYTE; default NORMAL)
//! TrainerSpec     3: model_type (1 UNIGRAM, 2 BPE, 3 WORD, 4 CHAR)   35: byte_fallback
//!                 40: unk_id (0)   41: bos_id (1)   42: eos_id (2)   43: pad_id (-1)
//! NormalizerSpec  3: add_dummy_prefix (true)
//! ```

use crate::gguf::{Array, Metadata, Value};
use crate::{Error, Result};

/// A SentencePiece piece's type. The numbers are both SentencePiece's enum and GGUF's
/// `tokenizer.ggml.token_type` values (llama.cpp's `LLAMA_TOKEN_TYPE_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum PieceType {
    /// An ordinary piece.
    Normal = 1,
    /// The unknown piece (`<unk>`).
    Unknown = 2,
    /// A control symbol (`<s>`, `</s>`).
    Control = 3,
    /// A user-defined symbol, always matched as one piece.
    UserDefined = 4,
    /// A piece the model never produces.
    Unused = 5,
    /// A byte-fallback piece (`<0x41>`).
    Byte = 6,
}

impl PieceType {
    fn from_proto(v: u64) -> Option<Self> {
        Some(match v {
            1 => PieceType::Normal,
            2 => PieceType::Unknown,
            3 => PieceType::Control,
            4 => PieceType::UserDefined,
            5 => PieceType::Unused,
            6 => PieceType::Byte,
            _ => return None,
        })
    }
}

/// The parts of a SentencePiece model a GGUF needs.
#[derive(Debug, Clone, PartialEq)]
pub struct SpmModel {
    /// Pieces in id order: `(text, score, type)`.
    pub pieces: Vec<(String, f32, PieceType)>,
    /// `TrainerSpec.model_type` (1 unigram, 2 BPE, ...).
    pub model_type: u32,
    /// Whether unknown bytes fall back to `<0xXX>` pieces.
    pub byte_fallback: bool,
    /// Unknown piece id.
    pub unk_id: i32,
    /// Beginning-of-sequence id (-1: none).
    pub bos_id: i32,
    /// End-of-sequence id (-1: none).
    pub eos_id: i32,
    /// Padding id (-1: none).
    pub pad_id: i32,
    /// Whether a space is prepended to the input (`NormalizerSpec.add_dummy_prefix`).
    pub add_dummy_prefix: bool,
}

/// Most pieces a model may declare (SentencePiece vocabularies are at most a few 100k).
const MAX_PIECES: usize = 1 << 22;

impl SpmModel {
    /// Reads a serialized `ModelProto` (the bytes of a `tokenizer.model` file).
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let mut m = SpmModel {
            pieces: Vec::new(),
            model_type: 1,
            byte_fallback: false,
            unk_id: 0,
            bos_id: 1,
            eos_id: 2,
            pad_id: -1,
            add_dummy_prefix: true,
        };
        let mut r = Reader::new(bytes, 0);
        while let Some((field, wire)) = r.key()? {
            match (field, wire) {
                (1, Wire::Len) => {
                    if m.pieces.len() >= MAX_PIECES {
                        return Err(r.error("more than 4194304 pieces"));
                    }
                    let (sub, at) = r.len_delimited()?;
                    m.pieces.push(parse_piece(sub, at)?);
                }
                (2, Wire::Len) => {
                    let (sub, at) = r.len_delimited()?;
                    let mut t = Reader::new(sub, at);
                    while let Some((f, w)) = t.key()? {
                        match (f, w) {
                            (3, Wire::Varint) => m.model_type = t.varint()? as u32,
                            (35, Wire::Varint) => m.byte_fallback = t.varint()? != 0,
                            (40, Wire::Varint) => m.unk_id = t.varint()? as i32,
                            (41, Wire::Varint) => m.bos_id = t.varint()? as i32,
                            (42, Wire::Varint) => m.eos_id = t.varint()? as i32,
                            (43, Wire::Varint) => m.pad_id = t.varint()? as i32,
                            _ => t.skip(w)?,
                        }
                    }
                }
                (3, Wire::Len) => {
                    let (sub, at) = r.len_delimited()?;
                    let mut n = Reader::new(sub, at);
                    while let Some((f, w)) = n.key()? {
                        match (f, w) {
                            (3, Wire::Varint) => m.add_dummy_prefix = n.varint()? != 0,
                            _ => n.skip(w)?,
                        }
                    }
                }
                _ => r.skip(wire)?,
            }
        }
        if m.pieces.is_empty() {
            return Err(Error::Tokenizer(
                "tokenizer.model has no pieces (not a SentencePiece model?)".into(),
            ));
        }
        Ok(m)
    }

    /// Reads a `tokenizer.model` file.
    pub fn read(path: &std::path::Path) -> Result<Self> {
        let bytes =
            std::fs::read(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        Self::parse(&bytes)
            .map_err(|e| Error::Tokenizer(format!("{}: {}", path.display(), strip(&e))))
    }

    /// The GGUF tokenizer keys llama.cpp's converter writes for this model with the tokens
    /// `added` appended (each `(text, type)` gets score -1000, as the converter gives added
    /// tokens): `tokenizer.ggml.{model, tokens, scores, token_type, bos_token_id,
    /// eos_token_id, unknown_token_id[, padding_token_id]}`. (`add_bos_token` /
    /// `add_eos_token` and the chat template come from the checkpoint's configuration, not from
    /// the SentencePiece model, and are left to the caller.)
    pub fn gguf_metadata(&self, added: &[(String, PieceType)], md: &mut Metadata) {
        let n = self.pieces.len() + added.len();
        let (mut tokens, mut scores, mut types) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for (t, s, ty) in &self.pieces {
            tokens.push(t.clone());
            scores.push(*s);
            types.push(*ty as i32);
        }
        for (t, ty) in added {
            tokens.push(t.clone());
            scores.push(-1000.0);
            types.push(*ty as i32);
        }
        md.insert("tokenizer.ggml.model", Value::String("llama".into()));
        md.insert("tokenizer.ggml.tokens", Value::Array(Array::String(tokens)));
        md.insert("tokenizer.ggml.scores", Value::Array(Array::F32(scores)));
        md.insert("tokenizer.ggml.token_type", Value::Array(Array::I32(types)));
        for (key, id) in [
            ("tokenizer.ggml.bos_token_id", self.bos_id),
            ("tokenizer.ggml.eos_token_id", self.eos_id),
            ("tokenizer.ggml.unknown_token_id", self.unk_id),
            ("tokenizer.ggml.padding_token_id", self.pad_id),
        ] {
            if id >= 0 {
                md.insert(key, Value::U32(id as u32));
            }
        }
    }
}

/// The message of a tokenizer error without its "tokenizer: " prefix.
fn strip(e: &Error) -> String {
    match e {
        Error::Tokenizer(m) => m.clone(),
        other => other.to_string(),
    }
}

fn parse_piece(bytes: &[u8], at: usize) -> Result<(String, f32, PieceType)> {
    let mut r = Reader::new(bytes, at);
    let (mut piece, mut score, mut ty) = (None, 0f32, PieceType::Normal);
    while let Some((f, w)) = r.key()? {
        match (f, w) {
            (1, Wire::Len) => {
                let (s, _) = r.len_delimited()?;
                let s = std::str::from_utf8(s).map_err(|_| r.error("piece is not UTF-8"))?;
                piece = Some(s.to_owned());
            }
            (2, Wire::Fixed32) => score = f32::from_le_bytes(r.fixed::<4>()?),
            (3, Wire::Varint) => {
                let v = r.varint()?;
                ty = PieceType::from_proto(v)
                    .ok_or_else(|| r.error(&format!("unknown piece type {v}")))?;
            }
            _ => r.skip(w)?,
        }
    }
    let piece = piece.ok_or_else(|| r.error("piece without text"))?;
    Ok((piece, score, ty))
}

/// Protobuf wire types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wire {
    Varint,
    Fixed64,
    Len,
    Fixed32,
}

/// A cursor over one protobuf message; `base` is its offset in the file (for errors).
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], base: usize) -> Self {
        Reader { buf, pos: 0, base }
    }

    fn error(&self, what: &str) -> Error {
        Error::Tokenizer(format!(
            "malformed SentencePiece model at byte {}: {what}",
            self.base + self.pos
        ))
    }

    fn varint(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for i in 0..10 {
            let &b = self
                .buf
                .get(self.pos)
                .ok_or_else(|| self.error("truncated varint"))?;
            self.pos += 1;
            v |= ((b & 0x7f) as u64) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.error("varint longer than 10 bytes"))
    }

    /// The next field number and wire type, or `None` at the end of the message.
    fn key(&mut self) -> Result<Option<(u64, Wire)>> {
        if self.pos == self.buf.len() {
            return Ok(None);
        }
        let k = self.varint()?;
        let wire = match k & 7 {
            0 => Wire::Varint,
            1 => Wire::Fixed64,
            2 => Wire::Len,
            5 => Wire::Fixed32,
            w => return Err(self.error(&format!("unsupported wire type {w}"))),
        };
        Ok(Some((k >> 3, wire)))
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8]> {
        let left = self.buf.len() - self.pos;
        if n > left as u64 {
            return Err(self.error(&format!("field of {n} bytes, only {left} left")));
        }
        let s = &self.buf[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }

    /// A length-delimited field's bytes and their offset in the file.
    fn len_delimited(&mut self) -> Result<(&'a [u8], usize)> {
        let n = self.varint()?;
        let at = self.base + self.pos;
        Ok((self.take(n)?, at))
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N]> {
        Ok(self.take(N as u64)?.try_into().expect("N bytes"))
    }

    fn skip(&mut self, w: Wire) -> Result<()> {
        match w {
            Wire::Varint => self.varint().map(drop),
            Wire::Fixed64 => self.take(8).map(drop),
            Wire::Fixed32 => self.take(4).map(drop),
            Wire::Len => self.len_delimited().map(drop),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    fn field_len(field: u64, body: &[u8], out: &mut Vec<u8>) {
        varint(field << 3 | 2, out);
        varint(body.len() as u64, out);
        out.extend_from_slice(body);
    }

    fn piece(text: &str, score: f32, ty: Option<u64>) -> Vec<u8> {
        let mut p = Vec::new();
        field_len(1, text.as_bytes(), &mut p);
        varint(2 << 3 | 5, &mut p);
        p.extend_from_slice(&score.to_le_bytes());
        if let Some(t) = ty {
            varint(3 << 3, &mut p);
            varint(t, &mut p);
        }
        p
    }

    fn model() -> Vec<u8> {
        let mut m = Vec::new();
        field_len(1, &piece("<unk>", 0.0, Some(2)), &mut m);
        field_len(1, &piece("<s>", 0.0, Some(3)), &mut m);
        field_len(1, &piece("▁the", -1.5, None), &mut m);
        field_len(1, &piece("<0x41>", 0.0, Some(6)), &mut m);
        let mut t = Vec::new();
        varint(3 << 3, &mut t);
        varint(2, &mut t); // BPE
        varint(35 << 3, &mut t);
        varint(1, &mut t); // byte_fallback
        varint(42 << 3, &mut t);
        varint(7, &mut t); // eos 7
        varint(43 << 3, &mut t);
        varint(u64::MAX, &mut t); // pad -1 as a 10-byte varint
        varint(99 << 3 | 1, &mut t); // unknown fixed64 field: skipped
        t.extend_from_slice(&[0; 8]);
        field_len(2, &t, &mut m);
        let mut n = Vec::new();
        varint(3 << 3, &mut n);
        varint(0, &mut n);
        field_len(3, &n, &mut m);
        m
    }

    #[test]
    fn parses_pieces_and_specs() {
        let m = SpmModel::parse(&model()).unwrap();
        assert_eq!(m.pieces.len(), 4);
        assert_eq!(m.pieces[2], ("▁the".into(), -1.5, PieceType::Normal));
        assert_eq!(m.pieces[0].2, PieceType::Unknown);
        assert_eq!(m.pieces[3].2, PieceType::Byte);
        assert_eq!(m.model_type, 2);
        assert!(m.byte_fallback);
        assert_eq!((m.unk_id, m.bos_id, m.eos_id, m.pad_id), (0, 1, 7, -1));
        assert!(!m.add_dummy_prefix);

        let mut md = Metadata::new();
        m.gguf_metadata(&[("<|im_end|>".into(), PieceType::UserDefined)], &mut md);
        assert_eq!(
            md.get_arr::<String>("tokenizer.ggml.tokens").unwrap().len(),
            5
        );
        assert_eq!(
            md.get_arr::<i32>("tokenizer.ggml.token_type").unwrap(),
            &[2, 3, 1, 6, 4]
        );
        assert_eq!(
            md.get_arr::<f32>("tokenizer.ggml.scores").unwrap()[4],
            -1000.0
        );
        assert_eq!(md.get_u32("tokenizer.ggml.eos_token_id").unwrap(), 7);
        assert!(!md.contains("tokenizer.ggml.padding_token_id"));
    }

    /// Every truncation and many corruptions give a typed error, never a panic.
    #[test]
    fn malformed_models_are_errors() {
        let m = model();
        for cut in 0..m.len() {
            let _ = SpmModel::parse(&m[..cut]);
        }
        assert!(SpmModel::parse(&m[..m.len() - 3]).is_err());
        assert!(SpmModel::parse(&[]).is_err());
        // A length far past the end.
        let mut bad = Vec::new();
        varint(1 << 3 | 2, &mut bad);
        varint(1 << 40, &mut bad);
        assert!(matches!(SpmModel::parse(&bad), Err(Error::Tokenizer(_))));
        // Wire type 3 (groups) is refused.
        assert!(SpmModel::parse(&[0x0b]).is_err());
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..2000 {
            let mut c = m.clone();
            for _ in 0..3 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let i = (x as usize) % c.len();
                c[i] = (x >> 32) as u8;
            }
            let _ = SpmModel::parse(&c);
        }
    }
}
