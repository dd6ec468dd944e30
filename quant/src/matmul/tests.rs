//! Tests of `QMatMul`: every path against the scalar reference and ggml's bits.

use super::*;

fn pool() -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap()
}

/// `n x k` weights quantized to `ty`, with their dequantized values.
fn matrix(ty: GgmlType, w: &[f32], k: usize, n: usize) -> (QMatMul, Vec<f32>) {
    let mut bytes = vec![0u8; ty.row_bytes(k * n).unwrap()];
    ty.quantize(w, &mut bytes).unwrap();
    let mut wd = vec![0f32; k * n];
    ty.dequantize(&bytes, &mut wd).unwrap();
    let len = bytes.len();
    (QMatMul::new(Arc::new(bytes), 0..len, ty, k, n).unwrap(), wd)
}

/// Deterministic values in [-1, 1) with some larger ones.
fn values(len: usize, seed: usize) -> Vec<f32> {
    (0..len)
        .map(|i| {
            let v = ((i * 7919 + seed * 104_729) % 1009) as f32 / 504.5 - 1.0;
            if (i + seed).is_multiple_of(37) {
                v * 6.0
            } else {
                v
            }
        })
        .collect()
}

#[test]
fn forward_f32_matches_naive_f64() {
    let (k, n, m) = (64, 70, 3);
    let w = values(k * n, 1);
    let x = values(k * m, 2);
    let pool = pool();
    for ty in [GgmlType::F32, GgmlType::F16, GgmlType::Q8_0, GgmlType::Q4_0] {
        let (mm, wd) = matrix(ty, &w, k, n);
        for mm_m in [1, m] {
            let mut y = vec![0f32; mm_m * n];
            mm.forward_f32(&x[..mm_m * k], mm_m, &mut y, &pool).unwrap();
            for t in 0..mm_m {
                for j in 0..n {
                    let want: f64 = (0..k)
                        .map(|i| wd[j * k + i] as f64 * x[t * k + i] as f64)
                        .sum();
                    assert!((y[t * n + j] as f64 - want).abs() < 1e-4, "{ty} t{t} j{j}");
                }
            }
        }
        assert!(mm
            .forward_f32(&x, 2, &mut vec![0f32; 2 * n], &pool)
            .is_err());
    }
}

/// `forward` is, bit for bit, one dot product by the kernel of the current instruction
/// set per output of a weight row with the activation row quantized by `from_float`, for
/// every type, m = 1 and m > 1 (5: the four-row paths and their remainder); and within
/// float rounding of the scalar reference `vec_dot`.
#[test]
fn forward_is_vec_dot_of_quantized_activations() {
    let (k, n, m) = (512, 37, 5);
    let w = values(k * n, 3);
    let x = values(k * m, 4);
    let pool = pool();
    for ty in GgmlType::all() {
        let (mm, _) = matrix(ty, &w, k, n);
        let rb = ty.row_bytes(k).unwrap();
        let weights = mm.data();
        for mm_m in [1, m] {
            let mut y = vec![f32::NAN; mm_m * n];
            mm.forward(&x[..mm_m * k], mm_m, &mut y, &pool).unwrap();
            if !ty.has_vec_dot() {
                let mut want = vec![0f32; mm_m * n];
                mm.forward_f32(&x[..mm_m * k], mm_m, &mut want, &pool)
                    .unwrap();
                assert_eq!(y, want, "{ty}: falls back to forward_f32");
                continue;
            }
            let at = ty.vec_dot_type();
            let kernel = kernels::vec_dot_for(ty, kernels::isa()).unwrap();
            let mut xq = vec![0u8; at.row_bytes(k).unwrap()];
            let mut xd = vec![0f32; k];
            let mut wd = vec![0f32; k];
            assert!(mm_m < GEMM_MIN_M, "the GEMM has its own test");
            for t in 0..mm_m {
                at.from_float(&x[t * k..(t + 1) * k], &mut xq).unwrap();
                at.dequantize(&xq, &mut xd).unwrap();
                for j in 0..n {
                    let w = &weights[j * rb..(j + 1) * rb];
                    let got = y[t * n + j];
                    let want = kernel(w, &xq);
                    assert_eq!(got.to_bits(), want.to_bits(), "{ty} t{t} j{j}");
                    let scalar = ty.vec_dot(w, &xq, k).unwrap();
                    ty.dequantize(w, &mut wd).unwrap();
                    let mag: f64 = wd.iter().zip(&xd).map(|(w, a)| (w * a).abs() as f64).sum();
                    let diff = (got as f64 - scalar as f64).abs();
                    assert!(
                        diff <= 1e-5 * mag,
                        "{ty} t{t} j{j}: {got} vs scalar {scalar}"
                    );
                }
            }
        }
    }
}

