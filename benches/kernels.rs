//! Micro-benchmarks of the kernels behind `QMatMul`: reference dequantization and the matmul
//! (activation quantization + vec_dot) for a 4096×4096 weight, per type, at 1 and 32 tokens.
//!
//! `cargo bench --bench kernels` (ours only; ggml comparisons come with the speed work).
//! `qmatmul_isa_4096x4096/<type>/<isa>/m<m>` runs the same matmul with each instruction set
//! this CPU has (`scalar` is the reference), for the speedup of the SIMD kernels:
//! `cargo bench --bench kernels -- qmatmul_isa`.
//!
//! Measured on the project's shared 2-core x86-64 machine (AVX-512 VNNI), 2 threads, times
//! (speedup over scalar in the same run); noisy, the machine is shared:
//!
//! | type | m | scalar | avx2 | avx512 |
//! |------|---|--------|------|--------|
//! | Q4_K | 1 | 5.51 ms | 0.94 ms (5.9x) | 0.98 ms (5.6x) |
//! | Q4_K | 32 | 174 ms | 25.2 ms (6.9x) | 17.9 ms (9.7x) |
//! | Q6_K | 1 | 7.91 ms | 2.05 ms (3.8x) | 1.42 ms (5.6x) |
//! | Q6_K | 32 | 217 ms | 20.5 ms (10.6x) | 19.7 ms (11.0x) |
//! | Q8_0 | 1 | 4.10 ms | 3.16 ms (1.3x) | 2.89 ms (1.4x) |
//! | Q8_0 | 32 | 153 ms | 70.0 ms (2.2x) | 51.0 ms (3.0x) |
//! | Q5_K | 1 | 7.27 ms | 1.44 ms (5.0x) | 1.02 ms (7.1x) |
//! | Q5_K | 32 | 195 ms | 26.5 ms (7.4x) | 20.0 ms (9.7x) |

use std::sync::Arc;

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use orcinus::quant::{kernels, GgmlType, QMatMul};

const K: usize = 4096;
const N: usize = 4096;

fn weights(ty: GgmlType) -> Vec<u8> {
    let x: Vec<f32> = (0..K * N)
        .map(|i| ((i * 2654435761usize) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    let mut q = vec![0u8; ty.row_bytes(x.len()).unwrap()];
    ty.quantize(&x, &mut q).unwrap();
    q
}

fn bench(c: &mut Criterion) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let types = [
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q8_0,
        GgmlType::Q4K,
        GgmlType::Q5K,
        GgmlType::Q6K,
        GgmlType::F16,
    ];
    let mut g = c.benchmark_group("dequantize_4096x4096");
    g.sample_size(10);
    for ty in types {
        let w = weights(ty);
        let mut out = vec![0f32; K * N];
        g.throughput(Throughput::Bytes(w.len() as u64));
        g.bench_function(BenchmarkId::from_parameter(ty), |b| {
            b.iter(|| ty.dequantize(black_box(&w), &mut out).unwrap())
        });
    }
    g.finish();
    let mut g = c.benchmark_group("qmatmul_4096x4096");
    g.sample_size(10);
    for ty in types {
        let w = weights(ty);
        let len = w.len();
        let mm = QMatMul::new(Arc::new(w), 0..len, ty, K, N).unwrap();
        for m in [1usize, 32] {
            let x: Vec<f32> = (0..m * K).map(|i| (i % 97) as f32 / 97.0 - 0.5).collect();
            let mut y = vec![0f32; m * N];
            g.throughput(Throughput::Elements((m * K * N) as u64));
            g.bench_function(BenchmarkId::new(ty.name(), format!("m{m}")), |b| {
                b.iter(|| mm.forward(black_box(&x), m, &mut y, &pool).unwrap())
            });
        }
    }
    g.finish();
    let mut g = c.benchmark_group("qmatmul_isa_4096x4096");
    g.sample_size(10);
    g.warm_up_time(std::time::Duration::from_secs(1));
    g.measurement_time(std::time::Duration::from_secs(3));
    for ty in [GgmlType::Q4K, GgmlType::Q6K, GgmlType::Q8_0, GgmlType::Q5K] {
        let w = weights(ty);
        let len = w.len();
        let mm = QMatMul::new(Arc::new(w), 0..len, ty, K, N).unwrap();
        for m in [1usize, 32] {
            let x: Vec<f32> = (0..m * K).map(|i| (i % 97) as f32 / 97.0 - 0.5).collect();
            let mut y = vec![0f32; m * N];
            g.throughput(Throughput::Elements((m * K * N) as u64));
            for isa in kernels::available_isas() {
                let id = BenchmarkId::new(ty.name(), format!("{isa}/m{m}"));
                g.bench_function(id, |b| {
                    b.iter(|| {
                        mm.forward_isa(isa, black_box(&x), m, &mut y, &pool)
                            .unwrap()
                    })
                });
            }
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
