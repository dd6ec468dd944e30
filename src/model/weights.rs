//! Typed weights of the Llama graph, as zero-copy views into the GGUF map.

use std::sync::Arc;

use orcinus_quant::{QMatMul, WeightStorage};

use super::hparams::Hparams;
use crate::error::{Error, Result};
use crate::gguf::File;

impl WeightStorage for File {
    fn bytes(&self) -> &[u8] {
        File::bytes(self)
    }
}

/// One transformer block. Shapes are `(rows, columns)`; a [`QMatMul`] of shape `(n, k)` maps
/// `k` inputs to `n` outputs.
#[derive(Debug)]
pub struct LayerWeights {
    /// `(n_embd)`
    pub attn_norm: Vec<f32>,
    /// `(n_head * head_dim, n_embd)`
    pub wq: QMatMul,
    /// `(n_head_kv * head_dim, n_embd)`
    pub wk: QMatMul,
    /// `(n_head_kv * head_dim, n_embd)`
    pub wv: QMatMul,
    /// `(n_embd, n_head * head_dim)`
    pub wo: QMatMul,
    /// `(n_embd)`
    pub ffn_norm: Vec<f32>,
    /// `(n_ff, n_embd)`
    pub w_gate: QMatMul,
    /// `(n_ff, n_embd)`
    pub w_up: QMatMul,
    /// `(n_embd, n_ff)`
    pub w_down: QMatMul,
}

/// All weights of a model.
#[derive(Debug)]
pub struct Weights {
    /// `(n_vocab, n_embd)`: row `t` is token `t`'s embedding.
    pub token_embd: QMatMul,
    /// The blocks.
    pub layers: Vec<LayerWeights>,
    /// `(n_embd)`
    pub output_norm: Vec<f32>,
    /// `(n_vocab, n_embd)`; the same matrix as `token_embd` when the model ties them.
    pub output: QMatMul,
}

/// Tensor names, one table.
mod name {
    pub const TOKEN_EMBD: &str = "token_embd.weight";
    pub const OUTPUT_NORM: &str = "output_norm.weight";
    pub const OUTPUT: &str = "output.weight";
    pub fn blk(i: usize, t: &str) -> String {
        format!("blk.{i}.{t}.weight")
    }
}

fn matrix(file: &Arc<File>, name: &str, k: usize, n: usize) -> Result<QMatMul> {
    let t = file.tensor(name)?;
    if t.info.ne != [k as u64, n as u64] {
        return Err(Error::ShapeMismatch {
            name: name.to_string(),
            expected: vec![k as u64, n as u64],
            found: t.info.ne.clone(),
        });
    }
    let start = (file.header().data_offset + t.info.offset) as usize;
    let storage: Arc<dyn WeightStorage> = file.clone();
    Ok(QMatMul::new(
        storage,
        start..start + t.info.size as usize,
        t.info.ty,
        k,
        n,
    )?)
}

fn vector(file: &File, name: &str, n: usize) -> Result<Vec<f32>> {
    let t = file.tensor(name)?;
    if t.info.ne != [n as u64] {
        return Err(Error::ShapeMismatch {
            name: name.to_string(),
            expected: vec![n as u64],
            found: t.info.ne.clone(),
        });
    }
    t.to_f32()
}

impl Weights {
    /// Binds every tensor the graph needs, checking names and shapes against `hp`.
    /// `progress(done, total)` is called after each layer.
    pub fn load(
        file: &Arc<File>,
        hp: &Hparams,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Self> {
        let (e, hd) = (hp.n_embd, hp.head_dim);
        let (q, kv) = (hp.n_head * hd, hp.n_head_kv * hd);
        let token_embd = matrix(file, name::TOKEN_EMBD, e, hp.n_vocab)?;
        let output = match file.tensor(name::OUTPUT) {
            Ok(_) => matrix(file, name::OUTPUT, e, hp.n_vocab)?,
            Err(Error::TensorNotFound(_)) => token_embd.clone(),
            Err(err) => return Err(err),
        };
        let mut layers = Vec::with_capacity(hp.n_layer);
        for i in 0..hp.n_layer {
            let b = |t: &str| name::blk(i, t);
            layers.push(LayerWeights {
                attn_norm: vector(file, &b("attn_norm"), e)?,
                wq: matrix(file, &b("attn_q"), e, q)?,
                wk: matrix(file, &b("attn_k"), e, kv)?,
                wv: matrix(file, &b("attn_v"), e, kv)?,
                wo: matrix(file, &b("attn_output"), q, e)?,
                ffn_norm: vector(file, &b("ffn_norm"), e)?,
                w_gate: matrix(file, &b("ffn_gate"), e, hp.n_ff)?,
                w_up: matrix(file, &b("ffn_up"), e, hp.n_ff)?,
                w_down: matrix(file, &b("ffn_down"), hp.n_ff, e)?,
            });
            progress(i + 1, hp.n_layer);
        }
        Ok(Weights {
            token_embd,
            layers,
            output_norm: vector(file, name::OUTPUT_NORM, e)?,
            output,
        })
    }
}
