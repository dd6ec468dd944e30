//! SIMD kernels, chosen at run time (memchr-style dispatch): dot products, the prefill GEMM,
//! activation quantization, attention, and the exp-based softmax and SwiGLU.
//!
//! [`isa()`] detects the CPU's instruction sets once (cached in a `OnceLock`) and
//! [`vec_dot_for`] hands out, per weight type and [`Isa`], a function with the contract of the
//! scalar reference ([`GgmlType::vec_dot`]): the SIMD kernel where one exists, the scalar
//! reference otherwise. A kernel is only ever handed out for an instruction set the CPU has,
//! so the safe wrappers in `x86/` may call their `#[target_feature]` bodies. Likewise
//! [`vec_dot_rows_for`] (several activation rows), [`gemm_tile_for`] (the GEMM, [`gemm`]),
//! [`from_float_for`] (activation quantization), [`attn::attn_kernels_for`] and
//! [`act::act_kernels_for`].
//!
//! Every SIMD kernel computes the same exact integer sums as the scalar reference of its
//! format (`formats/`); only the order of the float accumulation differs, so results differ
//! from the reference in the last bits (tested in `quant/tests/kernels.rs`).
//!
//! `ORCINUS_ISA=scalar|avx2|avxvnni|avx512` overrides the detection, for debugging and for CI
//! runs of the fallback path. An unknown value, or an instruction set this CPU lacks, falls
//! back to the best available one with a warning on stderr.
//!
//! Layout: `gemm.rs` (the GEMM's packed layout and scalar packing), `attn.rs` (attention
//! kernels' contracts and scalar versions); `x86/avx2.rs` (legacy 32-element types, F16,
//! shared helpers), `x86/avx2_k.rs` (K-quants), `x86/avxvnni.rs` (the AVX-VNNI builds of the
//! 256-bit bodies), `x86/avx512.rs` (512-bit kernels and the AVX512-VNNI builds of the 256-bit
//! ones), `x86/gemm.rs` and `x86/gemm_avx2.rs` (GEMM micro-kernels), `x86/quant.rs` (Q8_K,
//! Q8_0, Q8_1 activation quantization), `x86/attn.rs`. An `aarch64/neon.rs` would sit beside
//! `x86/` and add `Isa::Neon`.

use std::sync::OnceLock;

use crate::formats::{self, VecDot};
use crate::GgmlType;

pub mod act;
pub mod attn;
pub mod gemm;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use crate::types::VecDotFn;

/// A dot product of one weight row (`w`, first) with `out.len()` activation rows (`a`: the
/// rows back to back, each holding as many elements as `w`), writing one result per
/// activation row. Each result has the same bits as the single-row kernel of the same
/// instruction set. `1 <= out.len() <= 4`; lengths are checked by the caller.
pub type VecDotRowsFn = fn(w: &[u8], a: &[u8], out: &mut [f32]);

/// `out[j] = w[j] · a` for `out.len()` consecutive weight rows in `w` and one activation
/// row `a` (decode): a loop over the rows inside one call, so that its set-up is hoisted and
/// no call through a pointer sits between rows. Mostly the single-row kernel's loop; the
/// 256-bit K-quant kernels run one-row bodies of their own (`x86/avx2_decode.rs`), and
/// AVX-512 Q4_K and Q5_K reorder `a` once for all the rows. Each result has the bits of
/// [`vec_dot_for`]'s kernel for the same ISA (`tests/kernels.rs` checks every kernel).
pub type VecDotManyFn = fn(w: &[u8], a: &[u8], out: &mut [f32]);

