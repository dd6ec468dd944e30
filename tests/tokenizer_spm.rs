//! The SentencePiece tokenizer against Python `sentencepiece` on Mistral-7B v0.1's
//! `tokenizer.model`, turned into GGUF metadata the way llama.cpp's converters do (plus
//! `<|im_end|>`/`<|im_start|>` as user-defined tokens, like TheBloke's OpenOrca GGUF files),
//! over the committed corpus tests/data/tokenizer_corpus.jsonl (made by
//! tests/py/tokenizer_ref.py).

mod common;

use std::sync::OnceLock;

use orcinus::gguf::{Array, Metadata, Value};
use orcinus::tokenizer::{Tokenizer, TokenizerKind};
use serde_json::Value as Json;

const CORPUS: &str = "tests/data/tokenizer_corpus.jsonl";
const CHATML: &str = "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n";
/// Texts whose sentencepiece ids the tests need besides the corpus.
const EXTRA: &[&str] = &[
    "user\nHi",
    "\n",
    "assistant\n",
    "<|im_start|>user\nHi",
    CHATML,
];

struct Reference {
    md: Metadata,
    tok: Tokenizer,
    lines: Vec<String>,
    ids: Vec<Vec<u32>>,
    decoded: Vec<String>,
    extra_ids: Vec<Vec<u32>>,
}

fn strings(v: &Json) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

fn id_lists(v: &Json) -> Vec<Vec<u32>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|l| {
            l.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect()
        })
        .collect()
}

fn reference() -> &'static Reference {
    static R: OnceLock<Reference> = OnceLock::new();
    R.get_or_init(|| {
        let model = common::fixture("tokenizer.model.v1");
        let corpus = common::root().join(CORPUS);
        let mut args = vec!["spm", model.to_str().unwrap(), corpus.to_str().unwrap()];
        args.extend_from_slice(EXTRA);
        let out = common::run_py("tokenizer_ref.py", &args);
        let j: Json = serde_json::from_str(&out).expect("JSON from tokenizer_ref.py");

        let mut md = Metadata::new();
        let s = |x: &str| Value::String(x.to_string());
        md.insert("general.architecture", s("llama"));
        md.insert("tokenizer.ggml.model", s("llama"));
        md.insert(
            "tokenizer.ggml.tokens",
            Value::Array(Array::String(strings(&j["pieces"]))),
        );
        let scores = j["scores"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32);
        md.insert(
            "tokenizer.ggml.scores",
            Value::Array(Array::F32(scores.collect())),
        );
        let types = j["types"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_i64().unwrap() as i32);
        md.insert(
            "tokenizer.ggml.token_type",
            Value::Array(Array::I32(types.collect())),
        );
        for (key, field) in [("bos", "bos"), ("eos", "eos"), ("unknown", "unk")] {
            let id = j[field].as_u64().unwrap() as u32;
            md.insert(format!("tokenizer.ggml.{key}_token_id"), Value::U32(id));
        }
        Reference {
            tok: Tokenizer::from_metadata(&md).expect("tokenizer from sentencepiece metadata"),
            md,
            lines: strings(&j["lines"]),
            ids: id_lists(&j["ids"]),
            decoded: strings(&j["decoded"]),
            extra_ids: id_lists(&j["extra_ids"]),
        }
    })
}

/// Our protobuf reader of `tokenizer.model` (used by `synth` and `quantize --hf`) gives the
/// pieces, scores and types Python `sentencepiece` gives, and the same special ids.
#[test]
fn spm_model_reader_equals_sentencepiece() {
    use orcinus::convert::spm::SpmModel;
    let r = reference();
    let m = SpmModel::read(&common::fixture("tokenizer.model.v1")).unwrap();
    let mut ours = Metadata::new();
    m.gguf_metadata(&[], &mut ours);
    let n = m.pieces.len();
    assert_eq!(n, 32000);
    for key in ["tokens", "scores", "token_type"] {
        let key = format!("tokenizer.ggml.{key}");
        let (a, b) = (ours.get(&key).unwrap(), r.md.get(&key).unwrap());
        let (Value::Array(a), Value::Array(b)) = (a, b) else {
            panic!("{key} is not an array")
        };
        let same = match (a, b) {
            (Array::String(a), Array::String(b)) => a[..] == b[..n],
            (Array::F32(a), Array::F32(b)) => a
                .iter()
                .zip(&b[..n])
                .all(|(x, y)| x.to_bits() == y.to_bits()),
            (Array::I32(a), Array::I32(b)) => a[..] == b[..n],
            _ => false,
        };
        assert!(same, "{key} differs from sentencepiece's");
    }
    for key in ["bos", "eos", "unknown"] {
        let key = format!("tokenizer.ggml.{key}_token_id");
        assert_eq!(
            ours.get_u32(&key).unwrap(),
            r.md.get_u32(&key).unwrap(),
            "{key}"
        );
    }
    assert!(m.byte_fallback);
    assert!(m.add_dummy_prefix);
}

fn extra(text: &str) -> &'static [u32] {
    let r = reference();
    &r.extra_ids[EXTRA.iter().position(|&t| t == text).unwrap()]
}

#[test]
fn corpus_is_reproducible() {
    let generated = common::run_py("tokenizer_ref.py", &["corpus"]);
    let committed = std::fs::read_to_string(common::root().join(CORPUS)).unwrap();
    assert!(
        generated == committed,
        "tests/py/tokenizer_ref.py corpus no longer reproduces {CORPUS}"
    );
}

