//! Helpers shared by the examples that time `QMatMul` (`mod common;` in each).

use std::time::{Duration, Instant};

/// Deterministic weight-like values (a cheap hash mapped to [-1, 1)).
pub fn values(len: usize, seed: u64) -> Vec<f32> {
    (0..len as u64)
        .map(|i| {
            let h = (i ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15))
                .wrapping_mul(0xbf58_476d_1ce4_e5b9)
                .rotate_left(31)
                .wrapping_mul(0x94d0_49bb_1331_11eb);
            (h >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// Best wall time of `f` over enough runs to fill ~0.5 s (at least 3).
pub fn best_of(mut f: impl FnMut()) -> Duration {
    f(); // warm-up
    let mut best = Duration::MAX;
    let start = Instant::now();
    let mut runs = 0;
    while runs < 3 || start.elapsed() < Duration::from_millis(500) {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed());
        runs += 1;
    }
    best
}
