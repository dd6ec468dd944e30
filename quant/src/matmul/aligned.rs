//! [`AlignedF32`]: `f32` buffers that start on a cache line, for the matrix products' outputs.

use std::ops::{Deref, DerefMut};

/// Floats per 64-byte cache line.
const LINE_F32S: usize = 16;

/// One 64-byte cache line of floats: the unit [`AlignedF32`] allocates in, so that its data
/// starts on a line boundary.
#[repr(C, align(64))]
#[derive(Clone, Copy, bytemuck::Zeroable, bytemuck::Pod)]
struct Line([f32; LINE_F32S]);

/// A zeroed `f32` buffer whose first element sits on a 64-byte boundary (a cache line);
/// it dereferences to `[f32]`.
///
/// Meant for the outputs of [`QMatMul`](crate::QMatMul)'s prefill products: its GEMM writes
/// each token's results in runs of [`GEMM_ROWS`](crate::kernels::gemm::GEMM_ROWS) = 32
/// floats (128 bytes) starting at multiples of 32 columns. With an aligned output whose rows
/// are a multiple of 16 floats long, each run is two whole cache lines that no other task
/// writes; with the 16-byte alignment of a plain (large) `Vec<f32>` it touches three, two of
/// them shared with the neighbouring column tiles, which other threads may be writing at the
/// same time.
#[derive(Clone, Default)]
pub struct AlignedF32 {
    lines: Vec<Line>,
    len: usize,
}

impl AlignedF32 {
    /// `len` zeros.
    pub fn zeroed(len: usize) -> Self {
        Self {
            lines: vec![bytemuck::Zeroable::zeroed(); len.div_ceil(LINE_F32S)],
            len,
        }
    }
}

impl std::fmt::Debug for AlignedF32 {
    /// As the `[f32]` it holds.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Deref for AlignedF32 {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        &bytemuck::cast_slice::<Line, f32>(&self.lines)[..self.len]
    }
}

impl DerefMut for AlignedF32 {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut bytemuck::cast_slice_mut::<Line, f32>(&mut self.lines)[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_on_a_line_and_holds_len_zeros() {
        for len in [1, 15, 16, 17, 32 * 576, 512 * 1536 + 3] {
            let mut b = AlignedF32::zeroed(len);
            assert_eq!(b.len(), len);
            assert_eq!((*b).len(), len);
            let through_mut: &mut [f32] = &mut b;
            assert_eq!(through_mut.len(), len);
            assert_eq!(b.as_ptr() as usize % 64, 0, "len {len}");
            assert!(b.iter().all(|&v| v == 0.0));
            b[len - 1] = 2.5;
            assert_eq!(b.iter().sum::<f32>(), 2.5);
            let c = b.clone();
            assert_eq!(c.as_ptr() as usize % 64, 0, "clone, len {len}");
            assert_eq!(&*c, &*b);
        }
        assert_eq!(format!("{:?}", AlignedF32::zeroed(2)), "[0.0, 0.0]");
        let empty = AlignedF32::default();
        assert!(empty.is_empty());
        assert!(AlignedF32::zeroed(0).is_empty());
    }
}
