//! The Llama graph (also Mistral: Llama + GQA + sliding window), readable top to bottom:
//!
//! ```text
//! x = embed(tokens)
//! for each layer:
//!     h = rms_norm(x) · attn_norm
//!     q, k, v = h·Wqᵀ, h·Wkᵀ, h·Wvᵀ ; rope(q, k) ; cache ← k, v
//!     x += attention(q, cache) · Woᵀ
//!     h = rms_norm(x) · ffn_norm
//!     x += (silu(h·Wgateᵀ) ⊙ h·Wupᵀ) · Wdownᵀ
//! logits = (rms_norm(x) · output_norm) · Woutᵀ
//! ```

use orcinus_quant::matmul::SharedMut;
use orcinus_quant::{forward_shared, AlignedF32, MatMulScratch};
use rayon::prelude::*;
use rayon::ThreadPool;

use orcinus_quant::kernels::attn::{transpose_keys, KEY_BLOCK};

use crate::error::{Error, Result};
use crate::model::hparams::Hparams;
use crate::model::kv_cache::KvCache;
use crate::model::layers::{rms_norm, rope_apply, rope_cache, softmax, swiglu};
use crate::model::weights::Weights;

/// Which positions' logits a forward pass returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logits {
    /// Only the last token's (prefill and decoding).
    Last,
    /// Every token's (perplexity, parity checks).
    All,
}

/// Activation buffers for a batch of `t` tokens, reused between calls.
#[derive(Debug, Default)]
pub struct Scratch {
    t: usize,
    /// `(t, n_embd)` residual stream.
    x: AlignedF32,
    /// `(t, n_embd)` normed input of a sub-block.
    h: AlignedF32,
    /// `(t, n_head * head_dim)`
    q: AlignedF32,
    /// `(t, n_head_kv * head_dim)`
    k: AlignedF32,
    /// `(t, n_head_kv * head_dim)`
    v: AlignedF32,
    /// `(t, n_head * head_dim)` attention output.
    att: AlignedF32,
    /// `(t, n_embd)` sub-block output.
    o: AlignedF32,
    /// `(t, n_ff)`
    gate: AlignedF32,
    /// `(t, n_ff)`
    up: AlignedF32,
    /// `(t, rope_dim / 2)` RoPE cosines and sines of the batch's positions.
    cos: Vec<f32>,
    sin: Vec<f32>,
    /// `(rows, n_embd)` final-normed rows whose logits are wanted.
    normed: Vec<f32>,
    /// The matmuls' quantized activations.
    mm: MatMulScratch,
    /// Decoding attention split across threads: per part and head, the part's output, its
    /// softmax maximum and sum ([`attention_split`]).
    parts: Vec<f32>,
}

impl Scratch {
    fn ensure(&mut self, hp: &Hparams, t: usize) {
        if self.t == t {
            return;
        }
        let (e, qd, kvd) = (
            hp.n_embd,
            hp.n_head * hp.head_dim,
            hp.n_head_kv * hp.head_dim,
        );
        self.t = t;
        self.x = AlignedF32::zeroed(t * e);
        self.h = AlignedF32::zeroed(t * e);
        self.q = AlignedF32::zeroed(t * qd);
        self.k = AlignedF32::zeroed(t * kvd);
        self.v = AlignedF32::zeroed(t * kvd);
        self.att = AlignedF32::zeroed(t * qd);
        self.o = AlignedF32::zeroed(t * e);
        self.gate = AlignedF32::zeroed(t * hp.n_ff);
        self.up = AlignedF32::zeroed(t * hp.n_ff);
        self.cos = vec![0.0; t * (hp.rope_dim / 2)];
        self.sin = vec![0.0; t * (hp.rope_dim / 2)];
    }
}

