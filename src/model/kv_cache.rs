//! The per-session key/value cache, with a rolling buffer for sliding-window attention.

use half::f16;
use half::slice::HalfFloatSliceExt;

use crate::error::{Error, Result};

/// Element type of the KV cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KvType {
    /// Half precision (llama.cpp's default).
    #[default]
    F16,
    /// Single precision.
    F32,
}

#[derive(Debug, Clone)]
enum Store {
    F16(Vec<f16>),
    F32(Vec<f32>),
}

/// A zeroed vector, or an error instead of an abort when memory is short.
fn zeroed<T: Clone>(n: usize, zero: T) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| {
        Error::OutOfMemory(format!(
            "a KV cache of {n} values per layer (use a smaller context, -c)"
        ))
    })?;
    v.resize(n, zero);
    Ok(v)
}

impl Store {
    fn new(ty: KvType, n: usize) -> Result<Self> {
        Ok(match ty {
            KvType::F16 => Store::F16(zeroed(n, f16::ZERO)?),
            KvType::F32 => Store::F32(zeroed(n, 0.0)?),
        })
    }

    fn write(&mut self, at: usize, src: &[f32]) {
        match self {
            // F16C where the CPU has it (detected at run time by `half`), same rounding.
            Store::F16(v) => v[at..at + src.len()].convert_from_f32_slice(src),
            Store::F32(v) => v[at..at + src.len()].copy_from_slice(src),
        }
    }

    fn read(&self, at: usize, dst: &mut [f32]) {
        match self {
            Store::F16(v) => {
                let convert = orcinus_quant::kernels::attn::attn_kernels().f16_to_f32;
                convert(&v[at..at + dst.len()], dst)
            }
            Store::F32(v) => dst.copy_from_slice(&v[at..at + dst.len()]),
        }
    }

    fn bytes(&self) -> usize {
        match self {
            Store::F16(v) => v.len() * 2,
            Store::F32(v) => v.len() * 4,
        }
    }
}

/// Keys and values of every layer for the positions a session has seen.
///
/// Position `p` lives in slot `p % n_slots`. Without a sliding window `n_slots` is the context
/// length. With a window `W` smaller than the context, `n_slots = W + max_batch`: a batch of up
/// to `max_batch` new positions never overwrites a position that a query of the same batch still
/// attends to, and memory stays constant however long the session runs.
#[derive(Debug, Clone)]
pub struct KvCache {
    /// Per layer: keys, `(n_slots, n_kv_dim)`.
    k: Vec<Store>,
    /// Per layer: values, `(n_slots, n_kv_dim)`.
    v: Vec<Store>,
    n_slots: usize,
    n_kv_dim: usize,
    window: Option<usize>,
    max_batch: usize,
}

impl KvCache {
    /// A cache for `n_layer` layers of `n_kv_dim` values per position, holding up to `n_ctx`
    /// positions (or a rolling `window + max_batch` when `window < n_ctx`).
    pub fn new(
        ty: KvType,
        n_layer: usize,
        n_kv_dim: usize,
        n_ctx: usize,
        window: Option<usize>,
        max_batch: usize,
    ) -> Result<Self> {
        let window = window.filter(|&w| w < n_ctx);
        let n_slots = match window {
            Some(w) => w.saturating_add(max_batch).min(n_ctx),
            None => n_ctx,
        };
        let per_layer = n_slots
            .checked_mul(n_kv_dim)
            .filter(|n| n.checked_mul(n_layer.saturating_mul(8)).is_some())
            .ok_or_else(|| Error::OutOfMemory(format!("a KV cache of {n_slots} positions")))?;
        let mk = || {
            (0..n_layer)
                .map(|_| Store::new(ty, per_layer))
                .collect::<Result<Vec<_>>>()
        };
        Ok(KvCache {
            k: mk()?,
            v: mk()?,
            n_slots,
            n_kv_dim,
            window,
            max_batch,
        })
    }

    /// Slots allocated per layer.
    pub fn n_slots(&self) -> usize {
        self.n_slots
    }

    /// Largest batch one forward pass may add (prefill is split into batches of this size).
    pub fn max_batch(&self) -> usize {
        if self.window.is_some() {
            self.max_batch
        } else {
            usize::MAX
        }
    }

    /// Bytes of cache memory.
    pub fn bytes(&self) -> usize {
        self.k.iter().chain(&self.v).map(Store::bytes).sum()
    }

    /// The sliding window, if the cache rolls.
    pub fn window(&self) -> Option<usize> {
        self.window
    }

    /// Stores the key and value of position `pos` in `layer`.
    pub fn store(&mut self, layer: usize, pos: usize, k: &[f32], v: &[f32]) {
        let at = (pos % self.n_slots) * self.n_kv_dim;
        self.k[layer].write(at, k);
        self.v[layer].write(at, v);
    }

    /// Reads the key of position `pos` in `layer` for kv head `h` (`dst.len()` = head dim).
    pub fn key(&self, layer: usize, pos: usize, offset: usize, dst: &mut [f32]) {
        self.k[layer].read((pos % self.n_slots) * self.n_kv_dim + offset, dst);
    }

    /// Reads the value of position `pos` in `layer` at `offset` within the position's row.
    pub fn value(&self, layer: usize, pos: usize, offset: usize, dst: &mut [f32]) {
        self.v[layer].read((pos % self.n_slots) * self.n_kv_dim + offset, dst);
    }
}