/// One tile of the quantized GEMM ([`gemm`]): `w` holds `rows` (1 to [`gemm::GEMM_ROWS`])
/// weight rows, `a` holds `m` activation rows of the weight type's
/// [`GgmlType::vec_dot_type`] with as many elements; `out` (`[m][GEMM_ROWS]`) receives
/// `out[t][i] = w[i] · a[t]` (lanes past `rows` are zero), `aux` being
/// [`gemm_aux_for`] of `a`. `scratch` holds the unpacked tile between calls (any
/// contents). Each result is within float rounding of [`vec_dot_for`]'s (the legacy types
/// Q4_0 ... Q8_0: the scalar reference's bits).
pub type GemmTileFn = fn(
    w: &[u8],
    rows: usize,
    a: &[u8],
    aux: &[i32],
    m: usize,
    scratch: &mut Vec<gemm::PackedSb>,
    out: &mut [f32],
);

/// Most activation rows one [`VecDotRowsFn`] call takes.
pub const MAX_ROWS: usize = 4;

/// An instruction set the kernels are built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Isa {
    /// The portable scalar reference code.
    Scalar,
    /// x86-64 AVX2 with FMA and F16C.
    Avx2,
    /// AVX2 (with FMA, F16C) and AVX-VNNI: the VEX-encoded 256-bit `vpdpbusd`/`vpdpwssd` of
    /// client CPUs (Alder Lake on, Zen 5) that may lack AVX-512.
    AvxVnni,
    /// x86-64 AVX-512 F+BW+VL (with AVX2, FMA, F16C); AVX512-VNNI is used where present
    /// (see [`has_avx512_vnni`]).
    Avx512,
}

impl Isa {
    /// The name `ORCINUS_ISA` takes for it.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::AvxVnni => "avxvnni",
            Isa::Avx512 => "avx512",
        }
    }

    /// The instruction set named `name` (case-insensitive), if it is one of ours.
    pub fn from_name(name: &str) -> Option<Isa> {
        [Isa::Scalar, Isa::Avx2, Isa::AvxVnni, Isa::Avx512]
            .into_iter()
            .find(|i| i.name().eq_ignore_ascii_case(name.trim()))
    }
}

impl std::fmt::Display for Isa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The instruction sets this CPU runs, worst first (always starting with [`Isa::Scalar`]).
pub fn available_isas() -> &'static [Isa] {
    static AVAILABLE: OnceLock<Vec<Isa>> = OnceLock::new();
    AVAILABLE.get_or_init(detect)
}

fn detect() -> Vec<Isa> {
    #[allow(unused_mut)]
    let mut isas = vec![Isa::Scalar];
    #[cfg(target_arch = "x86_64")]
    {
        let avx2 = std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
            && std::is_x86_feature_detected!("f16c");
        if avx2 {
            isas.push(Isa::Avx2);
            if std::is_x86_feature_detected!("avxvnni") {
                isas.push(Isa::AvxVnni);
            }
            if std::is_x86_feature_detected!("avx512f")
                && std::is_x86_feature_detected!("avx512bw")
                && std::is_x86_feature_detected!("avx512vl")
            {
                isas.push(Isa::Avx512);
            }
        }
    }
    isas
}

