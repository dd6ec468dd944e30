//! A tiny random-weight Llama/Mistral-shaped GGUF built with our writer, for graph tests.

use std::path::Path;

use orcinus::gguf::{File, Metadata, TensorSpec, Value, Writer};
use orcinus::quant::GgmlType;
use rand::{Rng, SeedableRng};

/// Shape of the tiny model.
pub struct TinySpec {
    pub n_embd: u64,
    pub n_layer: u64,
    pub n_head: u64,
    pub n_head_kv: u64,
    pub n_ff: u64,
    pub sliding_window: Option<u32>,
    pub weight_type: GgmlType,
}

impl Default for TinySpec {
    fn default() -> Self {
        TinySpec {
            n_embd: 64,
            n_layer: 2,
            n_head: 4,
            n_head_kv: 2,
            n_ff: 128,
            sliding_window: None,
            weight_type: GgmlType::F32,
        }
    }
}

/// Writes the tiny model to `path`, with the tokenizer of `tokenizer_from` (a GGUF file).
pub fn write_tiny(path: &Path, spec: &TinySpec, tokenizer_from: &Path) {
    let src = File::open(tokenizer_from).unwrap();
    let mut md = Metadata::new();
    md.insert("general.architecture", Value::String("llama".into()));
    let n_vocab = src
        .metadata()
        .get_arr::<String>("tokenizer.ggml.tokens")
        .unwrap()
        .len() as u64;
    let u32v = |v: u64| Value::U32(v as u32);
    md.insert("llama.context_length", u32v(4096));
    md.insert("llama.embedding_length", u32v(spec.n_embd));
    md.insert("llama.block_count", u32v(spec.n_layer));
    md.insert("llama.feed_forward_length", u32v(spec.n_ff));
    md.insert("llama.attention.head_count", u32v(spec.n_head));
    md.insert("llama.attention.head_count_kv", u32v(spec.n_head_kv));
    md.insert("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5));
    md.insert("llama.rope.freq_base", Value::F32(10000.0));
    if let Some(w) = spec.sliding_window {
        md.insert("llama.attention.sliding_window", Value::U32(w));
    }
    for (k, v) in src.metadata().iter() {
        if k.starts_with("tokenizer.") {
            md.insert(k, v.clone());
        }
    }
    let hd = spec.n_embd / spec.n_head;
    let (e, q, kv, ff) = (
        spec.n_embd,
        spec.n_head * hd,
        spec.n_head_kv * hd,
        spec.n_ff,
    );
    let mut shapes: Vec<(String, Vec<u64>)> = vec![("token_embd.weight".into(), vec![e, n_vocab])];
    for l in 0..spec.n_layer {
        for (n, ne) in [
            ("attn_norm", vec![e]),
            ("attn_q", vec![e, q]),
            ("attn_k", vec![e, kv]),
            ("attn_v", vec![e, kv]),
            ("attn_output", vec![q, e]),
            ("ffn_norm", vec![e]),
            ("ffn_gate", vec![e, ff]),
            ("ffn_up", vec![e, ff]),
            ("ffn_down", vec![ff, e]),
        ] {
            shapes.push((format!("blk.{l}.{n}.weight"), ne));
        }
    }
    shapes.push(("output_norm.weight".into(), vec![e]));
    shapes.push(("output.weight".into(), vec![e, n_vocab]));
    let ty = |ne: &[u64]| {
        if ne.len() == 1 {
            GgmlType::F32
        } else {
            spec.weight_type
        }
    };
    let specs: Vec<TensorSpec> = shapes
        .iter()
        .map(|(n, ne)| TensorSpec::new(n, ne, ty(ne)))
        .collect();
    let out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut w = Writer::new(out, &md, &specs).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(42);
    for (name, ne) in &shapes {
        let n: u64 = ne.iter().product();
        let scale = if ne.len() == 1 {
            0.0
        } else {
            1.0 / (ne[0] as f32).sqrt()
        };
        let x: Vec<f32> = (0..n)
            .map(|_| {
                if ne.len() == 1 {
                    1.0 + 0.1 * (rng.gen::<f32>() - 0.5)
                } else {
                    scale * 2.0 * (rng.gen::<f32>() - 0.5) * 1.7
                }
            })
            .collect();
        let t = ty(ne);
        let mut bytes = vec![0u8; t.row_bytes(x.len()).unwrap()];
        t.quantize(&x, &mut bytes).unwrap();
        let _ = name;
        w.write_tensor_data(&bytes).unwrap();
    }
    w.finish().unwrap();
}
