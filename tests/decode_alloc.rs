//! A decoding loop allocates nothing per token: `Session::decode_step_into` with the same
//! logits vector, watched by a counting global allocator on every thread (the session's
//! pool included), on a tiny K-quant model.

mod common;

#[path = "common/counting_alloc.rs"]
mod counting_alloc;

use common::tiny::{write_tiny, TinySpec};
use counting_alloc::Counting;
use orcinus::model::{KvType, LoadOptions, Model, SessionOptions};
use orcinus_quant::GgmlType;

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
        let n = counting_alloc::on_every_thread(|| {
            for t in 0..steps {
                s.decode_step_into(1000 + t, &mut logits).unwrap();
            }
        });
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
