//! BPE pre-tokenizers: split text into words before merging, as llama.cpp's
//! `unicode_regex_split` does for each `tokenizer.ggml.pre`.
//!
//! llama.cpp runs a list of regexes one after the other; each splits every piece the previous
//! ones made into matches and the gaps between them. The GPT-2 and Llama-3 regexes it runs
//! through hand-written matchers (`unicode_regex_split_custom_gpt2/_llama3`), which are ported
//! here line by line; the simple class regexes (`\p{N}`, `\p{N}+`, `[0-9][0-9][0-9]`,
//! `[\p{P}\$\+<=>\^~\|]+`) are direct loops. Character classes are Unicode general categories
//! (`\p{L}`, `\p{N}`, `\p{P}`, from `regex-syntax`'s tables) and `\s` is the Unicode
//! `White_Space` property ([`char::is_whitespace`]), the same sets llama.cpp's
//! `unicode-data.cpp` is generated from.

use std::sync::OnceLock;

use regex_syntax::hir::{Class, HirKind};

/// The splitting recipe of one `tokenizer.ggml.pre` family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PreTokenizer {
    /// llama.cpp's `LLAMA_VOCAB_PRE_TYPE_DEFAULT` (also used when `pre` is absent):
    /// `[\p{P}\$\+<=>\^~\|]+`, the GPT-2 regex, `\p{N}+`, `[0-9][0-9][0-9]`.
    Default,
    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)`.
    Gpt2,
    /// `\p{N}` (every digit alone), then the GPT-2 regex: smollm, starcoder, refact, command-r, ...
    DigitsGpt2,
    /// `[\p{P}\$\+<=>\^~\|]+`, the GPT-2 regex, `[0-9][0-9][0-9]`.
    Falcon,
    /// The Llama-3 regex with numbers in runs of at most `max_digits` (3: llama3, dbrx, smaug;
    /// 1: qwen2, stablelm2, ...).
    Llama3 {
        /// Longest digit run kept together.
        max_digits: usize,
    },
}

/// How llama.cpp configures a BPE vocabulary for a `tokenizer.ggml.pre` value.
#[derive(Debug, Clone, Copy)]
pub(super) struct PreConfig {
    /// The splitter.
    pub pre: PreTokenizer,
    /// Whole words found in the vocabulary skip merging (llama3 family).
    pub ignore_merges: bool,
    /// `add_bos` when `tokenizer.ggml.add_bos_token` is absent.
    pub add_bos: bool,
}

impl PreConfig {
    /// The configuration for `pre` (absent, `"default"` and names Orcinus does not know all
    /// get llama.cpp's default recipe; llama.cpp itself refuses unknown names).
    pub fn from_name(pre: Option<&str>) -> Self {
        use PreTokenizer::*;
        let (pre, ignore_merges, add_bos) = match pre.unwrap_or("default") {
            "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral"
            | "midm-2.0" | "lfm2" | "jina-v5-nano" => (Llama3 { max_digits: 3 }, true, true),
            "dbrx" | "smaug-bpe" => (Llama3 { max_digits: 3 }, false, false),
            "qwen2" | "deepseek-r1-qwen" | "kormo" | "f2llmv2" | "megrez" | "stablelm2"
            | "hunyuan" | "solar-open" => (Llama3 { max_digits: 1 }, false, false),
            "starcoder" | "refact" | "command-r" | "smollm" | "codeshell" | "exaone"
            | "minerva-7b" | "mellum2" => (DigitsGpt2, false, false),
            "gpt-2" | "phi-2" | "jina-es" | "jina-de" | "gigachat" | "jina-v2-es"
            | "jina-v2-de" | "a.x-4.0" | "mellum" | "modern-bert" | "jina-v1-en"
            | "jina-v2-code" | "roberta-bpe" | "mpt" | "olmo" | "jais" | "trillion"
            | "granite-docling" | "exaone4" => (Gpt2, false, false),
            "falcon" => (Falcon, false, false),
            _ => (Default, false, false),
        };
        Self {
            pre,
            ignore_merges,
            add_bos,
        }
    }
}

/// Character classes one split step needs. `defined` is false only past the piece's end
/// (llama.cpp's `flags.as_uint() == 0`): every real code point has some category.
#[derive(Debug, Clone, Copy, Default)]
struct Flags {
    defined: bool,
    letter: bool,
    number: bool,
    punct: bool,
    space: bool,
}

/// Sorted code point ranges of the general categories L, N and P.
struct Tables {
    letter: Vec<(u32, u32)>,
    number: Vec<(u32, u32)>,
    punct: Vec<(u32, u32)>,
}

fn ranges(class: &str) -> Vec<(u32, u32)> {
    let hir = regex_syntax::Parser::new()
        .parse(class)
        .expect("a Unicode general category regex-syntax knows");
    match hir.kind() {
        HirKind::Class(Class::Unicode(c)) => c
            .ranges()
            .iter()
            .map(|r| (u32::from(r.start()), u32::from(r.end())))
            .collect(),
        other => unreachable!("{class} parsed to {other:?}"),
    }
}

fn tables() -> &'static Tables {
    static T: OnceLock<Tables> = OnceLock::new();
    T.get_or_init(|| Tables {
        letter: ranges(r"\p{L}"),
        number: ranges(r"\p{N}"),
        punct: ranges(r"\p{P}"),
    })
}

fn in_ranges(r: &[(u32, u32)], c: u32) -> bool {
    r.binary_search_by(|&(lo, hi)| {
        if hi < c {
            std::cmp::Ordering::Less
        } else if lo > c {
            std::cmp::Ordering::Greater
        } else {
            std::cmp::Ordering::Equal
        }
    })
    .is_ok()
}

fn flags_of(c: char) -> Flags {
    if c.is_ascii() {
        return Flags {
            defined: true,
            letter: c.is_ascii_alphabetic(),
            number: c.is_ascii_digit(),
            // ASCII \p{P}: !"#%&'()*,-./:;?@[\]_{}
            punct: c.is_ascii_punctuation() && !"$+<=>^`|~".contains(c),
            space: c.is_whitespace(),
        };
    }
    let t = tables();
    let u = u32::from(c);
    Flags {
        defined: true,
        letter: in_ranges(&t.letter, u),
        number: in_ranges(&t.number, u),
        punct: in_ranges(&t.punct, u),
        space: c.is_whitespace(),
    }
}

