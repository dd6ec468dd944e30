//! `QMatMul`: the one boundary every model matmul goes through.
//!
//! [`QMatMul::forward`] computes as llama.cpp's CPU backend does: each activation row is
//! quantized once to the weight type's activation type ([`GgmlType::vec_dot_type`], with
//! [`kernels::from_float_for`], which has [`GgmlType::from_float`]'s bits: Q8_0, Q8_1, Q8_K,
//! or F16/BF16/F32 for the float types), then every
//! output is one dot product of a weight row with a quantized activation row: the kernel of
//! [`kernels::isa`] ([`kernels::vec_dot_for`]; the scalar [`GgmlType::vec_dot`] when forced
//! with `ORCINUS_ISA=scalar` or where no SIMD kernel exists). With several activation rows,
//! the multi-row kernel ([`kernels::vec_dot_rows_for`]) dots each weight block with four
//! activation rows at once, with the same bits; from [`GEMM_MIN_M`] rows on, the types with a
//! GEMM ([`kernels::gemm_tile_for`]: the K-quants and the legacy types Q4_0, Q4_1, Q5_0,
//! Q5_1, Q8_0, on AVX2, AVX-VNNI and AVX-512) go through it instead: the same exact integer
//! sums, a different float order (the legacy types: the scalar reference's bits). With one activation
//! row (the decode step) each weight row is one call of the single-row kernel, so every task
//! streams its rows front to back (a kernel that took four weight rows per call was slower on
//! AMD Zen 4: stop 14's note). So the outputs carry llama.cpp's activation rounding, not only
//! the weights'.
//! [`QMatMul::forward_f32`] keeps the earlier reference: weight rows dequantized to f32 and
//! dotted with the unrounded f32 activations.
//!
//! A model's pass uses [`QMatMul::forward_with`] and [`forward_shared`] with a
//! [`MatMulScratch`] it keeps: the same bits, with the quantized activations in reused buffers
//! (no allocation per call), and one quantization and, in decode, one parallel loop for the
//! matrices that share an input.
//!
//! Preconditions (lengths, block multiples) are checked here, once per call; the kernels behind
//! them assume them.

use std::ops::Range;
use std::sync::Arc;

use rayon::prelude::*;

use crate::{formats, kernels, GgmlType, QuantError};

mod aligned;
pub use aligned::AlignedF32;

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

/// Activation rows from which [`QMatMul::forward`] uses the GEMM (where the weight type and
/// instruction set have one) rather than the multi-row dot products.
pub const GEMM_MIN_M: usize = 8;

/// Most bytes of quantized activations one GEMM pass takes (see [`QMatMul::forward`]): 8 MiB,
/// inside the L3 cache of most CPUs (512 tokens of a 14336-wide Q8_K row are 8.37 MB: one
/// pass; 600 take two). Every pass unpacks all the weights again, which costs about as much
/// as running 8 to 16 tokens through them (50-100 cycles per row and super-block against
/// about 6 per token): passes sized for the L2 cache instead (1 MiB, 64 tokens of that row)
/// made 7B pp512 6% slower, and reading each pass's activations from L3 costs nothing
/// measurable (each 32-row tile reads them once, a few GB/s per core) as long as each
/// token's super-block is one contiguous run: an extra cache line per token and
/// super-block cost the AVX-512 Q6_K tile 15% (see `kernels::gemm::vnni_aux`).
const GEMM_CHUNK_BYTES: usize = 8 << 20;

/// How many tokens ahead the copy of a GEMM tile's results prefetches its destination.
const COPY_AHEAD: usize = 8;

/// Tokens per GEMM pass for `m` activation rows of `row_bytes` bytes: as few passes as keep
/// each within `limit` bytes, the tokens shared evenly among them (a short last pass would
/// pay a whole unpacking of the weights for a few tokens). A pass may take up to
/// [`GEMM_MIN_M`] rows whatever their size, so rows longer than `limit / GEMM_MIN_M` bytes
/// go over `limit` (and evenly shared passes may then hold fewer than [`GEMM_MIN_M`]).
fn gemm_pass_tokens(m: usize, row_bytes: usize, limit: usize) -> usize {
    debug_assert!(m > 0, "no tokens");
    let most = (limit / row_bytes.max(1)).max(GEMM_MIN_M);
    m.div_ceil(m.div_ceil(most).max(1))
}

