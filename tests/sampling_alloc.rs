//! `Sampler::sample` and `Sampler::accept` do not allocate after the first call: a counting
//! global allocator watches this thread while a sampler runs the full chain.

#[path = "common/counting_alloc.rs"]
mod counting_alloc;

use counting_alloc::Counting;
use orcinus::sampling::{Sampler, SamplingParams};

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

        let n = counting_alloc::on_this_thread(|| {
            for step in 0..200 {
                logits.copy_from_slice(&base);
                logits[step * 97 % vocab] += 20.0;
                let id = s.sample(&mut logits);
                s.accept(id);
            }
        });
        assert_eq!(n, 0, "{n} allocations in 200 steps with {params:?}");
    }
}
