//! Token sampling: pure, deterministic steps over logits and a [`Sampler`] that chains them.
//!
//! The chain is llama.cpp's default order:
//! penalties → top-k → top-p → min-p → temperature → softmax → draw
//! ([`apply_penalties`], [`top_k`], [`top_p`], [`min_p`], [`temperature`], [`softmax`],
//! [`draw`]). Temperature 0 is greedy decoding: penalties, then [`argmax`].
//!
//! Randomness comes only from a ChaCha8 generator seeded with [`SamplingParams::seed`], so
//! the same seed, logits and accepted tokens give the same tokens on every machine.
//!
//! ```
//! use orcinus::sampling::{Sampler, SamplingParams};
//!
//! let mut s = Sampler::new(SamplingParams::greedy());
//! let mut logits = vec![0.1, 2.0, -1.0];
//! let id = s.sample(&mut logits);
//! assert_eq!(id, 1);
//! s.accept(id);
//! ```
//!
//! Non-finite logits never panic: NaN counts as −∞, a +∞ logit makes its token certain
//! (several +∞ share the mass), and if every logit is −∞ or NaN, greedy returns token 0 and
//! sampling draws uniformly among the candidates left.

mod steps;

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;

pub use steps::{
    apply_penalties, argmax, draw, min_p, softmax, temperature, top_k, top_p, Candidate, Candidates,
};

/// How to pick the next token. Each filter has a value that turns it off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplingParams {
    /// Softmax temperature; `0` (or less) is greedy decoding.
    pub temperature: f32,
    /// Keep the `top_k` most likely tokens; `0` is off.
    pub top_k: usize,
    /// Keep the smallest set of most likely tokens whose mass is at least `top_p`; `1` is off.
    pub top_p: f32,
    /// Drop tokens less likely than `min_p` times the most likely one; `0` is off.
    pub min_p: f32,
    /// Divide positive (multiply non-positive) logits of recent tokens by this; `1` is off.
    pub repeat_penalty: f32,
    /// Subtract this from the logit of each token that occurs in the window; `0` is off.
    pub presence_penalty: f32,
    /// Subtract this times its count in the window from each token's logit; `0` is off.
    pub frequency_penalty: f32,
    /// How many of the last accepted tokens the penalties look at; `0` turns them off.
    pub penalty_last_n: usize,
    /// Seed of the ChaCha8 generator.
    pub seed: u64,
}

impl SamplingParams {
    /// The seed [`Default`] uses. llama.cpp's default seed means "random"; Orcinus is
    /// reproducible unless the caller picks a seed (e.g. from the clock).
    pub const DEFAULT_SEED: u64 = 0;

    /// Greedy decoding: always the most likely token (lowest id on ties), no penalties.
    pub fn greedy() -> Self {
        Self {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            repeat_penalty: 1.0,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            penalty_last_n: 0,
            seed: Self::DEFAULT_SEED,
        }
    }

    /// Whether any penalty is on.
    fn penalties_on(&self) -> bool {
        self.penalty_last_n > 0
            && (self.repeat_penalty != 1.0
                || self.presence_penalty != 0.0
                || self.frequency_penalty != 0.0)
    }
}

impl Default for SamplingParams {
    /// llama.cpp's defaults (`common_params_sampling`): temperature 0.8, top-k 40,
    /// top-p 0.95, min-p 0.05, no repeat/presence/frequency penalty, a 64-token penalty
    /// window, and seed [`SamplingParams::DEFAULT_SEED`].
    fn default() -> Self {
        Self {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.0,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            penalty_last_n: 64,
            seed: Self::DEFAULT_SEED,
        }
    }
}

/// A seeded sampler: the parameters, the random generator and the penalty window.
///
/// Buffers are sized on the first [`Sampler::sample`] call and reused, so later calls do not
/// allocate.
#[derive(Debug, Clone)]
pub struct Sampler {
    params: SamplingParams,
    rng: ChaCha8Rng,
    /// Last `penalty_last_n` accepted tokens, a ring buffer (order does not matter).
    recent: Vec<u32>,
    /// Where the next accepted token goes once `recent` is full.
    next: usize,
    /// Candidates buffer, `vocabulary size` capacity after the first call.
    candidates: Candidates,
    /// Sort space for the penalty counts, `penalty_last_n` capacity.
    scratch: Vec<u32>,
}

impl Sampler {
    /// A sampler with `params`, its generator seeded with `params.seed`.
    pub fn new(params: SamplingParams) -> Self {
        Self {
            params,
            rng: ChaCha8Rng::seed_from_u64(params.seed),
            recent: Vec::with_capacity(params.penalty_last_n),
            next: 0,
            candidates: Candidates::new(),
            scratch: Vec::with_capacity(params.penalty_last_n),
        }
    }

    /// The parameters.
    pub fn params(&self) -> &SamplingParams {
        &self.params
    }

    /// Forgets the accepted tokens and reseeds the generator: the sampler behaves as new.
    pub fn reset(&mut self) {
        self.recent.clear();
        self.next = 0;
        self.rng = ChaCha8Rng::seed_from_u64(self.params.seed);
    }

    /// Picks the next token from `logits` (one per vocabulary entry). The penalties are
    /// applied to `logits` in place. Call [`Sampler::accept`] with the token that is
    /// actually used next (usually the one returned).
    ///
    /// # Panics
    /// If `logits` is empty.
    pub fn sample(&mut self, logits: &mut [f32]) -> u32 {
        assert!(!logits.is_empty(), "sample from empty logits");
        let p = &self.params;
        if p.penalties_on() {
            apply_penalties(
                logits,
                &self.recent,
                p.repeat_penalty,
                p.frequency_penalty,
                p.presence_penalty,
                &mut self.scratch,
            );
        }
        if p.temperature.is_nan() || p.temperature <= 0.0 {
            return argmax(logits);
        }
        let c = &mut self.candidates;
        c.fill(logits);
        top_k(c, p.top_k);
        top_p(c, p.top_p);
        min_p(c, p.min_p);
        temperature(c, p.temperature);
        softmax(c);
        draw(c, &mut self.rng)
    }

    /// Records `id` as the latest token, for the penalties.
    pub fn accept(&mut self, id: u32) {
        let n = self.params.penalty_last_n;
        if n == 0 {
            return;
        }
        if self.recent.len() < n {
            self.recent.push(id);
        } else {
            self.recent[self.next] = id;
            self.next = (self.next + 1) % n;
        }
    }
}

#[cfg(test)]
mod tests;