#[cfg(test)]
thread_local! {
    /// A smaller [`GEMM_CHUNK_BYTES`] for the tests on this thread (passes of a few
    /// tokens).
    static GEMM_CHUNK_LIMIT: std::cell::Cell<usize> =
        const { std::cell::Cell::new(GEMM_CHUNK_BYTES) };
}

/// [`GEMM_CHUNK_BYTES`], or the calling test's own limit (read on the calling thread, before
/// any work goes to the pool).
#[cfg(test)]
fn gemm_chunk_limit() -> usize {
    GEMM_CHUNK_LIMIT.with(|l| l.get())
}

/// [`GEMM_CHUNK_BYTES`].
#[cfg(not(test))]
fn gemm_chunk_limit() -> usize {
    GEMM_CHUNK_BYTES
}

/// A `&mut [f32]` shared by parallel tasks that each write their own disjoint parts of it
/// (the GEMM's tiles of columns, the attention's rows): `Send` and `Sync`, unlike the borrow.
#[derive(Clone, Copy)]
pub struct SharedMut<'a> {
    ptr: *mut f32,
    len: usize,
    _borrow: std::marker::PhantomData<&'a mut [f32]>,
}
// SAFETY: a `SharedMut` is built from a `&mut [f32]` it keeps borrowed, and hands out parts of
// it only through `part`, whose callers promise that no two live parts overlap.
unsafe impl Send for SharedMut<'_> {}
// SAFETY: as above.
unsafe impl Sync for SharedMut<'_> {}

impl<'a> SharedMut<'a> {
    /// Shares `s` for as long as it is borrowed.
    pub fn new(s: &'a mut [f32]) -> Self {
        Self {
            ptr: s.as_mut_ptr(),
            len: s.len(),
            _borrow: std::marker::PhantomData,
        }
    }

    /// Elements `range` of the shared slice (panics if they are outside it).
    ///
    /// # Safety
    /// While the returned slice lives, no other part handed out by this `SharedMut` (or a
    /// copy of it) may overlap `range`.
    pub unsafe fn part(self, range: Range<usize>) -> &'a mut [f32] {
        assert!(
            range.start <= range.end && range.end <= self.len,
            "part out of bounds"
        );
        // SAFETY: inside the borrowed slice (checked); exclusive by the caller's promise.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(range.start), range.len()) }
    }

    /// Asks the CPU to bring the cache lines of elements `range` in, meant for writing (a
    /// hint: it reads and writes nothing, and does nothing off x86-64 or outside the slice).
    /// `_MM_HINT_ET0` would be a `prefetchw`, but without the `prfchw` target feature
    /// (unstable in Rust) the compiler emits a plain `prefetcht0`; a `prefetchw` through
    /// inline assembly measured no better (the copy's share of a SmolLM2 Q8_0 AVX2 prefill
    /// profile 2.5–2.8% either way, with aligned outputs).
    #[inline]
    pub fn prefetch_write(self, range: Range<usize>) {
        #[cfg(target_arch = "x86_64")]
        if range.start < range.end && range.end <= self.len {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_ET0};
            // SAFETY: a prefetch never faults; both addresses are inside the slice.
            unsafe {
                _mm_prefetch::<_MM_HINT_ET0>(self.ptr.add(range.start).cast());
                _mm_prefetch::<_MM_HINT_ET0>(self.ptr.add(range.end - 1).cast());
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = range;
    }
}

/// Buffers for [`QMatMul::forward_with`] and [`forward_shared`]: the quantized activations,
/// one buffer per activation type, kept between calls (a session owns one, so its decode
/// loop allocates nothing here once the buffers have grown to the largest batch); and the
/// GEMM's `aux` of the activations last quantized, per weight type (prefill only).
#[derive(Debug, Default)]
pub struct MatMulScratch {
    /// Per activation type: `m` quantized rows, in u64s so that every block type's alignment
    /// holds (the kernels view them as blocks without a copy); `.2` is their length in bytes.
    bufs: Vec<(GgmlType, Vec<u64>, usize)>,
    /// Per weight type and instruction set: the GEMM's `aux` of the activations last
    /// quantized ([`kernels::gemm_aux_for`]), so that matrices sharing them (a layer's query,
    /// key and value projections) compute it once. Emptied by every quantization.
    aux: Vec<(GgmlType, kernels::Isa, Vec<i32>)>,
}

