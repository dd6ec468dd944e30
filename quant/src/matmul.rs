//! `QMatMul`: the one boundary every model matmul goes through.
//!
//! This is the straightforward reference implementation: each weight row is dequantized with
//! the type table's reference dequantizer into a scratch row and dotted in f32 with every
//! activation row. The speed work replaces what happens behind [`QMatMul::forward`] without
//! changing its callers.

use std::ops::Range;
use std::sync::Arc;

use rayon::prelude::*;

use crate::{GgmlType, QuantError};

/// Something that owns weight bytes (a memory-mapped GGUF file, or a `Vec<u8>` in tests).
pub trait WeightStorage: Send + Sync {
    /// All the bytes; a [`QMatMul`] refers to a range of them.
    fn bytes(&self) -> &[u8];
}

impl WeightStorage for Vec<u8> {
    fn bytes(&self) -> &[u8] {
        self
    }
}

/// A quantized weight matrix `W` of `n` rows by `k` columns (GGUF `ne = [k, n]`: each row of
/// `k` values is contiguous), computing `y = x · Wᵀ` for `m` activation rows.
#[derive(Clone)]
pub struct QMatMul {
    storage: Arc<dyn WeightStorage>,
    range: Range<usize>,
    ty: GgmlType,
    k: usize,
    n: usize,
}

impl std::fmt::Debug for QMatMul {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "QMatMul({} {}x{})", self.ty, self.n, self.k)
    }
}

/// Rows of `W` handled by one task: enough work to amortise scheduling, small enough to
/// balance across threads.
const ROWS_PER_TASK: usize = 32;

impl QMatMul {
    /// A matrix over `storage.bytes()[range]`, which must hold exactly `n` rows of `k`
    /// elements of type `ty`.
    pub fn new(
        storage: Arc<dyn WeightStorage>,
        range: Range<usize>,
        ty: GgmlType,
        k: usize,
        n: usize,
    ) -> Result<Self, QuantError> {
        let row = ty.row_bytes(k)?;
        let expected = row.checked_mul(n).ok_or(QuantError::Overflow)?;
        let got = range.len();
        if got != expected || range.end > storage.bytes().len() {
            return Err(QuantError::LengthMismatch {
                ty,
                what: "weight bytes",
                expected,
                got,
            });
        }
        Ok(QMatMul {
            storage,
            range,
            ty,
            k,
            n,
        })
    }

    /// Input width (columns of `W`).
    pub fn k(&self) -> usize {
        self.k
    }

    /// Output width (rows of `W`).
    pub fn n(&self) -> usize {
        self.n
    }

    /// Weight type.
    pub fn ty(&self) -> GgmlType {
        self.ty
    }

    fn data(&self) -> &[u8] {
        &self.storage.bytes()[self.range.clone()]
    }

    /// Dequantizes row `j` into `out` (`out.len() == k`).
    pub fn dequantize_row(&self, j: usize, out: &mut [f32]) -> Result<(), QuantError> {
        let rb = self.ty.row_bytes(self.k)?;
        if j >= self.n {
            return Err(QuantError::LengthMismatch {
                ty: self.ty,
                what: "row index",
                expected: self.n,
                got: j,
            });
        }
        self.ty.dequantize(&self.data()[j * rb..(j + 1) * rb], out)
    }

    /// `y[t][j] = Σᵢ x[t][i] · W[j][i]` for `m` rows of `x` (`x.len() == m·k`,
    /// `y.len() == m·n`), on `pool`.
    pub fn forward(
        &self,
        x: &[f32],
        m: usize,
        y: &mut [f32],
        pool: &rayon::ThreadPool,
    ) -> Result<(), QuantError> {
        let (k, n) = (self.k, self.n);
        for (what, expected, got) in [("activations", m * k, x.len()), ("output", m * n, y.len())] {
            if expected != got {
                return Err(QuantError::LengthMismatch {
                    ty: self.ty,
                    what,
                    expected,
                    got,
                });
            }
        }
        let rb = self.ty.row_bytes(k)?;
        let data = self.data();
        let ty = self.ty;
        // Each task fills `yt[j][t]` for its rows (transposed), so tasks own disjoint slices.
        let run = |yt: &mut [f32]| {
            pool.install(|| {
                yt.par_chunks_mut(ROWS_PER_TASK * m)
                    .enumerate()
                    .for_each_init(
                        || vec![0f32; k],
                        |row, (c, out)| {
                            let j0 = c * ROWS_PER_TASK;
                            for (r, o) in out.chunks_exact_mut(m).enumerate() {
                                let j = j0 + r;
                                // Lengths were checked above, so this cannot fail.
                                let _ = ty.dequantize(&data[j * rb..(j + 1) * rb], row);
                                for (t, ot) in o.iter_mut().enumerate() {
                                    *ot = dot(row, &x[t * k..(t + 1) * k]);
                                }
                            }
                        },
                    );
            })
        };
        if m == 1 {
            run(y);
        } else {
            let mut yt = vec![0f32; m * n];
            run(&mut yt);
            for j in 0..n {
                for t in 0..m {
                    y[t * n + j] = yt[j * m + t];
                }
            }
        }
        Ok(())
    }
}

/// f32 dot product with eight independent accumulators (vectorizes on every target).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_naive_f64() {
        let (k, n, m) = (64, 70, 3);
        let w: Vec<f32> = (0..k * n)
            .map(|i| ((i * 7919) % 101) as f32 / 50.0 - 1.0)
            .collect();
        let x: Vec<f32> = (0..k * m)
            .map(|i| ((i * 31) % 17) as f32 / 8.0 - 1.0)
            .collect();
        for ty in [GgmlType::F32, GgmlType::F16, GgmlType::Q8_0, GgmlType::Q4_0] {
            let mut bytes = vec![0u8; ty.row_bytes(k * n).unwrap()];
            ty.quantize(&w, &mut bytes).unwrap();
            let mut wd = vec![0f32; k * n];
            ty.dequantize(&bytes, &mut wd).unwrap();
            let len = bytes.len();
            let mm = QMatMul::new(Arc::new(bytes), 0..len, ty, k, n).unwrap();
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(2)
                .build()
                .unwrap();
            for mm_m in [1, m] {
                let mut y = vec![0f32; mm_m * n];
                mm.forward(&x[..mm_m * k], mm_m, &mut y, &pool).unwrap();
                for t in 0..mm_m {
                    for j in 0..n {
                        let want: f64 = (0..k)
                            .map(|i| wd[j * k + i] as f64 * x[t * k + i] as f64)
                            .sum();
                        assert!((y[t * n + j] as f64 - want).abs() < 1e-4, "{ty} t{t} j{j}");
                    }
                }
            }
            assert!(mm.forward(&x, 2, &mut vec![0f32; 2 * n], &pool).is_err());
        }
    }
}
