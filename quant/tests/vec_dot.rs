//! The scalar `vec_dot` of every weight type against an f64 oracle.
//!
//! For each weight type, weight rows are quantized with [`GgmlType::quantize`] and activation
//! rows with [`GgmlType::from_float`] of its [`GgmlType::vec_dot_type`]; the dot must equal the
//! f64 dot of the two dequantized rows within `TOL · Σ|x̂ᵢ·ŷᵢ|` (the scale of a floating-point
//! dot's rounding error). `--nocapture` prints the measured table.
//!
//! The float types sum in f64 (error ~2^-24, the final rounding). The others add one f32 term
//! per block in sequence, so their error grows with the number of blocks (up to ~nb·2^-24:
//! 128 blocks of 32 at n = 4096); their tolerance is 1e-5.
//!
//! Q4_1 and Q5_1 also differ from their dequantized rows by design of the format: they dot
//! against Q8_1, whose `s = d·Σq` is rounded to f16 from the unrounded scale, so the minimum's
//! term `m·s` is `m·Σ(q·f16(d))` only to ~2^-10. For them the magnitude also counts
//! `Σ_blocks |m|·Σ|ŷ|`, and the tolerance is 2e-3.

use orcinus_quant::GgmlType;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// (weight type, tolerance relative to `Σ|x̂ᵢ·ŷᵢ|`).
const TOL: [(GgmlType, f64); 13] = [
    (GgmlType::F32, 2e-7),
    (GgmlType::F16, 2e-7),
    (GgmlType::BF16, 2e-7),
    (GgmlType::Q4_0, 1e-5),
    (GgmlType::Q4_1, 2e-3),
    (GgmlType::Q5_0, 1e-5),
    (GgmlType::Q5_1, 2e-3),
    (GgmlType::Q8_0, 1e-5),
    (GgmlType::Q2K, 1e-5),
    (GgmlType::Q3K, 1e-5),
    (GgmlType::Q4K, 1e-5),
    (GgmlType::Q5K, 1e-5),
    (GgmlType::Q6K, 1e-5),
];

/// `Σ_blocks |m|·Σ|ŷ|` for Q4_1/Q5_1 rows (`m` the f16 at bytes 2..4 of each block), else 0.
fn min_magnitude(ty: GgmlType, wb: &[u8], ad: &[f32]) -> f64 {
    if !matches!(ty, GgmlType::Q4_1 | GgmlType::Q5_1) {
        return 0.0;
    }
    wb.chunks_exact(ty.type_size())
        .zip(ad.chunks_exact(32))
        .map(|(b, y)| {
            let m = half::f16::from_le_bytes([b[2], b[3]]).to_f64();
            m.abs() * y.iter().map(|v| v.abs() as f64).sum::<f64>()
        })
        .sum()
}

/// Box–Muller; one standard normal.
fn gauss(rng: &mut ChaCha8Rng) -> f32 {
    let u1: f64 = 1.0 - rng.gen::<f64>();
    let u2: f64 = rng.gen();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

/// Rows of `n` values from several distributions (fixed seeds).
fn rows(n: usize, seed: u64) -> Vec<(String, Vec<f32>)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::new();
    for r in 0..4 {
        out.push((
            format!("gaussian {r}"),
            (0..n).map(|_| gauss(&mut rng)).collect(),
        ));
        out.push((
            format!("positive {r}"),
            (0..n).map(|_| rng.gen_range(0.0f32..2.0)).collect(),
        ));
        out.push((
            format!("outliers {r}"),
            (0..n)
                .map(|_| {
                    let g = gauss(&mut rng);
                    if rng.gen_range(0..64) == 0 {
                        g * 30.0
                    } else {
                        g
                    }
                })
                .collect(),
        ));
        let mut x = vec![0f32; n];
        for b in x.chunks_mut(32) {
            let s = 10f32.powf(rng.gen_range(-3.0..3.0));
            b.iter_mut().for_each(|v| *v = gauss(&mut rng) * s);
        }
        out.push((format!("blockwise scales {r}"), x));
    }
    out.push(("zeros".into(), vec![0.0; n]));
    out.push((
        "alternating".into(),
        (0..n)
            .map(|i| if i % 2 == 0 { 1.0 } else { -1.0 })
            .collect(),
    ));
    out
}

fn quantized(ty: GgmlType, x: &[f32], activation: bool) -> (Vec<u8>, Vec<f32>) {
    let mut bytes = vec![0u8; ty.row_bytes(x.len()).unwrap()];
    if activation {
        ty.from_float(x, &mut bytes).unwrap();
    } else {
        ty.quantize(x, &mut bytes).unwrap();
    }
    let mut deq = vec![0f32; x.len()];
    ty.dequantize(&bytes, &mut deq).unwrap();
    (bytes, deq)
}

