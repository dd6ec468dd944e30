//! Speed of `QMatMul::forward` (activations quantized, integer dot products) against
//! `QMatMul::forward_f32` (weights dequantized, f32 dot products) on a few matrix shapes.
//!
//! ```text
//! cargo run --release -p orcinus-quant --example matmul_bench [-- THREADS]
//! ```
//! Prints the best of several runs for each shape, type, `m` and path. A measurement to read,
//! not a test: nothing is asserted but that the two paths agree roughly.

use std::sync::Arc;

use orcinus_quant::{AlignedF32, GgmlType, QMatMul};

mod common;
use common::{best_of, values};

fn main() {
    let threads: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("THREADS is a number"))
        .unwrap_or(2);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool");
    println!("{threads} thread(s); times are the best of several runs");
    println!(
        "{:<5} {:>11} {:>3} {:>12} {:>12} {:>7}",
        "type", "k x n", "m", "forward_f32", "forward", "speedup"
    );
    // (type, k = row length, n = rows): SmolLM2's FFN (576 -> 1536), a 7B model's attention.
    let shapes = [
        (GgmlType::Q4_1, 576, 1536),
        (GgmlType::Q8_0, 576, 1536),
        (GgmlType::F16, 576, 1536),
        (GgmlType::Q4K, 4096, 4096),
        (GgmlType::Q6K, 4096, 4096),
    ];
    for (ty, k, n) in shapes {
        let w = values(k * n, 1);
        let mut bytes = vec![0u8; ty.row_bytes(k * n).unwrap()];
        ty.quantize(&w, &mut bytes).unwrap();
        let len = bytes.len();
        let mm = QMatMul::new(Arc::new(bytes), 0..len, ty, k, n).unwrap();
        for m in [1, 32] {
            let x = values(k * m, 2);
            let (mut y, mut y32) = (AlignedF32::zeroed(m * n), vec![0f32; m * n]);
            let old = best_of(|| mm.forward_f32(&x, m, &mut y32, &pool).unwrap());
            let new = best_of(|| mm.forward(&x, m, &mut y, &pool).unwrap());
            let scale = y32.iter().fold(0f32, |a, v| a.max(v.abs()));
            let diff = y
                .iter()
                .zip(&y32)
                .fold(0f32, |a, (p, q)| a.max((p - q).abs()));
            assert!(
                diff <= 0.05 * scale,
                "{ty}: paths disagree ({diff} of {scale})"
            );
            println!(
                "{:<5} {:>11} {:>3} {:>9.3} ms {:>9.3} ms {:>6.2}x",
                ty.name(),
                format!("{k}x{n}"),
                m,
                old.as_secs_f64() * 1e3,
                new.as_secs_f64() * 1e3,
                old.as_secs_f64() / new.as_secs_f64()
            );
        }
    }
}