/// Runs `tokens` (at positions `pos0..`) through the model, appending their keys/values to
/// `cache`, and writes logits to `logits`, which must hold `(1, n_vocab)` of them
/// ([`Logits::Last`]) or `(tokens.len(), n_vocab)` ([`Logits::All`]). With the same batch size
/// as the previous call (decoding: one token) nothing is allocated: every buffer is
/// `scratch`'s (the attention's grow with the context, a few times: `Scratch::parts` when the
/// decoding attention splits into more parts, the pool threads' buffers).
///
/// `window`: attend only to the last `window` positions (sliding-window attention).
/// The caller guarantees the cache can hold the batch (see [`KvCache::max_batch`]).
#[allow(clippy::too_many_arguments)]
pub fn forward(
    hp: &Hparams,
    w: &Weights,
    cache: &mut KvCache,
    scratch: &mut Scratch,
    tokens: &[u32],
    pos0: usize,
    window: Option<usize>,
    which: Logits,
    pool: &ThreadPool,
    logits: &mut [f32],
) -> Result<()> {
    let t = tokens.len();
    if t == 0 {
        return Err(Error::Unsupported("evaluating zero tokens".into()));
    }
    let out_rows = match which {
        Logits::Last => 1,
        Logits::All => t,
    };
    if logits.len() != out_rows * hp.n_vocab {
        return Err(Error::ShapeMismatch {
            name: "logits".into(),
            expected: vec![hp.n_vocab as u64, out_rows as u64],
            found: vec![logits.len() as u64],
        });
    }
    let (e, hd) = (hp.n_embd, hp.head_dim);
    let (qd, kvd) = (hp.n_head * hd, hp.n_head_kv * hd);
    scratch.ensure(hp, t);
    let s = scratch;

    for (i, &tok) in tokens.iter().enumerate() {
        w.token_embd
            .dequantize_row(tok as usize, &mut s.x[i * e..(i + 1) * e])?;
    }

    // RoPE angles per token, shared by every layer.
    let half = hp.rope_dim / 2;
    for i in 0..t {
        let (c, sn) = (
            &mut s.cos[i * half..(i + 1) * half],
            &mut s.sin[i * half..(i + 1) * half],
        );
        rope_cache(
            pos0 + i,
            hp.rope_dim,
            hp.rope_freq_base,
            hp.rope_freq_scale,
            c,
            sn,
        );
    }

    for (l, lw) in w.layers.iter().enumerate() {
        // Attention block.
        let x = &s.x;
        per_row(pool, &mut s.h, e, |i, h| {
            rms_norm(&x[i * e..(i + 1) * e], &lw.attn_norm, hp.rms_eps, h)
        });
        forward_shared(
            [&lw.wq, &lw.wk, &lw.wv],
            &s.h,
            t,
            [&mut s.q, &mut s.k, &mut s.v],
            pool,
            &mut s.mm,
        )?;
        let (cos, sin) = (&s.cos, &s.sin);
        let rope = |i: usize, row: &mut [f32]| {
            let (c, sn) = (
                &cos[i * half..(i + 1) * half],
                &sin[i * half..(i + 1) * half],
            );
            for head in row.chunks_exact_mut(hd) {
                rope_apply(head, c, sn);
            }
        };
        per_row(pool, &mut s.q, qd, rope);
        per_row(pool, &mut s.k, kvd, rope);
        for i in 0..t {
            cache.store(
                l,
                pos0 + i,
                &s.k[i * kvd..(i + 1) * kvd],
                &s.v[i * kvd..(i + 1) * kvd],
            );
        }
        attention(
            hp,
            cache,
            l,
            &s.q,
            &mut s.att,
            pos0,
            window,
            pool,
            &mut s.parts,
        );
        lw.wo.forward_with(&s.att, t, &mut s.o, pool, &mut s.mm)?;
        let o = &s.o;
        per_row(pool, &mut s.x, e, |i, x| add(x, &o[i * e..(i + 1) * e]));

        // Feed-forward block.
        let x = &s.x;
        per_row(pool, &mut s.h, e, |i, h| {
            rms_norm(&x[i * e..(i + 1) * e], &lw.ffn_norm, hp.rms_eps, h)
        });
        forward_shared(
            [&lw.w_gate, &lw.w_up],
            &s.h,
            t,
            [&mut s.gate, &mut s.up],
            pool,
            &mut s.mm,
        )?;
        let (up, ff) = (&s.up, hp.n_ff);
        per_row(pool, &mut s.gate, ff, |i, g| {
            swiglu(g, &up[i * ff..(i + 1) * ff])
        });
        lw.w_down
            .forward_with(&s.gate, t, &mut s.o, pool, &mut s.mm)?;
        let o = &s.o;
        per_row(pool, &mut s.x, e, |i, x| add(x, &o[i * e..(i + 1) * e]));
    }

    let rows = match which {
        Logits::Last => t - 1..t,
        Logits::All => 0..t,
    };
    s.normed.resize(rows.len() * e, 0.0);
    for (r, i) in rows.clone().enumerate() {
        rms_norm(
            &s.x[i * e..(i + 1) * e],
            &w.output_norm,
            hp.rms_eps,
            &mut s.normed[r * e..(r + 1) * e],
        );
    }
    w.output
        .forward_with(&s.normed, rows.len(), logits, pool, &mut s.mm)?;
    Ok(())
}

