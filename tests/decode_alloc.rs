//! A decoding loop allocates nothing per token: `Session::decode_step_into` with the same
//! logits vector, watched by a counting global allocator on every thread (the session's
//! pool included), on a tiny K-quant model.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::tiny::{write_tiny, TinySpec};
use orcinus::model::{KvType, LoadOptions, Model, SessionOptions};
use orcinus_quant::GgmlType;

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);
static WATCHING: AtomicBool = AtomicBool::new(false);

fn note() {
    if WATCHING.load(Ordering::Relaxed) {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: forwards every call to the system allocator unchanged; it only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn decoding_allocates_nothing_per_token() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    let spec = TinySpec {
        n_embd: 256,
        n_ff: 512,
        weight_type: GgmlType::Q4K,
        ..TinySpec::default()
    };
    write_tiny(&path, &spec, &common::smollm2());
    let model = Model::load(&path, LoadOptions::default()).unwrap();
    for kv_type in [KvType::F16, KvType::F32] {
        let mut s = model
            .session(&SessionOptions {
                n_ctx: 512,
                batch: 64,
                rolling_kv: false,
                threads: 2,
                kv_type,
            })
            .unwrap();
        s.prefill(&[1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
        let mut logits = Vec::new();
        // Warm-up: the buffers grow to one token's batch and to this context length.
        let steps = 128u32;
        for t in 0..steps {
            s.decode_step_into(100 + t, &mut logits).unwrap();
        }
        ALLOCS.store(0, Ordering::Relaxed);
        WATCHING.store(true, Ordering::Relaxed);
        for t in 0..steps {
            s.decode_step_into(1000 + t, &mut logits).unwrap();
        }
        WATCHING.store(false, Ordering::Relaxed);
        let n = ALLOCS.load(Ordering::Relaxed);
        eprintln!("{kv_type:?}: {n} allocations in {steps} decoding steps");
        // Not one per step (128): what remains is amortized, each pool thread's attention
        // buffers doubling as the context grows (a few times in all) and rayon's queue of
        // jobs sent to the pool taking a new block every 63 jobs.
        assert!(
            n <= 16,
            "{kv_type:?}: {n} allocations in {steps} decoding steps"
        );
        assert_eq!(logits.len(), model.hparams.n_vocab);
        assert!(logits.iter().all(|v| v.is_finite()));
    }
}
