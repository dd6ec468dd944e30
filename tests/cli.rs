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

/// `run`, `tokenize`, `template`, `perplexity` and `logits` on the real model.
#[test]
fn model_commands_on_smollm2() {
    let p = common::smollm2();
    let m = p.to_str().unwrap();
    let o = orcinus(&[
        "run",
        "-m",
        m,
        "-p",
        // Not "What is the capital of France?": its first token is a near tie between an
        // English and a French answer, which float order decides (tests/model.rs).
        "What is the capital city of France?",
        "--chat",
        "--system",
        "You are a helpful assistant.",
        "--temp",
        "0",
        "-n",
        "24",
        "-t",
        "2",
    ]);
    let text = stdout(&o);
    assert!(text.contains("Paris"), "{text}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("t/s") && !text.contains("t/s"),
        "stats go to stderr only: {err}"
    );

    let ids = stdout(&orcinus(&[
        "tokenize",
        "-m",
        m,
        "-p",
        "Hello world",
        "--json",
    ]));
    let ids: Vec<u32> = serde_json::from_str(ids.trim()).unwrap();
    assert_eq!(ids.len(), 2, "{ids:?}");
    let lines = stdout(&orcinus(&[
        "tokenize", "-m", m, "-p", "a\nb c", "--lines", "--json",
    ]));
    assert_eq!(lines.lines().count(), 2);

    let dir = tempfile::tempdir().unwrap();
    let msgs = dir.path().join("m.json");
    std::fs::write(
        &msgs,
        r#"[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}]"#,
    )
    .unwrap();
    let t = stdout(&orcinus(&[
        "template",
        "-m",
        m,
        "--messages",
        msgs.to_str().unwrap(),
        "--ids",
    ]));
    assert!(t.starts_with("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"), "{t}");
    let last = t.lines().last().unwrap();
    let ids: Vec<u32> = serde_json::from_str(last).unwrap();
    assert_eq!(ids[0], 1, "<|im_start|> is one special token: {ids:?}");

    let text_file = dir.path().join("t.txt");
    std::fs::write(
        &text_file,
        std::fs::read_to_string(common::root().join("LICENSE")).unwrap(),
    )
    .unwrap();
    let j = stdout(&orcinus(&[
        "perplexity",
        "-m",
        m,
        "-f",
        text_file.to_str().unwrap(),
        "-c",
        "128",
        "--chunks",
        "3",
        "--json",
        "-t",
        "2",
    ]));
    let j: serde_json::Value = serde_json::from_str(&j).unwrap();
    let ppl = j["ppl"].as_f64().unwrap();
    assert!(ppl > 1.0 && ppl < 100.0, "{j}");
    assert_eq!(j["tokens_scored"], 3 * 63);

    // KL-divergence of the model against its own base: zero, same PPL, all top-1 agree.
    let base = dir.path().join("base.kld");
    let b = stdout(&orcinus(&[
        "perplexity",
        "-m",
        m,
        "-f",
        text_file.to_str().unwrap(),
        "-c",
        "64",
        "--chunks",
        "1",
        "--kl-divergence-base",
        base.to_str().unwrap(),
        "--json",
        "-t",
        "2",
    ]));
    let b: serde_json::Value = serde_json::from_str(&b).unwrap();
    let k = stdout(&orcinus(&[
        "perplexity",
        "-m",
        m,
        "-c",
        "64",
        "--kl-divergence",
        base.to_str().unwrap(),
        "--json",
        "-t",
        "2",
    ]));
    let k: serde_json::Value = serde_json::from_str(&k).unwrap();
    assert_eq!(k["positions"], 31, "{k}");
    assert!(k["kld_mean"].as_f64().unwrap() < 1e-4, "{k}");
    assert_eq!(k["top1_agreement"], 1.0, "{k}");
    assert!((k["ppl_base"].as_f64().unwrap() / b["ppl"].as_f64().unwrap() - 1.0).abs() < 1e-6);
    let o = orcinus(&[
        "perplexity",
        "-m",
        m,
        "--kl-divergence",
        text_file.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a KL-divergence base file"));

    let npy = dir.path().join("l.npy");
    let ids = stdout(&orcinus(&[
        "logits",
        "-m",
        m,
        "-p",
        "The capital of France is",
        "--out",
        npy.to_str().unwrap(),
    ]));
    let ids: Vec<u32> = serde_json::from_str(ids.trim()).unwrap();
    let bytes = std::fs::read(&npy).unwrap();
    let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    assert_eq!(bytes.len() - 10 - hlen, ids.len() * 49152 * 4);

    // Bad model input is one line, too.
    let o = orcinus(&["run", "-m", "/nonexistent.gguf", "-p", "x"]);
    assert!(!o.status.success());
    assert_eq!(
        String::from_utf8_lossy(&o.stderr)
            .trim_end()
            .lines()
            .count(),
        1
    );
}

/// The examples build (cargo test builds them) and run.
#[test]
fn examples_run() {
    let exe = std::env::current_exe().unwrap();
    let examples = exe.parent().unwrap().parent().unwrap().join("examples");
    for e in ["complete", "chat"] {
        assert!(
            examples.join(e).exists(),
            "examples/{e}.rs is not built: run the whole suite (`cargo test`, which builds the examples), \
             not only `--test cli`"
        );
    }
    let p = common::smollm2();
    let o = Command::new(examples.join("complete"))
        .args([p.to_str().unwrap(), "The capital of France is"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("The capital of France is"));
    let mut child = Command::new(examples.join("chat"))
        .arg(p.to_str().unwrap())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"What is the capital of France?\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!String::from_utf8_lossy(&o.stdout).trim().is_empty());
}

/// `orcinus bench`: llama-bench's JSON fields and table, and clear errors on bad arguments.
#[test]
fn bench_json_table_and_errors() {
    let p = common::smollm2();
    let m = p.to_str().unwrap();
    let out = stdout(&orcinus(&[
        "bench",
        "-m",
        m,
        "-p",
        "16",
        "-n",
        "4",
        "-r",
        "1",
        "-t",
        "2",
        "--json",
        "--bandwidth-mib",
        "64",
    ]));
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    let tests = j.as_array().unwrap();
    assert_eq!(tests.len(), 2, "{out}");
    for t in tests {
        for field in [
            "model_filename",
            "model_type",
            "model_size",
            "model_n_params",
            "n_threads",
            "n_prompt",
            "n_gen",
            "avg_ns",
            "stddev_ns",
            "avg_ts",
            "stddev_ts",
            "samples_ns",
            "samples_ts",
            "peak_rss_bytes",
            "isa",
        ] {
            assert!(t.get(field).is_some(), "no {field}: {t}");
        }
        assert!(t["avg_ts"].as_f64().unwrap() > 0.0, "{t}");
        assert!(t["avg_ns"].as_u64().unwrap() > 0, "{t}");
        assert_eq!(t["samples_ns"].as_array().unwrap().len(), 1);
        assert_eq!(t["samples_ts"].as_array().unwrap().len(), 1);
        assert_eq!(t["n_threads"], 2);
        assert_eq!(t["model_n_params"], 134515008u64);
        assert!(t["model_filename"].as_str().unwrap().ends_with(".gguf"));
        assert!(t["model_type"].as_str().unwrap().contains("Q4_1"), "{t}");
        // Tensor data only: less than the file, more than 4 bits per parameter.
        let size = t["model_size"].as_u64().unwrap();
        assert!(size < std::fs::metadata(&p).unwrap().len() && size > 134515008 / 2);
        let rss = t["peak_rss_bytes"].as_u64().unwrap();
        assert!(rss > 10 << 20 && rss < 8 << 30, "{rss}");
    }
    assert_eq!(
        (tests[0]["n_prompt"].as_u64(), tests[0]["n_gen"].as_u64()),
        (Some(16), Some(0))
    );
    assert_eq!(
        (tests[1]["n_prompt"].as_u64(), tests[1]["n_gen"].as_u64()),
        (Some(0), Some(4))
    );
    let pct = tests[1]["roofline_pct"].as_f64().unwrap();
    assert!(pct > 0.0, "{pct}");
    assert_eq!(tests[0]["use_mmap"], true);
    assert_eq!(tests[0]["n_depth"], 0);

    let o = orcinus(&[
        "bench",
        "-m",
        m,
        "-p",
        "8",
        "-n",
        "2",
        "-r",
        "1",
        "-t",
        "2",
        "--no-bandwidth",
        "--no-mmap",
        "-d",
        "0,5",
    ]);
    let table = stdout(&o);
    let lines: Vec<&str> = table.lines().collect();
    let header: Vec<&str> = lines[0].split('|').map(str::trim).collect();
    assert_eq!(
        header,
        ["", "model", "size", "params", "backend", "threads", "test", "t/s", ""],
        "{table}"
    );
    assert!(
        lines[1].starts_with("| ---") && lines[1].ends_with(": |"),
        "{table}"
    );
    assert!(lines[2].contains(" pp8 |"), "{table}");
    assert!(lines[3].contains(" pp8 @ d5 |"), "{table}");
    assert!(
        lines[4].contains(" tg2 |") && lines[4].contains(" ± "),
        "{table}"
    );
    assert!(lines[5].contains(" tg2 @ d5 |"), "{table}");
    assert!(
        table.contains("peak RSS: ") && table.contains("load time: "),
        "{table}"
    );
    assert!(!table.contains("roofline"), "--no-bandwidth: {table}");
    #[cfg(target_os = "linux")]
    assert!(
        table.contains("model read into memory in 2 MiB pages: "),
        "--no-mmap: {table}"
    );

    let bad: [(&[&str], &str); 3] = [
        (&["bench", "-m", "/nonexistent/model.gguf"], "No such file"),
        (&["bench", "-m", m, "-r", "0"], "0 is not in 1.."),
        (
            &["bench", "-m", m, "-p", "0", "-n", "0"],
            "nothing to measure",
        ),
    ];
    for (args, want) in bad {
        let o = orcinus(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(
            !err.contains("panicked") && !err.contains("internal error"),
            "{err}"
        );
    }
}