/// Batch rows per task of [`per_row`].
const ROWS_PER_TASK: usize = 16;

/// `f(i, row)` for each row `i` of `a` (rows of `width`): on `pool`, [`ROWS_PER_TASK`] rows per
/// task, when the batch has more rows than that; on this thread otherwise (decoding). The
/// per-token steps between the matmuls (norms, RoPE, residual adds, SwiGLU) had run on this
/// thread alone while the other threads waited: 3.5% of a 512-token prompt's samples.
fn per_row(
    pool: &ThreadPool,
    a: &mut [f32],
    width: usize,
    f: impl Fn(usize, &mut [f32]) + Sync + Send,
) {
    if width == 0 {
        return;
    }
    if a.len() <= ROWS_PER_TASK * width {
        for (i, row) in a.chunks_exact_mut(width).enumerate() {
            f(i, row);
        }
        return;
    }
    pool.install(|| {
        a.par_chunks_mut(ROWS_PER_TASK * width)
            .enumerate()
            .for_each(|(c, rows)| {
                for (r, row) in rows.chunks_exact_mut(width).enumerate() {
                    f(c * ROWS_PER_TASK + r, row);
                }
            })
    });
}

fn add(x: &mut [f32], y: &[f32]) {
    for (a, &b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

/// Query tokens per attention task: each task converts its kv head's keys and values (f16 in
/// the cache) to f32 once for all of its tokens and the query heads that share them.
const ATTENTION_TOKENS_PER_TASK: usize = 64;

/// Causal (and optionally sliding-window) grouped-query attention of the batch's queries over
/// the cache: `att[t, h] = softmax(q[t, h] · K[g(h)]ᵀ / √d) · V[g(h)]` over positions
/// `max(0, pos − window + 1) ..= pos`, where `g(h)` is the kv head that query head `h` shares.
/// One task per kv head and chunk of query tokens: the keys and values its queries attend to
/// are converted from the cache once (not once per query token and head, which made a
/// 512-token prompt spend a third of its time converting f16), the keys into the blocked
/// transposed layout of [`ScoresTFn`](orcinus_quant::kernels::attn::ScoresTFn). A token's
/// heads that share the kv head (3 in SmolLM2, 4 in Mistral) then share every key and value
/// load: SmolLM2's attention kernels went from 16% to 10% of a 512-token prompt on AVX2, and
/// a 512-token prompt after 2048 others from ~300 to ~450 tokens/s. Decoding (one token)
/// reads the f16 cache directly instead.
#[allow(clippy::too_many_arguments)]
fn attention(
    hp: &Hparams,
    cache: &KvCache,
    layer: usize,
    q: &[f32],
    att: &mut [f32],
    pos0: usize,
    window: Option<usize>,
    pool: &ThreadPool,
    parts: &mut Vec<f32>,
) {
    let (hd, n_head, n_kv) = (hp.head_dim, hp.n_head, hp.n_head_kv);
    let group = n_head / n_kv;
    let scale = 1.0 / (hd as f32).sqrt();
    let t = att.len() / (n_head * hd);
    let tc = ATTENTION_TOKENS_PER_TASK;
    let kern = orcinus_quant::kernels::attn::attn_kernels();
    let first = |pos: usize| window.map_or(0, |w| (pos + 1).saturating_sub(w));
    if t == 1 {
        // Decoding: the heads read the f16 cache directly (one part per kv head, or several
        // split across threads), unless a run wraps the sliding-window ring.
        let (lo, hi) = (first(pos0), pos0);
        if (0..n_kv).all(|g| cache.f16_rows(layer, lo, hi, g).is_some()) {
            let n = split_parts(n_kv, pool.current_num_threads(), hi + 1 - lo);
            return attention_split(hp, cache, layer, q, att, lo..hi + 1, n, pool, parts);
        }
    }
    let rows = SharedMut::new(att);
    pool.install(|| {
        (0..n_kv * t.div_ceil(tc)).into_par_iter().for_each(|u| {
            ATTENTION_BUFFERS.with_borrow_mut(|(keys, kt, vals, scores)| {
                let (g, c) = (u % n_kv, u / n_kv);
                let (i0, i1) = (c * tc, ((c + 1) * tc).min(t));
                // Positions the chunk's queries attend to: from the first one's window start
                // to the last one's position (later queries' windows start no earlier).
                let (lo0, hi) = (first(pos0 + i0), pos0 + i1 - 1);
                let len = hi + 1 - lo0;
                keys.resize(len * hd, 0.0);
                vals.resize(len * hd, 0.0);
                for (r, p) in (lo0..=hi).enumerate() {
                    cache.key(layer, p, g, &mut keys[r * hd..(r + 1) * hd]);
                    cache.value(layer, p, g, &mut vals[r * hd..(r + 1) * hd]);
                }
                kt.resize(len.div_ceil(KEY_BLOCK) * KEY_BLOCK * hd, 0.0);
                transpose_keys(keys, hd, kt);
                for i in i0..i1 {
                    let pos = pos0 + i;
                    // This token's keys (`span`, relative to `lo0`) and the key blocks that
                    // hold them; its `group` heads are consecutive rows of `q` and `att`.
                    let span = first(pos) - lo0..pos + 1 - lo0;
                    let (b0, b1) = (span.start / KEY_BLOCK, span.end.div_ceil(KEY_BLOCK));
                    let s = (b1 - b0) * KEY_BLOCK;
                    let off = span.start - b0 * KEY_BLOCK;
                    let idx = i * n_head + g * group;
                    let qs = &q[idx * hd..(idx + group) * hd];
                    scores.resize(group * s, 0.0);
                    let blocks = &kt[b0 * KEY_BLOCK * hd..b1 * KEY_BLOCK * hd];
                    (kern.scores_t)(qs, group, blocks, scale, scores);
                    for sc in scores.chunks_exact_mut(s) {
                        softmax(&mut sc[off..off + span.len()]);
                    }
                    // SAFETY: rows `idx..idx + group` of `att` (`hd` floats each, inside it as
                    // `i < t`) belong to this task alone: their kv head is `g` and their
                    // chunk `i / tc`.
                    let out = unsafe { rows.part(idx * hd..(idx + group) * hd) };
                    let v = &vals[span.start * hd..span.end * hd];
                    (kern.weighted_sum_many)(&scores[off..], s, group, v, out);
                }
            })
        });
    });
}

/// Keys (rows), keys transposed in blocks for [`ScoresTFn`](orcinus_quant::kernels::attn::ScoresTFn),
/// values, scores.
type AttentionBuffers = (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>);

/// Positions per part below which decoding attention does not split a kv head's positions.
const SPLIT_MIN_POSITIONS: usize = 128;

/// Into how many parts [`attention`] splits each kv head's `len` positions for one query
/// token: enough for two tasks per thread where the kv heads are fewer (SmolLM2's three kv
/// heads on two threads left one thread idle for a third of each layer's attention), each
/// part at least [`SPLIT_MIN_POSITIONS`] long; 1 for no split.
fn split_parts(n_kv: usize, threads: usize, len: usize) -> usize {
    if n_kv == 0 || threads < 2 || n_kv >= 2 * threads {
        return 1;
    }
    (2 * threads)
        .div_ceil(n_kv)
        .min(len / SPLIT_MIN_POSITIONS)
        .max(1)
}

/// [`attention`] for one query token whose kv heads' positions `span` are each one f16 run
/// of the cache, split into `n` parts (1: not split; the merge then copies each head's
/// output exactly): one task per kv head and part computes the part's
/// softmax and weighted sum for the heads that share the kv head, and the parts merge as
/// `out = Σ_p c_p·o_p / Σ_p c_p`, `c_p = s_p·e^(m_p − m)` (`m_p`, `s_p`: the part's softmax
/// maximum and sum, `m` the largest `m_p`). Within float rounding of the unsplit softmax.
#[allow(clippy::too_many_arguments)]
fn attention_split(
    hp: &Hparams,
    cache: &KvCache,
    layer: usize,
    q: &[f32],
    att: &mut [f32],
    span: std::ops::Range<usize>,
    n: usize,
    pool: &ThreadPool,
    parts: &mut Vec<f32>,
) {
    let (hd, n_head, n_kv) = (hp.head_dim, hp.n_head, hp.n_head_kv);
    let group = n_head / n_kv;
    let scale = 1.0 / (hd as f32).sqrt();
    let kern = orcinus_quant::kernels::attn::attn_kernels();
    // Per part and head: the output (`[n][n_head][hd]`, so a kv head's query heads are
    // consecutive), then per part and head the softmax's maximum and sum.
    let stats = n * n_head * hd;
    parts.resize(stats + 2 * n * n_head, 0.0);
    let shared = SharedMut::new(parts);
    let len = span.len();
    pool.install(|| {
        (0..n_kv * n).into_par_iter().for_each(|u| {
            ATTENTION_BUFFERS.with_borrow_mut(|(_, _, _, scores)| {
                let (g, p) = (u % n_kv, u / n_kv);
                let (k16, v16) = cache
                    .f16_rows(layer, span.start, span.end - 1, g)
                    .expect("checked by the caller: one run per kv head");
                let (a, b) = (p * len / n, (p + 1) * len / n);
                let (k16, v16) = (&k16[a * hd..b * hd], &v16[a * hd..b * hd]);
                let h0 = g * group;
                scores.resize(group * (b - a), 0.0);
                let qs = &q[h0 * hd..(h0 + group) * hd];
                (kern.scores_many_f16)(qs, group, k16, scale, scores);
                let i = p * n_head + h0;
                // SAFETY: the outputs and statistics of part `p` for heads `h0..h0 + group`
                // belong to this task alone (their kv head is `g`).
                let st = unsafe { shared.part(stats + 2 * i..stats + 2 * (i + group)) };
                for (sc, st) in scores.chunks_exact_mut(b - a).zip(st.chunks_exact_mut(2)) {
                    let (m, sum) = softmax(sc);
                    st[0] = m;
                    st[1] = sum as f32;
                }
                // SAFETY: as above.
                let o = unsafe { shared.part(i * hd..(i + group) * hd) };
                (kern.weighted_sum_many_f16)(scores, b - a, group, v16, o);
            })
        })
    });
    let (outs, stats) = parts.split_at(stats);
    for (h, o) in att.chunks_exact_mut(hd).enumerate() {
        // Part `p` of head `h`: its output and its (maximum, sum).
        let part = |p: usize| {
            let i = p * n_head + h;
            (&outs[i * hd..(i + 1) * hd], &stats[2 * i..2 * i + 2])
        };
        let m = (0..n)
            .map(|p| part(p).1[0])
            .fold(f32::NEG_INFINITY, f32::max);
        let c = |st: &[f32]| f64::from(st[1]) * f64::from(st[0] - m).exp();
        let z: f64 = (0..n).map(|p| c(part(p).1)).sum();
        o.fill(0.0);
        for p in 0..n {
            let (v, st) = part(p);
            let w = (c(st) / z) as f32;
            for (o, &v) in o.iter_mut().zip(v) {
                *o += w * v;
            }
        }
    }
}

thread_local! {
    /// Each pool thread's attention buffers (keys converted from the cache, the same keys
    /// transposed in blocks, values, scores), kept between calls so that decoding allocates
    /// nothing once they have grown to the longest context seen.
    static ATTENTION_BUFFERS: std::cell::RefCell<AttentionBuffers> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new(), Vec::new(), Vec::new())) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_attention_splits_only_where_threads_would_wait() {
        // SmolLM2 (3 kv heads) on two threads: two parts once each is long enough.
        assert_eq!(split_parts(3, 2, 2048), 2);
        assert_eq!(split_parts(3, 2, 2 * SPLIT_MIN_POSITIONS - 1), 1);
        // Mistral (8 kv heads): enough tasks already; one thread: nothing to balance.
        assert_eq!(split_parts(8, 2, 4096), 1);
        assert_eq!(split_parts(1, 1, 4096), 1);
        assert_eq!(split_parts(1, 4, 4096), 8);
        assert_eq!(split_parts(0, 2, 4096), 1);
        // tests/model.rs `split_decoding_attention_agrees_with_batched_prefill` decodes
        // positions 260.. of the tiny model (two kv heads) on two threads: split.
        assert!(split_parts(2, 2, 261) > 1);
    }
}
