//! x86-64 kernels: AVX2 (+FMA, F16C), AVX2 with AVX-VNNI, and AVX-512 (F+BW+VL, with VNNI
//! where present).
//!
//! The 256-bit kernel bodies in `avx2.rs` and `avx2_k.rs` are `#[inline(always)]` functions
//! generic over `VNNI`: instantiated inside an AVX2 `#[target_feature]` function they use
//! `vpmaddubsw`/`vpmaddwd`; inside an AVX-VNNI one (`avxvnni.rs`) the VEX `vpdpbusd`/
//! `vpdpwssd`; inside an AVX-512 one with VNNI the EVEX 256-bit forms. `avx512.rs` holds
//! those last instantiations and the 512-bit kernels. The GEMM micro-kernels are in `gemm.rs`
//! (driver, AVX-512 VNNI) and `gemm_avx2.rs` (AVX2, AVX-VNNI); activation quantization in
//! `quant.rs`; attention in `attn.rs`; softmax and SwiGLU in `act.rs`.

use super::Isa;
use crate::GgmlType;
pub(super) use act::act_kernels;
pub(super) use attn::attn_kernels;

use super::{
    vec_dot_bytes, vec_dot_many_bytes, vec_dot_rows_bytes, RowKernel, VecDotFn, VecDotManyFn,
    VecDotRowsFn,
};

/// One entry of a kernel file's table: a weight type, its dot product and, where the file
/// hands one out, its multi-row form (both from the same [`RowKernel`], so with the same bits).
struct Entry {
    ty: GgmlType,
    dot: VecDotFn,
    rows: Option<VecDotRowsFn>,
    many: VecDotManyFn,
}

/// The entry of `ty` for kernel `K`, single-row and multi-row.
const fn both<K: RowKernel>(ty: GgmlType) -> Entry {
    Entry {
        ty,
        dot: vec_dot_bytes::<K>,
        rows: Some(vec_dot_rows_bytes::<K>),
        many: vec_dot_many_bytes::<K>,
    }
}

/// The entry of `ty` for kernel `K`, single-row only (F16: one row at a time is as fast).
const fn single<K: RowKernel>(ty: GgmlType) -> Entry {
    Entry {
        ty,
        dot: vec_dot_bytes::<K>,
        rows: None,
        many: vec_dot_many_bytes::<K>,
    }
}

/// `ty`'s entry in `table`.
fn find(table: &[Entry], ty: GgmlType) -> Option<&Entry> {
    table.iter().find(|e| e.ty == ty)
}

mod act;
mod attn;
mod avx2;
mod avx2_decode;
mod avx2_k;
mod avx512;
mod avxvnni;
mod gemm;
mod gemm_avx2;
mod gemm_i16;
mod quant;

/// The kernel entry of `ty` for `isa` (the caller checked that the CPU has `isa`): its
/// single-row, multi-row and many-rows forms come from one [`RowKernel`], with the same bits
/// (`tests/kernels.rs` checks them against each other). AVX-VNNI falls back to AVX2; AVX-512
/// without VNNI to its F16 kernel, else AVX2.
fn entry(ty: GgmlType, isa: Isa) -> Option<&'static Entry> {
    match isa {
        Isa::Scalar => None,
        Isa::Avx2 => avx2::entry(ty),
        Isa::AvxVnni => avxvnni::entry(ty),
        Isa::Avx512 if super::has_avx512_vnni() => avx512::entry(ty, true),
        Isa::Avx512 => avx512::entry(ty, false).or_else(|| avx2::entry(ty)),
    }
}

/// The SIMD kernel of `ty` for `isa` (the caller checked that the CPU has `isa`).
pub(super) fn vec_dot(ty: GgmlType, isa: Isa) -> Option<super::VecDotFn> {
    entry(ty, isa).map(|e| e.dot)
}

/// The many-weight-rows kernel of `ty` for `isa` (the caller checked that the CPU has `isa`):
/// the loop over rows of [`vec_dot`]`(ty, isa)`'s kernel, with its bits.
pub(super) fn vec_dot_many(ty: GgmlType, isa: Isa) -> Option<super::VecDotManyFn> {
    entry(ty, isa).map(|e| e.many)
}

/// The multi-row kernel of `ty` for `isa` (the caller checked that the CPU has `isa`); each
/// result has the bits of [`vec_dot`]`(ty, isa)`.
pub(super) fn vec_dot_rows(ty: GgmlType, isa: Isa) -> Option<super::VecDotRowsFn> {
    entry(ty, isa).and_then(|e| e.rows)
}