/// Whether the CPU has AVX512-VNNI (`vpdpbusd`, `vpdpwssd`), which the [`Isa::Avx512`]
/// kernels use when present.
pub fn has_avx512_vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static VNNI: OnceLock<bool> = OnceLock::new();
        *VNNI.get_or_init(|| {
            available_isas().contains(&Isa::Avx512) && std::is_x86_feature_detected!("avx512vnni")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// The instruction set to use given the `ORCINUS_ISA` value `requested` and the `available`
/// ones (worst first, non-empty): the requested one if available, else the best available,
/// with a warning to print when the request could not be honoured.
pub fn choose_isa(requested: Option<&str>, available: &[Isa]) -> (Isa, Option<String>) {
    let best = *available.last().unwrap_or(&Isa::Scalar);
    let Some(req) = requested.map(str::trim).filter(|r| !r.is_empty()) else {
        return (best, None);
    };
    match Isa::from_name(req) {
        Some(isa) if available.contains(&isa) => (isa, None),
        Some(isa) => (
            best,
            Some(format!(
                "orcinus: ORCINUS_ISA={req}: this CPU lacks {isa}; using {best}"
            )),
        ),
        None => (
            best,
            Some(format!(
                "orcinus: ORCINUS_ISA={req}: unknown (expected scalar, avx2, avxvnni or avx512); using {best}"
            )),
        ),
    }
}

/// The instruction set the kernels use: the best this CPU has, or `ORCINUS_ISA` if set (read
/// once, at the first call).
pub fn isa() -> Isa {
    static ISA: OnceLock<Isa> = OnceLock::new();
    *ISA.get_or_init(|| {
        let requested = std::env::var("ORCINUS_ISA").ok();
        let (isa, warning) = choose_isa(requested.as_deref(), available_isas());
        if let Some(w) = warning {
            eprintln!("{w}");
        }
        isa
    })
}

/// The dot product of `ty` (weight row first, activation row of [`GgmlType::vec_dot_type`]
/// second, lengths checked by the caller) for `isa`: its SIMD kernel where one exists, the
/// scalar reference otherwise (also for an `isa` this CPU lacks). `None` for the types
/// without a dot product (Q8_1, Q8_K).
pub fn vec_dot_for(ty: GgmlType, isa: Isa) -> Option<VecDotFn> {
    simd_vec_dot(ty, isa).or(ty.info().vec_dot)
}

/// The SIMD kernel of `ty` for `isa`, if there is one and the CPU has `isa`.
pub fn simd_vec_dot(ty: GgmlType, isa: Isa) -> Option<VecDotFn> {
    if !available_isas().contains(&isa) {
        return None;
    }
    #[cfg(target_arch = "x86_64")]
    {
        x86::vec_dot(ty, isa)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = ty;
        None
    }
}

/// The many-weight-rows kernel of `ty` for `isa` ([`VecDotManyFn`]), where one exists and
/// the CPU has `isa`.
pub fn vec_dot_many_for(ty: GgmlType, isa: Isa) -> Option<VecDotManyFn> {
    if !available_isas().contains(&isa) {
        return None;
    }
    #[cfg(target_arch = "x86_64")]
    {
        x86::vec_dot_many(ty, isa)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = ty;
        None
    }
}

/// The multi-row kernel of `ty` for `isa` (one weight row against up to [`MAX_ROWS`]
/// activation rows, each result bit-identical to [`vec_dot_for`]`(ty, isa)`), where one
/// exists and the CPU has `isa`.
pub fn vec_dot_rows_for(ty: GgmlType, isa: Isa) -> Option<VecDotRowsFn> {
    if !available_isas().contains(&isa) {
        return None;
    }
    #[cfg(target_arch = "x86_64")]
    {
        x86::vec_dot_rows(ty, isa)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = ty;
        None
    }
}

/// Quantizes a row of `f32` to the bytes of blocks of one type (lengths checked by the
/// caller).
pub type FromFloatFn = fn(&[f32], &mut [u8]);

/// The activation quantizer (`f32` row to blocks of `at`, bytes) for `isa`: a SIMD one where
/// it exists and the CPU has `isa` (Q8_K), with the reference's bits; the reference
/// ([`GgmlType::from_float`]'s) otherwise.
pub fn from_float_for(at: GgmlType, isa: Isa) -> FromFloatFn {
    #[cfg(target_arch = "x86_64")]
    if available_isas().contains(&isa) {
        if let Some(f) = x86::from_float(at, isa) {
            return f;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = isa;
    at.info().from_float
}

/// The GEMM tile function of `ty` for `isa`, where one exists and the CPU has `isa`.
pub fn gemm_tile_for(ty: GgmlType, isa: Isa) -> Option<GemmTileFn> {
    if !available_isas().contains(&isa) {
        return None;
    }
    #[cfg(target_arch = "x86_64")]
    {
        x86::gemm_tile(ty, isa)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = ty;
        None
    }
}

/// What [`gemm_tile_for`]`(ty, isa)` takes as its `aux`, for the quantized activations `xq`
/// (`m` rows of `k` elements of [`GgmlType::vec_dot_type`]): [`gemm::activation_sums`], or
/// where the tile reads its activations in another form (Q8_0 on AVX2 without VNNI: widened
/// to i16; the K-quants on AVX-512 VNNI: [`gemm::vnni_aux`]), that form. Either is a run of
/// the same length per row, one row after the other, so the `aux` of rows `t0..t1` is that
/// part of the whole (and the rows' parts can be computed apart).
pub fn gemm_aux_for(ty: GgmlType, isa: Isa, xq: &[u8], m: usize, k: usize) -> Vec<i32> {
    #[cfg(target_arch = "x86_64")]
    if available_isas().contains(&isa) {
        if let Some(aux) = x86::gemm_aux(ty, isa) {
            return aux(xq, m, k);
        }
    }
    gemm::activation_sums(ty, xq, m, k)
}

/// A kernel over typed blocks, computing one weight row against `R` activation rows. The
/// bytes-level wrappers below turn it into a [`VecDotFn`] / [`VecDotRowsFn`].
///
/// # Safety
/// `rows` may need CPU features (its implementation says which); implementors are only handed
/// out by the dispatch tables after detecting them.
#[allow(dead_code)]
pub(crate) unsafe trait RowKernel {
    /// The weight block type.
    type W: VecDot;
    /// `out[r] = Σ x·y[r]` (each `y[r]` as long as `x`).
    ///
    /// # Safety
    /// The CPU must have the features the implementation needs.
    unsafe fn rows<const R: usize>(
        x: &[Self::W],
        y: [&[<Self::W as VecDot>::Activation]; R],
    ) -> [f32; R];

    /// `out[j] = x_j · y` for the `out.len()` consecutive rows `x_j` of `x`, each as long as
    /// `y`, with the bits of `rows`: a loop over the rows ([`each_row`]), mostly
    /// [`many_rows!`] (`rows` with one row, with the features of `rows`); the 256-bit
    /// K-quant kernels run one-row bodies of their own, and the AVX-512 Q4_K/Q5_K kernels
    /// prepare `y` first.
    ///
    /// # Safety
    /// As `rows`.
    unsafe fn many(x: &[Self::W], y: &[<Self::W as VecDot>::Activation], out: &mut [f32]);
}

/// [`RowKernel::many`] for an implementation whose `rows` needs `$features`: the loop over
/// the rows ([`each_row`]) compiled with those features, so that the row's body is inlined
/// into it. The body is `rows` with one row, or `$one` (a function of one weight row and the
/// activations, with the bits of `rows`: the 256-bit K-quants' one-row bodies).
macro_rules! many_rows {
    ($features:literal) => {
        $crate::kernels::many_rows!($features, |x, y| Self::rows::<1>(x, [y])[0]);
    };
    ($features:literal, $one:expr) => {
        #[target_feature(enable = $features)]
        unsafe fn many(
            x: &[Self::W],
            y: &[<Self::W as $crate::formats::VecDot>::Activation],
            out: &mut [f32],
        ) {
            $crate::kernels::each_row(x, y, out, |x, y| ($one)(x, y))
        }
    };
}
pub(crate) use many_rows;

/// The loop of a [`RowKernel::many`]: `out[i] = one(row i of x, y)`, each row as long as `y`
/// (`out` zeros where `y` is empty).
///
/// # Panics
/// If `x` does not hold exactly `out.len()` such rows.
#[inline(always)]
pub(crate) fn each_row<W, A>(x: &[W], y: &[A], out: &mut [f32], one: impl Fn(&[W], &[A]) -> f32) {
    let nb = y.len();
    assert!(x.len() == nb * out.len(), "kernel row lengths");
    if nb == 0 {
        out.fill(0.0);
        return;
    }
    for (o, row) in out.iter_mut().zip(x.chunks_exact(nb)) {
        *o = one(row, y);
    }
}

/// [`RowKernel::many`] on bytes: `w` holds `out.len()` rows as long as `y`.
#[allow(dead_code)]
pub(crate) fn vec_dot_many_bytes<K: RowKernel>(w: &[u8], y: &[u8], out: &mut [f32]) {
    formats::with_blocks::<K::W, _>(w, |x| {
        formats::with_blocks(y, |y| {
            // SAFETY: as in `vec_dot_bytes`.
            unsafe { K::many(x, y, out) }
        })
    })
}

/// [`RowKernel::rows`] with one activation row, on bytes.
#[allow(dead_code)]
pub(crate) fn vec_dot_bytes<K: RowKernel>(x: &[u8], y: &[u8]) -> f32 {
    formats::with_blocks::<K::W, _>(x, |x| {
        formats::with_blocks(y, |y| {
            // SAFETY: `K` is only reachable through the dispatch tables, which hand it out
            // after detecting the features it needs.
            unsafe { K::rows::<1>(x, [y])[0] }
        })
    })
}

/// [`RowKernel::rows`] with `out.len()` (1 to 4) activation rows, on bytes.
#[allow(dead_code)]
pub(crate) fn vec_dot_rows_bytes<K: RowKernel>(x: &[u8], y: &[u8], out: &mut [f32]) {
    formats::with_blocks::<K::W, _>(x, |x| {
        formats::with_blocks(y, |y| {
            let nb = x.len();
            let r = |i: usize| &y[i * nb..(i + 1) * nb];
            // SAFETY: as in `vec_dot_bytes`.
            unsafe {
                match out.len() {
                    1 => out.copy_from_slice(&K::rows(x, [r(0)])),
                    2 => out.copy_from_slice(&K::rows(x, [r(0), r(1)])),
                    3 => out.copy_from_slice(&K::rows(x, [r(0), r(1), r(2)])),
                    4 => out.copy_from_slice(&K::rows(x, [r(0), r(1), r(2), r(3)])),
                    n => panic!("vec_dot_rows: {n} rows (1 to {MAX_ROWS})"),
                }
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choose_isa_parses_and_falls_back() {
        let all = [Isa::Scalar, Isa::Avx2, Isa::AvxVnni, Isa::Avx512];
        let scalar_only = [Isa::Scalar];
        assert_eq!(choose_isa(None, &all), (Isa::Avx512, None));
        assert_eq!(choose_isa(Some(""), &all), (Isa::Avx512, None));
        assert_eq!(choose_isa(Some("scalar"), &all), (Isa::Scalar, None));
        assert_eq!(choose_isa(Some("AVX2"), &all), (Isa::Avx2, None));
        assert_eq!(choose_isa(Some("avxvnni"), &all), (Isa::AvxVnni, None));
        assert_eq!(choose_isa(Some("avx512"), &all), (Isa::Avx512, None));
        let (isa, warn) = choose_isa(Some("avx512"), &scalar_only);
        assert_eq!(isa, Isa::Scalar);
        assert!(warn.unwrap().contains("lacks avx512"));
        let (isa, warn) = choose_isa(Some("neon9"), &all[..2]);
        assert_eq!(isa, Isa::Avx2);
        assert!(warn.unwrap().contains("unknown"));
    }

    #[test]
    fn scalar_is_the_reference() {
        for ty in GgmlType::all() {
            assert!(simd_vec_dot(ty, Isa::Scalar).is_none(), "{ty}");
            assert!(vec_dot_rows_for(ty, Isa::Scalar).is_none(), "{ty}");
            assert_eq!(vec_dot_for(ty, Isa::Scalar).is_some(), ty.has_vec_dot());
        }
    }
}
