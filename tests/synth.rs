//! `orcinus synth` and `orcinus::synth`: benchmark models with Mistral-7B-OpenOrca's shapes and
//! metadata and random weights.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use orcinus::convert::spm::SpmModel;
use orcinus::gguf::File;
use orcinus::model::{LoadOptions, Model, SessionOptions};
use orcinus::quant::GgmlType;
use orcinus::quantize::{self, FileType, MixContext};
use orcinus::synth::{self, SynthOptions, SynthPreset};

fn tokenizer_path() -> PathBuf {
    common::fixture("tokenizer.model.v1")
}

fn tokenizer() -> SpmModel {
    SpmModel::read(&tokenizer_path()).unwrap()
}

fn write(dir: &Path, ftype: FileType, seed: u64) -> (PathBuf, quantize::Summary) {
    let path = dir.join(format!("tiny-{ftype}-{seed}.gguf"));
    let opts = SynthOptions {
        seed,
        threads: 2,
        progress: None,
    };
    let s = synth::synth_to_path(SynthPreset::Tiny, ftype, &tokenizer(), &path, opts).unwrap();
    (path, s)
}

/// Names, shapes and types are the mix rule's, in the planned order; the summary adds up.
fn check_tensors(path: &Path, ftype: FileType, s: &quantize::Summary) {
    let f = File::open(path).unwrap();
    let plan = synth::plan(SynthPreset::Tiny, ftype);
    let infos = f.tensor_infos();
    assert_eq!(infos.len(), plan.len());
    assert_eq!(infos.len(), 3 + 2 * 9);
    let ctx =
        MixContext::from_metadata(f.metadata(), infos.iter().map(|t| t.name.as_str())).unwrap();
    let mut bytes = 0;
    for (t, p) in infos.iter().zip(&plan) {
        assert_eq!((&t.name, &t.ne, t.ty), (&p.name, &p.ne, p.to));
        let want = if t.ne.len() == 1 {
            GgmlType::F32
        } else {
            quantize::tensor_type(ftype, &t.name, &t.ne, &ctx)
        };
        assert_eq!(t.ty, want, "{ftype} {}", t.name);
        bytes += p.output_bytes().unwrap();
    }
    // Requantizing the file as the same type changes nothing: it is what quantize writes.
    assert!(quantize::plan(&f, ftype)
        .unwrap()
        .iter()
        .all(|t| t.is_copy()));
    assert_eq!(s.tensor_bytes, bytes);
    assert_eq!(s.file_size, std::fs::metadata(path).unwrap().len());
    assert_eq!(s.ftype, ftype);
}

#[test]
fn tiny_tensors_follow_the_mix() {
    let dir = tempfile::tempdir().unwrap();
    for ftype in [
        FileType::Q4KM,
        FileType::Q8_0,
        FileType::F16,
        FileType::Q2K,
        FileType::Q5_1,
    ] {
        let (path, s) = write(dir.path(), ftype, 1);
        check_tensors(&path, ftype, &s);
    }
}