/// One piece of text being split: its code points, and a cursor helper that answers
/// out-of-range positions like llama.cpp's `_get_cpt`/`_get_flags`.
struct Piece<'a> {
    cpts: &'a [char],
    end: usize,
}

impl Piece<'_> {
    fn cpt(&self, pos: usize) -> Option<char> {
        (pos < self.end).then(|| self.cpts[pos])
    }
    fn flags(&self, pos: usize) -> Flags {
        self.cpt(pos).map(flags_of).unwrap_or_default()
    }
}

/// Appends the lengths (in code points) of the pieces `split` makes of each piece in `lens`.
/// `split(piece, start, out)` pushes the end positions of its tokens in `start..piece.end`.
fn resplit(
    cpts: &[char],
    lens: &[usize],
    mut split: impl FnMut(&Piece, usize, &mut Vec<usize>),
) -> Vec<usize> {
    let mut out = Vec::with_capacity(lens.len());
    let mut ends = Vec::new();
    let mut start = 0;
    for &len in lens {
        let piece = Piece {
            cpts,
            end: start + len,
        };
        ends.clear();
        split(&piece, start, &mut ends);
        let mut prev = start;
        for &e in &ends {
            if e > prev {
                out.push(e - prev);
                prev = e;
            }
        }
        if piece.end > prev {
            out.push(piece.end - prev);
        }
        start = piece.end;
    }
    out
}

/// `'s|'t|'re|'ve|'m|'ll|'d` (case-insensitive when `fold`) at `pos`: its length.
fn contraction(p: &Piece, pos: usize, fold: bool) -> Option<usize> {
    if p.cpt(pos) != Some('\'') || pos + 1 >= p.end {
        return None;
    }
    let low = |c: Option<char>| {
        c.map(|c| {
            if fold {
                c.to_lowercase().next().unwrap_or(c)
            } else {
                c
            }
        })
    };
    let n1 = low(p.cpt(pos + 1));
    if matches!(n1, Some('s' | 't' | 'm' | 'd')) {
        return Some(2);
    }
    if pos + 2 < p.end {
        let n2 = low(p.cpt(pos + 2));
        if matches!(
            (n1, n2),
            (Some('r'), Some('e')) | (Some('v'), Some('e')) | (Some('l'), Some('l'))
        ) {
            return Some(3);
        }
    }
    None
}

