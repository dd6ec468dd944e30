//! The byte-level BPE tokenizer on the real SmolLM2-135M-Instruct GGUF file (`gpt2` model,
//! `smollm` pre-tokenizer): cases derived by hand from its vocabulary and merges, ChatML
//! special tokens, and lossless round trips over the corpus.
//!
//! Authoritative ids come from llama.cpp's own tokenization; to compare against a file of them
//! (a JSON list with one id list per line of tests/data/tokenizer_corpus.jsonl), run
//! `ORCINUS_BPE_REF_IDS=ids.json cargo test --test tokenizer_bpe -- --ignored`.

mod common;

use std::sync::OnceLock;

use orcinus::gguf::File;
use orcinus::tokenizer::{Tokenizer, TokenizerKind};

const CORPUS: &str = "tests/data/tokenizer_corpus.jsonl";
const CHATML: &str = "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n";

fn tok() -> &'static Tokenizer {
    static T: OnceLock<Tokenizer> = OnceLock::new();
    T.get_or_init(|| {
        let f = File::open(common::smollm2()).expect("open SmolLM2");
        Tokenizer::from_metadata(f.metadata()).expect("tokenizer from SmolLM2 metadata")
    })
}

fn corpus() -> Vec<String> {
    std::fs::read_to_string(common::root().join(CORPUS))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Ids of vocabulary strings (never hard-coded ids).
fn ids(pieces: &[&str]) -> Vec<u32> {
    pieces
        .iter()
        .map(|p| {
            tok()
                .token_id(p)
                .unwrap_or_else(|| panic!("{p:?} is not in the vocabulary"))
        })
        .collect()
}

fn enc(text: &str) -> Vec<u32> {
    tok().encode(text, false, false).unwrap()
}

#[test]
fn metadata() {
    let t = tok();
    assert_eq!(t.kind(), TokenizerKind::Bpe);
    assert_eq!(t.vocab_size(), 49152);
    assert_eq!(t.bos_id(), t.token_id("<|im_start|>"));
    assert_eq!(t.eos_id(), t.token_id("<|im_end|>"));
    assert!(!t.add_bos_default());
    assert_eq!(t.token_str(t.token_id("Ġworld").unwrap()), Some("Ġworld"));
}

#[test]
fn hand_derived_cases() {
    assert_eq!(enc("Hello world"), ids(&["Hello", "Ġworld"]));
    assert_eq!(enc("Hello, world!"), ids(&["Hello", ",", "Ġworld", "!"]));
    assert_eq!(enc(" the"), ids(&["Ġthe"]));
    assert_eq!(enc("I'm"), ids(&["I", "'m"]));
    assert_eq!(enc("line\nnext"), ids(&["line", "Ċ", "next"]));
    // two spaces before a word: the first stays alone, the second joins the word (\s+(?!\S))
    assert_eq!(enc("a  b"), ids(&["a", "Ġ", "Ġb"]));
    // smollm splits every digit on its own
    assert_eq!(enc("12345"), ids(&["1", "2", "3", "4", "5"]));
    assert_eq!(enc("in 2024"), ids(&["in", "Ġ", "2", "0", "2", "4"]));
    assert_eq!(enc(""), Vec::<u32>::new());
    // the merges build these from single bytes
    let the = enc(" the");
    assert_eq!(tok().token_bytes(the[0]), b" the");
}

#[test]
fn chatml_special_tokens() {
    let t = tok();
    let start = t.token_id("<|im_start|>").unwrap();
    let end = t.token_id("<|im_end|>").unwrap();
    let mut want = vec![start];
    want.extend(ids(&["user", "Ċ", "Hi"]));
    want.push(end);
    want.extend(ids(&["Ċ"]));
    want.push(start);
    want.extend(ids(&["ass", "istant", "Ċ"]));
    assert_eq!(t.encode(CHATML, false, true).unwrap(), want);
    assert_eq!(t.encode(CHATML, t.add_bos_default(), true).unwrap(), want);
    let mut with_bos = vec![t.bos_id().unwrap()];
    with_bos.extend_from_slice(&want);
    assert_eq!(t.encode(CHATML, true, true).unwrap(), with_bos);

    // without parse_special the markers are plain text
    let plain = t.encode(CHATML, false, false).unwrap();
    assert!(!plain.contains(&start) && !plain.contains(&end));
    assert_eq!(
        plain[..8],
        ids(&["<", "|", "im", "_", "start", "|", ">", "user"])[..]
    );
    assert_eq!(t.decode(&plain), CHATML);

    // control tokens decode to nothing; generation ends at `<|im_end|>` and `<|endoftext|>`
    assert_eq!(t.decode(&want), "user\nHi\nassistant\n");
    assert!(t.is_control(start) && t.is_control(end));
    assert!(t.is_eog(end) && t.is_eog(t.token_id("<|endoftext|>").unwrap()));
    assert!(!t.is_eog(start) && !t.is_eog(t.token_id("Hello").unwrap()));
}

#[test]
fn corpus_round_trips_and_streams() {
    let t = tok();
    // SmolLM2's vocabulary lacks the byte-level tokens of a few control characters; like
    // llama.cpp (and Hugging Face `tokenizers`), encoding drops them
    let lost: Vec<char> = (0u8..0x80)
        .map(char::from)
        .filter(|c| t.decode(&enc(&c.to_string())) != c.to_string())
        .collect();
    assert_eq!(
        lost,
        ['\u{4}', '\u{6}', '\u{13}', '\u{14}', '\u{16}', '\u{1d}']
    );
    let lines = corpus();
    let mut held_back = 0;
    let mut lossy = 0;
    for line in &lines {
        let ids = t.encode(line, false, false).unwrap();
        let kept: String = line.chars().filter(|c| !lost.contains(c)).collect();
        lossy += usize::from(&kept != line);
        let line = &kept;
        assert_eq!(&t.decode(&ids), line);
        let mut dec = t.stream_decoder();
        let mut text = String::new();
        for &id in &ids {
            text.push_str(&dec.push(id));
            held_back += usize::from(dec.has_pending());
        }
        text.push_str(&dec.finish());
        assert_eq!(&text, line);
    }
    eprintln!(
        "BPE: {} corpus lines round-trip ({lossy} without the lost characters)",
        lines.len()
    );
    assert!(
        held_back > 1000,
        "the corpus should exercise held-back bytes ({held_back})"
    );
}

/// Compares with ids from another implementation (see the module docs).
#[test]
#[ignore = "needs ORCINUS_BPE_REF_IDS, ids made by a reference tokenizer"]
fn equals_reference_ids() {
    let path = std::env::var("ORCINUS_BPE_REF_IDS").expect("ORCINUS_BPE_REF_IDS=<ids.json>");
    let want: Vec<Vec<u32>> =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let lines = corpus();
    assert_eq!(want.len(), lines.len());
    let bad: Vec<String> = lines
        .iter()
        .zip(&want)
        .filter_map(|(line, want)| {
            let got = enc(line);
            (&got != want).then(|| format!("{line:?}\n  ours: {got:?}\n  ref:  {want:?}"))
        })
        .collect();
    eprintln!(
        "BPE: {} of {} corpus lines equal the reference",
        lines.len() - bad.len(),
        lines.len()
    );
    assert!(
        bad.is_empty(),
        "{} lines differ, e.g.:\n{}",
        bad.len(),
        bad[..bad.len().min(10)].join("\n")
    );
}
