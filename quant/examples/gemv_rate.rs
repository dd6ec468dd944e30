//! Decode speed: bytes of weights per second that `QMatMul::forward` streams with one
//! activation row, over matrices of a 7B model's FFN shape that together far exceed the
//! last-level cache, next to a plain read of as many bytes (the roofline) in the same run.
//!
//! ```text
//! cargo run --release -p orcinus-quant --example gemv_rate [-- THREADS [TYPE,TYPE,...] [MIB]]
//! ```
//! Prints medians over several sweeps; a measurement to read, nothing is asserted.

use std::sync::Arc;
use std::time::Instant;

use orcinus_quant::{GgmlType, QMatMul};
use rayon::prelude::*;

#[allow(dead_code)] // `best_of` is for the other examples.
mod common;
use common::values;

fn main() {
    let mut args = std::env::args().skip(1);
    let threads: usize = args.next().map_or(2, |s| s.parse().expect("THREADS"));
    let types: Vec<GgmlType> = args.next().map_or_else(
        || vec![GgmlType::Q4K, GgmlType::Q6K],
        |s| {
            s.split(',')
                .map(|t| GgmlType::from_name(t).expect("a type name"))
                .collect()
        },
    );
    let mib: usize = args.next().map_or(1024, |s| s.parse().expect("MIB"));
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool");
    let k = 4096;
    let n: usize = std::env::var("GEMV_N").map_or(14336, |s| s.parse().expect("GEMV_N"));
    // Read bandwidth of a plain sum over a buffer as large as the weights.
    let words = vec![1u64; mib << 17];
    let chunk = words.len().div_ceil(threads);
    let mut probe = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let s: u64 = pool.install(|| {
            words
                .par_chunks(chunk)
                .map(|c| c.iter().fold(0u64, |a, &w| a.wrapping_add(w)))
                .sum()
        });
        std::hint::black_box(s);
        probe.push((words.len() * 8) as f64 / t.elapsed().as_secs_f64() / 1e9);
    }
    drop(words);
    println!("{threads} thread(s); read probe {:.2} GB/s", median(probe));
    for ty in types {
        let w = values(k * n, 1);
        let row = ty.row_bytes(k * n).expect("whole blocks");
        let count = ((mib << 20) / row).max(1);
        let mut bytes = vec![0u8; row];
        ty.quantize(&w, &mut bytes).expect("quantize");
        // One mapping with huge pages asked for, like a cached model file's large folios.
        let mut map = memmap2::MmapMut::map_anon(row * count).expect("memory");
        #[cfg(target_os = "linux")]
        let _ = map.advise(memmap2::Advice::HugePage);
        for c in map.chunks_exact_mut(row) {
            c.copy_from_slice(&bytes);
        }
        let storage = Arc::new(Anon(map));
        let mats: Vec<QMatMul> = (0..count)
            .map(|c| {
                QMatMul::new(storage.clone(), c * row..(c + 1) * row, ty, k, n).expect("matmul")
            })
            .collect();
        let x = values(k, 2);
        let mut y = vec![0f32; n];
        let mut rates = Vec::new();
        for _ in 0..7 {
            let t = Instant::now();
            // On the pool, as a model's pass runs (its matmuls fork among the pool's threads).
            pool.install(|| {
                for mm in &mats {
                    mm.forward(&x, 1, &mut y, &pool).expect("forward");
                }
            });
            rates.push((row * count) as f64 / t.elapsed().as_secs_f64() / 1e9);
        }
        println!(
            "{:<5} {count} x {k}x{n}: {:.2} GB/s",
            ty.name(),
            median(rates)
        );
    }
}

struct Anon(memmap2::MmapMut);

impl orcinus_quant::WeightStorage for Anon {
    fn bytes(&self) -> &[u8] {
        &self.0
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
