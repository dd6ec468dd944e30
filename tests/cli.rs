//! The `orcinus` binary: inspect, tensor, and its behaviour on bad input.

mod common;

use std::process::{Command, Output};

fn orcinus(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_orcinus"))
        .args(args)
        .output()
        .expect("run orcinus")
}

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "orcinus failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[test]
fn inspect_text_summarises_the_real_model() {
    let p = common::smollm2();
    let out = stdout(&orcinus(&["inspect", p.to_str().unwrap()]));
    assert!(out.contains("GGUF v3"), "{out}");
    assert!(out.contains("general.architecture"));
    // The 49152-entry token list is summarised, not dumped.
    assert!(
        out.contains("[string; 49152]") && out.contains("49144 more"),
        "{out}"
    );
    assert!(out.lines().count() < 400);
    assert!(out.contains("blk.0.attn_q.weight") && out.contains("Q4_1"));
    assert!(out.contains("architecture    llama"));
    assert!(out.contains("parameters      134515008"), "{out}");
    let q8 = out
        .lines()
        .find(|l| l.trim_start().starts_with("Q8_0 "))
        .expect("Q8_0 in the quant mix");
    assert!(
        q8.contains(" 1 tensors") && q8.contains("30081024 bytes"),
        "{q8}"
    );
}

#[test]
fn inspect_json_has_metadata_and_tensors() {
    let p = common::smollm2();
    let out = stdout(&orcinus(&["inspect", "--json", p.to_str().unwrap()]));
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["version"], 3);
    assert_eq!(j["metadata"]["general.architecture"], "llama");
    assert_eq!(j["metadata"]["llama.block_count"], 30);
    assert_eq!(
        j["metadata"]["tokenizer.ggml.tokens"]
            .as_array()
            .unwrap()
            .len(),
        49152
    );
    let tensors = j["tensors"].as_array().unwrap();
    assert_eq!(tensors.len(), 272);
    let q = tensors
        .iter()
        .find(|t| t["name"] == "blk.0.attn_k.weight")
        .unwrap();
    assert_eq!(q["type"], "Q4_1");
    assert_eq!(q["shape"], serde_json::json!([576, 192]));
    assert_eq!(q["bytes"], 576 * 192 / 32 * 20);
    assert!(q["offset"].as_u64().unwrap() % 32 == 0);
    assert_eq!(j["summary"]["n_params"], 134515008u64);
}

#[test]
fn tensor_npy_equals_gguf_py() {
    let p = common::smollm2();
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "blk.3.attn_k.weight",
        "token_embd.weight",
        "output_norm.weight",
    ] {
        let npy = dir.path().join(format!("{name}.npy"));
        stdout(&orcinus(&[
            "tensor",
            p.to_str().unwrap(),
            name,
            "--out",
            npy.to_str().unwrap(),
        ]));
        let r = common::run_py(
            "gguf_ref.py",
            &[
                "npy-check",
                p.to_str().unwrap(),
                name,
                npy.to_str().unwrap(),
            ],
        );
        assert!(r.contains("\"ok\": true"), "{r}");
    }
}

/// Bad input: one clear line on stderr, non-zero exit, never a panic.
#[test]
fn bad_input_gives_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let real = std::fs::read(common::smollm2()).unwrap();
    let trunc = dir.path().join("trunc.gguf");
    std::fs::write(&trunc, &real[..100_000]).unwrap();
    let junk = dir.path().join("junk.gguf");
    std::fs::write(&junk, b"not a gguf file at all").unwrap();
    let real_path = common::smollm2();
    let empty = dir.path().join("empty.gguf");
    std::fs::write(&empty, b"").unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["inspect", trunc.to_str().unwrap()],
            "GGUF error at byte 1107",
        ),
        (vec!["inspect", junk.to_str().unwrap()], "not a GGUF file"),
        (vec!["inspect", empty.to_str().unwrap()], "truncated"),
        (vec!["inspect", "/nonexistent/model.gguf"], "No such file"),
        (
            vec![
                "tensor",
                real_path.to_str().unwrap(),
                "nope",
                "--out",
                "/tmp/x.npy",
            ],
            "no tensor named `nope`",
        ),
    ];
    for (args, want) in cases {
        let o = orcinus(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(err.contains(want), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(
            !err.contains("panicked") && !err.contains("internal error"),
            "{err}"
        );
    }
}
