//! `Sampler::sample` and `Sampler::accept` do not allocate after the first call: a counting
//! global allocator watches this thread while a sampler runs the full chain.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use orcinus::sampling::{Sampler, SamplingParams};

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static WATCHING: Cell<bool> = const { Cell::new(false) };
}

fn note() {
    if WATCHING.with(|w| w.get()) {
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
fn no_allocation_after_first_call() {
    let vocab = 32_000;
    let base: Vec<f32> = (0..vocab)
        .map(|i| ((i * 7919) % 1000) as f32 / 100.0 - 5.0)
        .collect();
    let mut logits = base.clone();
    for params in [
        SamplingParams {
            repeat_penalty: 1.1,
            presence_penalty: 0.1,
            frequency_penalty: 0.1,
            ..SamplingParams::default()
        },
        SamplingParams {
            top_k: 0,
            ..SamplingParams::default()
        },
        SamplingParams::greedy(),
    ] {
        let mut s = Sampler::new(params);
        // First call sizes the buffers.
        let id = s.sample(&mut logits);
        s.accept(id);

        WATCHING.with(|w| w.set(true));
        let before = ALLOCS.load(Ordering::Relaxed);
        for step in 0..200 {
            logits.copy_from_slice(&base);
            logits[step * 97 % vocab] += 20.0;
            let id = s.sample(&mut logits);
            s.accept(id);
        }
        let n = ALLOCS.load(Ordering::Relaxed) - before;
        WATCHING.with(|w| w.set(false));
        assert_eq!(n, 0, "{n} allocations in 200 steps with {params:?}");
    }
}
