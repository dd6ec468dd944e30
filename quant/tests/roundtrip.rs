//! Quantize → dequantize error of every type, as a regression test.
//!
//! The data: 64 rows × 512 standard normals (fixed seed). For each type the RMSE of the round
//! trip relative to the RMS of the data is held under a bound measured on this data with
//! ~15% margin; a quantizer that gets worse (or silently changes) trips it. The bits-per-weight
//! classes must also come out in order (8-bit < Q6_K < 5-bit < 4-bit < Q3_K < Q2_K).
//! Run with `--nocapture` to see the measured table.

use orcinus_quant::GgmlType;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const ROWS: usize = 64;
const COLS: usize = 512;

/// Relative RMSE measured on [`data`] (as of llama.cpp b2757's reference quantizers, which ours
/// match bit for bit), and the bound asserted, ~15% above it.
const BOUNDS: [(GgmlType, f64, f64); 15] = [
    (GgmlType::F32, 0.0, 0.0),
    (GgmlType::F16, 2.078e-4, 2.4e-4),
    (GgmlType::BF16, 1.660e-3, 1.9e-3),
    (GgmlType::Q4_0, 8.563e-2, 9.8e-2),
    (GgmlType::Q4_1, 7.780e-2, 8.9e-2),
    (GgmlType::Q5_0, 4.240e-2, 4.9e-2),
    (GgmlType::Q5_1, 3.764e-2, 4.3e-2),
    (GgmlType::Q8_0, 5.314e-3, 6.1e-3),
    (GgmlType::Q8_1, 5.314e-3, 6.1e-3),
    (GgmlType::Q2K, 2.960e-1, 3.4e-1),
    (GgmlType::Q3K, 1.497e-1, 1.72e-1),
    (GgmlType::Q4K, 7.072e-2, 8.1e-2),
    (GgmlType::Q5K, 3.582e-2, 4.1e-2),
    (GgmlType::Q6K, 1.770e-2, 2.04e-2),
    (GgmlType::Q8K, 6.902e-3, 7.9e-3),
];

/// Standard normals (Box–Muller), `ROWS * COLS` of them, row-major.
fn data() -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(0x5eed);
    (0..ROWS * COLS)
        .map(|_| {
            let u1: f64 = 1.0 - rng.gen::<f64>();
            let u2: f64 = rng.gen();
            ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
        })
        .collect()
}

/// RMSE of the round trip through `ty`, row by row, divided by the RMS of `x`.
fn relative_rmse(ty: GgmlType, x: &[f32]) -> f64 {
    let mut bytes = vec![0u8; ty.row_bytes(COLS).unwrap()];
    let mut y = vec![0f32; COLS];
    let (mut err, mut sig) = (0f64, 0f64);
    for row in x.chunks_exact(COLS) {
        ty.quantize(row, &mut bytes).unwrap();
        ty.dequantize(&bytes, &mut y).unwrap();
        for (&a, &b) in row.iter().zip(&y) {
            err += (a as f64 - b as f64).powi(2);
            sig += (a as f64).powi(2);
        }
    }
    (err / sig).sqrt()
}

/// One test per type: the error stays under its bound.
macro_rules! roundtrip_tests {
    ($($name:ident => $ty:expr,)*) => {
        $(
            #[test]
            fn $name() {
                let ty = $ty;
                let &(_, measured, bound) = BOUNDS.iter().find(|b| b.0 == ty).unwrap();
                let e = relative_rmse(ty, &data());
                println!("{ty}: relative RMSE {e:.4e} (measured {measured:.4e}, bound {bound:.4e})");
                assert!(e <= bound, "{ty}: relative RMSE {e:.4e} above bound {bound:.4e}");
            }
        )*
    };
}

roundtrip_tests! {
    f32 => GgmlType::F32,
    f16 => GgmlType::F16,
    bf16 => GgmlType::BF16,
    q4_0 => GgmlType::Q4_0,
    q4_1 => GgmlType::Q4_1,
    q5_0 => GgmlType::Q5_0,
    q5_1 => GgmlType::Q5_1,
    q8_0 => GgmlType::Q8_0,
    q8_1 => GgmlType::Q8_1,
    q2_k => GgmlType::Q2K,
    q3_k => GgmlType::Q3K,
    q4_k => GgmlType::Q4K,
    q5_k => GgmlType::Q5K,
    q6_k => GgmlType::Q6K,
    q8_k => GgmlType::Q8K,
}

#[test]
fn table_covers_every_type() {
    let listed: Vec<GgmlType> = BOUNDS.iter().map(|b| b.0).collect();
    for ty in GgmlType::all() {
        assert!(listed.contains(&ty), "{ty} has no round-trip bound");
    }
}

/// More bits, less error: every type of a class beats every type of the next.
#[test]
fn error_ordering_follows_bits() {
    use GgmlType::*;
    let classes: [&[GgmlType]; 6] = [
        &[Q8_0, Q8_1, Q8K],
        &[Q6K],
        &[Q5_0, Q5_1, Q5K],
        &[Q4_0, Q4_1, Q4K],
        &[Q3K],
        &[Q2K],
    ];
    let x = data();
    let errors: Vec<Vec<(GgmlType, f64)>> = classes
        .iter()
        .map(|c| c.iter().map(|&ty| (ty, relative_rmse(ty, &x))).collect())
        .collect();
    for pair in errors.windows(2) {
        let worst = pair[0].iter().max_by(|a, b| a.1.total_cmp(&b.1)).unwrap();
        let best = pair[1].iter().min_by(|a, b| a.1.total_cmp(&b.1)).unwrap();
        assert!(
            worst.1 < best.1,
            "{} ({:.4e}) should beat {} ({:.4e})",
            worst.0,
            worst.1,
            best.0,
            best.1
        );
    }
    // And the unquantized types beat them all.
    assert!(relative_rmse(F16, &x) < relative_rmse(BF16, &x));
    assert!(relative_rmse(BF16, &x) < errors[0].iter().map(|e| e.1).fold(1.0, f64::min));
}