impl MatMulScratch {
    /// Empty buffers (they grow on first use).
    pub fn new() -> Self {
        Self::default()
    }

    /// Quantizes the `m` rows of `k` values `x` to `at` by `isa`'s quantizer into the buffer
    /// for `at` (on `pool` when there are several rows).
    fn quantize(
        &mut self,
        at: GgmlType,
        isa: kernels::Isa,
        x: &[f32],
        m: usize,
        k: usize,
        pool: &rayon::ThreadPool,
    ) -> Result<(), QuantError> {
        let arb = at.row_bytes(k)?;
        let len = m.checked_mul(arb).ok_or(QuantError::Overflow)?;
        self.aux.clear();
        let slot = match self.bufs.iter().position(|b| b.0 == at) {
            Some(i) => i,
            None => {
                self.bufs.push((at, Vec::new(), 0));
                self.bufs.len() - 1
            }
        };
        let (_, words, used) = &mut self.bufs[slot];
        if words.len() * 8 < len {
            words.resize(len.div_ceil(8), 0);
        }
        *used = len;
        let xq = &mut bytemuck::cast_slice_mut::<u64, u8>(words)[..len];
        let from_float = kernels::from_float_for(at, isa);
        if m == 1 {
            from_float(x, xq);
        } else {
            pool.install(|| {
                xq.par_chunks_mut(arb)
                    .zip(x.par_chunks(k))
                    .for_each(|(q, x)| from_float(x, q))
            });
        }
        Ok(())
    }

    /// The activations last quantized to `at`.
    fn get(&self, at: GgmlType) -> &[u8] {
        quantized(&self.bufs, at)
    }
}

/// [`MatMulScratch::get`] on its buffers alone (so that its `aux` can be borrowed apart).
fn quantized(bufs: &[(GgmlType, Vec<u64>, usize)], at: GgmlType) -> &[u8] {
    let (_, words, used) = bufs
        .iter()
        .find(|b| b.0 == at)
        .expect("activations quantized before use");
    &bytemuck::cast_slice::<u64, u8>(words)[..*used]
}

/// Activation rows per task when [`gemm_aux`] runs on the pool.
const AUX_ROWS_PER_TASK: usize = 16;

/// [`kernels::gemm_aux_for`] of the `m` rows `xq` (`arb` bytes each) for weights of type
/// `ty`, on `pool` in parts of [`AUX_ROWS_PER_TASK`] rows (each row's part of `aux` depends on
/// that row alone), kept in `cache` for the next matrix of the same type and instruction set.
fn gemm_aux<'c>(
    cache: &'c mut Vec<(GgmlType, kernels::Isa, Vec<i32>)>,
    ty: GgmlType,
    isa: kernels::Isa,
    xq: &[u8],
    (m, k, arb): (usize, usize, usize),
    pool: &rayon::ThreadPool,
) -> &'c [i32] {
    let i = match cache.iter().position(|c| c.0 == ty && c.1 == isa) {
        Some(i) => i,
        None => {
            debug_assert_eq!(xq.len(), m * arb);
            // Most types take no `aux` (an empty one): found on the first row, without
            // forking.
            let aux = if kernels::gemm_aux_for(ty, isa, &xq[..arb.min(xq.len())], 1, k).is_empty() {
                Vec::new()
            } else {
                let parts: Vec<Vec<i32>> = pool.install(|| {
                    xq.par_chunks(AUX_ROWS_PER_TASK * arb)
                        .map(|x| kernels::gemm_aux_for(ty, isa, x, x.len() / arb, k))
                        .collect()
                });
                parts.concat()
            };
            cache.push((ty, isa, aux));
            cache.len() - 1
        }
    };
    &cache[i].2
}

/// `ys[i] = x · mats[i]ᵀ` for matrices that take the same input (a layer's query, key and
/// value projections; its gate and up projections), each exactly as [`QMatMul::forward`]
/// computes it (the same bits), with `x` quantized once per activation type rather than
/// once per matrix. In decode (`m == 1`) the rows of all the matrices run in one parallel
/// loop, so the group costs one fork and join instead of one per matrix, and the small
/// matrices (a 7B model's key and value projections are 1024 rows) share the threads with
/// the large ones.
pub fn forward_shared<const N: usize>(
    mats: [&QMatMul; N],
    x: &[f32],
    m: usize,
    ys: [&mut [f32]; N],
    pool: &rayon::ThreadPool,
    scratch: &mut MatMulScratch,
) -> Result<(), QuantError> {
    forward_shared_isa(kernels::isa(), mats, x, m, ys, pool, scratch)
}

