//! The sampling steps, each a pure function over a logits slice or a [`Candidates`] buffer.
//!
//! They follow llama.cpp's samplers (`src/llama-sampling.cpp`): `penalties`, `top_k`,
//! `top_p`, `min_p`, `temp`, `softmax` and `dist`, with two deliberate differences: ties
//! are broken by the lower token id (llama.cpp's partial sort leaves them unspecified), and
//! non-finite logits have a defined meaning (see [`Candidates::fill`] and [`softmax`]).

use rand_chacha::rand_core::RngCore;

/// One vocabulary entry under consideration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// Token id (index into the logits).
    pub id: u32,
    /// Its logit after the steps applied so far.
    pub logit: f32,
    /// Its probability, valid after [`softmax`] (or [`top_p`], which runs it).
    pub p: f32,
}

/// The tokens still in the running and their scores (llama.cpp's `llama_token_data_array`).
///
/// Steps only ever shrink or reorder it, so after the first [`Candidates::fill`] no step
/// allocates.
#[derive(Debug, Clone, Default)]
pub struct Candidates {
    /// The candidates, `len <= vocabulary size`.
    data: Vec<Candidate>,
    /// Whether `data` is in [`Candidates::sort`] order.
    sorted: bool,
}

/// Descending logit, then ascending id: the order every step uses, so ties go to the lower id.
fn by_rank(a: &Candidate, b: &Candidate) -> std::cmp::Ordering {
    b.logit.total_cmp(&a.logit).then(a.id.cmp(&b.id))
}

impl Candidates {
    /// An empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// A buffer holding every token of `logits` (see [`Candidates::fill`]).
    pub fn from_logits(logits: &[f32]) -> Self {
        let mut c = Self::new();
        c.fill(logits);
        c
    }

    /// Refills the buffer with every token of `logits`, in id order, reusing its allocation.
    /// A NaN logit becomes −∞ (the token can never be drawn unless every token is −∞).
    ///
    /// # Panics
    /// If `logits` has more than `u32::MAX` entries.
    pub fn fill(&mut self, logits: &[f32]) {
        assert!(u32::try_from(logits.len()).is_ok(), "vocabulary too large");
        self.data.clear();
        self.data
            .extend(logits.iter().enumerate().map(|(i, &l)| Candidate {
                id: i as u32,
                logit: if l.is_nan() { f32::NEG_INFINITY } else { l },
                p: 0.0,
            }));
        self.sorted = false;
    }

    /// The candidates.
    pub fn as_slice(&self) -> &[Candidate] {
        &self.data
    }

    /// Number of candidates.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether no candidate is left (only before the first fill: steps keep at least one).
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Whether the candidates are sorted by descending logit (ties: ascending id).
    pub fn is_sorted(&self) -> bool {
        self.sorted
    }

    /// Sorts by descending logit, ties by ascending id.
    pub fn sort(&mut self) {
        if !self.sorted {
            self.data.sort_unstable_by(by_rank);
            self.sorted = true;
        }
    }

    /// The candidates' ids, in the buffer's order (handy in tests).
    pub fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.data.iter().map(|c| c.id)
    }
}

/// Index of the largest logit; the lowest index on ties. NaN counts as −∞; if no logit is
/// larger than −∞ the answer is 0. This is greedy decoding.
///
/// # Panics
/// If `logits` is empty.
pub fn argmax(logits: &[f32]) -> u32 {
    assert!(!logits.is_empty(), "argmax of an empty logits slice");
    let mut best = 0usize;
    let mut best_v = f32::NEG_INFINITY;
    for (i, &v) in logits.iter().enumerate() {
        if v > best_v {
            best = i;
            best_v = v;
        }
    }
    best as u32
}

/// Repetition penalties over the tokens in `recent` (the last `penalty_last_n` accepted
/// tokens, in any order), as llama.cpp's `penalties` sampler: for each distinct token with
/// `count` occurrences, a logit `<= 0` is multiplied by `repeat` and a positive one divided
/// by it, then `count * frequency + presence` is subtracted. Ids outside `logits` are
/// ignored. `scratch` is working space, reused across calls.
///
/// `repeat = 1`, `frequency = 0`, `presence = 0` change nothing; `repeat` should be > 0.
pub fn apply_penalties(
    logits: &mut [f32],
    recent: &[u32],
    repeat: f32,
    frequency: f32,
    presence: f32,
    scratch: &mut Vec<u32>,
) {
    if recent.is_empty() || (repeat == 1.0 && frequency == 0.0 && presence == 0.0) {
        return;
    }
    scratch.clear();
    scratch.extend_from_slice(recent);
    scratch.sort_unstable();
    for run in scratch.chunk_by(|a, b| a == b) {
        let Some(l) = logits.get_mut(run[0] as usize) else {
            continue;
        };
        let count = run.len() as f32;
        if *l <= 0.0 {
            *l *= repeat;
        } else {
            *l /= repeat;
        }
        *l -= count * frequency + presence;
    }
}

