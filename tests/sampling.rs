//! The sampler as a whole: greedy decoding, determinism under a seed, the filters' effect on
//! the distribution actually drawn from, and non-finite logits.

use orcinus::sampling::{argmax, Sampler, SamplingParams};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Random logits in [-5, 5), `n` of them.
fn random_logits(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.gen_range(-5.0..5.0)).collect()
}

/// Every filter off, temperature 1: draws follow softmax(logits).
fn plain(seed: u64) -> SamplingParams {
    SamplingParams {
        temperature: 1.0,
        top_k: 0,
        top_p: 1.0,
        min_p: 0.0,
        seed,
        ..SamplingParams::greedy()
    }
}

/// Generates `steps` tokens from a fixed stream of random logits, accepting each.
fn generate(params: SamplingParams, steps: usize) -> Vec<u32> {
    let mut logit_rng = ChaCha8Rng::seed_from_u64(1234);
    let mut s = Sampler::new(params);
    (0..steps)
        .map(|_| {
            let mut l = random_logits(&mut logit_rng, 500);
            let id = s.sample(&mut l);
            s.accept(id);
            id
        })
        .collect()
}

#[test]
fn defaults_are_llama_cpp_defaults() {
    let d = SamplingParams::default();
    assert_eq!(
        (d.temperature, d.top_k, d.top_p, d.min_p),
        (0.8, 40, 0.95, 0.05)
    );
    assert_eq!(
        (d.repeat_penalty, d.presence_penalty, d.frequency_penalty),
        (1.0, 0.0, 0.0)
    );
    assert_eq!(
        (d.penalty_last_n, d.seed),
        (64, SamplingParams::DEFAULT_SEED)
    );
    assert_eq!(SamplingParams::greedy().temperature, 0.0);
}

#[test]
fn greedy_is_argmax() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut s = Sampler::new(SamplingParams::greedy());
    for _ in 0..200 {
        let l = random_logits(&mut rng, 1000);
        let want = l
            .iter()
            .enumerate()
            .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
                if v > best.1 {
                    (i, v)
                } else {
                    best
                }
            })
            .0 as u32;
        assert_eq!(s.sample(&mut l.clone()), want);
        assert_eq!(argmax(&l), want);
    }
    assert_eq!(
        s.sample(&mut [1.0, 7.0, 7.0, 3.0]),
        1,
        "lowest index on ties"
    );
}

#[test]
fn same_seed_same_tokens_different_seed_different_tokens() {
    let params = SamplingParams {
        seed: 42,
        repeat_penalty: 1.1,
        presence_penalty: 0.2,
        frequency_penalty: 0.1,
        ..SamplingParams::default()
    };
    let a = generate(params, 300);
    assert_eq!(a, generate(params, 300));
    let b = generate(SamplingParams { seed: 43, ..params }, 300);
    assert_ne!(a, b);

    // `reset` makes a used sampler behave as a new one.
    let mut logit_rng = ChaCha8Rng::seed_from_u64(1234);
    let mut s = Sampler::new(params);
    for _ in 0..17 {
        let id = s.sample(&mut random_logits(&mut logit_rng, 500));
        s.accept(id);
    }
    s.reset();
    let mut logit_rng = ChaCha8Rng::seed_from_u64(1234);
    let again: Vec<u32> = (0..300)
        .map(|_| {
            let id = s.sample(&mut random_logits(&mut logit_rng, 500));
            s.accept(id);
            id
        })
        .collect();
    assert_eq!(again, a);
}

#[test]
fn golden_sequence_for_seed_0() {
    // ChaCha8 and the draw are fully specified, so this holds on every platform. A change here
    // changes every seeded generation: update it only on purpose.
    let got = generate(SamplingParams::default(), 12);
    assert_eq!(got, GOLDEN);
}

const GOLDEN: [u32; 12] = [325, 143, 324, 113, 307, 466, 288, 7, 45, 263, 229, 327];

#[test]
fn top_k_1_is_greedy() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    for seed in 0..5 {
        let mut s = Sampler::new(SamplingParams {
            top_k: 1,
            temperature: 1.5,
            seed,
            ..SamplingParams::default()
        });
        for _ in 0..50 {
            let l = random_logits(&mut rng, 300);
            assert_eq!(s.sample(&mut l.clone()), argmax(&l));
        }
    }
}

/// Pearson's chi-square statistic of `counts` against probabilities `p`.
fn chi_square(counts: &[u64], p: &[f64]) -> f64 {
    let n: u64 = counts.iter().sum();
    counts
        .iter()
        .zip(p)
        .map(|(&o, &p)| {
            let e = n as f64 * p;
            (o as f64 - e).powi(2) / e
        })
        .sum()
}

fn softmax64(l: &[f32], t: f64) -> Vec<f64> {
    let m = l.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
    let e: Vec<f64> = l.iter().map(|&x| ((x as f64 - m) / t).exp()).collect();
    let z: f64 = e.iter().sum();
    e.iter().map(|x| x / z).collect()
}

