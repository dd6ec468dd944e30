//! AVX-VNNI kernels (the VEX-encoded 256-bit `vpdpbusd`/`vpdpwssd` of client CPUs without
//! AVX-512, Alder Lake on): the 256-bit bodies of `avx2.rs`, `avx2_k.rs` and
//! `avx2_decode.rs` instantiated with [`VEX_VNNI`], so each `vpmaddubsw`/`vpmaddwd`/`vpaddd`
//! chain is one instruction. The same exact integer sums and the same float order as the
//! AVX2 kernels, so the same results.

use super::super::{many_rows, RowKernel};
use super::avx2::{self, VEX_VNNI};
use super::{avx2_decode, avx2_k};
use super::{both, find, Entry};
use crate::formats::q4_0::BlockQ4_0;
use crate::formats::q4_1::BlockQ4_1;
use crate::formats::q4_k::BlockQ4K;
use crate::formats::q5_0::BlockQ5_0;
use crate::formats::q5_1::BlockQ5_1;
use crate::formats::q5_k::BlockQ5K;
use crate::formats::q6_k::BlockQ6K;
use crate::formats::q8_0::BlockQ8_0;
use crate::formats::q8_1::BlockQ8_1;
use crate::formats::q8_k::BlockQ8K;
use crate::GgmlType;

/// The AVX-VNNI builds where the body uses dot products (F16 and the rest: the AVX2 tables).
const KERNELS: &[Entry] = &[
    both::<Q4_0Vex>(GgmlType::Q4_0),
    both::<Q4_1Vex>(GgmlType::Q4_1),
    both::<Q5_0Vex>(GgmlType::Q5_0),
    both::<Q5_1Vex>(GgmlType::Q5_1),
    both::<Q8_0Vex>(GgmlType::Q8_0),
    both::<Q4KVex>(GgmlType::Q4K),
    both::<Q5KVex>(GgmlType::Q5K),
    both::<Q6KVex>(GgmlType::Q6K),
];

/// The entry of `ty`, if this file (or its fallback, the AVX2 kernels) has one.
pub(super) fn entry(ty: GgmlType) -> Option<&'static Entry> {
    find(KERNELS, ty).or_else(|| avx2::entry(ty))
}

// SAFETY (each `unsafe impl`): `rows` and `many` need AVX2, FMA, F16C and AVX-VNNI; these
// kernels are only handed out for `Isa::AvxVnni`, which `kernels::available_isas` lists only
// after detecting all four.
// `many: body`: the decode kernel runs that one-row body (the K-quants, as on AVX2) instead
// of `rows` with one row.
macro_rules! vex_kernel {
    ($name:ident, $w:ty, $a:ty, $module:ident::$body:ident $(, many: $one:expr)?) => {
        pub(super) struct $name;
        unsafe impl RowKernel for $name {
            type W = $w;
            #[target_feature(enable = "avx2,fma,f16c,avxvnni")]
            unsafe fn rows<const R: usize>(x: &[$w], y: [&[$a]; R]) -> [f32; R] {
                $module::$body::<VEX_VNNI, R>(x, y)
            }
            many_rows!("avx2,fma,f16c,avxvnni" $(, $one)?);
        }
    };
}

vex_kernel!(Q4_0Vex, BlockQ4_0, BlockQ8_0, avx2::q4_0);
vex_kernel!(Q4_1Vex, BlockQ4_1, BlockQ8_1, avx2::q4_1);
vex_kernel!(Q5_0Vex, BlockQ5_0, BlockQ8_0, avx2::q5_0);
vex_kernel!(Q5_1Vex, BlockQ5_1, BlockQ8_1, avx2::q5_1);
vex_kernel!(Q8_0Vex, BlockQ8_0, BlockQ8_0, avx2::q8_0);
vex_kernel!(Q4KVex, BlockQ4K, BlockQ8K, avx2_k::q4k, many: avx2_decode::q4k_one::<VEX_VNNI>);
vex_kernel!(Q5KVex, BlockQ5K, BlockQ8K, avx2_k::q5k, many: avx2_decode::q5k_one::<VEX_VNNI>);
vex_kernel!(Q6KVex, BlockQ6K, BlockQ8K, avx2_k::q6k, many: avx2_decode::q6k_one::<VEX_VNNI>);