#[test]
fn vec_dot_matches_f64_dot_of_dequantized_rows() {
    let mut failures = Vec::new();
    for (ty, tol) in TOL {
        let at = ty.vec_dot_type();
        let mut worst = (0f64, String::new());
        for n in [1024, 4096] {
            let weights = rows(n, 1);
            let activations = rows(n, 2);
            for (wname, w) in &weights {
                let (wb, wd) = quantized(ty, w, false);
                for (aname, a) in &activations {
                    let (ab, ad) = quantized(at, a, true);
                    let ours = ty.vec_dot(&wb, &ab, n).unwrap() as f64;
                    let want: f64 = wd.iter().zip(&ad).map(|(&x, &y)| x as f64 * y as f64).sum();
                    let mag: f64 = wd
                        .iter()
                        .zip(&ad)
                        .map(|(&x, &y)| (x as f64 * y as f64).abs())
                        .sum::<f64>()
                        + min_magnitude(ty, &wb, &ad);
                    let err = if mag == 0.0 {
                        assert_eq!(ours, 0.0, "{ty} n={n} [{wname}] · [{aname}]");
                        0.0
                    } else {
                        (ours - want).abs() / mag
                    };
                    let case = format!("n={n} [{wname}] · [{aname}]");
                    if err > tol {
                        failures.push(format!(
                            "{ty} {case}: {ours} vs f64 {want} (relative {err:.3e} > {tol:e})"
                        ));
                    }
                    if err >= worst.0 {
                        worst = (err, case);
                    }
                }
            }
        }
        eprintln!(
            "{:<5} · {:<5} max |ours - f64| / Σ|x̂ŷ| = {:.3e}  ({})",
            ty.name(),
            at.name(),
            worst.0,
            worst.1
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every type but the activation-only ones has a dot, and its activation type is ggml's.
#[test]
fn vec_dot_types_are_ggmls() {
    use GgmlType::*;
    let expect = [
        (F32, F32),
        (F16, F16),
        (BF16, BF16),
        (Q4_0, Q8_0),
        (Q4_1, Q8_1),
        (Q5_0, Q8_0),
        (Q5_1, Q8_1),
        (Q8_0, Q8_0),
        (Q2K, Q8K),
        (Q3K, Q8K),
        (Q4K, Q8K),
        (Q5K, Q8K),
        (Q6K, Q8K),
    ];
    for (w, a) in expect {
        assert!(w.has_vec_dot(), "{w}");
        assert_eq!(w.vec_dot_type(), a, "{w}");
    }
    for t in [Q8_1, Q8K] {
        assert!(!t.has_vec_dot());
        assert_eq!(t.vec_dot_type(), t);
        let row = vec![0u8; t.row_bytes(256).unwrap()];
        assert!(t.vec_dot(&row, &row, 256).is_err());
    }
    assert_eq!(GgmlType::all().filter(|t| t.has_vec_dot()).count(), 13);
}

/// Length checks at the boundary.
#[test]
fn vec_dot_checks_lengths() {
    let ty = GgmlType::Q4K;
    let x = vec![0u8; ty.row_bytes(512).unwrap()];
    let y = vec![0u8; GgmlType::Q8K.row_bytes(512).unwrap()];
    assert_eq!(ty.vec_dot(&x, &y, 512).unwrap(), 0.0);
    assert!(ty.vec_dot(&x, &y, 256).is_err());
    assert!(ty.vec_dot(&x, &y[1..], 512).is_err());
    assert!(ty.vec_dot(&x, &y, 500).is_err());
    assert!(GgmlType::Q8_0
        .from_float(&[0.0; 32], &mut [0u8; 33])
        .is_err());
}

/// Q8_0's `from_float` (ggml's x86 quantizer) and the reference differ only on ties and
/// where `127 / amax` and `1 / (amax / 127)` round apart, and then by one step.
#[test]
fn q8_0_from_float_differs_from_reference_by_ties_only() {
    // amax 127: both quantizers have id = 1; 2.5 ties to 2 (even) in from_float, 3 in the
    // reference (away from zero); -0.5 to -0 and -1.
    let mut x = [0f32; 32];
    x[0] = 127.0;
    x[1] = 2.5;
    x[2] = -0.5;
    x[3] = 3.5;
    let (mut a, mut b) = ([0u8; 34], [0u8; 34]);
    GgmlType::Q8_0.from_float(&x, &mut a).unwrap();
    GgmlType::Q8_0.quantize(&x, &mut b).unwrap();
    assert_eq!(a[2..6], [127, 2, 0, 4]);
    assert_eq!(b[2..6], [127, 3, (-1i8) as u8, 4]);
    // On random data they agree almost everywhere, and never by more than one step.
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let n = 1 << 16;
    let x: Vec<f32> = (0..n).map(|_| gauss(&mut rng)).collect();
    let (mut a, mut b) = (vec![0u8; n / 32 * 34], vec![0u8; n / 32 * 34]);
    GgmlType::Q8_0.from_float(&x, &mut a).unwrap();
    GgmlType::Q8_0.quantize(&x, &mut b).unwrap();
    let mut differ = 0;
    for (a, b) in a.chunks(34).zip(b.chunks(34)) {
        assert_eq!(a[..2], b[..2], "scales are the same");
        for (&p, &q) in a[2..].iter().zip(&b[2..]) {
            assert!((p as i8 as i32 - q as i8 as i32).abs() <= 1);
            differ += (p != q) as usize;
        }
    }
    eprintln!("Q8_0 from_float vs reference: {differ} of {n} quants differ");
    assert!(differ < n / 1000, "{differ}");
}