/// Port of `unicode_regex_split_custom_gpt2`.
fn gpt2(p: &Piece, mut pos: usize, ends: &mut Vec<usize>) {
    while pos < p.end {
        let cpt = p.cpts[pos];
        if let Some(n) = contraction(p, pos, false) {
            pos += n;
            ends.push(pos);
            continue;
        }
        let sp = usize::from(cpt == ' ');
        let mut f2 = if cpt == ' ' {
            p.flags(pos + 1)
        } else {
            p.flags(pos)
        };
        // <space>?\p{L}+   <space>?\p{N}+   <space>?[^\s\p{L}\p{N}]+
        let classes: [fn(Flags) -> bool; 3] = [
            |f| f.letter,
            |f| f.number,
            |f| !(f.space || f.letter || f.number) && f.defined,
        ];
        if let Some(class) = classes.iter().find(|c| c(f2)) {
            pos += sp;
            while class(f2) {
                pos += 1;
                f2 = p.flags(pos);
            }
            ends.push(pos);
            continue;
        }
        let mut n_ws = 0;
        while p.flags(pos + n_ws).space {
            n_ws += 1;
        }
        if n_ws > 1 && p.cpt(pos + n_ws).is_some() {
            // \s+(?!\S): leave the last space to the next word
            pos += n_ws - 1;
        } else if n_ws > 0 {
            pos += n_ws;
        } else {
            pos += 1;
        }
        ends.push(pos);
    }
}

/// Port of `unicode_regex_split_custom_llama3`, with `\p{N}{1,max_digits}`.
fn llama3(p: &Piece, mut pos: usize, ends: &mut Vec<usize>, max_digits: usize) {
    while pos < p.end {
        let cpt = p.cpts[pos];
        let f = p.flags(pos);
        if let Some(n) = contraction(p, pos, true) {
            pos += n;
            ends.push(pos);
            continue;
        }
        // [^\r\n\p{L}\p{N}]?\p{L}+
        if !(cpt == '\r' || cpt == '\n' || f.number) && (f.letter || p.flags(pos + 1).letter) {
            pos += 1;
            while p.flags(pos).letter {
                pos += 1;
            }
            ends.push(pos);
            continue;
        }
        // \p{N}{1,max_digits}
        if f.number {
            let mut ini = pos;
            while p.flags(pos).number {
                pos += 1;
                if pos - ini >= max_digits {
                    ends.push(pos);
                    ini = pos;
                }
            }
            ends.push(pos);
            continue;
        }
        // <space>?[^\s\p{L}\p{N}]+[\r\n]*  (llama.cpp tests the current code point's flags here)
        let mut f2 = if cpt == ' ' { p.flags(pos + 1) } else { f };
        if !(f2.space || f2.letter || f2.number) && f.defined {
            pos += usize::from(cpt == ' ');
            while !(f2.space || f2.letter || f2.number) && f2.defined {
                pos += 1;
                f2 = p.flags(pos);
            }
            while matches!(p.cpt(pos), Some('\r' | '\n')) {
                pos += 1;
            }
            ends.push(pos);
            continue;
        }
        let mut n_ws = 0;
        let mut last_newline_end = 0;
        while p.flags(pos + n_ws).space {
            if matches!(p.cpt(pos + n_ws), Some('\r' | '\n')) {
                last_newline_end = pos + n_ws + 1;
            }
            n_ws += 1;
        }
        if last_newline_end > 0 {
            // \s*[\r\n]+
            pos = last_newline_end;
        } else if n_ws > 1 && p.cpt(pos + n_ws).is_some() {
            // \s+(?!\S)
            pos += n_ws - 1;
        } else if n_ws > 0 {
            pos += n_ws;
        } else {
            pos += 1;
        }
        ends.push(pos);
    }
}

/// The regex `C` (`plus == false`) or `C+` (`plus == true`) for a character class `C`:
/// every match becomes a piece, and so does every gap between matches.
fn class_runs(
    p: &Piece,
    mut pos: usize,
    ends: &mut Vec<usize>,
    class: fn(char) -> bool,
    plus: bool,
) {
    while pos < p.end {
        if class(p.cpts[pos]) {
            ends.push(pos);
            pos += 1;
            while plus && pos < p.end && class(p.cpts[pos]) {
                pos += 1;
            }
            ends.push(pos);
        } else {
            pos += 1;
        }
    }
}

/// The regex `[0-9][0-9][0-9]`: leftmost non-overlapping runs of three ASCII digits.
fn ascii_digit_triples(p: &Piece, mut pos: usize, ends: &mut Vec<usize>) {
    while pos + 3 <= p.end {
        if p.cpts[pos..pos + 3].iter().all(char::is_ascii_digit) {
            ends.push(pos);
            pos += 3;
            ends.push(pos);
        } else {
            pos += 1;
        }
    }
}