/// [`forward_shared`] with the kernels of `isa` (as [`QMatMul::forward_isa`]).
pub fn forward_shared_isa<const N: usize>(
    isa: kernels::Isa,
    mats: [&QMatMul; N],
    x: &[f32],
    m: usize,
    ys: [&mut [f32]; N],
    pool: &rayon::ThreadPool,
    scratch: &mut MatMulScratch,
) -> Result<(), QuantError> {
    for (mm, y) in mats.iter().zip(&ys) {
        mm.check_shapes(x, m, y)?;
    }
    // Each activation type once (shapes checked: every matrix has x's row length).
    for (i, mm) in mats.iter().enumerate() {
        let at = mm.ty.vec_dot_type();
        let seen = mats[..i]
            .iter()
            .any(|o| o.quantizes(isa) && o.ty.vec_dot_type() == at);
        if mm.quantizes(isa) && !seen {
            scratch.quantize(at, isa, x, m, mm.k, pool)?;
        }
    }
    let many: [Option<kernels::VecDotManyFn>; N] =
        mats.map(|mm| kernels::vec_dot_many_for(mm.ty, isa).filter(|_| mm.k > 0));
    if m == 1 && many.iter().all(Option::is_some) {
        // One loop over every matrix's tasks of ROWS_PER_TASK rows, in order.
        let tasks = mats.map(|mm| mm.n.div_ceil(ROWS_PER_TASK));
        let total: usize = tasks.iter().sum();
        let outs = ys.map(SharedMut::new);
        let scratch = &*scratch;
        pool.install(|| {
            (0..total).into_par_iter().for_each(|mut c| {
                let mut i = 0;
                while c >= tasks[i] {
                    c -= tasks[i];
                    i += 1;
                }
                let mm = mats[i];
                let rb = mm.ty.row_bytes(mm.k).expect("checked by QMatMul::new");
                let j0 = c * ROWS_PER_TASK;
                let j1 = (j0 + ROWS_PER_TASK).min(mm.n);
                // SAFETY: task `c` of matrix `i` alone writes its rows `j0..j1`.
                let out = unsafe { outs[i].part(j0..j1) };
                let many = many[i].expect("checked above");
                many(
                    &mm.data()[j0 * rb..j1 * rb],
                    scratch.get(mm.ty.vec_dot_type()),
                    out,
                );
            })
        });
        return Ok(());
    }
    for (mm, y) in mats.into_iter().zip(ys) {
        mm.forward_quantized_or_not(isa, x, m, y, pool, scratch)?;
    }
    Ok(())
}

