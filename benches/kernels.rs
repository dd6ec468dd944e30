//! Micro-benchmarks of the kernels behind `QMatMul`: reference dequantization and the matmul
//! (activation quantization + dot kernels or GEMM) for a 4096×4096 weight, per type.
//!
//! `cargo bench --bench kernels` (ours only; ggml comparisons come with the speed work).
//! `qmatmul_isa_4096x4096/<type>/<isa>/m<m>` runs the same matmul with each instruction set
//! this CPU has (`scalar` is the reference), for the speedup of the SIMD kernels:
//! `cargo bench --bench kernels -- qmatmul_isa`.
//!
//! Measured on the project's shared 2-core x86-64 machine (AVX-512 VNNI), 2 threads, median
//! times (speedup over scalar in the same run), 2026-11-27; noisy, the machine is shared. From
//! m = 8 on, Q4_K/Q5_K/Q6_K go through the GEMM (AVX2 and AVX-512 VNNI) and Q8_0 through the
//! GEMM on AVX-512 VNNI only; below, through the one- and four-row dot kernels:
//!
//! | type | m | scalar | avx2 | avx512 |
//! |------|---|--------|------|--------|
//! | Q4_K | 1 | 4.33 ms | 778 µs (5.6x) | 751 µs (5.8x) |
//! | Q4_K | 4 | 18.21 ms | 1.83 ms (10.0x) | 1.69 ms (10.8x) |
//! | Q4_K | 32 | 114.46 ms | 8.94 ms (12.8x) | 5.23 ms (21.9x) |
//! | Q4_K | 128 | 679.44 ms | 29.63 ms (22.9x) | 15.94 ms (42.6x) |
//! | Q5_K | 1 | 4.21 ms | 1.22 ms (3.4x) | 858 µs (4.9x) |
//! | Q5_K | 4 | 17.84 ms | 2.30 ms (7.8x) | 1.74 ms (10.2x) |
//! | Q5_K | 32 | 128.80 ms | 9.28 ms (13.9x) | 5.97 ms (21.6x) |
//! | Q5_K | 128 | 601.32 ms | 31.08 ms (19.3x) | 16.90 ms (35.6x) |
//! | Q6_K | 1 | 5.81 ms | 1.05 ms (5.5x) | 875 µs (6.6x) |
//! | Q6_K | 4 | 20.41 ms | 2.39 ms (8.5x) | 2.53 ms (8.1x) |
//! | Q6_K | 32 | 162.89 ms | 9.98 ms (16.3x) | 6.35 ms (25.6x) |
//! | Q6_K | 128 | 607.89 ms | 37.32 ms (16.3x) | 19.87 ms (30.6x) |
//! | Q8_0 | 1 | 4.01 ms | 2.35 ms (1.7x) | 1.87 ms (2.1x) |
//! | Q8_0 | 4 | 12.80 ms | 5.79 ms (2.2x) | 4.56 ms (2.8x) |
//! | Q8_0 | 32 | 82.69 ms | 35.11 ms (2.4x) | 7.54 ms (11.0x) |
//! | Q8_0 | 128 | 298.61 ms | 169.84 ms (1.8x) | 26.05 ms (11.5x) |
//!
//! (Q4_K avx512 m128: 2.15 G multiply-adds in 15.9 ms, 135 G/s on two cores.)

use std::sync::Arc;

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use orcinus::quant::{kernels, AlignedF32, GgmlType, QMatMul};

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
            let mut y = AlignedF32::zeroed(m * N);
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
        for m in [1usize, 4, 32, 128] {
            let x: Vec<f32> = (0..m * K).map(|i| (i % 97) as f32 / 97.0 - 0.5).collect();
            let mut y = AlignedF32::zeroed(m * N);
            g.throughput(Throughput::Elements((m * K * N) as u64));
            for &isa in kernels::available_isas() {
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
