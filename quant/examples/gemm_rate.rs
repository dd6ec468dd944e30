//! Multiply-adds per second of `QMatMul::forward` against the number of activation rows
//! (tokens), on a 7B model's matrix shapes: how the GEMM's fixed costs per pass (unpacking
//! the weights) spread over the tokens.
//!
//! ```text
//! cargo run --release -p orcinus-quant --example gemm_rate [-- THREADS [M,M,...] [TYPE:KxN,...]]
//! ```
//! Prints the best of several runs per shape and token count; a measurement to read,
//! nothing is asserted. One core of the development machine (Zen 4, 3.6 GHz) peaks at 230 G/s
//! (64 `vpdpbusd` multiply-adds per cycle).

use std::sync::Arc;

use orcinus_quant::{AlignedF32, GgmlType, QMatMul};

mod common;
use common::{best_of, values};

fn main() {
    let mut args = std::env::args().skip(1);
    let threads: usize = args
        .next()
        .map(|s| s.parse().expect("THREADS is a number"))
        .unwrap_or(1);
    let ms: Vec<usize> = args
        .next()
        .map(|s| {
            s.split(',')
                .map(|m| m.parse().expect("M is a number"))
                .collect()
        })
        .unwrap_or_else(|| vec![16, 32, 64, 128, 256, 512]);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool");
    println!("{threads} thread(s); G multiply-adds per second, best of several runs");
    // (type, k = row length, n = rows): attention, ffn_down, a Q6_K tensor of Q4_K_M, and
    // the main types of the Q5_K_M and Q8_0 files.
    let shapes: Vec<(GgmlType, usize, usize)> = match args.next() {
        // TYPE:KxN,... (e.g. q8_0:576x1536 for a SmolLM2 feed-forward matrix).
        Some(list) => list
            .split(',')
            .map(|s| {
                let (ty, kn) = s.split_once(':').expect("TYPE:KxN");
                let (k, n) = kn.split_once('x').expect("KxN");
                (
                    GgmlType::from_name(ty).expect("a type name such as q8_0"),
                    k.parse().expect("K is a number"),
                    n.parse().expect("N is a number"),
                )
            })
            .collect(),
        None => vec![
            (GgmlType::Q4K, 4096, 4096),
            (GgmlType::Q4K, 14336, 1024),
            (GgmlType::Q6K, 4096, 1024),
            (GgmlType::Q5K, 4096, 1024),
            (GgmlType::Q8_0, 4096, 1024),
        ],
    };
    for (ty, k, n) in shapes {
        let w = values(k * n, 1);
        let mut bytes = vec![0u8; ty.row_bytes(k * n).expect("whole blocks")];
        ty.quantize(&w, &mut bytes).expect("quantize");
        let len = bytes.len();
        let mm = QMatMul::new(Arc::new(bytes), 0..len, ty, k, n).expect("matmul");
        for &m in &ms {
            let x = values(k * m, 2);
            let mut y = AlignedF32::zeroed(m * n);
            let best = best_of(|| mm.forward(&x, m, &mut y, &pool).expect("forward"));
            println!(
                "{:<5} {:>11} m={m:<4} {:>7.1} G/s",
                ty.name(),
                format!("{k}x{n}"),
                (k * n * m) as f64 / best.as_secs_f64() / 1e9
            );
        }
    }
}