/// `[\p{P}\$\+<=>\^~\|]`.
fn punct_or_math(c: char) -> bool {
    flags_of(c).punct || "$+<=>^~|".contains(c)
}

impl PreTokenizer {
    /// Splits `text` into words (sub-slices of `text`, in order, covering it).
    pub fn split<'t>(&self, text: &'t str) -> Vec<&'t str> {
        let cpts: Vec<char> = text.chars().collect();
        let mut lens = vec![cpts.len()];
        let c = &cpts;
        let gpt2_step = |lens: &[usize]| resplit(c, lens, gpt2);
        let runs = |lens: &[usize], class: fn(char) -> bool, plus: bool| {
            resplit(c, lens, |p, s, e| class_runs(p, s, e, class, plus))
        };
        let triples = |lens: &[usize]| resplit(c, lens, ascii_digit_triples);
        match *self {
            PreTokenizer::Default => {
                lens = runs(&lens, punct_or_math, true);
                lens = gpt2_step(&lens);
                lens = runs(&lens, |c| flags_of(c).number, true);
                lens = triples(&lens);
            }
            PreTokenizer::Gpt2 => lens = gpt2_step(&lens),
            PreTokenizer::DigitsGpt2 => {
                lens = runs(&lens, |c| flags_of(c).number, false);
                lens = gpt2_step(&lens);
            }
            PreTokenizer::Falcon => {
                lens = runs(&lens, punct_or_math, true);
                lens = gpt2_step(&lens);
                lens = triples(&lens);
            }
            PreTokenizer::Llama3 { max_digits } => {
                lens = resplit(c, &lens, |p, s, e| llama3(p, s, e, max_digits));
            }
        }
        let mut words = Vec::with_capacity(lens.len());
        let mut chars = text.char_indices().map(|(i, _)| i).chain([text.len()]);
        let mut start = chars.next().unwrap_or(0);
        for len in lens {
            let end = chars.nth(len - 1).unwrap_or(text.len());
            words.push(&text[start..end]);
            start = end;
        }
        words
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(pre: PreTokenizer, s: &str) -> Vec<&str> {
        pre.split(s)
    }

    #[test]
    fn gpt2_regex() {
        let g = PreTokenizer::Gpt2;
        assert_eq!(split(g, "Hello world"), ["Hello", " world"]);
        assert_eq!(
            split(g, "I'm  here   now "),
            ["I", "'m", " ", " here", "  ", " now", " "]
        );
        assert_eq!(
            split(g, "a1234 b!? ,x"),
            ["a", "1234", " b", "!?", " ,", "x"]
        );
        assert_eq!(split(g, "\n\n hi"), ["\n\n", " hi"]);
        assert_eq!(split(g, ""), Vec::<&str>::new());
        assert_eq!(split(g, "héllo wörld 東京"), ["héllo", " wörld", " 東京"]);
    }

    #[test]
    fn smollm_digits() {
        let s = PreTokenizer::DigitsGpt2;
        assert_eq!(split(s, "abc 2024!"), ["abc", " ", "2", "0", "2", "4", "!"]);
        assert_eq!(split(s, "x٣٤"), ["x", "٣", "٤"]);
    }

    #[test]
    fn llama3_regex() {
        let l = PreTokenizer::Llama3 { max_digits: 3 };
        assert_eq!(
            split(l, "Hello world 12345"),
            ["Hello", " world", " ", "123", "45"]
        );
        assert_eq!(
            split(l, "I'M ok\r\n\n  x"),
            ["I", "'M", " ok", "\r\n\n", " ", " x"]
        );
        assert_eq!(split(l, "(foo)"), ["(foo", ")"]);
        let q = PreTokenizer::Llama3 { max_digits: 1 };
        assert_eq!(split(q, "12"), ["1", "2"]);
    }

    #[test]
    fn default_recipe() {
        let d = PreTokenizer::Default;
        assert_eq!(
            split(d, "a+b=1234567"),
            ["a", "+", "b", "=", "123", "456", "7"]
        );
    }

    #[test]
    fn categories() {
        assert!(flags_of('é').letter && flags_of('東').letter && !flags_of('東').number);
        assert!(flags_of('٣').number && flags_of('½').number);
        assert!(flags_of('\u{3000}').space && flags_of('\u{85}').space);
        assert!(flags_of('«').punct && !flags_of('$').punct && flags_of('_').punct);
    }
}