fn draw_counts(params: SamplingParams, logits: &[f32], n: usize) -> Vec<u64> {
    let mut s = Sampler::new(params);
    let mut counts = vec![0u64; logits.len()];
    for _ in 0..n {
        counts[s.sample(&mut logits.to_vec()) as usize] += 1;
    }
    counts
}

#[test]
fn draws_follow_softmax() {
    let logits = [1.0f32, 0.5, 0.0, -0.5, 2.0, -1.0];
    let n = 60_000;
    // 5 degrees of freedom: P(chi2 > 25) is about 1.4e-4; the seed is fixed, so this is
    // deterministic, and a wrong distribution (e.g. temperature ignored) gives thousands.
    for (t, seed) in [(1.0f32, 11u64), (0.5, 12), (2.0, 13)] {
        let counts = draw_counts(
            SamplingParams {
                temperature: t,
                ..plain(seed)
            },
            &logits,
            n,
        );
        let chi = chi_square(&counts, &softmax64(&logits, t as f64));
        assert!(chi < 25.0, "temperature {t}: chi2 {chi}, counts {counts:?}");
    }
    let wrong = draw_counts(plain(11), &logits, n);
    assert!(chi_square(&wrong, &softmax64(&logits, 0.5)) > 1000.0);

    // top-k 3 renormalizes over the three best; the others never come out.
    let counts = draw_counts(
        SamplingParams {
            top_k: 3,
            ..plain(14)
        },
        &logits,
        n,
    );
    assert_eq!((counts[2], counts[3], counts[5]), (0, 0, 0));
    let kept = [logits[0], logits[1], logits[4]];
    let chi = chi_square(&[counts[0], counts[1], counts[4]], &softmax64(&kept, 1.0));
    assert!(chi < 20.0, "top-k: chi2 {chi}, counts {counts:?}");
}

#[test]
fn min_p_and_top_p_remove_unlikely_tokens() {
    // probabilities ∝ [8, 4, 2, 1, 1]/16.
    let logits: Vec<f32> = [8.0f32, 4.0, 2.0, 1.0, 1.0]
        .iter()
        .map(|x| x.ln())
        .collect();
    let counts = draw_counts(
        SamplingParams {
            min_p: 0.2,
            ..plain(5)
        },
        &logits,
        20_000,
    );
    assert!(counts[0] > 0 && counts[1] > 0 && counts[2] > 0);
    assert_eq!(
        (counts[3], counts[4]),
        (0, 0),
        "1/8 of the best is below 0.2"
    );
    let counts = draw_counts(
        SamplingParams {
            top_p: 0.7,
            ..plain(6)
        },
        &logits,
        20_000,
    );
    assert!(counts[0] > 0 && counts[1] > 0);
    assert_eq!(&counts[2..], &[0, 0, 0], "0.5 + 0.25 >= 0.7");
}

#[test]
fn penalties_steer_away_from_recent_tokens() {
    let mut s = Sampler::new(SamplingParams {
        presence_penalty: 100.0,
        penalty_last_n: 4,
        ..plain(9)
    });
    let logits = [3.0f32, 2.9, 2.8, 2.7, 2.6, -50.0];
    let mut seen = Vec::new();
    for _ in 0..4 {
        let id = s.sample(&mut logits.to_vec());
        assert!(
            !seen.contains(&id),
            "{id} repeated within the window: {seen:?}"
        );
        seen.push(id);
        s.accept(id);
    }
}

#[test]
fn non_finite_logits_do_not_panic() {
    let cases: [&[f32]; 5] = [
        &[f32::NAN, f32::NAN, f32::NAN],
        &[f32::NEG_INFINITY, f32::NEG_INFINITY],
        &[1.0, f32::NAN, f32::INFINITY, 0.0],
        &[f32::INFINITY, f32::INFINITY, f32::NEG_INFINITY],
        &[f32::MAX, -f32::MAX, f32::MAX],
    ];
    let params = [
        SamplingParams::greedy(),
        SamplingParams::default(),
        plain(3),
        SamplingParams {
            temperature: 1e-30,
            repeat_penalty: 1.3,
            frequency_penalty: 0.5,
            ..SamplingParams::default()
        },
    ];
    for p in params {
        let mut s = Sampler::new(p);
        for l in cases {
            for _ in 0..20 {
                let id = s.sample(&mut l.to_vec());
                assert!((id as usize) < l.len());
                s.accept(id);
            }
        }
    }
    // The documented meanings.
    let mut g = Sampler::new(SamplingParams::greedy());
    assert_eq!(g.sample(&mut [f32::NAN, f32::NAN]), 0);
    assert_eq!(g.sample(&mut [1.0, f32::NAN, f32::INFINITY]), 2);
    let mut s = Sampler::new(plain(4));
    for _ in 0..50 {
        assert_eq!(s.sample(&mut [1.0, f32::NAN, f32::INFINITY, 5.0]), 2);
        let id = s.sample(&mut [f32::INFINITY, 0.0, f32::INFINITY]);
        assert!(id == 0 || id == 2);
    }
    let counts = draw_counts(plain(8), &[f32::NAN, f32::NEG_INFINITY, f32::NAN], 3000);
    assert!(counts.iter().all(|&c| c > 800), "uniform: {counts:?}");
}
