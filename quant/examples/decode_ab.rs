//! Same-process A/B of a decode kernel: the many-rows kernel (`vec_dot_many_for`, what
//! `QMatMul` runs with one activation row) against the single-row kernel called row by row
//! (`vec_dot_for`, the many-rows kernel's reference bits), over weights far larger than the
//! last-level cache, the two alternating pass by pass so that both see the same memory
//! bandwidth. Machine noise between runs (±15% here) hides a few per cent that this shows.
//! The row-by-row side also pays a call through a pointer and the byte-to-block checks per
//! row, which the many-rows kernels save: run a type whose many-rows kernel is the plain
//! loop (Q6_K) for the null line of that overhead and the machine's spread.
//!
//! ```text
//! cargo run --release -p orcinus-quant --example decode_ab [-- [THREADS [TYPE [MIB [PASSES]]]]]
//! ```
//! Prints each side's median GB/s and the median of the per-pair ratios; a measurement to
//! read, nothing is asserted.

use orcinus_quant::{kernels, GgmlType};
use rayon::prelude::*;
use std::time::Instant;

#[allow(dead_code)] // `best_of` is for the other examples.
mod common;
use common::values;

fn main() {
    let mut args = std::env::args().skip(1);
    let threads: usize = args.next().map_or(2, |s| s.parse().expect("THREADS"));
    let ty = args.next().map_or(GgmlType::Q4K, |s| {
        GgmlType::from_name(&s).expect("a type name")
    });
    let mib: usize = args.next().map_or(1536, |s| s.parse().expect("MIB"));
    let passes: usize = args.next().map_or(20, |s| s.parse().expect("PASSES"));
    assert!(passes >= 1, "PASSES must be at least 1");
    let isa = kernels::available_isas()
        .last()
        .copied()
        .expect("the scalar ISA at least");
    let many = kernels::vec_dot_many_for(ty, isa).expect("a many-rows kernel for this type");
    let single = kernels::vec_dot_for(ty, isa).expect("a kernel for this type");
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool");

    // Rows of a 7B model's FFN input length, as many as fill `mib`.
    let k = 4096;
    let rb = ty.row_bytes(k).expect("whole blocks");
    let rows_per_matrix = 4096;
    let mut one = vec![0u8; rb * rows_per_matrix];
    ty.quantize(&values(k * rows_per_matrix, 1), &mut one)
        .expect("quantize");
    let copies = ((mib << 20) / one.len()).max(1);
    let mut map = memmap2::MmapMut::map_anon(one.len() * copies).expect("memory");
    #[cfg(target_os = "linux")]
    let _ = map.advise(memmap2::Advice::HugePage);
    for c in map.chunks_exact_mut(one.len()) {
        c.copy_from_slice(&one);
    }
    let at = ty.vec_dot_type();
    let mut a = vec![0u8; at.row_bytes(k).expect("whole blocks")];
    at.from_float(&values(k, 2), &mut a).expect("activations");
    let rows = rows_per_matrix * copies;
    let mut out = vec![0f32; rows];
    const CHUNK: usize = orcinus_quant::matmul::ROWS_PER_TASK;

    let mut pass = |use_many: bool| -> f64 {
        let t = Instant::now();
        pool.install(|| {
            out.par_chunks_mut(CHUNK).enumerate().for_each(|(c, o)| {
                let w = &map[c * CHUNK * rb..(c * CHUNK + o.len()) * rb];
                if use_many {
                    many(w, &a, o);
                } else {
                    for (j, o) in o.iter_mut().enumerate() {
                        *o = single(&w[j * rb..(j + 1) * rb], &a);
                    }
                }
            })
        });
        (rows * rb) as f64 / t.elapsed().as_secs_f64() / 1e9
    };
    pass(true);
    pass(false);
    let (mut m, mut s, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
    for p in 0..passes {
        // Alternate which side goes first.
        let (x, y) = if p % 2 == 0 {
            let x = pass(true);
            (x, pass(false))
        } else {
            let y = pass(false);
            (pass(true), y)
        };
        m.push(x);
        s.push(y);
        ratio.push(x / y);
    }
    println!(
        "{} {isa} {threads} thread(s), {:.0} MiB: many-rows {:.2} GB/s, row by row {:.2} GB/s, \
         paired ratio {:.3} (range {:.3}-{:.3})",
        ty.name(),
        (rows * rb) as f64 / (1u64 << 20) as f64,
        median(&m),
        median(&s),
        median(&ratio),
        ratio.iter().copied().fold(f64::MAX, f64::min),
        ratio.iter().copied().fold(f64::MIN, f64::max),
    );
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
