//! Byte-level BPE (`tokenizer.ggml.model == "gpt2"`), as llama.cpp's `llm_tokenizer_bpe_session`:
//! pre-tokenize, map each byte of a word to its GPT-2 stand-in character, then merge adjacent
//! symbols by the lowest merge rank (leftmost first among equal ranks).

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};

use super::pretok::PreConfig;
use super::vocab::Vocab;
use crate::error::{Error, Result};

/// GPT-2's byte-to-character table (`bytes_to_unicode`): printable Latin-1 bytes stand for
/// themselves, the other 68 bytes for U+0100.. in byte order.
const BYTE_CHARS: [char; 256] = {
    let mut map = ['\0'; 256];
    let mut extra = 0u32;
    let mut b = 0usize;
    while b < 256 {
        let keep = matches!(b, 0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF);
        let u = if keep {
            b as u32
        } else {
            extra += 1;
            255 + extra
        };
        map[b] = match char::from_u32(u) {
            Some(c) => c,
            None => panic!("not a char"),
        };
        b += 1;
    }
    map
};

/// The byte a GPT-2 stand-in character means, if it is one.
pub(super) fn char_to_byte(c: char) -> Option<u8> {
    let u = u32::from(c);
    match u {
        0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF => Some(u as u8),
        // the (u - 0x100)-th byte outside the printable ranges: 0x00..=0x20, 0x7F..=0xA0, 0xAD
        0x100..=0x120 => Some((u - 0x100) as u8),
        0x121..=0x142 => Some((u - 0x121 + 0x7F) as u8),
        0x143 => Some(0xAD),
        _ => None,
    }
}

/// Merge ranks and the pre-tokenizer of a byte-level BPE vocabulary.
#[derive(Debug)]
pub(super) struct Bpe {
    /// `"left right"` to rank (the merge's index in `tokenizer.ggml.merges`; first one wins).
    ranks: HashMap<String, u32>,
    /// Pre-tokenizer configuration.
    pub config: PreConfig,
}

/// A candidate merge of symbols `left` and `right` (indices into the word's symbols).
#[derive(Debug, PartialEq, Eq)]
struct Bigram {
    rank: u32,
    left: usize,
    right: usize,
    text: String,
}

impl Ord for Bigram {
    /// Max-heap order: lowest rank first, then leftmost.
    fn cmp(&self, other: &Self) -> Ordering {
        (Reverse(self.rank), Reverse(self.left)).cmp(&(Reverse(other.rank), Reverse(other.left)))
    }
}

impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A symbol: a byte range of the encoded word, linked to its neighbours.
#[derive(Debug, Clone, Copy)]
struct Sym {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

impl Bpe {
    /// Builds the merge table from `tokenizer.ggml.merges` (each `"left right"`, split at the
    /// first space after the first byte, as llama.cpp does).
    pub fn new(merges: &[String], config: PreConfig) -> Result<Self> {
        let mut ranks = HashMap::with_capacity(merges.len());
        for (i, m) in merges.iter().enumerate() {
            let rank = u32::try_from(i)
                .map_err(|_| Error::Tokenizer("too many BPE merges".to_string()))?;
            // a byte search: the first piece may start with a multi-byte character
            let split = m.bytes().skip(1).position(|b| b == b' ').map(|p| p + 1);
            let key = match split {
                Some(p) => format!("{} {}", &m[..p], &m[p + 1..]),
                None => " ".to_string(),
            };
            ranks.entry(key).or_insert(rank);
        }
        Ok(Self { ranks, config })
    }

    /// Appends the ids of `text` (one raw-text fragment) to `out`.
    pub fn encode(&self, vocab: &Vocab, text: &str, out: &mut Vec<u32>) {
        let mut word = String::new();
        let mut syms: Vec<Sym> = Vec::new();
        let mut heap = BinaryHeap::new();
        let mut key = String::new();
        for raw in self.config.pre.split(text) {
            word.clear();
            word.extend(raw.bytes().map(|b| BYTE_CHARS[b as usize]));
            if self.config.ignore_merges {
                if let Some(&id) = vocab.ids.get(word.as_str()) {
                    out.push(id);
                    continue;
                }
            }
            syms.clear();
            let n = word.chars().count();
            for (i, (start, c)) in word.char_indices().enumerate() {
                syms.push(Sym {
                    start,
                    len: c.len_utf8(),
                    prev: i.checked_sub(1),
                    next: (i + 1 < n).then_some(i + 1),
                });
            }
            heap.clear();
            for i in 1..syms.len() {
                self.push_bigram(&word, &syms, i - 1, i, &mut key, &mut heap);
            }
            while let Some(b) = heap.pop() {
                let (l, r) = (syms[b.left], syms[b.right]);
                if l.len == 0 || r.len == 0 {
                    continue;
                }
                let (lt, rt) = (
                    &word[l.start..l.start + l.len],
                    &word[r.start..r.start + r.len],
                );
                if lt.len() + rt.len() != b.text.len()
                    || !b.text.starts_with(lt)
                    || !b.text.ends_with(rt)
                {
                    continue; // stale: one side changed since this bigram was queued
                }
                syms[b.left].len += r.len;
                syms[b.right].len = 0;
                syms[b.left].next = r.next;
                if let Some(nx) = r.next {
                    syms[nx].prev = Some(b.left);
                }
                if let Some(pv) = syms[b.left].prev {
                    self.push_bigram(&word, &syms, pv, b.left, &mut key, &mut heap);
                }
                if let Some(nx) = syms[b.left].next {
                    self.push_bigram(&word, &syms, b.left, nx, &mut key, &mut heap);
                }
            }
            let mut i = Some(0).filter(|_| !syms.is_empty());
            while let Some(k) = i {
                let s = syms[k];
                let piece = &word[s.start..s.start + s.len];
                match vocab.ids.get(piece) {
                    Some(&id) => out.push(id),
                    // llama.cpp looks each byte of the stand-in text up as a one-byte token
                    // and drops those it cannot find.
                    None => out.extend(piece.bytes().filter_map(|b| {
                        let one = [b];
                        std::str::from_utf8(&one)
                            .ok()
                            .and_then(|s| vocab.ids.get(s).copied())
                    })),
                }
                i = s.next;
            }
        }
    }

    fn push_bigram(
        &self,
        word: &str,
        syms: &[Sym],
        left: usize,
        right: usize,
        key: &mut String,
        heap: &mut BinaryHeap<Bigram>,
    ) {
        let (l, r) = (syms[left], syms[right]);
        let (lt, rt) = (
            &word[l.start..l.start + l.len],
            &word[r.start..r.start + r.len],
        );
        key.clear();
        key.push_str(lt);
        key.push(' ');
        key.push_str(rt);
        if let Some(&rank) = self.ranks.get(key.as_str()) {
            heap.push(Bigram {
                rank,
                left,
                right,
                text: format!("{lt}{rt}"),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_map_round_trips() {
        let m = BYTE_CHARS;
        assert_eq!(m[b' ' as usize], 'Ġ');
        assert_eq!(m[b'\n' as usize], 'Ċ');
        assert_eq!(m[b'A' as usize], 'A');
        for b in 0..=255u8 {
            assert_eq!(char_to_byte(m[b as usize]), Some(b));
        }
        assert_eq!(char_to_byte('€'), None);
    }
}
