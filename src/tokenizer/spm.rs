//! SentencePiece BPE (`tokenizer.ggml.model == "llama"`), as llama.cpp's
//! `llm_tokenizer_spm_session` and SentencePiece's `bpe_model.cc`: start from UTF-8 characters,
//! repeatedly merge the adjacent pair whose concatenation is the vocabulary piece with the
//! highest score (leftmost first among equal scores), then fall back to `<0xXX>` byte tokens
//! for characters the vocabulary lacks.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::vocab::Vocab;
use crate::error::{Error, Result};

/// A candidate merge of symbols `left` and `right`.
#[derive(Debug)]
struct Bigram {
    score: f32,
    left: usize,
    right: usize,
    /// Byte length of the merged text, to spot stale entries.
    size: usize,
}

impl Ord for Bigram {
    /// Max-heap order: highest score first, then leftmost.
    fn cmp(&self, other: &Self) -> Ordering {
        // `partial_cmp` so that -0.0 and 0.0 tie, as with llama.cpp's `<` and `==`
        self.score
            .partial_cmp(&other.score)
            .unwrap_or(Ordering::Equal)
            .then_with(|| other.left.cmp(&self.left))
    }
}

impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Bigram {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Bigram {}

/// A symbol: a byte range of the text, linked to its neighbours.
#[derive(Debug, Clone, Copy)]
struct Sym {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

/// The token for byte `b` in a SentencePiece vocabulary: `<0xXX>`, else the one-byte piece,
/// else UNK (llama.cpp's `byte_to_token` aborts there instead).
pub(super) fn byte_token(vocab: &Vocab, b: u8) -> Result<u32> {
    let hex = format!("<0x{b:02X}>");
    if let Some(&id) = vocab.ids.get(hex.as_str()) {
        return Ok(id);
    }
    let one = [b];
    if let Some(&id) = std::str::from_utf8(&one)
        .ok()
        .and_then(|s| vocab.ids.get(s))
    {
        return Ok(id);
    }
    vocab.unk.ok_or_else(|| {
        Error::Tokenizer(format!(
            "the vocabulary has no byte token {hex} and no unknown token to fall back on"
        ))
    })
}

/// Appends the ids of `text` (already escaped: spaces are `▁`) to `out`.
pub(super) fn encode(vocab: &Vocab, text: &str, out: &mut Vec<u32>) -> Result<()> {
    let n = text.chars().count();
    let mut syms: Vec<Sym> = text
        .char_indices()
        .enumerate()
        .map(|(i, (start, c))| Sym {
            start,
            len: c.len_utf8(),
            prev: i.checked_sub(1),
            next: (i + 1 < n).then_some(i + 1),
        })
        .collect();
    let mut heap = BinaryHeap::new();
    let try_add = |syms: &[Sym], heap: &mut BinaryHeap<Bigram>, left: usize, right: usize| {
        let (l, r) = (syms[left], syms[right]);
        let merged = &text[l.start..l.start + l.len + r.len];
        if let Some(&id) = vocab.ids.get(merged) {
            heap.push(Bigram {
                score: vocab.scores[id as usize],
                left,
                right,
                size: merged.len(),
            });
        }
    };
    for i in 1..syms.len() {
        try_add(&syms, &mut heap, i - 1, i);
    }
    while let Some(b) = heap.pop() {
        let (l, r) = (syms[b.left], syms[b.right]);
        if l.len == 0 || r.len == 0 || l.len + r.len != b.size {
            continue; // stale
        }
        syms[b.left].len += r.len;
        syms[b.right].len = 0;
        syms[b.left].next = r.next;
        if let Some(nx) = r.next {
            syms[nx].prev = Some(b.left);
        }
        if let Some(pv) = syms[b.left].prev {
            try_add(&syms, &mut heap, pv, b.left);
        }
        if let Some(nx) = syms[b.left].next {
            try_add(&syms, &mut heap, b.left, nx);
        }
    }
    // Every merged symbol is a vocabulary piece; a lone character that is not becomes bytes.
    let mut i = Some(0).filter(|_| !syms.is_empty());
    while let Some(k) = i {
        let s = syms[k];
        let piece = &text[s.start..s.start + s.len];
        match vocab.ids.get(piece) {
            Some(&id) => out.push(id),
            None => {
                for b in piece.bytes() {
                    out.push(byte_token(vocab, b)?);
                }
            }
        }
        i = s.next;
    }
    Ok(())
}