/// From [`GEMM_MIN_M`] rows on, the types with a GEMM go through it where the CPU has
/// one: every output within float rounding (1e-6 of the sum of |products|) of the
/// kernel's dot product of the weight row with the quantized activation row, for token
/// counts around the micro-kernels' groups of three, six and eight, row lengths of 2, 9
/// and 56 super-blocks (the tiles run in chunks of four), and row counts around the
/// packed tile of sixteen and the call's two (37, 40: one full call and a part of a
/// half; 50: a full call and a call with a partial second half);
/// with weights of every quant value (random bytes) and activations at the extremes of
/// their type (Q8_K's -128 included); for every instruction set with a GEMM. The legacy types
/// must give the scalar reference's bits, also on rows of 576
/// elements (SmolLM2's width: two packed super-blocks and one of two blocks).
#[test]
fn gemm_within_rounding_of_vec_dot() {
    let pool = pool();
    // Passes of at most 1 MiB of activations: the 14336-wide rows (Mistral's ffn_down)
    // take the GEMM in two passes (70 tokens: 35 + 35; 71: 36 + 35).
    GEMM_CHUNK_LIMIT.with(|l| l.set(1 << 20));
    let shapes: [(usize, &[(usize, usize)]); 3] = [
        (
            512,
            &[(37, GEMM_MIN_M), (16, 13), (5, 21), (40, 9), (50, 11)],
        ),
        // Nine super-blocks: full chunks of them, then a partial one.
        (2304, &[(16, 13)]),
        (14336, &[(16, 70), (50, 70), (16, 71)]),
    ];
    let legacy = [
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q8_0,
    ];
    let narrow: (usize, &[(usize, usize)]) = (576, &[(37, 9), (16, 16)]);
    for (ty, (k, shapes)) in [GgmlType::Q4K, GgmlType::Q5K, GgmlType::Q6K]
        .into_iter()
        .chain(legacy)
        .flat_map(|ty| shapes.map(|s| (ty, s)))
        .chain(legacy.map(|ty| (ty, narrow)))
    {
        let rb = ty.row_bytes(k).unwrap();
        if k == 14336 {
            let arb = ty.vec_dot_type().row_bytes(k).unwrap();
            assert_eq!(gemm_pass_tokens(70, arb, gemm_chunk_limit()), 35, "{ty}");
        }
        for &(n, m) in shapes {
            // Random weight bytes (every quant and scale pattern) with sane f16 scales.
            let mut bytes: Vec<u8> = (0..n * rb)
                .map(|i| ((i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as u8)
                .collect();
            let bs = ty.block_size();
            let (nb, bb) = (n * k / bs, ty.row_bytes(bs).unwrap());
            for b in 0..nb {
                let blk = &mut bytes[b * bb..(b + 1) * bb];
                let scale = half::f16::from_f32(0.001 + (b % 7) as f32 * 1e-3).to_le_bytes();
                let at = if ty == GgmlType::Q6K { bb - 2 } else { 0 };
                blk[at..at + 2].copy_from_slice(&scale);
                if matches!(
                    ty,
                    GgmlType::Q4K | GgmlType::Q5K | GgmlType::Q4_1 | GgmlType::Q5_1
                ) {
                    blk[2..4].copy_from_slice(&scale);
                }
            }
            let len = bytes.len();
            let mm = QMatMul::new(Arc::new(bytes), 0..len, ty, k, n).unwrap();
            // Activations: ordinary values, and rows whose Q8_K quants hit -128/127.
            let mut x = values(k * m, 9);
            for (t, row) in x.chunks_mut(k).enumerate() {
                if t % 3 == 1 {
                    for (i, v) in row.iter_mut().enumerate() {
                        *v = if i % 2 == 0 { -1.0 } else { 127.0 / 128.0 };
                    }
                }
            }
            let isas: Vec<kernels::Isa> = kernels::available_isas()
                .iter()
                .copied()
                .filter(|&isa| kernels::gemm_tile_for(ty, isa).is_some())
                .collect();
            #[cfg(target_arch = "x86_64")]
            if std::is_x86_feature_detected!("avx2") {
                assert!(isas.contains(&kernels::Isa::Avx2), "{ty}: no AVX2 GEMM");
            }
            if kernels::has_avx512_vnni() {
                assert!(isas.contains(&kernels::Isa::Avx512), "{ty}: no VNNI GEMM");
            }
            if kernels::available_isas().contains(&kernels::Isa::AvxVnni) {
                assert!(
                    isas.contains(&kernels::Isa::AvxVnni),
                    "{ty}: no AVX-VNNI GEMM"
                );
            }
            for isa in isas {
                let mut y = vec![f32::NAN; m * n];
                mm.forward_isa(isa, &x, m, &mut y, &pool).unwrap();
                let at = ty.vec_dot_type();
                let kernel = kernels::vec_dot_for(ty, isa).unwrap();
                let mut xq = vec![0u8; at.row_bytes(k).unwrap()];
                let (mut xd, mut wd) = (vec![0f32; k], vec![0f32; k]);
                for t in 0..m {
                    at.from_float(&x[t * k..(t + 1) * k], &mut xq).unwrap();
                    at.dequantize(&xq, &mut xd).unwrap();
                    for j in 0..n {
                        let w = &mm.data()[j * rb..(j + 1) * rb];
                        let want = kernel(w, &xq);
                        ty.dequantize(w, &mut wd).unwrap();
                        let mag: f64 = wd.iter().zip(&xd).map(|(w, a)| (w * a).abs() as f64).sum();
                        let got = y[t * n + j];
                        if legacy.contains(&ty) {
                            // Block by block in f32 as the scalar reference: its bits.
                            let scalar = ty.vec_dot(w, &xq, k).unwrap();
                            assert_eq!(got.to_bits(), scalar.to_bits(), "{ty} {isa} t{t} j{j}");
                        }
                        assert!(
                            (got as f64 - want as f64).abs() <= 1e-6 * mag,
                            "{ty} {isa} n{n} m{m} t{t} j{j}: {got} vs {want} (|products| {mag})"
                        );
                    }
                }
            }
        }
    }
}

/// GEMM passes: as few as the limit allows, the tokens shared evenly; at least
/// [`GEMM_MIN_M`] tokens allowed per pass, however long the rows (then over the limit).
#[test]
fn gemm_passes_are_even() {
    assert_eq!(gemm_pass_tokens(512, 16352, GEMM_CHUNK_BYTES), 512);
    assert_eq!(gemm_pass_tokens(600, 16352, GEMM_CHUNK_BYTES), 300);
    assert_eq!(gemm_pass_tokens(256, 4672, 1 << 20), 128);
    assert_eq!(gemm_pass_tokens(225, 4672, 1 << 20), 113);
    assert_eq!(gemm_pass_tokens(224, 4672, 1 << 20), 224);
    assert_eq!(gemm_pass_tokens(20, 1 << 20, 1 << 20), GEMM_MIN_M - 1);
    assert_eq!(gemm_pass_tokens(8, 1 << 30, 1 << 20), GEMM_MIN_M);
    assert_eq!(gemm_pass_tokens(1, 64, 1 << 20), 1);
}

/// A weight row's GEMM output does not depend on where it sits in a call: rows 0..16 and
/// 16..32 of a 40-row matrix (one 32-row call, whose two packed tiles the AVX-512 VNNI
/// kernel runs together, then an 8-row call) give the bits of the same rows as matrices
/// of their own (16-row calls, one tile), for every instruction set with a GEMM.
#[test]
fn gemm_row_bits_do_not_depend_on_the_call() {
    let pool = pool();
    let (k, n, m) = (1024, 40, 20);
    for ty in [GgmlType::Q4K, GgmlType::Q5K, GgmlType::Q6K, GgmlType::Q8_0] {
        let rb = ty.row_bytes(k).unwrap();
        let mut w = vec![0u8; n * rb];
        ty.from_float(&values(n * k, 5), &mut w).unwrap();
        let x = values(m * k, 6);
        let whole = QMatMul::new(Arc::new(w.clone()), 0..w.len(), ty, k, n).unwrap();
        for &isa in kernels::available_isas() {
            if kernels::gemm_tile_for(ty, isa).is_none() {
                continue;
            }
            let mut y = vec![f32::NAN; m * n];
            whole.forward_isa(isa, &x, m, &mut y, &pool).unwrap();
            for r0 in [0, 16] {
                let part = w[r0 * rb..(r0 + 16) * rb].to_vec();
                let len = part.len();
                let mm = QMatMul::new(Arc::new(part), 0..len, ty, k, 16).unwrap();
                let mut yp = vec![f32::NAN; m * 16];
                mm.forward_isa(isa, &x, m, &mut yp, &pool).unwrap();
                for t in 0..m {
                    for i in 0..16 {
                        let (a, b) = (y[t * n + r0 + i], yp[t * 16 + i]);
                        assert_eq!(a.to_bits(), b.to_bits(), "{ty} {isa} t{t} row {}", r0 + i);
                    }
                }
            }
        }
    }
}

/// `forward` and `forward_f32` differ by the activation rounding only: for each output at
/// most `Σ |w_i| · e_i`, `e_i` the bound on the rounding of `x_i` in the activation type
/// (half a step of its block, plus the f16 rounding of the Q8_0/Q8_1 scale), plus f32
/// summation error.
#[test]
fn forward_close_to_forward_f32() {
    let (k, n, m) = (1024, 24, 4);
    let w = values(k * n, 5);
    let mut x = values(k * m, 6);
    // One block of activations 1000 times smaller than the rest.
    x[256..288].iter_mut().for_each(|v| *v *= 1e-3);
    let pool = pool();
    for ty in GgmlType::all() {
        let (mm, wd) = matrix(ty, &w, k, n);
        let (mut y, mut y32) = (vec![0f32; m * n], vec![0f32; m * n]);
        mm.forward(&x, m, &mut y, &pool).unwrap();
        mm.forward_f32(&x, m, &mut y32, &pool).unwrap();
        let at = ty.vec_dot_type();
        let block = at.block_size();
        let mut worst = 0f64;
        for t in 0..m {
            let xt = &x[t * k..(t + 1) * k];
            // Per-element bound on |x_i - x̂_i|.
            let e: Vec<f64> = xt
                .chunks(block)
                .flat_map(|b| {
                    let amax = b.iter().fold(0f64, |a, v| a.max(v.abs() as f64));
                    b.iter().map(move |&v| match at {
                        GgmlType::F32 => 0.0,
                        GgmlType::F16 => v.abs() as f64 * 2f64.powi(-11),
                        GgmlType::BF16 => v.abs() as f64 * 2f64.powi(-8),
                        // Half a step, plus 127 steps of f16 scale rounding (2^-11).
                        GgmlType::Q8_0 | GgmlType::Q8_1 => amax / 127.0 * (0.5 + 127.0 / 2048.0),
                        _ => amax / 127.0 * 0.5,
                    })
                })
                .collect();
            for j in 0..n {
                let wj = &wd[j * k..(j + 1) * k];
                let bound: f64 = wj.iter().zip(&e).map(|(w, e)| w.abs() as f64 * e).sum();
                let mag: f64 = wj.iter().zip(xt).map(|(w, x)| (w * x).abs() as f64).sum();
                let diff = (y[t * n + j] as f64 - y32[t * n + j] as f64).abs();
                assert!(
                    diff <= bound + 1e-5 * mag,
                    "{ty} t{t} j{j}: {} vs {} (bound {bound})",
                    y[t * n + j],
                    y32[t * n + j]
                );
                worst = worst.max(diff / (bound + 1e-5 * mag));
            }
        }
        eprintln!("{ty}: worst |forward - forward_f32| / bound = {worst:.3}");
    }
}

#[test]
fn shape_errors_and_empty() {
    let (mm, _) = matrix(GgmlType::Q4K, &values(256 * 4, 7), 256, 4);
    let pool = pool();
    let x = values(256 * 2, 8);
    assert!(mm.forward(&x, 1, &mut [0f32; 4], &pool).is_err());
    assert!(mm.forward(&x, 2, &mut [0f32; 4], &pool).is_err());
    mm.forward(&[], 0, &mut [], &pool).unwrap();
    let empty = QMatMul::new(Arc::new(Vec::new()), 0..0, GgmlType::Q4K, 256, 0).unwrap();
    empty.forward(&x, 2, &mut [], &pool).unwrap();
    // No rows and enough tokens for the GEMM (whose passes split the output by rows).
    empty
        .forward(&values(256 * GEMM_MIN_M, 9), GEMM_MIN_M, &mut [], &pool)
        .unwrap();
    let zero_k = QMatMul::new(Arc::new(Vec::new()), 0..0, GgmlType::Q8_0, 0, 3).unwrap();
    let mut y = [1f32; 6];
    zero_k.forward(&[], 2, &mut y, &pool).unwrap();
    assert_eq!(y, [0.0; 6]);
}

/// The GEMM's `aux` (widened activations, activation sums) cached in a `MatMulScratch` belongs
/// to the activations it was computed from: on one scratch, groups of matrices that share a
/// weight type (Q8_0, Q4_0, Q6_K: non-empty `aux`) on new activations of the same shape give
/// `forward`'s bits, call after call, on every instruction set.
#[test]
fn gemm_aux_follows_the_activations() {
    let pool = pool();
    let (k, m) = (256, 12);
    let mut scratch = MatMulScratch::new();
    for ty in [GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q6K] {
        let a = matrix(ty, &values(k * 40, 1), k, 40).0;
        let b = matrix(ty, &values(k * 24, 2), k, 24).0;
        for &isa in kernels::available_isas() {
            for call in 0..3 {
                let x = values(m * k, 30 + call);
                let (mut wa, mut wb) = (vec![0f32; m * 40], vec![0f32; m * 24]);
                a.forward_isa(isa, &x, m, &mut wa, &pool).unwrap();
                b.forward_isa(isa, &x, m, &mut wb, &pool).unwrap();
                let (mut ga, mut gb) = (vec![f32::NAN; m * 40], vec![f32::NAN; m * 24]);
                forward_shared_isa(
                    isa,
                    [&a, &b],
                    &x,
                    m,
                    [&mut ga, &mut gb],
                    &pool,
                    &mut scratch,
                )
                .unwrap();
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&ga), bits(&wa), "{ty} {isa} call {call}: first");
                assert_eq!(bits(&gb), bits(&wb), "{ty} {isa} call {call}: second");
            }
        }
    }
}