/// Rows of `W` handled by one task: enough work to amortise scheduling, small enough to
/// balance across threads. In decode (one activation row) also the rows of one many-rows
/// kernel call ([`crate::kernels::vec_dot_many_for`]).
pub const ROWS_PER_TASK: usize = 32;

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

    /// Checks `x.len() == m·k` and `y.len() == m·n`.
    fn check_shapes(&self, x: &[f32], m: usize, y: &[f32]) -> Result<(), QuantError> {
        let (k, n) = (self.k, self.n);
        let mk = m.checked_mul(k).ok_or(QuantError::Overflow)?;
        let mn = m.checked_mul(n).ok_or(QuantError::Overflow)?;
        for (what, expected, got) in [("activations", mk, x.len()), ("output", mn, y.len())] {
            if expected != got {
                return Err(QuantError::LengthMismatch {
                    ty: self.ty,
                    what,
                    expected,
                    got,
                });
            }
        }
        Ok(())
    }

    /// `y[t][j] = Σᵢ x[t][i] · W[j][i]` for `m` rows of `x` (`x.len() == m·k`,
    /// `y.len() == m·n`), on `pool`, as llama.cpp computes it: each row of `x` quantized once
    /// to [`GgmlType::vec_dot_type`] with [`GgmlType::from_float`]'s bits (a SIMD quantizer
    /// where one exists, [`kernels::from_float_for`]), each output one dot
    /// product by the kernel of [`kernels::isa`] (bit-identical for m = 1 and m > 1 below
    /// [`GEMM_MIN_M`]; from there, where a GEMM exists, within float rounding). For Q8_1
    /// and Q8_K weights, which have no dot product (nor in ggml), this is
    /// [`QMatMul::forward_f32`].
    ///
    /// With many rows (prefill), give `y` as an [`AlignedF32`] when `n` is a multiple of 16:
    /// the GEMM then writes whole cache lines of its own (see there).
    pub fn forward(
        &self,
        x: &[f32],
        m: usize,
        y: &mut [f32],
        pool: &rayon::ThreadPool,
    ) -> Result<(), QuantError> {
        self.forward_isa(kernels::isa(), x, m, y, pool)
    }

    /// [`QMatMul::forward`] with the kernels of `isa` rather than of [`kernels::isa`] (the
    /// scalar reference where the CPU lacks `isa`): for benchmarks and tests comparing
    /// instruction sets in one process.
    pub fn forward_isa(
        &self,
        isa: kernels::Isa,
        x: &[f32],
        m: usize,
        y: &mut [f32],
        pool: &rayon::ThreadPool,
    ) -> Result<(), QuantError> {
        self.forward_in(isa, x, m, y, pool, &mut MatMulScratch::new())
    }

    /// [`QMatMul::forward`] with the quantized activations in `scratch`'s buffers, which
    /// grow to the largest call and are then reused: no allocation per call in a decode loop.
    pub fn forward_with(
        &self,
        x: &[f32],
        m: usize,
        y: &mut [f32],
        pool: &rayon::ThreadPool,
        scratch: &mut MatMulScratch,
    ) -> Result<(), QuantError> {
        self.forward_in(kernels::isa(), x, m, y, pool, scratch)
    }

    fn forward_in(
        &self,
        isa: kernels::Isa,
        x: &[f32],
        m: usize,
        y: &mut [f32],
        pool: &rayon::ThreadPool,
        scratch: &mut MatMulScratch,
    ) -> Result<(), QuantError> {
        self.check_shapes(x, m, y)?;
        if self.quantizes(isa) {
            scratch.quantize(self.ty.vec_dot_type(), isa, x, m, self.k, pool)?;
        }
        self.forward_quantized_or_not(isa, x, m, y, pool, scratch)
    }

    /// Whether [`QMatMul::forward`] quantizes the activations for this matrix: it has a dot
    /// product and is not empty.
    fn quantizes(&self, isa: kernels::Isa) -> bool {
        !self.needs_f32(isa) && self.k > 0 && self.n > 0
    }

    /// The rest of [`QMatMul::forward`] once `scratch` holds `x` quantized where
    /// [`QMatMul::quantizes`]: [`QMatMul::forward_f32`], zeros for an empty matrix, or the
    /// dot products of the quantized activations.
    fn forward_quantized_or_not(
        &self,
        isa: kernels::Isa,
        x: &[f32],
        m: usize,
        y: &mut [f32],
        pool: &rayon::ThreadPool,
        scratch: &mut MatMulScratch,
    ) -> Result<(), QuantError> {
        if self.needs_f32(isa) {
            self.forward_f32(x, m, y, pool)
        } else if !self.quantizes(isa) {
            y.fill(0.0);
            Ok(())
        } else {
            let xq = quantized(&scratch.bufs, self.ty.vec_dot_type());
            self.forward_quantized(isa, xq, m, y, pool, &mut scratch.aux)
        }
    }

    /// Whether this type has no dot product (Q8_1, Q8_K weights, nor in ggml), so that
    /// [`QMatMul::forward`] is [`QMatMul::forward_f32`].
    fn needs_f32(&self, isa: kernels::Isa) -> bool {
        kernels::vec_dot_for(self.ty, isa).is_none()
    }

    /// [`QMatMul::forward`] from the activations already quantized (`xq`: `m` rows of the
    /// activation type), shapes checked, `k` and `n` not zero, and a dot product for the type.
    fn forward_quantized(
        &self,
        isa: kernels::Isa,
        xq: &[u8],
        m: usize,
        y: &mut [f32],
        pool: &rayon::ThreadPool,
        aux_cache: &mut Vec<(GgmlType, kernels::Isa, Vec<i32>)>,
    ) -> Result<(), QuantError> {
        let Some(vec_dot) = kernels::vec_dot_for(self.ty, isa) else {
            unreachable!("checked by the callers (needs_f32)");
        };
        let vec_dot_rows = kernels::vec_dot_rows_for(self.ty, isa).filter(|_| m > 1);
        let k = self.k;
        let rb = self.ty.row_bytes(k)?;
        let at = self.ty.vec_dot_type();
        let arb = at.row_bytes(k)?;
        debug_assert_eq!(xq.len(), m * arb);
        let data = self.data();
        if !self.ty.is_quantized() && m > 1 && kernels::simd_vec_dot(self.ty, isa).is_none() {
            // F32/F16/BF16 without a SIMD kernel: the scalar reference's dot products,
            // computed four activation rows at a time on rows converted to f32 once (exactly),
            // rather than one `vec_dot` per pair.
            let mut xa = vec![0f32; m * k];
            (at.info().dequantize)(xq, &mut xa);
            let dequantize = self.ty.info().dequantize;
            self.run_rows(
                m,
                y,
                pool,
                || vec![0f32; k],
                |row, j, o| {
                    dequantize(&data[j * rb..(j + 1) * rb], row);
                    formats::float::dot_f64_rows(row, &xa, o);
                },
            );
            return Ok(());
        }
        let gemm = kernels::gemm_tile_for(self.ty, isa).filter(|_| m >= GEMM_MIN_M);
        if let Some(gemm) = gemm {
            // Tokens in passes whose quantized activations stay in the L3 cache while every
            // weight tile runs over them (each tile reads all of a pass's activations).
            let aux = gemm_aux(aux_cache, self.ty, isa, xq, (m, k, arb), pool);
            let aux_row = aux.len() / m;
            let chunk = gemm_pass_tokens(m, arb, gemm_chunk_limit());
            for (c, (xq, y)) in xq
                .chunks(chunk * arb)
                .zip(y.chunks_mut(chunk * self.n))
                .enumerate()
            {
                let rows = xq.len() / arb;
                let aux = &aux[c * chunk * aux_row..(c * chunk + rows) * aux_row];
                self.run_gemm(gemm, rows, xq, aux, y, pool);
            }
            return Ok(());
        }
        if m == 1 {
            if let Some(many) = kernels::vec_dot_many_for(self.ty, isa) {
                // Decode: each task's rows in one kernel call (same bits as `vec_dot`).
                pool.install(|| {
                    y.par_chunks_mut(ROWS_PER_TASK)
                        .enumerate()
                        .for_each(|(c, out)| {
                            let j0 = c * ROWS_PER_TASK;
                            many(&data[j0 * rb..(j0 + out.len()) * rb], xq, out);
                        })
                });
                return Ok(());
            }
        }
        if let Some(vec_dot_rows) = vec_dot_rows {
            // Tokens in groups of four (the remainder in one smaller group): each weight block
            // unpacked once per group.
            let group = kernels::MAX_ROWS;
            self.run_rows(
                m,
                y,
                pool,
                || (),
                |_, j, o| {
                    let w = &data[j * rb..(j + 1) * rb];
                    for (o, a) in o.chunks_mut(group).zip(xq.chunks(group * arb)) {
                        vec_dot_rows(w, a, o);
                    }
                },
            );
            return Ok(());
        }
        self.run_rows(
            m,
            y,
            pool,
            || (),
            |_, j, o| {
                let w = &data[j * rb..(j + 1) * rb];
                for (ot, a) in o.iter_mut().zip(xq.chunks_exact(arb)) {
                    *ot = vec_dot(w, a);
                }
            },
        );
        Ok(())
    }

    /// `y = x · Wᵀ` by the GEMM tile function `gemm`, one tile of
    /// [`kernels::gemm::GEMM_ROWS`] weight rows per task, `xq` being the `m` quantized
    /// activation rows and `aux` their [`kernels::gemm_aux_for`].
    fn run_gemm(
        &self,
        gemm: kernels::GemmTileFn,
        m: usize,
        xq: &[u8],
        aux: &[i32],
        y: &mut [f32],
        pool: &rayon::ThreadPool,
    ) {
        use kernels::gemm::GEMM_ROWS;
        let (n, rb) = (self.n, self.data().len() / self.n);
        let data = self.data();
        let out = SharedMut::new(y);
        pool.install(|| {
            (0..n.div_ceil(GEMM_ROWS)).into_par_iter().for_each_init(
                // Aligned so that the tile's vector loads and stores of its rows (128
                // bytes each) never straddle two cache lines.
                || (Vec::new(), AlignedF32::zeroed(m * GEMM_ROWS)),
                |(scratch, tile), c| {
                    let j0 = c * GEMM_ROWS;
                    let rows = GEMM_ROWS.min(n - j0);
                    let w = &data[j0 * rb..(j0 + rows) * rb];
                    gemm(w, rows, xq, aux, m, scratch, tile);
                    for (t, o) in tile.chunks_exact(GEMM_ROWS).enumerate() {
                        // The destination rows are far apart and rarely cached: ask for
                        // them ahead so that their misses overlap.
                        let ahead = (t + COPY_AHEAD) * n + j0;
                        out.prefetch_write(ahead..ahead + rows);
                        // SAFETY: each task writes only its own columns `j0..j0 + rows`.
                        let dst = unsafe { out.part(t * n + j0..t * n + j0 + rows) };
                        if let (Ok(d), Ok(s)) = (
                            <&mut [f32; GEMM_ROWS]>::try_from(&mut *dst),
                            <&[f32; GEMM_ROWS]>::try_from(o),
                        ) {
                            // A whole tile: a fixed-size copy the compiler inlines.
                            *d = *s;
                        } else {
                            dst.copy_from_slice(&o[..rows]);
                        }
                    }
                },
            )
        });
    }

    /// The f32 reference for [`QMatMul::forward`]: each weight row dequantized with the
    /// reference dequantizer and dotted in f32 with the unrounded activations (no activation
    /// quantization, so it differs from llama.cpp by the activation rounding). Same contract.
    pub fn forward_f32(
        &self,
        x: &[f32],
        m: usize,
        y: &mut [f32],
        pool: &rayon::ThreadPool,
    ) -> Result<(), QuantError> {
        self.check_shapes(x, m, y)?;
        let k = self.k;
        if k == 0 {
            y.fill(0.0);
            return Ok(());
        }
        let rb = self.ty.row_bytes(k)?;
        let data = self.data();
        let dequantize = self.ty.info().dequantize;
        self.run_rows(
            m,
            y,
            pool,
            || vec![0f32; k],
            |row, j, o| {
                dequantize(&data[j * rb..(j + 1) * rb], row);
                for (ot, x) in o.iter_mut().zip(x.chunks_exact(k)) {
                    *ot = dot(row, x);
                }
            },
        );
        Ok(())
    }

    /// Runs `row_fn(scratch, j, out)` for every weight row `j` on `pool`, `out` being the `m`
    /// outputs `y[0][j], ..., y[m-1][j]`, and scatters them into `y` (`[m][n]`). `scratch` is
    /// made by `init` once per worker. Shapes were checked by the caller.
    fn run_rows<S>(
        &self,
        m: usize,
        y: &mut [f32],
        pool: &rayon::ThreadPool,
        init: impl Fn() -> S + Sync + Send,
        row_fn: impl Fn(&mut S, usize, &mut [f32]) + Sync + Send,
    ) {
        let n = self.n;
        if m == 0 || n == 0 {
            return;
        }
        // Each task fills `yt[j][t]` for its rows (transposed), so tasks own disjoint slices.
        let run = |yt: &mut [f32]| {
            pool.install(|| {
                yt.par_chunks_mut(ROWS_PER_TASK * m)
                    .enumerate()
                    .for_each_init(&init, |scratch, (c, out)| {
                        let j0 = c * ROWS_PER_TASK;
                        for (r, o) in out.chunks_exact_mut(m).enumerate() {
                            row_fn(scratch, j0 + r, o);
                        }
                    });
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
    }
}

/// f32 dot product with eight independent accumulators (vectorizes on every target).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    dot_with(a, b, |y| y)
}

/// [`dot`] with each element of `b` converted by `f` as it is read (the same sums).
#[inline]
pub fn dot_with<T: Copy>(a: &[f32], b: &[T], f: impl Fn(T) -> f32) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * f(y[i]);
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (x, &y) in ra.iter().zip(rb) {
        s += x * f(y);
    }
    s
}

#[cfg(test)]
mod tests;
