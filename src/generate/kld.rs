//! KL-divergence of a model against reference ("base") log-probabilities, as llama.cpp's
//! `llama-perplexity --kl-divergence-base` / `--kl-divergence` measure a quantized model
//! against its F16 original.
//!
//! [`write_base`] runs llama.cpp's perplexity chunks (see [`super::perplexity`]) and stores, for
//! every scored position, the model's log-probabilities over the whole vocabulary; [`compare`]
//! runs another model over the same tokens and reports the KL-divergence `KL(base ‖ model)` per
//! position, top-1 agreement and both perplexities.
//!
//! Base file format (ours, little-endian; llama.cpp's file is similar but not the same):
//! ```text
//! 0   magic    b"ORCKLD\0\x01"
//! 8   n_ctx    u32        chunk length
//! 12  n_vocab  u32
//! 16  n_chunk  u32
//! 20  first    u32        first scored position of a chunk (n_ctx / 2)
//! 24  tokens   u32 × n_chunk·n_ctx   the chunks as evaluated (BOS already substituted)
//!     rows     n_chunk · (n_ctx - 1 - first) rows, one per scored position, each:
//!              f32 scale, f32 lo, f32 target log-prob (exact), f32 0,
//!              u16 × n_vocab: q, log-prob ≈ lo + q·scale (q = 0 below lo)
//! ```
//! As in llama.cpp, log-probabilities are kept to 16 nats below the row's largest (`lo`), on a
//! grid of `16/65535` (error at most 1.2e-4 nats); smaller probabilities are left out of the
//! divergence (llama.cpp counts them at `e^lo`, which overstates small divergences of large
//! vocabularies).

use std::io::{BufWriter, Read, Write};
use std::path::Path;

use crate::error::{Error, Result};
use crate::model::Session;

const MAGIC: &[u8; 8] = b"ORCKLD\0\x01";
const HEADER: usize = 24;
/// Log-probabilities are stored down to this many nats below the row's maximum.
const RANGE: f32 = 16.0;

/// Statistics of [`compare`] (llama.cpp's `--kl-divergence` report).
#[derive(Debug, Clone, PartialEq)]
pub struct KlStats {
    /// Positions compared.
    pub count: usize,
    /// Mean KL-divergence `KL(base ‖ model)` per position (nats).
    pub mean: f64,
    /// Standard error of the mean.
    pub mean_err: f64,
    /// Median.
    pub median: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
    /// Fraction of positions where both models' most likely token is the same.
    pub top1_agree: f64,
    /// Perplexity of the base model (from the stored target log-probs).
    pub ppl_base: f64,
    /// Perplexity of the model being compared.
    pub ppl: f64,
    /// `ln(PPL / PPL_base)`: the mean of `ln p_base(target) - ln p(target)`.
    pub ln_ppl_ratio: f64,
}

/// A row's log-softmax quantized to the base file's u16 grid; returns (scale, lo, q).
fn quantize_row(logits: &[f32], target: usize, q: &mut [u16]) -> [f32; 4] {
    let lp = log_softmax_target(logits, target);
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let min = logits
        .iter()
        .copied()
        .fold(f32::INFINITY, f32::min)
        .max(max - RANGE);
    let lse = log_sum_exp(logits, max);
    let lo = (f64::from(min) - lse) as f32;
    let scale = (max - min) / 65535.0;
    if scale > 0.0 {
        let inv = 1.0 / scale;
        for (q, &v) in q.iter_mut().zip(logits) {
            *q = if v > min {
                ((v - min) * inv).round().min(65535.0) as u16
            } else {
                0
            };
        }
    } else {
        q.fill(0);
    }
    [scale, lo, lp as f32, 0.0]
}

/// `ln Σ exp(v)`, in f64, given the row maximum.
fn log_sum_exp(logits: &[f32], max: f32) -> f64 {
    let sum: f64 = logits.iter().map(|&v| f64::from(v - max).exp()).sum();
    f64::from(max) + sum.ln()
}

/// `ln p(target)` of a row of logits (as [`super::perplexity`] computes it).
fn log_softmax_target(logits: &[f32], target: usize) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&v| f64::from(v - max).exp()).sum();
    f64::from(logits[target] - max) - sum.ln()
}

/// Checks the chunking arguments and returns the number of chunks.
fn n_chunks(session: &Session, tokens: &[u32], n_ctx: usize, max: Option<usize>) -> Result<usize> {
    if n_ctx < 4 || n_ctx > session.n_ctx() {
        return Err(Error::Unsupported(format!(
            "perplexity chunk size {n_ctx} (must be 4..={})",
            session.n_ctx()
        )));
    }
    let n = (tokens.len() / n_ctx).min(max.unwrap_or(usize::MAX));
    if n == 0 {
        return Err(Error::Unsupported(format!(
            "{} tokens: need at least one chunk of {n_ctx}",
            tokens.len()
        )));
    }
    Ok(n)
}

