//! The graph and sessions: sliding-window rolling cache, batching, prefix reuse, context
//! limits, and a real chat answer from SmolLM2.

mod common;

use std::sync::Arc;

use common::tiny::{write_tiny, TinySpec};
use orcinus::chat::Message;
use orcinus::generate::{FinishReason, GenerateParams, Prompt};
use orcinus::model::{KvType, LoadOptions, Model, SessionOptions};
use orcinus::sampling::SamplingParams;
use orcinus::Error;

fn tiny(spec: TinySpec) -> (tempfile::TempDir, Arc<Model>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    write_tiny(&path, &spec, &common::smollm2());
    let m = Model::load(&path, LoadOptions::default()).unwrap();
    (dir, m)
}

fn opts(n_ctx: usize, batch: usize, rolling: bool) -> SessionOptions {
    SessionOptions {
        n_ctx,
        batch,
        rolling_kv: rolling,
        threads: 2,
        kv_type: KvType::F32,
    }
}

fn tokens(n: usize) -> Vec<u32> {
    (0..n as u32)
        .map(|i| (i * 7919 + 13) % 40000 + 100)
        .collect()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The rolling buffer of `window + batch` slots gives the same logits as keeping every position
/// and masking the same way, while its memory stays constant.
#[test]
fn sliding_window_rolling_cache_equals_full_cache_masked() {
    let (_d, m) = tiny(TinySpec {
        sliding_window: Some(16),
        ..TinySpec::default()
    });
    assert_eq!(m.hparams.sliding_window, Some(16));
    let toks = tokens(100);
    let mut rolling = m.session(&opts(512, 8, true)).unwrap();
    let mut full = m.session(&opts(512, 8, false)).unwrap();
    assert!(
        rolling.kv_bytes() * 10 < full.kv_bytes(),
        "{} vs {}",
        rolling.kv_bytes(),
        full.kv_bytes()
    );
    let a = rolling.eval_all(&toks).unwrap();
    let b = full.eval_all(&toks).unwrap();
    assert_eq!(max_abs_diff(&a, &b), 0.0);
    // Then one token at a time past the window, too.
    for &t in &tokens(40)[..] {
        let x = rolling.decode_step(t).unwrap();
        let y = full.decode_step(t).unwrap();
        assert_eq!(max_abs_diff(&x, &y), 0.0);
    }
    // And the window does change the results once positions fall out of it.
    let (_d2, no_window) = tiny(TinySpec::default());
    let mut s = no_window.session(&opts(512, 8, true)).unwrap();
    let c = s.eval_all(&toks).unwrap();
    let v = m.hparams.n_vocab;
    assert_eq!(
        max_abs_diff(&a[..16 * v], &c[..16 * v]),
        0.0,
        "inside the window"
    );
    assert!(
        max_abs_diff(&a[20 * v..], &c[20 * v..]) > 1e-3,
        "outside the window"
    );
}

/// Batch size does not change the numbers (beyond f32 summation order), and decoding one token
/// at a time agrees with a batched prefill.
#[test]
fn batching_and_incremental_decoding_agree() {
    let (_d, m) = tiny(TinySpec::default());
    let toks = tokens(37);
    let all = m
        .session(&opts(128, 512, true))
        .unwrap()
        .eval_all(&toks)
        .unwrap();
    let small = m
        .session(&opts(128, 5, true))
        .unwrap()
        .eval_all(&toks)
        .unwrap();
    assert!(max_abs_diff(&all, &small) < 1e-4);
    let mut s = m.session(&opts(128, 512, true)).unwrap();
    let v = m.hparams.n_vocab;
    let mut last = s.prefill(&toks[..1]).unwrap();
    for (i, &t) in toks.iter().enumerate().skip(1) {
        assert!(
            max_abs_diff(&last, &all[(i - 1) * v..i * v]) < 1e-4,
            "position {}",
            i - 1
        );
        last = s.decode_step(t).unwrap();
    }
    // f16 cache: close to f32.
    let mut h = m
        .session(&SessionOptions {
            kv_type: KvType::F16,
            ..opts(128, 512, true)
        })
        .unwrap();
    let half = h.eval_all(&toks).unwrap();
    assert!(max_abs_diff(&all, &half) < 0.05);
    // f16 cache, one token at a time (the decode attention reads the f16 rows directly):
    // agrees with the f16 cache's batched prefill.
    let mut h = m
        .session(&SessionOptions {
            kv_type: KvType::F16,
            ..opts(128, 512, true)
        })
        .unwrap();
    let mut last = h.prefill(&toks[..1]).unwrap();
    for (i, &t) in toks.iter().enumerate().skip(1) {
        assert!(
            max_abs_diff(&last, &half[(i - 1) * v..i * v]) < 1e-4,
            "f16, position {}",
            i - 1
        );
        last = h.decode_step(t).unwrap();
    }
}

/// Decoding past a few hundred positions on two threads splits each kv head's positions in
/// parts whose softmaxes merge (the tiny model's two kv heads leave a thread idle otherwise):
/// within float rounding of the batched prefill, which does not split.
#[test]
fn split_decoding_attention_agrees_with_batched_prefill() {
    let (_d, m) = tiny(TinySpec::default());
    let toks = tokens(300);
    let f16 = SessionOptions {
        kv_type: KvType::F16,
        ..opts(512, 512, true)
    };
    let all = m.session(&f16).unwrap().eval_all(&toks).unwrap();
    let mut s = m.session(&f16).unwrap();
    let v = m.hparams.n_vocab;
    let mut last = s.prefill(&toks[..260]).unwrap();
    for (i, &t) in toks.iter().enumerate().skip(260) {
        assert!(
            max_abs_diff(&last, &all[(i - 1) * v..i * v]) < 1e-4,
            "position {}",
            i - 1
        );
        last = s.decode_step(t).unwrap();
    }
}

/// `--no-mmap` and `--mlock` load the same bytes and give the same logits as the mapped file;
/// reading reports its progress up to 1; bad paths and truncated files are typed errors.
#[test]
fn read_into_memory_and_locked_loads_agree_with_the_mapping() {
    use std::sync::Mutex;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    write_tiny(&path, &TinySpec::default(), &common::smollm2());
    let toks = tokens(9);
    let eval = |m: &Arc<Model>| {
        m.session(&opts(64, 512, true))
            .unwrap()
            .eval_all(&toks)
            .unwrap()
    };
    let mapped = Model::load(&path, LoadOptions::default()).unwrap();
    let want = eval(&mapped);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let read = Model::load(
        &path,
        LoadOptions {
            no_mmap: true,
            progress: Some(Box::new(move |f| log.lock().unwrap().push(f))),
            ..LoadOptions::default()
        },
    )
    .unwrap();
    assert_eq!(read.file().bytes(), mapped.file().bytes());
    assert_eq!(eval(&read), want, "the same bytes give the same logits");
    let seen = seen.lock().unwrap();
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    assert_eq!(seen.last().copied(), Some(1.0), "{seen:?}");
    #[cfg(target_os = "linux")]
    for m in [&mapped, &read] {
        let share = m.file().huge_page_share().expect("resident bytes");
        assert!((0.0..=1.0).contains(&share), "{share}");
    }
    for no_mmap in [false, true] {
        match Model::load(
            &path,
            LoadOptions {
                no_mmap,
                mlock: true,
                ..LoadOptions::default()
            },
        ) {
            Ok(locked) => {
                assert_eq!(eval(&locked), want);
                #[cfg(target_os = "linux")]
                {
                    let status = std::fs::read_to_string("/proc/self/status").unwrap();
                    let kib: u64 = status
                        .lines()
                        .find_map(|l| l.strip_prefix("VmLck:"))
                        .and_then(|v| v.split_whitespace().next()?.parse().ok())
                        .unwrap();
                    let len = locked.file().bytes().len() as u64;
                    assert!(kib * 1024 >= len, "{kib} kB locked for {len} bytes");
                }
            }
            // A locked-memory limit below the file (unprivileged, small `ulimit -l`).
            Err(e @ Error::Io { .. }) => assert!(e.to_string().contains("ulimit -l"), "{e}"),
            Err(e) => panic!("{e}"),
        }
    }
    let missing = dir.path().join("missing.gguf");
    let no_mmap = || LoadOptions {
        no_mmap: true,
        ..LoadOptions::default()
    };
    assert!(matches!(
        Model::load(&missing, no_mmap()),
        Err(Error::Io { .. })
    ));
    let bytes = std::fs::read(&path).unwrap();
    let cut = dir.path().join("cut.gguf");
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
    assert!(matches!(
        Model::load(&cut, no_mmap()),
        Err(Error::Gguf { .. })
    ));
    std::fs::write(&cut, b"").unwrap();
    assert!(matches!(
        Model::load(&cut, no_mmap()),
        Err(Error::Gguf { .. })
    ));
}

#[test]
fn context_overflow_is_a_clear_error() {
    let (_d, m) = tiny(TinySpec::default());
    let mut s = m.session(&opts(16, 512, true)).unwrap();
    s.prefill(&tokens(10)).unwrap();
    match s.prefill(&tokens(7)) {
        Err(Error::ContextFull {
            needed: 17,
            n_ctx: 16,
        }) => {}
        other => panic!("{other:?}"),
    }
    // The session is still usable.
    s.prefill(&tokens(6)).unwrap();
    assert_eq!(s.n_past(), 16);
    assert!(matches!(s.decode_step(1), Err(Error::ContextFull { .. })));
    assert!(s.prefill(&[u32::MAX]).is_err());
}

/// The graph refuses a logits buffer of the wrong size, and an empty batch, with a typed
/// error, and fills a buffer of the right size with what a session returns.
#[test]
fn forward_checks_the_logits_buffer() {
    use orcinus::model::arch::llama::{forward, Scratch};
    use orcinus::model::{KvCache, Logits};
    let (_d, m) = tiny(TinySpec::default());
    let hp = &m.hparams;
    let toks = tokens(3);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let run = |toks: &[u32], which: Logits, len: usize| {
        let mut cache = KvCache::new(
            KvType::F32,
            hp.n_layer,
            hp.n_head_kv,
            hp.head_dim,
            16,
            None,
            8,
        )
        .unwrap();
        let mut scratch = Scratch::default();
        let mut logits = vec![0f32; len];
        let r = forward(
            hp,
            &m.weights,
            &mut cache,
            &mut scratch,
            toks,
            0,
            None,
            which,
            &pool,
            &mut logits,
        );
        r.map(|()| logits)
    };
    let v = hp.n_vocab;
    for (which, len) in [
        (Logits::Last, v - 1),
        (Logits::Last, 3 * v),
        (Logits::All, v),
        (Logits::All, 3 * v + 1),
    ] {
        match run(&toks, which, len) {
            Err(Error::ShapeMismatch { name, .. }) => assert_eq!(name, "logits"),
            other => panic!("{which:?} {len}: {:?}", other.map(|l| l.len())),
        }
    }
    assert!(matches!(
        run(&[], Logits::Last, v),
        Err(Error::Unsupported(_))
    ));
    // The same graph on the same batch as a session's: the same bits.
    let want = m
        .session(&opts(16, 512, false))
        .unwrap()
        .eval_all(&toks)
        .unwrap();
    assert_eq!(run(&toks, Logits::All, 3 * v).unwrap(), want);
    assert_eq!(run(&toks, Logits::Last, v).unwrap(), want[2 * v..]);
}

/// The real model answers a real question, greedily, with the chat template.
#[test]
fn smollm2_answers_the_capital_of_france() {
    let m = Model::load(common::smollm2(), LoadOptions::default()).unwrap();
    let mut s = m
        .session(&SessionOptions {
            threads: 2,
            ..SessionOptions::default()
        })
        .unwrap();
    // SmolLM2-135M is tiny: with its template's default system prompt the greedy answer is
    // unreliable (it flips with the last bits of the matmul numerics), so give it a plain one.
    // Even so, "What is the capital of France?" starts on a near tie (English "The" against a
    // French start, 0.05-0.2 apart), which the scalar kernels resolved into French at stop 13;
    // "capital city" answers "The capital city of France is Paris." on every kernel set.
    let msgs = [
        Message::new("system", "You are a helpful assistant."),
        Message::new("user", "What is the capital city of France?"),
    ];
    let params = GenerateParams {
        max_tokens: 32,
        sampling: SamplingParams::greedy(),
        ..GenerateParams::default()
    };
    let mut g = s.generate(Prompt::Messages(&msgs), &params).unwrap();
    let text: String = g.by_ref().map(|p| p.unwrap().text).collect();
    assert!(text.contains("Paris"), "{text:?}");
    assert_eq!(g.finish_reason(), Some(FinishReason::Eog));
    let first_prompt = g.stats().prompt_tokens;
    drop(g);
    // A follow-up turn reuses the cached conversation.
    let msgs2 = [
        msgs[0].clone(),
        msgs[1].clone(),
        Message::new("assistant", text.trim()),
        Message::new("user", "And of Germany?"),
    ];
    let mut g = s.generate(Prompt::Messages(&msgs2), &params).unwrap();
    assert!(g.stats().cached_tokens >= first_prompt, "{:?}", g.stats());
    let text2: String = g.by_ref().map(|p| p.unwrap().text).collect();
    assert!(text2.contains("Berlin"), "{text2:?}");
}

/// Same seed, same text; stop strings cut the text.
#[test]
fn sampling_is_reproducible_and_stop_strings_work() {
    let m = Model::load(common::smollm2(), LoadOptions::default()).unwrap();
    let run = |seed: u64, stop: Vec<String>| {
        let mut s = m
            .session(&SessionOptions {
                threads: 2,
                ..SessionOptions::default()
            })
            .unwrap();
        let params = GenerateParams {
            max_tokens: 24,
            sampling: SamplingParams {
                seed,
                temperature: 1.0,
                ..SamplingParams::default()
            },
            stop,
            ..GenerateParams::default()
        };
        let mut g = s
            .generate(Prompt::Text("Once upon a time"), &params)
            .unwrap();
        let text: String = g.by_ref().map(|p| p.unwrap().text).collect();
        (text, g.finish_reason())
    };
    let (a, _) = run(1, vec![]);
    assert_eq!(a, run(1, vec![]).0);
    assert_ne!(a, run(2, vec![]).0);
    let word = a.split_whitespace().nth(2).unwrap().to_string();
    let (cut, why) = run(1, vec![word.clone()]);
    assert_eq!(why, Some(FinishReason::Stop));
    assert!(
        !cut.contains(&word) && a.starts_with(&cut),
        "{cut:?} / {a:?}"
    );
}
