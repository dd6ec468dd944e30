//! Shared by the ggml oracle tests: ggml's one-time initialisation and the input rows (random
//! and hand-made adversarial ones) that the tests run through both implementations.
#![allow(dead_code)] // each test file uses its own part

use ggml_sys_bleedingedge as ggml;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::Once;

/// Elements per test row: four K-quant super-blocks, 32 legacy blocks.
pub const ROW: usize = 1024;

/// `GGML_FP16_TO_FP32` in ggml-quants.c reads `ggml_table_f32_f16` on x86, which only
/// `ggml_init` fills; call it once, with a context that allocates nothing.
pub fn init_ggml() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let params = ggml::ggml_init_params {
            mem_size: 1024,
            mem_buffer: std::ptr::null_mut(),
            no_alloc: true,
        };
        // SAFETY: ggml_init with a null buffer allocates its own `mem_size` bytes; the context
        // is freed at once, the fp16 table it filled is a static that stays.
        unsafe {
            let ctx = ggml::ggml_init(params);
            assert!(!ctx.is_null(), "ggml_init failed");
            ggml::ggml_free(ctx);
        }
    });
}

/// One input row and the name it is reported under.
pub struct Case {
    /// What the row is, for reports.
    pub name: String,
    /// The values, a whole number of super-blocks, all finite.
    pub x: Vec<f32>,
    /// Whole blocks of subnormals or tiny normals, so that the reciprocal of a block scale
    /// overflows. The legacy quantizers go on (we follow them, see `formats::c_f32_to_i8`);
    /// ggml's K-quant quantizers abort the process on `nearest_int`'s assertion
    /// (`fval <= 4194303.f`, b2757 ggml-quants.c:1020), so these rows are outside their domain.
    pub tiny_scales: bool,
}

pub fn case(name: impl Into<String>, x: Vec<f32>) -> Case {
    assert_eq!(x.len() % 256, 0);
    assert!(x.iter().all(|v| v.is_finite()));
    Case {
        name: name.into(),
        x,
        tiny_scales: false,
    }
}

pub fn tiny_case(name: &str, x: Vec<f32>) -> Case {
    Case {
        tiny_scales: true,
        ..case(name, x)
    }
}