/// Evaluates `tokens` in llama.cpp's perplexity chunks (as [`super::perplexity`]) and writes
/// the base log-probabilities of every scored position to `path` (format above). Returns the
/// base model's perplexity. `progress(chunk)` is called after each chunk.
pub fn write_base(
    session: &mut Session,
    tokens: &[u32],
    n_ctx: usize,
    max_chunks: Option<usize>,
    bos: Option<u32>,
    path: &Path,
    mut progress: impl FnMut(usize),
) -> Result<f64> {
    let n_chunk = n_chunks(session, tokens, n_ctx, max_chunks)?;
    let n_vocab = session.model().hparams.n_vocab;
    let first = n_ctx / 2;
    let io = |e| Error::io(format!("writing {}", path.display()), e);
    let mut out = BufWriter::new(std::fs::File::create(path).map_err(io)?);
    let mut head = MAGIC.to_vec();
    for v in [n_ctx, n_vocab, n_chunk, first] {
        head.extend_from_slice(&(v as u32).to_le_bytes());
    }
    let chunks: Vec<Vec<u32>> = (0..n_chunk)
        .map(|c| {
            let mut chunk = tokens[c * n_ctx..(c + 1) * n_ctx].to_vec();
            if let Some(b) = bos {
                chunk[0] = b;
            }
            chunk
        })
        .collect();
    for t in chunks.iter().flatten() {
        head.extend_from_slice(&t.to_le_bytes());
    }
    out.write_all(&head).map_err(io)?;
    let mut q = vec![0u16; n_vocab];
    let mut row_bytes = Vec::with_capacity(16 + 2 * n_vocab);
    let (mut nll, mut count) = (0f64, 0usize);
    for (c, chunk) in chunks.iter().enumerate() {
        session.reset();
        let logits = session.eval_all(chunk)?;
        for j in first..n_ctx - 1 {
            let row = &logits[j * n_vocab..(j + 1) * n_vocab];
            let head = quantize_row(row, chunk[j + 1] as usize, &mut q);
            nll -= f64::from(head[2]);
            count += 1;
            row_bytes.clear();
            for v in head {
                row_bytes.extend_from_slice(&v.to_le_bytes());
            }
            for v in &q {
                row_bytes.extend_from_slice(&v.to_le_bytes());
            }
            out.write_all(&row_bytes).map_err(io)?;
        }
        progress(c + 1);
    }
    out.flush().map_err(io)?;
    Ok((nll / count as f64).exp())
}

/// An opened base file: its header and tokens (rows are streamed by [`compare`]).
#[derive(Debug)]
pub struct KlBase {
    file: std::io::BufReader<std::fs::File>,
    /// Chunk length.
    pub n_ctx: usize,
    /// Vocabulary size of the base model.
    pub n_vocab: usize,
    /// Chunks stored.
    pub n_chunk: usize,
    /// First scored position of each chunk.
    pub first: usize,
    /// The chunks' tokens, `[n_chunk][n_ctx]`.
    pub tokens: Vec<u32>,
}

impl KlBase {
    /// Opens and validates a base file: its size must be exactly what the header announces.
    pub fn open(path: &Path) -> Result<Self> {
        let bad = |why: String| Error::Unsupported(format!("{}: {why}", path.display()));
        let io = |e| Error::io(format!("reading {}", path.display()), e);
        let f = std::fs::File::open(path).map_err(io)?;
        let len = f.metadata().map_err(io)?.len();
        let mut file = std::io::BufReader::new(f);
        let mut head = [0u8; HEADER];
        if len < HEADER as u64 {
            return Err(bad("not a KL-divergence base file (too short)".into()));
        }
        file.read_exact(&mut head).map_err(io)?;
        if &head[..8] != MAGIC {
            return Err(bad(
                "not a KL-divergence base file (write one with --kl-divergence-base)".into(),
            ));
        }
        let u = |i: usize| u32::from_le_bytes(head[i..i + 4].try_into().unwrap()) as u64;
        let (n_ctx, n_vocab, n_chunk, first) = (u(8), u(12), u(16), u(20));
        if n_ctx < 4 || first != n_ctx / 2 || n_vocab == 0 || n_chunk == 0 {
            return Err(bad(format!(
                "bad header (n_ctx {n_ctx}, n_vocab {n_vocab}, n_chunk {n_chunk}, first {first})"
            )));
        }
        // All in u64 from u32 factors: no overflow below 2^64 for these products.
        let rows = n_chunk * (n_ctx - 1 - first);
        let expected = HEADER as u64 + 4 * n_chunk * n_ctx + rows * (16 + 2 * n_vocab);
        if len != expected {
            return Err(bad(format!(
                "size {len} bytes, the header announces {expected} (truncated or corrupt)"
            )));
        }
        let mut raw = vec![0u8; (4 * n_chunk * n_ctx) as usize];
        file.read_exact(&mut raw).map_err(io)?;
        let tokens = raw
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        Ok(KlBase {
            file,
            n_ctx: n_ctx as usize,
            n_vocab: n_vocab as usize,
            n_chunk: n_chunk as usize,
            first: first as usize,
            tokens,
        })
    }
}