/// The GEMM tile function of `ty` for `isa` (the caller checked that the CPU has `isa`),
/// from the family of [`gemm_kind`]; each family has the K-quants and the legacy types.
pub(super) fn gemm_tile(ty: GgmlType, isa: Isa) -> Option<super::GemmTileFn> {
    gemm::gemm_tile(ty, gemm_kind(isa)?)
}

/// The GEMM micro-kernel family of `isa`: the 512-bit VNNI one where the CPU has
/// AVX512-VNNI, the 256-bit VNNI one for AVX-VNNI, else the AVX2 one.
fn gemm_kind(isa: Isa) -> Option<gemm::GemmKind> {
    use gemm::GemmKind;
    match isa {
        Isa::Scalar => None,
        Isa::Avx512 if super::has_avx512_vnni() && intel() => Some(GemmKind::VnniFloatScales),
        Isa::Avx512 if super::has_avx512_vnni() => Some(GemmKind::Vnni),
        Isa::AvxVnni => Some(GemmKind::AvxVnni),
        Isa::Avx2 | Isa::Avx512 => Some(GemmKind::Avx2),
    }
}

/// Whether the CPU is Intel's (CPUID vendor "GenuineIntel"): its cores run the K-quant
/// GEMM's scale step faster in floats ([`gemm::GemmKind::VnniFloatScales`]) and the AVX2
/// Q8_0 GEMM's steps faster written out ([`gemm_i16::tile_for`]); AMD's (Zen 4) run the
/// scale step in integers and the steps in a loop. Read once.
pub(super) fn intel() -> bool {
    static INTEL: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *INTEL.get_or_init(|| {
        // SAFETY: CPUID leaf 0 exists on every x86-64 CPU. (Newer Rust declares `__cpuid`
        // safe; the block keeps older compilers of the supported range building.)
        #[allow(unused_unsafe)]
        let r = unsafe { std::arch::x86_64::__cpuid(0) };
        // The vendor string is in EBX, EDX, ECX: "Genu" "ineI" "ntel".
        (r.ebx, r.edx, r.ecx) == (0x756e_6547, 0x4965_6e69, 0x6c65_746e)
    })
}

/// Computes a GEMM tile's `aux` from `m` quantized activation rows of `k` elements.
pub(super) type GemmAuxFn = fn(xq: &[u8], m: usize, k: usize) -> Vec<i32>;

/// The `aux` of [`gemm_tile`]`(ty, isa)` where it is not [`super::gemm::activation_sums`]:
/// Q8_0 on AVX2 without VNNI takes its activations widened to i16 (`gemm_i16.rs`); the
/// AVX-512 VNNI K-quant kernels take them rewritten as they read them
/// ([`super::gemm::vnni_aux`]: per super-block the scale, the correction words, the
/// quants), computed once per matrix rather than once per tile.
pub(super) fn gemm_aux(ty: GgmlType, isa: Isa) -> Option<GemmAuxFn> {
    use super::gemm::vnni_aux;
    use crate::formats::{q4_k::BlockQ4K, q5_k::BlockQ5K, q6_k::BlockQ6K};
    use gemm::GemmKind::{Avx2, Vnni, VnniFloatScales};
    match (ty, gemm_kind(isa)?) {
        (GgmlType::Q8_0, Avx2) => Some(gemm_i16::widen),
        (GgmlType::Q4K, Vnni | VnniFloatScales) => Some(vnni_aux::<BlockQ4K>),
        (GgmlType::Q5K, Vnni | VnniFloatScales) => Some(vnni_aux::<BlockQ5K>),
        (GgmlType::Q6K, Vnni | VnniFloatScales) => Some(vnni_aux::<BlockQ6K>),
        _ => None,
    }
}

/// The activation quantizer of `at` for `isa` (the caller checked that the CPU has `isa`),
/// where a SIMD one exists (Q8_K, Q8_0, Q8_1): bit for bit the reference.
pub(super) fn from_float(at: GgmlType, isa: Isa) -> Option<super::FromFloatFn> {
    match (at, isa) {
        (GgmlType::Q8K, Isa::Avx512) => Some(quant::from_float_q8k(true)),
        (GgmlType::Q8K, Isa::Avx2 | Isa::AvxVnni) => Some(quant::from_float_q8k(false)),
        (GgmlType::Q8_0, Isa::Avx512) => Some(quant::from_float_q8_0(true, false)),
        (GgmlType::Q8_0, Isa::Avx2 | Isa::AvxVnni) => Some(quant::from_float_q8_0(false, false)),
        (GgmlType::Q8_1, Isa::Avx512) => Some(quant::from_float_q8_0(true, true)),
        (GgmlType::Q8_1, Isa::Avx2 | Isa::AvxVnni) => Some(quant::from_float_q8_0(false, true)),
        _ => None,
    }
}