/// `forward_shared` gives each matrix `forward`'s bits, for a group mixing activation types
/// (Q8_K, Q8_0, F32's own) and a type with no dot product (Q8_K weights: `forward_f32`), on
/// every instruction set, in decode (one loop over all rows) and with several tokens (the
/// multi-row kernels, the GEMM); one scratch reused across calls of different sizes.
#[test]
fn forward_shared_is_forward_per_matrix() {
    let pool = pool();
    let k = 512;
    let types = [
        GgmlType::Q4K,
        GgmlType::Q8_0,
        GgmlType::Q6K,
        GgmlType::F32,
        GgmlType::Q8K,
    ];
    let rows = [70, 33, 5, 40, 9];
    let mats: Vec<QMatMul> = types
        .iter()
        .zip(rows)
        .enumerate()
        .map(|(i, (&ty, n))| matrix(ty, &values(k * n, 10 + i), k, n).0)
        .collect();
    let mut scratch = MatMulScratch::new();
    for &isa in kernels::available_isas() {
        for m in [1, 3, 12, 1] {
            let x = values(m * k, 20 + m);
            let mut want: Vec<Vec<f32>> = rows.iter().map(|&n| vec![0f32; m * n]).collect();
            for (mm, y) in mats.iter().zip(&mut want) {
                mm.forward_isa(isa, &x, m, y, &pool).unwrap();
            }
            let mut got: Vec<Vec<f32>> = rows.iter().map(|&n| vec![f32::NAN; m * n]).collect();
            let [a, b, c, d, e] = &mut got[..] else {
                unreachable!()
            };
            let group = [&mats[0], &mats[1], &mats[2], &mats[3], &mats[4]];
            forward_shared_isa(isa, group, &x, m, [a, b, c, d, e], &pool, &mut scratch).unwrap();
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                let same = g.iter().zip(w).all(|(p, q)| p.to_bits() == q.to_bits());
                assert!(same, "{isa} m{m} matrix {i} ({})", types[i]);
            }
            // The first three alone: in decode, all rows in one loop where each type has a
            // many-rows kernel (the five above fall back to one matrix after the other).
            let mut got3: Vec<Vec<f32>> =
                rows[..3].iter().map(|&n| vec![f32::NAN; m * n]).collect();
            let [a, b, c] = &mut got3[..] else {
                unreachable!()
            };
            let group = [&mats[0], &mats[1], &mats[2]];
            forward_shared_isa(isa, group, &x, m, [a, b, c], &pool, &mut scratch).unwrap();
            assert_eq!(got3, want[..3], "{isa} m{m}: three matrices");
            // The same bits through one matrix's `forward_with` and the shared scratch.
            let mut y = vec![f32::NAN; m * rows[2]];
            if isa == kernels::isa() {
                mats[2]
                    .forward_with(&x, m, &mut y, &pool, &mut scratch)
                    .unwrap();
                assert_eq!(y, want[2], "{isa} m{m} forward_with");
            }
        }
    }
    // An empty matrix first does not stand in for the quantization of the next one of its
    // activation type (a fresh scratch: nothing left from the calls above).
    let empty = matrix(GgmlType::Q4K, &[], k, 0).0;
    let x = values(k, 30);
    let mut want = vec![0f32; rows[0]];
    mats[0].forward(&x, 1, &mut want, &pool).unwrap();
    let mut got = vec![f32::NAN; rows[0]];
    let group = [&empty, &mats[0]];
    let mut fresh = MatMulScratch::new();
    forward_shared(group, &x, 1, [&mut [], &mut got], &pool, &mut fresh).unwrap();
    assert_eq!(got, want, "after an empty matrix");
    let best = kernels::isa();
    assert!(
        best == kernels::Isa::Scalar
            || types[..3]
                .iter()
                .all(|&t| kernels::vec_dot_many_for(t, best).is_some()),
        "the one-loop decode path ran"
    );
    // A wrong output length is an error, before anything runs.
    let (mut y0, mut y1) = (vec![0f32; 70], vec![0f32; 32]);
    let x = values(k, 1);
    let r = forward_shared(
        [&mats[0], &mats[1]],
        &x,
        1,
        [&mut y0, &mut y1],
        &pool,
        &mut scratch,
    );
    assert!(r.is_err());
}
