//! Perplexity, computed as llama.cpp's `llama-perplexity` does.

use crate::error::{Error, Result};
use crate::model::Session;

/// Result of [`perplexity`].
#[derive(Debug, Clone, PartialEq)]
pub struct Perplexity {
    /// PPL after each chunk.
    pub running: Vec<f64>,
    /// Final PPL.
    pub ppl: f64,
    /// Its standard error (llama.cpp's estimate).
    pub stderr: f64,
    /// Mean negative log-likelihood per scored token.
    pub nll_mean: f64,
    /// Tokens scored.
    pub count: usize,
    /// Chunks evaluated.
    pub n_chunk: usize,
}

/// Perplexity of `tokens` by llama.cpp's method: non-overlapping chunks of `n_ctx` tokens,
/// each evaluated from an empty cache with its first token replaced by `bos` (when given); the
/// logits at positions `n_ctx/2 .. n_ctx-1` are scored against the next token.
/// `progress(chunk, running_ppl)` is called after each chunk.
pub fn perplexity(
    session: &mut Session,
    tokens: &[u32],
    n_ctx: usize,
    max_chunks: Option<usize>,
    bos: Option<u32>,
    mut progress: impl FnMut(usize, f64),
) -> Result<Perplexity> {
    if n_ctx < 4 || n_ctx > session.n_ctx() {
        return Err(Error::Unsupported(format!(
            "perplexity chunk size {n_ctx} (must be 4..={})",
            session.n_ctx()
        )));
    }
    let mut n_chunk = tokens.len() / n_ctx;
    if let Some(c) = max_chunks {
        n_chunk = n_chunk.min(c);
    }
    if n_chunk == 0 {
        return Err(Error::Unsupported(format!(
            "{} tokens: need at least one chunk of {n_ctx}",
            tokens.len()
        )));
    }
    let n_vocab = session.model().hparams.n_vocab;
    let first = n_ctx / 2;
    let (mut nll, mut nll2, mut count) = (0f64, 0f64, 0usize);
    let mut running = Vec::with_capacity(n_chunk);
    for c in 0..n_chunk {
        let mut chunk = tokens[c * n_ctx..(c + 1) * n_ctx].to_vec();
        if let Some(b) = bos {
            chunk[0] = b;
        }
        session.reset();
        let logits = session.eval_all(&chunk)?;
        for j in first..n_ctx - 1 {
            let row = &logits[j * n_vocab..(j + 1) * n_vocab];
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let sum: f64 = row.iter().map(|&v| f64::from(v - max).exp()).sum();
            let logp = f64::from(row[chunk[j + 1] as usize] - max) - sum.ln();
            nll -= logp;
            nll2 += logp * logp;
            count += 1;
        }
        let ppl = (nll / count as f64).exp();
        running.push(ppl);
        progress(c + 1, ppl);
    }
    let mean = nll / count as f64;
    let var = nll2 / count as f64 - mean * mean;
    let ppl = mean.exp();
    let stderr = if var > 0.0 && count > 1 {
        (var / (count - 1) as f64).sqrt() * ppl
    } else {
        0.0
    };
    Ok(Perplexity {
        running,
        ppl,
        stderr,
        nll_mean: mean,
        count,
        n_chunk,
    })
}