#[test]
fn tiny_metadata_is_openorcas() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = write(dir.path(), FileType::Q4KM, 1);
    let f = File::open(&path).unwrap();
    let md = f.metadata();
    assert_eq!(md.get_str("general.architecture").unwrap(), "llama");
    assert!(md
        .get_str("general.name")
        .unwrap()
        .contains("random weights"));
    for (k, v) in [
        ("llama.context_length", 32768),
        ("llama.embedding_length", 256),
        ("llama.block_count", 2),
        ("llama.feed_forward_length", 512),
        ("llama.rope.dimension_count", 64),
        ("llama.attention.head_count", 4),
        ("llama.attention.head_count_kv", 2),
        ("general.file_type", 15),
        ("general.quantization_version", 2),
        ("tokenizer.ggml.bos_token_id", 1),
        ("tokenizer.ggml.eos_token_id", 32000),
        ("tokenizer.ggml.unknown_token_id", 0),
    ] {
        assert_eq!(md.get_u32(k).unwrap(), v, "{k}");
    }
    assert_eq!(
        md.get_f32("llama.attention.layer_norm_rms_epsilon")
            .unwrap(),
        1e-5
    );
    assert_eq!(md.get_f32("llama.rope.freq_base").unwrap(), 10000.0);
    assert!(md.get_bool("tokenizer.ggml.add_bos_token").unwrap());
    assert!(!md.get_bool("tokenizer.ggml.add_eos_token").unwrap());
    assert_eq!(md.get_str("tokenizer.ggml.model").unwrap(), "llama");
    let tokens = md.get_arr::<String>("tokenizer.ggml.tokens").unwrap();
    assert_eq!(tokens.len(), 32002);
    assert_eq!(&tokens[32000..], ["<|im_end|>", "<|im_start|>"]);
    assert_eq!(&tokens[..3], ["<unk>", "<s>", "</s>"]);
    let types = md.get_arr::<i32>("tokenizer.ggml.token_type").unwrap();
    assert_eq!(&types[32000..], [4, 4]);
    let scores = md.get_arr::<f32>("tokenizer.ggml.scores").unwrap();
    assert_eq!(&scores[32000..], [-1000.0, -1000.0]);
    assert_eq!(
        md.get_str("tokenizer.chat_template").unwrap(),
        synth::CHATML_TEMPLATE
    );
    // The last two keys are those llama.cpp's quantizer sets.
    let keys: Vec<&str> = md.iter().map(|(k, _)| k).collect();
    assert_eq!(
        keys[keys.len() - 2..],
        ["general.quantization_version", "general.file_type"]
    );
}

#[test]
fn same_seed_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = write(dir.path(), FileType::Q8_0, 5);
    let b = dir.path().join("again.gguf");
    let opts = SynthOptions {
        seed: 5,
        threads: 1, // another thread count: still the same bytes
        progress: None,
    };
    synth::synth_to_path(SynthPreset::Tiny, FileType::Q8_0, &tokenizer(), &b, opts).unwrap();
    let (c, _) = write(dir.path(), FileType::Q8_0, 6);
    let (a, b, c) = (
        std::fs::read(a).unwrap(),
        std::fs::read(b).unwrap(),
        std::fs::read(c).unwrap(),
    );
    assert!(a == b, "same seed, different bytes");
    assert_eq!(a.len(), c.len());
    assert!(a != c, "another seed, same bytes");
    // Nothing but the outputs is left in the directory (no temporary files).
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 3);
}

#[test]
fn tiny_runs_and_tokenizes_chatml() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = write(dir.path(), FileType::Q4KM, 1);
    let model = Model::load(&path, LoadOptions::default()).unwrap();
    let tok = &model.tokenizer;
    let ids = tok
        .encode("<|im_start|>user\nHi<|im_end|>", true, true)
        .unwrap();
    assert_eq!(ids[..2], [1, 32001], "{ids:?}");
    assert_eq!(*ids.last().unwrap(), 32000, "{ids:?}");
    assert_eq!(ids.iter().filter(|&&i| i >= 32000).count(), 2, "{ids:?}");
    assert_eq!(tok.eos_id(), Some(32000));
    assert!(tok.is_eog(32000));
    // Without special parsing they are text.
    let plain = tok
        .encode("<|im_start|>user\nHi<|im_end|>", true, false)
        .unwrap();
    assert!(plain.iter().all(|&i| i < 32000), "{plain:?}");

    let prompt = model
        .format_chat(&[orcinus::chat::Message::new("user", "Hi")], true)
        .unwrap();
    assert_eq!(
        prompt,
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    );
    let ids = tok.encode(&prompt, true, true).unwrap();
    let mut session = model
        .session(&SessionOptions {
            n_ctx: 64,
            threads: 2,
            ..SessionOptions::default()
        })
        .unwrap();
    let logits = session.prefill(&ids).unwrap();
    assert_eq!(logits.len(), 32002);
    assert!(logits.iter().all(|x| x.is_finite()));
    let (lo, hi) = logits
        .iter()
        .fold((f32::MAX, f32::MIN), |(l, h), &x| (l.min(x), h.max(x)));
    assert!(hi > lo && hi < 100.0 && lo > -100.0, "{lo} {hi}");
    let next = session.decode_step(32000).unwrap();
    assert!(next.iter().all(|x| x.is_finite()));
}