#[test]
fn encode_equals_sentencepiece_on_every_corpus_line() {
    let r = reference();
    assert!(
        r.lines.len() >= 5000,
        "corpus has only {} lines",
        r.lines.len()
    );
    let mut bad = Vec::new();
    for (line, want) in r.lines.iter().zip(&r.ids) {
        let got = r.tok.encode(line, false, false).unwrap();
        if &got != want {
            bad.push(format!("{line:?}\n  ours: {got:?}\n  sp:   {want:?}"));
        }
    }
    let n = r.lines.len();
    eprintln!(
        "SPM: {} of {n} corpus lines equal sentencepiece",
        n - bad.len()
    );
    assert!(
        bad.is_empty(),
        "{} of {n} lines differ, e.g.:\n{}",
        bad.len(),
        bad[..bad.len().min(10)].join("\n")
    );
}

#[test]
fn decode_round_trips_and_equals_sentencepiece() {
    let r = reference();
    let mut checked = 0;
    for ((line, ids), sp_text) in r.lines.iter().zip(&r.ids).zip(&r.decoded) {
        // like sentencepiece, the first token's leading space (the dummy prefix) is dropped
        assert_eq!(&r.tok.decode(ids), sp_text, "decode of {line:?}");
        // `▁` in the input reads as a space, so only those lines cannot round-trip
        if !line.contains('▁') {
            assert_eq!(
                &r.tok.decode(&r.tok.encode(line, false, false).unwrap()),
                line
            );
            checked += 1;
        }
    }
    eprintln!("SPM: {checked} corpus lines round-trip through encode/decode");
    assert!(checked >= 5000);
    // after BOS the leading space stays, as llama.cpp's detokenize does
    let ids = r.tok.encode("Hello", true, false).unwrap();
    assert_eq!(ids[0], r.tok.bos_id().unwrap());
    assert_eq!(r.tok.decode(&ids), " Hello");
}

#[test]
fn stream_decoder_emits_only_whole_characters() {
    let r = reference();
    let mut held_back = 0;
    for (line, ids) in r.lines.iter().zip(&r.ids) {
        let mut dec = r.tok.stream_decoder();
        let mut text = String::new();
        for &id in ids {
            let chunk = dec.push(id);
            // a chunk is a `String`, so it is valid UTF-8; it never cuts a character in two
            assert!(
                !chunk.contains('\u{FFFD}') || line.contains('\u{FFFD}'),
                "{line:?}"
            );
            text.push_str(&chunk);
            held_back += usize::from(dec.has_pending());
        }
        text.push_str(&dec.finish());
        assert_eq!(text, r.tok.decode(ids), "{line:?}");
    }
    assert!(
        held_back > 1000,
        "the corpus should exercise held-back bytes ({held_back})"
    );

    // a 4-byte character the vocabulary lacks: four byte tokens, one character out
    let ids = r.tok.encode("𓀀!", false, false).unwrap();
    let mut dec = r.tok.stream_decoder();
    let chunks: Vec<String> = ids.iter().map(|&id| dec.push(id)).collect();
    assert_eq!(chunks, ["", "", "", "", "𓀀", "!"]);
    assert_eq!(dec.finish(), "");
    // a cut-off sequence at the end becomes one U+FFFD
    let mut dec = r.tok.stream_decoder();
    assert_eq!(dec.push(ids[1]), "");
    assert_eq!(dec.finish(), "\u{FFFD}");
}

#[test]
fn chatml_special_tokens() {
    let r = reference();
    let t = &r.tok;
    assert_eq!(t.kind(), TokenizerKind::Spm);
    assert_eq!(t.vocab_size(), 32002);
    let start = t.token_id("<|im_start|>").unwrap();
    let end = t.token_id("<|im_end|>").unwrap();
    assert_eq!((start, end), (32001, 32000));

    // parse_special: markers become single tokens, and each text after one gets the `▁`
    // prefix, so it tokenizes like sentencepiece on that text alone
    let mut want = vec![start];
    want.extend_from_slice(extra("user\nHi"));
    want.push(end);
    want.extend_from_slice(extra("\n"));
    want.push(start);
    want.extend_from_slice(extra("assistant\n"));
    assert_eq!(t.encode(CHATML, false, true).unwrap(), want);
    let mut with_bos = vec![t.bos_id().unwrap()];
    with_bos.extend_from_slice(&want);
    assert_eq!(
        t.encode(CHATML, t.add_bos_default(), true).unwrap(),
        with_bos
    );

    // without parse_special the markers are plain text, exactly as for sentencepiece
    for text in ["<|im_start|>user\nHi", CHATML] {
        let ids = t.encode(text, false, false).unwrap();
        assert_eq!(ids, extra(text));
        assert!(!ids.contains(&start) && !ids.contains(&end));
    }
    assert_eq!(t.encode("<s>", false, true).unwrap(), [t.bos_id().unwrap()]);
    assert_ne!(
        t.encode("<s>", false, false).unwrap(),
        [t.bos_id().unwrap()]
    );

    // the user-defined markers are treated as control: EOG for `<|im_end|>`, no text
    assert!(t.is_control(start) && t.is_control(end));
    assert!(t.is_eog(end) && t.is_eog(t.eos_id().unwrap()));
    assert!(!t.is_eog(start) && !t.is_eog(t.bos_id().unwrap()));
    assert_eq!(
        t.decode(&t.encode(CHATML, true, true).unwrap()),
        " user\nHi \n assistant\n"
    );
    assert!(t.token_bytes(start).is_empty());
    assert_eq!(t.token_str(start), Some("<|im_start|>"));
    assert_eq!(t.token_bytes(t.token_id("▁Hello").unwrap()), b" Hello");
    assert_eq!(t.token_bytes(t.token_id("<0x0A>").unwrap()), b"\n");
}