/// Box–Muller; one standard normal.
pub fn gauss(rng: &mut ChaCha8Rng) -> f32 {
    let u1: f64 = 1.0 - rng.gen::<f64>();
    let u2: f64 = rng.gen();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

/// Random rows: several distributions, each at scales 1e-3 .. 1e3, fixed seeds. Values stay
/// within ±50 before scaling, so minima and scales fit an f16 at every scale.
pub fn random_cases() -> Vec<Case> {
    type Dist = fn(&mut ChaCha8Rng) -> f32;
    let dists: [(&str, Dist); 5] = [
        ("uniform", |r| r.gen_range(-1.0f32..1.0)),
        ("gaussian", gauss),
        // Ratio of a normal and a uniform: Cauchy-like tails, capped at ±50.
        ("heavy_tailed", |r| {
            let g = gauss(r);
            (g / r.gen_range(0.02f32..1.0)).clamp(-50.0, 50.0)
        }),
        ("positive", |r| r.gen_range(0.0f32..1.0)),
        // Mostly small, now and then a 30x outlier (as in real activations).
        ("outliers", |r| {
            let g = gauss(r);
            if r.gen_range(0..64) == 0 {
                (g * 30.0).clamp(-50.0, 50.0)
            } else {
                g
            }
        }),
    ];
    let scales = [1e-3f32, 0.1, 1.0, 37.0, 1e3];
    let mut cases = Vec::new();
    for (di, (dname, dist)) in dists.iter().enumerate() {
        for (si, &scale) in scales.iter().enumerate() {
            let mut rng = ChaCha8Rng::seed_from_u64((di * 100 + si) as u64);
            for row in 0..16 {
                let x = (0..ROW).map(|_| dist(&mut rng) * scale).collect();
                cases.push(case(format!("{dname} scale={scale:e} row={row}"), x));
            }
        }
    }
    // A different scale in every 32-block, from 1e-3 to 1e3.
    let mut rng = ChaCha8Rng::seed_from_u64(999);
    for row in 0..6 {
        let mut x = vec![0.0f32; ROW];
        for b in x.chunks_mut(32) {
            let s = 10f32.powf(rng.gen_range(-3.0..3.0));
            b.iter_mut().for_each(|v| *v = gauss(&mut rng) * s);
        }
        cases.push(case(format!("blockwise_scales row={row}"), x));
    }
    cases
}

/// Blocks whose values sit exactly on rounding ties of each legacy quantizer (the scale comes
/// out a power of two, so `x * id` is exact), scaled by powers of two and negated.
pub fn ties_row() -> Vec<f32> {
    let patterns: [fn(usize) -> f32; 5] = [
        // Q4_0: max -8, d = 1: x + 8.5 is an integer for half-integer x.
        |j| if j == 0 { -8.0 } else { j as f32 * 0.5 - 8.0 },
        // Q4_1: min 0, max 15, d = 1.
        |j| match j {
            0 => 0.0,
            1 => 15.0,
            _ => (j % 15) as f32 + 0.5,
        },
        // Q5_0: max -16, d = 1.
        |j| if j == 0 { -16.0 } else { j as f32 - 15.5 },
        // Q5_1: min 0, max 31, d = 1.
        |j| match j {
            0 => 0.0,
            1 => 31.0,
            _ => (j - 2) as f32 + 0.5,
        },
        // Q8_0 (amax 127, d = 1) and Q8_K (max -127, iscale 1): every x.5 is a tie.
        |j| {
            if j == 0 {
                -127.0
            } else {
                (j as f32 - 15.0) * 8.0 + 0.5
            }
        },
    ];
    let mut x = Vec::with_capacity(ROW);
    for sign in [1.0f32, -1.0] {
        for scale in [1.0f32, 0.0625, 64.0] {
            for p in &patterns {
                x.extend((0..32).map(|j| sign * scale * p(j)));
            }
        }
    }
    x.resize(ROW, 0.0);
    x
}

/// Blocks whose f32 scale lies exactly halfway between two f16 values (and just beside).
pub fn f16_scale_ties_row(rng: &mut ChaCha8Rng) -> Vec<f32> {
    // (steps of the grid, whether the format has a minimum)
    let formats = [
        (8.0f32, false),
        (15.0, true),
        (16.0, false),
        (31.0, true),
        (127.0, false),
    ];
    let mut x = Vec::with_capacity(ROW);
    let mut b = 0;
    while x.len() < ROW {
        let (steps, has_min) = formats[b % formats.len()];
        // 1 + (2m+1)/2048 is halfway between two f16 neighbours of 1.
        let c = 1.0 + (2 * (b / formats.len() % 3) + 1) as f32 / 2048.0;
        let top = steps * c * 2f32.powi(b as i32 % 7 - 3);
        let block: Vec<f32> = (0..32)
            .map(|j| match (j, has_min) {
                (0, true) => 0.0,
                (1, true) => top,
                (_, true) => rng.gen_range(0.0..top),
                (0, false) => -top,
                (_, false) => rng.gen_range(-top..top) * 0.999,
            })
            .collect();
        x.extend(block);
        b += 1;
    }
    x
}

/// Hand-made rows at the edges of the quantizers.
pub fn adversarial_cases() -> Vec<Case> {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut cases = vec![case("all_zeros", vec![0.0; ROW])];

    // One huge value among small ones, in every block and super-block, both signs.
    let mut x: Vec<f32> = (0..ROW).map(|_| gauss(&mut rng) * 1e-3).collect();
    for (i, v) in x.iter_mut().enumerate() {
        if i % 97 == 13 {
            *v = if i % 2 == 0 { 6.0e4 } else { -6.0e4 };
        }
    }
    cases.push(case("one_huge_among_small", x));

    // Largest magnitudes whose scales and minima still fit an f16 (65504).
    let x = (0..ROW)
        .map(|_| rng.gen_range(3.0e4f32..6.0e4) * if rng.gen() { 1.0 } else { -1.0 })
        .collect();
    cases.push(case("large_random_signs", x));
    let x = (0..ROW)
        .map(|i| if i % 3 == 0 { -65504.0 } else { 65504.0 })
        .collect();
    cases.push(case("f16_max", x));

    // Subnormals, and tiny normals: 1/d overflows in the legacy quantizers (C's conversion of
    // inf/NaN to int8_t is undefined there; we follow x86-64, see formats::c_f32_to_i8).
    let subnormal = |rng: &mut ChaCha8Rng| {
        f32::from_bits(rng.gen_range(1u32..0x0080_0000) | (rng.gen::<u32>() & 1 << 31))
    };
    let x = (0..ROW).map(|_| subnormal(&mut rng)).collect();
    cases.push(tiny_case("subnormals", x));
    let x = (0..ROW)
        .map(|_| f32::from_bits(rng.gen_range(1u32..0x400)) * if rng.gen() { 1.0 } else { -1.0 })
        .collect();
    cases.push(tiny_case("smallest_subnormals", x));
    let x = (0..ROW).map(|_| gauss(&mut rng) * 1e-38).collect();
    cases.push(tiny_case("tiny_normals", x));
    // Subnormals beside a normal value in every 16 (the smallest K-quant sub-block), so that
    // every block scale has a finite reciprocal: valid input for all types.
    let x = (0..ROW)
        .map(|i| match i % 16 {
            0 => gauss(&mut rng) * 1e-30,
            5 => gauss(&mut rng),
            _ => subnormal(&mut rng),
        })
        .collect();
    cases.push(case("subnormals_among_normals", x));

    // All equal, per row and per block.
    cases.push(case("all_equal_positive", vec![0.7; ROW]));
    cases.push(case("all_equal_negative", vec![-3.0; ROW]));
    let x = (0..ROW).map(|i| ((i / 32) as f32 - 15.5) * 0.37).collect();
    cases.push(case("blockwise_constant", x));

    // Alternating signs, equal and varying magnitudes.
    let x = (0..ROW)
        .map(|i| if i % 2 == 0 { 1.0 } else { -1.0 })
        .collect();
    cases.push(case("alternating_equal", x));
    let x = (0..ROW)
        .map(|i| (1.0 + (i % 7) as f32) * if i % 2 == 0 { 0.5 } else { -0.5 })
        .collect();
    cases.push(case("alternating_varying", x));

    // A single nonzero element in the row, and one per 32-block at varying positions.
    let mut x = vec![0.0f32; ROW];
    x[37] = -2.5;
    cases.push(case("single_nonzero", x));
    let mut x = vec![0.0f32; ROW];
    for b in 0..ROW / 32 {
        let sign = if b % 3 == 0 { -1.0 } else { 1.0 };
        x[b * 32 + (b * 7) % 32] = sign * (b + 1) as f32 * 0.3;
    }
    cases.push(case("one_nonzero_per_block", x));

    cases.push(case("rounding_ties", ties_row()));
    // Near ties: shifted by an inexact offset (so `x - min` and `x * id` round), and nudged by
    // a few ulps; which side of the tie each lands on depends on the exact float op order.
    for offset in [0.1f32, -0.3, 1.7, 1e-3] {
        let x = ties_row().iter().map(|v| v + offset).collect();
        cases.push(case(format!("near_ties offset={offset}"), x));
    }
    for round in 0..4 {
        let x = ties_row()
            .iter()
            .map(|&v| {
                let ulps = rng.gen_range(-3i32..=3);
                if v == 0.0 {
                    v
                } else {
                    f32::from_bits(v.to_bits().wrapping_add_signed(ulps))
                }
            })
            .collect();
        cases.push(case(format!("near_ties nudged round={round}"), x));
    }
    cases.push(case("f16_scale_ties", f16_scale_ties_row(&mut rng)));
    cases
}
