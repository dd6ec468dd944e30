//! AVX-VNNI kernels (the VEX-encoded 256-bit `vpdpbusd`/`vpdpwssd` of client CPUs without
//! AVX-512, Alder Lake on): the 256-bit bodies of `avx2.rs` and `avx2_k.rs` instantiated with
//! [`VEX_VNNI`], so each `vpmaddubsw`/`vpmaddwd`/`vpaddd` chain is one instruction. The same
//! exact integer sums and the same float order as the AVX2 kernels, so the same results.

use super::super::{vec_dot_bytes, vec_dot_rows_bytes, RowKernel, VecDotFn, VecDotRowsFn};
use super::avx2::{self, VEX_VNNI};
use super::avx2_k;
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

// The VNNI builds where the body uses dot products; F16 and the rest from the AVX2 tables.
kernel_tables! {
    f16: [],
    rows: [
        Q4_0 => Q4_0Vex,
        Q4_1 => Q4_1Vex,
        Q5_0 => Q5_0Vex,
        Q5_1 => Q5_1Vex,
        Q8_0 => Q8_0Vex,
        Q4K => Q4KVex,
        Q5K => Q5KVex,
        Q6K => Q6KVex,
    ],
    else: avx2::vec_dot, avx2::vec_dot_rows,
}

// SAFETY (each `unsafe impl`): `rows` needs AVX2, FMA, F16C and AVX-VNNI; these kernels are
// only handed out for `Isa::AvxVnni`, which `kernels::available_isas` lists only after
// detecting all four.
macro_rules! vex_kernel {
    ($name:ident, $w:ty, $a:ty, $module:ident::$body:ident) => {
        pub(super) struct $name;
        unsafe impl RowKernel for $name {
            type W = $w;
            #[target_feature(enable = "avx2,fma,f16c,avxvnni")]
            unsafe fn rows<const R: usize>(x: &[$w], y: [&[$a]; R]) -> [f32; R] {
                $module::$body::<VEX_VNNI, R>(x, y)
            }
        }
    };
}

vex_kernel!(Q4_0Vex, BlockQ4_0, BlockQ8_0, avx2::q4_0);
vex_kernel!(Q4_1Vex, BlockQ4_1, BlockQ8_1, avx2::q4_1);
vex_kernel!(Q5_0Vex, BlockQ5_0, BlockQ8_0, avx2::q5_0);
vex_kernel!(Q5_1Vex, BlockQ5_1, BlockQ8_1, avx2::q5_1);
vex_kernel!(Q8_0Vex, BlockQ8_0, BlockQ8_0, avx2::q8_0);
vex_kernel!(Q4KVex, BlockQ4K, BlockQ8K, avx2_k::q4k);
vex_kernel!(Q5KVex, BlockQ5K, BlockQ8K, avx2_k::q5k);
vex_kernel!(Q6KVex, BlockQ6K, BlockQ8K, avx2_k::q6k);
