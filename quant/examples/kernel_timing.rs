//! Single-thread timing of the dot-product kernels on a 4096×4096 weight, per instruction
//! set: `cargo run -p orcinus-quant --release --example kernel_timing [TYPE...]`; `KT_K=16384`
//! sets the row length (the same 16M weights in all; longer rows make the per-call overhead
//! smaller). Each line: one row per call (`m1`), the decode path's `ROWS_PER_TASK` rows per call (`many`),
//! and four activation rows per call (`m4 rows`).
//! (The criterion bench `qmatmul_isa` in the root crate measures the whole `QMatMul`.)

use std::time::Instant;

use orcinus_quant::matmul::ROWS_PER_TASK;
use orcinus_quant::{kernels, GgmlType};

fn main() {
    let k: usize = std::env::var("KT_K")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4096);
    let n = 4096 * 4096 / k;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let types: Vec<GgmlType> = if args.is_empty() {
        vec![GgmlType::Q4K, GgmlType::Q6K, GgmlType::Q8_0, GgmlType::Q5K]
    } else {
        args.iter().filter_map(|a| GgmlType::from_name(a)).collect()
    };
    let x: Vec<f32> = (0..k * n)
        .map(|i| ((i * 2654435761usize) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    let act: Vec<f32> = (0..4 * k).map(|i| (i % 97) as f32 / 97.0 - 0.5).collect();
    for ty in types {
        let mut w = vec![0u8; ty.row_bytes(k * n).unwrap()];
        ty.quantize(&x, &mut w).unwrap();
        let at = ty.vec_dot_type();
        let arb = at.row_bytes(k).unwrap();
        let mut a = vec![0u8; 4 * arb];
        for (q, x) in a.chunks_exact_mut(arb).zip(act.chunks_exact(k)) {
            at.from_float(x, q).unwrap();
        }
        let rb = ty.row_bytes(k).unwrap();
        let mut scalar_t = None;
        for &isa in kernels::available_isas() {
            let f = kernels::vec_dot_for(ty, isa).unwrap();
            let mut s = 0f32;
            let t = Instant::now();
            for _ in 0..3 {
                for row in w.chunks_exact(rb) {
                    s += f(row, &a[..arb]);
                }
            }
            let dt = t.elapsed().as_secs_f64() / 3.0;
            let base = *scalar_t.get_or_insert(dt);
            // The same work on 64 rows that stay in cache: compute-bound time.
            let t = Instant::now();
            for _ in 0..3 * n / 64 {
                for row in w[..64 * rb].chunks_exact(rb) {
                    s += f(row, &a[..arb]);
                }
            }
            let dtc = t.elapsed().as_secs_f64() / 3.0;
            let mut line = format!(
                "{ty:5} {isa:7} m1 {:7.2} ms (in cache {:6.2} ms)  {:5.1} GB/s  x{:.1}",
                dt * 1e3,
                dtc * 1e3,
                w.len() as f64 / dt / 1e9,
                base / dt
            );
            if let Some(many) = kernels::vec_dot_many_for(ty, isa) {
                // The decode path: `ROWS_PER_TASK` rows per call, streaming, then 64 rows in
                // cache.
                let mut out = [0f32; ROWS_PER_TASK];
                let t = Instant::now();
                for _ in 0..3 {
                    for rows in w.chunks_exact(ROWS_PER_TASK * rb) {
                        many(rows, &a[..arb], &mut out);
                        s += out[0];
                    }
                }
                let dtm = t.elapsed().as_secs_f64() / 3.0;
                let t = Instant::now();
                for _ in 0..3 * n / 64 {
                    for rows in w[..64 * rb].chunks_exact(ROWS_PER_TASK * rb) {
                        many(rows, &a[..arb], &mut out);
                        s += out[0];
                    }
                }
                let dtmc = t.elapsed().as_secs_f64() / 3.0;
                line += &format!(
                    "   many {:7.2} ms (in cache {:6.2} ms)",
                    dtm * 1e3,
                    dtmc * 1e3
                );
            }
            if let Some(rows) = kernels::vec_dot_rows_for(ty, isa) {
                let mut out = [0f32; 4];
                let t = Instant::now();
                for row in w.chunks_exact(rb) {
                    rows(row, &a, &mut out);
                    s += out[0];
                }
                let dt4 = t.elapsed().as_secs_f64();
                line += &format!(
                    "   m4 rows {:7.2} ms ({:.2}x of 4 single)",
                    dt4 * 1e3,
                    4.0 * dt / dt4
                );
            }
            println!("{line}  [{s:.0}]");
        }
    }
}
