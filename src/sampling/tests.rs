//! Unit tests of each sampling step.

use super::*;

/// Logits whose softmax is `probs`.
fn logits_of(probs: &[f32]) -> Vec<f32> {
    probs.iter().map(|p| p.ln()).collect()
}

fn ids(c: &Candidates) -> Vec<u32> {
    c.ids().collect()
}

#[test]
fn argmax_ties_nan_inf() {
    assert_eq!(argmax(&[0.0, 3.0, 1.0]), 1);
    assert_eq!(argmax(&[1.0, 3.0, 3.0, 2.0]), 1, "lowest index on ties");
    assert_eq!(argmax(&[f32::NAN, -1.0, f32::NAN]), 1, "NaN is -inf");
    assert_eq!(argmax(&[f32::NAN, f32::NAN]), 0);
    assert_eq!(argmax(&[f32::NEG_INFINITY; 3]), 0);
    assert_eq!(argmax(&[5.0, f32::INFINITY, f32::INFINITY]), 1);
}

#[test]
fn penalties_change_the_right_logits() {
    let mut scratch = Vec::new();
    // Token 0 once, token 1 twice, token 3 and 2 never; 99 is outside the vocabulary.
    let recent = [1, 0, 1, 99];
    let mut l = vec![2.0, -2.0, 1.0, 0.0];
    apply_penalties(&mut l, &recent, 2.0, 0.0, 0.0, &mut scratch);
    assert_eq!(l, vec![1.0, -4.0, 1.0, 0.0]);

    let mut l = vec![2.0, -2.0, 1.0, 0.0];
    apply_penalties(&mut l, &recent, 1.0, 0.5, 0.25, &mut scratch);
    // count * frequency + presence: token 0: 0.75, token 1: 1.25.
    assert_eq!(l, vec![1.25, -3.25, 1.0, 0.0]);

    let mut l = vec![0.0, 4.0];
    apply_penalties(&mut l, &[0, 1], 2.0, 0.0, 0.0, &mut scratch);
    assert_eq!(l, vec![0.0, 2.0], "a zero logit is multiplied (stays 0)");

    let mut l = vec![1.0, 2.0];
    apply_penalties(&mut l, &[0, 1], 1.0, 0.0, 0.0, &mut scratch);
    apply_penalties(&mut l, &[], 3.0, 1.0, 1.0, &mut scratch);
    assert_eq!(
        l,
        vec![1.0, 2.0],
        "neutral penalties or an empty window change nothing"
    );
}

#[test]
fn top_k_keeps_best_sorted_ties_to_lower_id() {
    let mut c = Candidates::from_logits(&[1.0, 5.0, 3.0, 5.0, -1.0, 4.0]);
    top_k(&mut c, 3);
    assert_eq!(ids(&c), vec![1, 3, 5]);
    assert!(c.is_sorted());

    let mut c = Candidates::from_logits(&[1.0, 2.0, 2.0]);
    top_k(&mut c, 1);
    assert_eq!(ids(&c), vec![1]);

    let mut c = Candidates::from_logits(&[1.0, 2.0]);
    top_k(&mut c, 0);
    assert_eq!(ids(&c), vec![0, 1], "0 is off");
    top_k(&mut c, 10);
    assert_eq!(
        ids(&c),
        vec![1, 0],
        "k beyond the vocabulary keeps all, sorted"
    );
}

#[test]
fn top_p_keeps_smallest_prefix_with_mass_at_least_p() {
    let probs = [0.15, 0.5, 0.05, 0.3];
    let keep = |p: f32| {
        let mut c = Candidates::from_logits(&logits_of(&probs));
        top_p(&mut c, p);
        ids(&c)
    };
    assert_eq!(keep(0.45), vec![1]);
    assert_eq!(keep(0.75), vec![1, 3]);
    assert_eq!(keep(0.85), vec![1, 3, 0]);
    assert_eq!(keep(0.99), vec![1, 3, 0, 2]);
    assert_eq!(keep(1.0), vec![0, 1, 2, 3], "1 is off (order untouched)");
    assert_eq!(keep(0.0), vec![1], "at least one");
    assert_eq!(keep(f32::NAN), vec![0, 1, 2, 3]);

    // Mass is the softmax over the candidates left, so after top-k it is renormalized.
    let mut c = Candidates::from_logits(&logits_of(&probs));
    top_k(&mut c, 2); // 0.5 and 0.3 -> 0.625 and 0.375
    top_p(&mut c, 0.6);
    assert_eq!(ids(&c), vec![1]);
}

