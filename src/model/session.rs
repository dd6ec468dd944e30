//! A session: one conversation's KV cache and position over a shared [`Model`].

use std::sync::Arc;

use rayon::ThreadPool;

use super::arch::llama::{self, Logits, Scratch};
use super::kv_cache::{KvCache, KvType};
use super::Model;
use crate::error::{Error, Result};

/// Options for [`Session::new`].
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// Context length in positions; 0 = 4096 capped by the model's training context.
    pub n_ctx: usize,
    /// KV cache element type.
    pub kv_type: KvType,
    /// Worker threads; 0 = one per available core.
    pub threads: usize,
    /// Prompt tokens evaluated per forward pass.
    pub batch: usize,
    /// With a sliding window: keep only `window + batch` positions (a rolling buffer). Turn
    /// off to keep every position (same results, more memory; used to test the rolling buffer).
    pub rolling_kv: bool,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            n_ctx: 0,
            kv_type: KvType::F16,
            threads: 0,
            batch: 512,
            rolling_kv: true,
        }
    }
}

/// One sequence being evaluated: owns its KV cache, scratch buffers and thread pool.
pub struct Session {
    model: Arc<Model>,
    cache: KvCache,
    scratch: Scratch,
    pool: Arc<ThreadPool>,
    n_ctx: usize,
    batch: usize,
    /// The tokens evaluated so far (`tokens.len()` positions are in the cache).
    tokens: Vec<u32>,
    cancel: crate::generate::CancelHandle,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("n_ctx", &self.n_ctx)
            .field("n_past", &self.tokens.len())
            .field("kv_bytes", &self.cache.bytes())
            .finish()
    }
}

impl Session {
    /// A new, empty session over `model`.
    pub fn new(model: Arc<Model>, opts: &SessionOptions) -> Result<Self> {
        let hp = &model.hparams;
        let n_ctx = if opts.n_ctx == 0 {
            4096.min(hp.n_ctx_train.max(1))
        } else {
            opts.n_ctx
        };
        let threads = if opts.threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            opts.threads
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("orcinus-{i}"))
            .build()
            .map_err(|e| Error::Unsupported(format!("cannot start {threads} threads: {e}")))?;
        let batch = opts.batch.max(1);
        let window = if opts.rolling_kv {
            hp.sliding_window
        } else {
            None
        };
        let cache = KvCache::new(
            opts.kv_type,
            hp.n_layer,
            hp.n_head_kv,
            hp.head_dim,
            n_ctx,
            window,
            batch,
        )?;
        Ok(Session {
            model,
            cache,
            scratch: Scratch::default(),
            pool: Arc::new(pool),
            n_ctx,
            batch,
            // The whole context's ids (4 bytes each): no reallocation while decoding.
            tokens: Vec::with_capacity(n_ctx.min(1 << 20)),
            cancel: Default::default(),
        })
    }

    /// The model.
    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// Positions evaluated so far.
    pub fn n_past(&self) -> usize {
        self.tokens.len()
    }

    /// The tokens evaluated so far.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// The handle that cancels this session's generations.
    pub fn cancel_handle(&self) -> crate::generate::CancelHandle {
        self.cancel.clone()
    }

    /// Context length.
    pub fn n_ctx(&self) -> usize {
        self.n_ctx
    }

    /// Bytes held by the KV cache.
    pub fn kv_bytes(&self) -> usize {
        self.cache.bytes()
    }

    /// Forgets everything evaluated (the cache is reused).
    pub fn reset(&mut self) {
        self.tokens.clear();
    }

    /// Rewinds to `n` positions (e.g. to drop a cancelled answer); `n` must not exceed `n_past`.
    pub fn truncate(&mut self, n: usize) {
        self.tokens.truncate(n);
    }

    /// Evaluates `tokens` reusing the longest prefix already in the cache; returns the last
    /// token's logits and how many tokens were reused.
    pub fn prefill_reusing(&mut self, tokens: &[u32]) -> Result<(Vec<f32>, usize)> {
        let mut common = self
            .tokens
            .iter()
            .zip(tokens)
            .take_while(|(a, b)| a == b)
            .count();
        if common == tokens.len() {
            // Everything is cached, but the last token's logits are needed again.
            common = common.saturating_sub(1);
        }
        self.truncate(common);
        Ok((self.prefill(&tokens[common..])?, common))
    }

    fn eval(&mut self, tokens: &[u32], which: Logits) -> Result<Vec<f32>> {
        let mut out = Vec::new();
        self.eval_into(tokens, which, &mut out)?;
        Ok(out)
    }

    /// [`Session::eval`] into `out` (resized), each batch writing its rows in place (only the
    /// last token's logits wanted: each batch overwrites the one row): decoding into the same
    /// vector allocates nothing once the session's buffers have grown.
    fn eval_into(&mut self, tokens: &[u32], which: Logits, out: &mut Vec<f32>) -> Result<()> {
        if tokens.is_empty() {
            return Err(Error::Unsupported("evaluating zero tokens".into()));
        }
        let needed = self.tokens.len() + tokens.len();
        if needed > self.n_ctx {
            return Err(Error::ContextFull {
                needed,
                n_ctx: self.n_ctx,
            });
        }
        let n_vocab = self.model.hparams.n_vocab;
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= n_vocab) {
            return Err(Error::Unsupported(format!(
                "token id {bad} is outside the vocabulary ({n_vocab})"
            )));
        }
        let step = self.batch.min(self.cache.max_batch());
        out.clear();
        out.resize(
            match which {
                Logits::Last => n_vocab,
                Logits::All => tokens.len() * n_vocab,
            },
            0.0,
        );
        for (c, chunk) in tokens.chunks(step).enumerate() {
            // Each batch writes its own rows of `out` (all rows), or the one row (last).
            let logits = match which {
                Logits::Last => &mut out[..],
                Logits::All => {
                    let start = c * step * n_vocab;
                    &mut out[start..start + chunk.len() * n_vocab]
                }
            };
            // The whole pass on the pool: its matmuls and attention then fork and join among
            // the pool's threads, instead of this thread handing each of them (~8 per layer)
            // to the pool and sleeping until it is done.
            let pool = &self.pool;
            pool.install(|| {
                llama::forward(
                    &self.model.hparams,
                    &self.model.weights,
                    &mut self.cache,
                    &mut self.scratch,
                    chunk,
                    self.tokens.len(),
                    self.model.hparams.sliding_window,
                    which,
                    pool,
                    logits,
                )
            })?;
            self.tokens.extend_from_slice(chunk);
        }
        Ok(())
    }

    /// Evaluates a prompt (in batches) and returns the logits of its last token (`n_vocab`).
    pub fn prefill(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        self.eval(tokens, Logits::Last)
    }

    /// Evaluates one token and returns its logits (`n_vocab`).
    pub fn decode_step(&mut self, token: u32) -> Result<Vec<f32>> {
        self.eval(&[token], Logits::Last)
    }

    /// [`Session::decode_step`] into `logits` (resized to `n_vocab`): a decoding loop that
    /// passes the same vector every step allocates nothing after the first step.
    pub fn decode_step_into(&mut self, token: u32, logits: &mut Vec<f32>) -> Result<()> {
        self.eval_into(&[token], Logits::Last, logits)
    }

    /// Evaluates `tokens` and returns the logits at every position (`tokens.len() × n_vocab`).
    pub fn eval_all(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        self.eval(tokens, Logits::All)
    }
}
