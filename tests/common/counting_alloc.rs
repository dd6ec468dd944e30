//! A counting global allocator for the allocation tests. A test file includes this module
//! (`#[path = "common/counting_alloc.rs"] mod counting_alloc;`) and installs it with
//! `#[global_allocator] static GLOBAL: Counting = Counting;`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Forwards every call to the system allocator and counts the allocations made while a
/// watch ([`on_this_thread`], [`on_every_thread`]) is on.
pub struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);
static EVERY_THREAD: AtomicBool = AtomicBool::new(false);

thread_local! {
    static THIS_THREAD: Cell<bool> = const { Cell::new(false) };
}

fn note() {
    let watched =
        EVERY_THREAD.load(Ordering::Relaxed) || THIS_THREAD.try_with(Cell::get).unwrap_or(false);
    if watched {
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

/// Runs `f` and returns the allocations it made on the calling thread.
#[allow(dead_code)]
pub fn on_this_thread(f: impl FnOnce()) -> usize {
    let before = ALLOCS.load(Ordering::Relaxed);
    THIS_THREAD.with(|w| w.set(true));
    f();
    THIS_THREAD.with(|w| w.set(false));
    ALLOCS.load(Ordering::Relaxed) - before
}

/// Runs `f` and returns the allocations made on every thread meanwhile (a thread pool's
/// included).
#[allow(dead_code)]
pub fn on_every_thread(f: impl FnOnce()) -> usize {
    let before = ALLOCS.load(Ordering::Relaxed);
    EVERY_THREAD.store(true, Ordering::Relaxed);
    f();
    EVERY_THREAD.store(false, Ordering::Relaxed);
    ALLOCS.load(Ordering::Relaxed) - before
}