#[test]
fn min_p_drops_tokens_below_fraction_of_max() {
    let probs = [0.15, 0.5, 0.05, 0.3];
    let keep = |p: f32| {
        let mut c = Candidates::from_logits(&logits_of(&probs));
        min_p(&mut c, p);
        ids(&c)
    };
    assert_eq!(keep(0.2), vec![0, 1, 3], "0.05 < 0.2 * 0.5; order kept");
    assert_eq!(keep(0.5), vec![1, 3]);
    assert_eq!(keep(0.7), vec![1]);
    assert_eq!(keep(0.0), vec![0, 1, 2, 3], "0 is off");
    assert_eq!(keep(2.0), vec![1], "p > 1 keeps the best");
}

#[test]
fn temperature_scales_or_keeps_best() {
    let mut c = Candidates::from_logits(&[1.0, -2.0, 4.0]);
    temperature(&mut c, 0.5);
    let l: Vec<f32> = c.as_slice().iter().map(|x| x.logit).collect();
    assert_eq!(l, vec![2.0, -4.0, 8.0]);
    temperature(&mut c, 0.0);
    assert_eq!(ids(&c), vec![2]);
    let mut c = Candidates::from_logits(&[3.0, 3.0]);
    temperature(&mut c, -1.0);
    assert_eq!(ids(&c), vec![0]);
}

#[test]
fn softmax_sums_to_one_and_handles_inf() {
    let mut c = Candidates::from_logits(&[1.0, 2.0, 3.0, f32::NEG_INFINITY]);
    softmax(&mut c);
    let p: Vec<f32> = c.as_slice().iter().map(|x| x.p).collect();
    let sum: f32 = p.iter().sum();
    assert!((sum - 1.0).abs() < 1e-6);
    let e = [1f64.exp(), 2f64.exp(), 3f64.exp()];
    let z: f64 = e.iter().sum();
    for i in 0..3 {
        assert!((p[i] as f64 - e[i] / z).abs() < 1e-6);
    }
    assert_eq!(p[3], 0.0);

    let mut c = Candidates::from_logits(&[1.0, f32::INFINITY, f32::NAN, f32::INFINITY]);
    softmax(&mut c);
    let p: Vec<f32> = c.as_slice().iter().map(|x| x.p).collect();
    assert_eq!(p, vec![0.0, 0.5, 0.0, 0.5]);

    let mut c = Candidates::from_logits(&[f32::NAN, f32::NEG_INFINITY]);
    softmax(&mut c);
    let p: Vec<f32> = c.as_slice().iter().map(|x| x.p).collect();
    assert_eq!(p, vec![0.5, 0.5]);

    let mut c = Candidates::from_logits(&[1e30, -1e30, 3e38]);
    softmax(&mut c);
    assert!(c.as_slice().iter().all(|x| x.p.is_finite()));
}

#[test]
fn draw_follows_probabilities_and_skips_zero_mass() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut c = Candidates::from_logits(&[f32::NEG_INFINITY, 0.0, f32::NEG_INFINITY]);
    softmax(&mut c);
    for _ in 0..100 {
        assert_eq!(draw(&c, &mut rng), 1);
    }
    // No probabilities computed (all zero): the first candidate.
    let c = Candidates::from_logits(&[0.0, 1.0]);
    assert_eq!(draw(&c, &mut rng), 0);
}

#[test]
fn sampler_window_is_a_ring_of_last_n() {
    let mut s = Sampler::new(SamplingParams {
        penalty_last_n: 3,
        ..SamplingParams::greedy()
    });
    for id in [1, 2, 3, 4, 5] {
        s.accept(id);
    }
    let mut w = s.recent.clone();
    w.sort_unstable();
    assert_eq!(w, vec![3, 4, 5]);
    s.reset();
    assert!(s.recent.is_empty());

    let mut s = Sampler::new(SamplingParams::greedy());
    s.accept(1);
    assert!(s.recent.is_empty(), "penalty_last_n = 0 keeps no window");
}

#[test]
fn greedy_applies_penalties_first() {
    let mut s = Sampler::new(SamplingParams {
        repeat_penalty: 4.0,
        penalty_last_n: 8,
        ..SamplingParams::greedy()
    });
    assert_eq!(s.sample(&mut [1.0, 3.0, 2.0]), 1);
    s.accept(1);
    // 3.0 / 4 = 0.75 < 2.0.
    assert_eq!(s.sample(&mut [1.0, 3.0, 2.0]), 2);
}