#[test]
fn mistral_7b_plan() {
    let size = |ftype| -> u64 {
        let p = synth::plan(SynthPreset::Mistral7B, ftype);
        assert_eq!(p.len(), 291);
        p.iter().map(|t| t.output_bytes().unwrap()).sum()
    };
    assert_eq!(size(FileType::Q4KM), 4_367_715_392);
    assert_eq!(size(FileType::Q5KM), 5_130_686_528);
    assert_eq!(size(FileType::Q8_0), 7_695_139_840);
    let p = synth::plan(SynthPreset::Mistral7B, FileType::Q4KM);
    let ty = |name: &str| p.iter().find(|t| t.name == name).unwrap().to;
    assert_eq!(ty("output.weight"), GgmlType::Q6K);
    assert_eq!(ty("token_embd.weight"), GgmlType::Q4K);
    assert_eq!(ty("blk.6.attn_v.weight"), GgmlType::Q6K);
    assert_eq!(ty("blk.7.ffn_down.weight"), GgmlType::Q4K);
    assert_eq!(ty("blk.31.ffn_norm.weight"), GgmlType::F32);
    assert_eq!(
        p.iter()
            .find(|t| t.name == "blk.0.ffn_down.weight")
            .unwrap()
            .ne,
        [14336, 4096]
    );
}

fn orcinus(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_orcinus"))
        .args(args)
        .output()
        .expect("run orcinus")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn cli_writes_tiny() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t.gguf");
    let tok = tokenizer_path();
    let o = orcinus(&[
        "synth",
        "--preset",
        "tiny",
        "--type",
        "Q5_K_M",
        "-o",
        out.to_str().unwrap(),
        "--tokenizer",
        tok.to_str().unwrap(),
        "-t",
        "2",
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.contains("wrote") && text.contains("Q5_K_M"), "{text}");
    assert!(text.contains("Q6_K") && text.contains("Q5_K"), "{text}");
    // The library with the same (default) seed writes the same bytes.
    let again = dir.path().join("lib.gguf");
    synth::synth_to_path(
        SynthPreset::Tiny,
        FileType::Q5KM,
        &tokenizer(),
        &again,
        SynthOptions::default(),
    )
    .unwrap();
    assert!(std::fs::read(&out).unwrap() == std::fs::read(&again).unwrap());
}

#[test]
fn cli_bad_arguments_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.gguf");
    let out_s = out.to_str().unwrap();
    let tok = tokenizer_path();
    let tok_s = tok.to_str().unwrap();
    let run = |args: &[&str]| {
        let o = orcinus(args);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "{args:?} left a file"
        );
        stderr(&o)
    };
    let e = run(&[
        "synth",
        "--preset",
        "llama-70b",
        "-o",
        out_s,
        "--tokenizer",
        tok_s,
    ]);
    assert!(
        e.contains("unknown preset `llama-70b`") && e.contains("mistral-7b"),
        "{e}"
    );
    let e = run(&[
        "synth",
        "--preset",
        "tiny",
        "--type",
        "Q4_K_X",
        "-o",
        out_s,
        "--tokenizer",
        tok_s,
    ]);
    assert!(e.contains("unknown file type `Q4_K_X`"), "{e}");
    let missing = dir.path().join("nope/tokenizer.model");
    let e = run(&[
        "synth",
        "--preset",
        "tiny",
        "-o",
        out_s,
        "--tokenizer",
        missing.to_str().unwrap(),
    ]);
    assert!(
        e.contains("nope/tokenizer.model") && e.contains("scripts/fetch-fixtures.sh"),
        "{e}"
    );
    // Not a SentencePiece model (a GGUF file is not one).
    let e = run(&[
        "synth",
        "--preset",
        "tiny",
        "-o",
        out_s,
        "--tokenizer",
        common::smollm2().to_str().unwrap(),
    ]);
    assert!(e.contains("cannot read the tokenizer"), "{e}");
    let bad_out = dir.path().join("no/such/dir/x.gguf");
    let e = run(&[
        "synth",
        "--preset",
        "tiny",
        "-o",
        bad_out.to_str().unwrap(),
        "--tokenizer",
        tok_s,
    ]);
    assert!(
        e.contains("cannot write") && e.contains("no/such/dir") && e.contains("No such file"),
        "{e}"
    );
}