/// Keeps the `k` highest-logit candidates (ties: lower id), sorted. `k = 0` is off.
pub fn top_k(c: &mut Candidates, k: usize) {
    if k == 0 {
        return;
    }
    if k < c.data.len() {
        c.data.select_nth_unstable_by(k - 1, by_rank);
        c.data.truncate(k);
        c.sorted = false;
    }
    c.sort();
}

/// Nucleus sampling: sorts, runs [`softmax`], and keeps the smallest prefix whose
/// probability mass is `>= p` (at least one candidate). `p >= 1` (or NaN) is off.
pub fn top_p(c: &mut Candidates, p: f32) {
    if p.is_nan() || p >= 1.0 || c.data.is_empty() {
        return;
    }
    c.sort();
    softmax(c);
    let mut cum = 0.0f32;
    let mut keep = c.data.len();
    for (i, cand) in c.data.iter().enumerate() {
        cum += cand.p;
        if cum >= p {
            keep = i + 1;
            break;
        }
    }
    c.data.truncate(keep);
}

/// Drops candidates whose probability is below `p` times the largest one, i.e. whose
/// logit is below `max_logit + ln(p)` (llama.cpp's `min_p`). Keeps order and at least the
/// best candidate. `p <= 0` (or NaN) is off.
pub fn min_p(c: &mut Candidates, p: f32) {
    if p.is_nan() || p <= 0.0 || c.data.is_empty() {
        return;
    }
    let max = c
        .data
        .iter()
        .map(|x| x.logit)
        .fold(f32::NEG_INFINITY, f32::max);
    let threshold = max + p.ln();
    if threshold > max {
        // p > 1: nothing passes; keep the best candidates (those at the maximum).
        c.data.retain(|x| x.logit >= max);
    } else {
        c.data.retain(|x| x.logit >= threshold);
    }
}

/// Divides every logit by `t`. `t <= 0` (or NaN) keeps only the best candidate, as greedy
/// decoding would pick it.
pub fn temperature(c: &mut Candidates, t: f32) {
    if t.is_nan() || t <= 0.0 {
        let Some(best) = c.data.iter().copied().min_by(by_rank) else {
            return;
        };
        c.data.clear();
        c.data.push(best);
        c.sorted = true;
        return;
    }
    if t != 1.0 {
        for x in &mut c.data {
            x.logit /= t;
        }
    }
}

/// Sets each candidate's `p` to the softmax of the logits (order unchanged).
///
/// Non-finite logits: if any logit is +∞, the +∞ candidates share all the mass equally; if
/// every logit is −∞, all candidates are equally likely.
pub fn softmax(c: &mut Candidates) {
    let max = c
        .data
        .iter()
        .map(|x| x.logit)
        .fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f64;
    for x in &mut c.data {
        x.p = if max == f32::INFINITY {
            if x.logit == f32::INFINITY {
                1.0
            } else {
                0.0
            }
        } else if max == f32::NEG_INFINITY {
            1.0
        } else {
            (x.logit - max).exp()
        };
        sum += x.p as f64;
    }
    // sum >= 1: the maximum contributes exp(0) = 1.
    let inv = (1.0 / sum) as f32;
    for x in &mut c.data {
        x.p *= inv;
    }
}

/// A uniform `f64` in `[0, 1)` from the top 53 bits of one `u64`.
fn uniform(rng: &mut impl RngCore) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Draws a token with probability proportional to `p` (run [`softmax`] first), consuming
/// one `u64` of `rng`. If the probabilities do not sum to a positive finite number, the
/// first candidate is returned.
///
/// # Panics
/// If `c` is empty.
pub fn draw(c: &Candidates, rng: &mut impl RngCore) -> u32 {
    assert!(!c.data.is_empty(), "draw from no candidates");
    let total: f64 = c.data.iter().map(|x| x.p as f64).sum();
    let u = uniform(rng);
    if total.is_nan() || total <= 0.0 || total.is_infinite() {
        return c.data[0].id;
    }
    let target = u * total;
    let mut cum = 0.0f64;
    let mut last = c.data[0].id;
    for x in &c.data {
        if x.p > 0.0 {
            cum += x.p as f64;
            last = x.id;
            if target < cum {
                return x.id;
            }
        }
    }
    // Rounding left `target` at the very end: the last candidate with mass.
    last
}