/// Runs `session`'s model over the base file's chunks and compares its distributions with the
/// stored ones. `max_chunks` limits the chunks compared; `progress(chunk, mean_kld)` is called
/// after each chunk.
pub fn compare(
    session: &mut Session,
    base: &mut KlBase,
    max_chunks: Option<usize>,
    mut progress: impl FnMut(usize, f64),
) -> Result<KlStats> {
    let n_vocab = session.model().hparams.n_vocab;
    if n_vocab != base.n_vocab {
        return Err(Error::Unsupported(format!(
            "the base file has a vocabulary of {}, this model {n_vocab}",
            base.n_vocab
        )));
    }
    if let Some(&t) = base.tokens.iter().find(|&&t| t as usize >= n_vocab) {
        return Err(Error::Unsupported(format!(
            "the base file holds token {t}, outside this model's vocabulary"
        )));
    }
    let (n_ctx, first) = (base.n_ctx, base.first);
    let n_chunk = n_chunks(session, &base.tokens, n_ctx, max_chunks)?.min(base.n_chunk);
    let io = |e| Error::io("reading the KL-divergence base file", e);
    let mut raw = vec![0u8; 16 + 2 * n_vocab];
    let mut base_lp = vec![0f64; n_vocab];
    let mut klds = Vec::new();
    let (mut agree, mut nll, mut nll_base) = (0usize, 0f64, 0f64);
    for c in 0..n_chunk {
        let chunk = &base.tokens[c * n_ctx..(c + 1) * n_ctx];
        session.reset();
        let logits = session.eval_all(chunk)?;
        for j in first..n_ctx - 1 {
            base.file.read_exact(&mut raw).map_err(io)?;
            let f = |i: usize| f32::from_le_bytes(raw[4 * i..4 * i + 4].try_into().unwrap());
            let (scale, lo, target_lp) = (f(0), f(1), f(2));
            let mut base_top = (0usize, 0u16);
            for (i, (lp, b)) in base_lp
                .iter_mut()
                .zip(raw[16..].chunks_exact(2))
                .enumerate()
            {
                let q = u16::from_le_bytes([b[0], b[1]]);
                if q > base_top.1 {
                    base_top = (i, q);
                }
                *lp = f64::from(lo) + f64::from(q) * f64::from(scale);
            }
            let row = &logits[j * n_vocab..(j + 1) * n_vocab];
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let lse = log_sum_exp(row, max);
            // Tokens stored as 0 lie at least 16 nats below the row's most likely one (or at
            // its floor): their mass is at most e^-16 of it, and counting them at the floor
            // would bias the sum, so they are left out (unless the whole row is flat).
            let flat = scale == 0.0;
            let mut kld = 0f64;
            for ((&lp, &v), b) in base_lp.iter().zip(row).zip(raw[16..].chunks_exact(2)) {
                if flat || b != [0, 0] {
                    kld += lp.exp() * (lp - (f64::from(v) - lse));
                }
            }
            klds.push(kld.max(0.0));
            let top = row
                .iter()
                .enumerate()
                .fold(
                    (0, f32::NEG_INFINITY),
                    |a, (i, &v)| if v > a.1 { (i, v) } else { a },
                )
                .0;
            agree += usize::from(top == base_top.0);
            nll -= f64::from(row[chunk[j + 1] as usize]) - lse;
            nll_base -= f64::from(target_lp);
        }
        progress(c + 1, klds.iter().sum::<f64>() / klds.len() as f64);
    }
    let count = klds.len();
    let mean = klds.iter().sum::<f64>() / count as f64;
    let var = klds.iter().map(|k| (k - mean) * (k - mean)).sum::<f64>() / count as f64;
    let mean_err = if count > 1 {
        (var / (count - 1) as f64).sqrt()
    } else {
        0.0
    };
    klds.sort_by(f64::total_cmp);
    let pct = |p: f64| klds[((p * (count - 1) as f64).round() as usize).min(count - 1)];
    let (ppl, ppl_base) = ((nll / count as f64).exp(), (nll_base / count as f64).exp());
    Ok(KlStats {
        count,
        mean,
        mean_err,
        median: pct(0.5),
        p99: pct(0.99),
        p999: pct(0.999),
        max: klds[count - 1],
        top1_agree: agree as f64 / count as f64,
        ppl_base,
        ppl,
        ln_ppl_ratio: (nll - nll_base) / count as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stored grid reproduces the log-softmax within half a step for every value in range.
    #[test]
    fn quantized_row_round_trips() {
        let logits: Vec<f32> = (0..1000)
            .map(|i| ((i * 37 % 101) as f32 * 0.31).sin() * 12.0)
            .collect();
        let mut q = vec![0u16; logits.len()];
        let [scale, lo, tlp, _] = quantize_row(&logits, 5, &mut q);
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let lse = log_sum_exp(&logits, max);
        assert!((f64::from(tlp) - (f64::from(logits[5]) - lse)).abs() < 1e-5);
        for (&v, &q) in logits.iter().zip(&q) {
            let exact = f64::from(v) - lse;
            let got = f64::from(lo) + f64::from(q) * f64::from(scale);
            if v >= max - RANGE {
                assert!((got - exact).abs() <= f64::from(scale) * 0.51 + 1e-5, "{v}");
            } else {
                assert_eq!(q, 0);
            }
        }
    }
}
