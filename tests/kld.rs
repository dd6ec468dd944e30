//! KL-divergence against a base file (`orcinus perplexity --kl-divergence-base` /
//! `--kl-divergence`): the statistics equal a direct f64 computation from both models' logits,
//! a model against its own base gives zero, and bad base files are typed errors.

mod common;

use std::path::Path;
use std::sync::Arc;

use orcinus::generate::{kl_divergence, write_kl_base, KlBase};
use orcinus::model::{KvType, LoadOptions, Model, SessionOptions};
use orcinus::quantize::{quantize_file, FileType, QuantizeOptions};

const N_CTX: usize = 64;
const CHUNKS: usize = 2;

fn session(m: &Arc<Model>) -> orcinus::model::Session {
    m.session(&SessionOptions {
        n_ctx: N_CTX,
        threads: 2,
        kv_type: KvType::F32,
        ..SessionOptions::default()
    })
    .unwrap()
}

fn text_tokens(m: &Model) -> Vec<u32> {
    let text = std::fs::read_to_string(common::root().join("LICENSE")).unwrap();
    m.tokenizer.encode(&text, false, false).unwrap()
}

/// `log_softmax` of a row in f64.
fn log_softmax(row: &[f32]) -> Vec<f64> {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let lse = max
        + row
            .iter()
            .map(|&v| (v as f64 - max).exp())
            .sum::<f64>()
            .ln();
    row.iter().map(|&v| v as f64 - lse).collect()
}

fn write_base(m: &Arc<Model>, path: &Path) -> f64 {
    let toks = text_tokens(m);
    write_kl_base(
        &mut session(m),
        &toks,
        N_CTX,
        Some(CHUNKS),
        None,
        path,
        |_| {},
    )
    .unwrap()
}

#[test]
fn kl_divergence_equals_direct_computation() {
    let dir = tempfile::tempdir().unwrap();
    let base_path = dir.path().join("base.kld");
    let q8 = dir.path().join("q8_0.gguf");
    quantize_file(
        &common::smollm2(),
        &q8,
        FileType::from_name("Q8_0").unwrap(),
        QuantizeOptions {
            threads: 2,
            allow_requantize: true,
            progress: None,
        },
    )
    .unwrap();
    let base = Model::load(common::smollm2(), LoadOptions::default()).unwrap();
    let other = Model::load(&q8, LoadOptions::default()).unwrap();
    let ppl_base = write_base(&base, &base_path);

    // The model against its own base: zero up to the 16/65535-nat storage grid.
    let mut b = KlBase::open(&base_path).unwrap();
    assert_eq!((b.n_ctx, b.n_chunk, b.first), (N_CTX, CHUNKS, N_CTX / 2));
    let same = kl_divergence(&mut session(&base), &mut b, None, |_, _| {}).unwrap();
    assert_eq!(same.count, CHUNKS * (N_CTX - 1 - N_CTX / 2));
    assert!(same.mean < 2e-5 && same.max < 2e-4, "{same:?}");
    assert_eq!(same.top1_agree, 1.0);
    assert!(
        (same.ppl / ppl_base - 1.0).abs() < 1e-6,
        "{same:?} vs {ppl_base}"
    );
    assert!(same.ln_ppl_ratio.abs() < 1e-6);

    // Another model: the same figures as a direct computation from both models' logits.
    let mut b = KlBase::open(&base_path).unwrap();
    let r = kl_divergence(&mut session(&other), &mut b, None, |_, _| {}).unwrap();
    let (mut klds, mut agree, mut nll, mut nll_base) = (Vec::new(), 0, 0.0, 0.0);
    let (mut sb, mut so) = (session(&base), session(&other));
    let n_vocab = base.hparams.n_vocab;
    for chunk in b.tokens.chunks(N_CTX) {
        sb.reset();
        so.reset();
        let (lb, lo) = (sb.eval_all(chunk).unwrap(), so.eval_all(chunk).unwrap());
        for j in N_CTX / 2..N_CTX - 1 {
            let p = log_softmax(&lb[j * n_vocab..(j + 1) * n_vocab]);
            let q = log_softmax(&lo[j * n_vocab..(j + 1) * n_vocab]);
            klds.push(
                p.iter()
                    .zip(&q)
                    .map(|(a, b)| a.exp() * (a - b))
                    .sum::<f64>(),
            );
            let argmax = |v: &[f64]| (0..v.len()).fold(0, |a, i| if v[i] > v[a] { i } else { a });
            agree += usize::from(argmax(&p) == argmax(&q));
            let t = chunk[j + 1] as usize;
            nll -= q[t];
            nll_base -= p[t];
        }
    }
    let n = klds.len() as f64;
    let mean = klds.iter().sum::<f64>() / n;
    eprintln!("SmolLM2 Q4_1 -> Q8_0: {r:?}; direct mean KLD {mean:.6}");
    assert_eq!(r.count, klds.len());
    assert!(r.mean > 1e-4, "a different model diverges: {r:?}");
    assert!(
        (r.mean - mean).abs() < 1e-4 + 0.01 * mean,
        "{} vs {mean}",
        r.mean
    );
    assert!((r.top1_agree - agree as f64 / n).abs() < 1.5 / n);
    assert!((r.ppl - (nll / n).exp()).abs() < 1e-6 * r.ppl);
    assert!((r.ppl_base - (nll_base / n).exp()).abs() < 1e-5 * r.ppl_base);
    klds.sort_by(f64::total_cmp);
    assert!((r.max - klds[klds.len() - 1]).abs() < 1e-4 + 0.01 * r.max);
    assert!(r.median <= r.p99 && r.p99 <= r.p999 && r.p999 <= r.max);
}

#[test]
fn bad_base_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let base_path = dir.path().join("base.kld");
    let m = Model::load(common::smollm2(), LoadOptions::default()).unwrap();
    let toks = text_tokens(&m);
    write_kl_base(
        &mut session(&m),
        &toks,
        N_CTX,
        Some(1),
        None,
        &base_path,
        |_| {},
    )
    .unwrap();
    let good = std::fs::read(&base_path).unwrap();
    let bad = dir.path().join("bad.kld");
    let open = |bytes: &[u8]| {
        std::fs::write(&bad, bytes).unwrap();
        KlBase::open(&bad).map(drop).unwrap_err().to_string()
    };
    assert!(open(&good[..good.len() - 1]).contains("truncated"));
    assert!(open(&good[..10]).contains("too short"));
    let mut wrong = good.clone();
    wrong[0] = b'X';
    assert!(open(&wrong).contains("not a KL-divergence base file"));
    // A header announcing 2^32-1 chunks: refused by size, nothing allocated for them.
    let mut huge = good.clone();
    huge[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(open(&huge).contains("announces"));
    // A token outside the vocabulary is caught before evaluation.
    let mut tok = good.clone();
    tok[24..28].copy_from_slice(&u32::MAX.to_le_bytes());
    std::fs::write(&bad, &tok).unwrap();
    let mut b = KlBase::open(&bad).unwrap();
    let e = kl_divergence(&mut session(&m), &mut b, None, |_, _| {}).unwrap_err();
    assert!(
        e.to_string().contains("outside this model's vocabulary"),
        "{e}"
    );
    assert!(KlBase::open(&dir.path().join("missing.kld")).is_err());
}
