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
    /// Per layer: keys, `(n_kv_head, n_slots, head_dim)`: each kv head's rows in one run.
    k: Vec<Store>,
    /// Per layer: values, as the keys.
    v: Vec<Store>,
    n_slots: usize,
    n_kv_dim: usize,
    head_dim: usize,
    window: Option<usize>,
    max_batch: usize,
}

impl KvCache {
    /// A cache for `n_layer` layers of `n_kv_head` heads of `head_dim` values per position,
    /// holding up to `n_ctx` positions (or a rolling `window + max_batch` when `window <
    /// n_ctx`).
    pub fn new(
        ty: KvType,
        n_layer: usize,
        n_kv_head: usize,
        head_dim: usize,
        n_ctx: usize,
        window: Option<usize>,
        max_batch: usize,
    ) -> Result<Self> {
        let window = window.filter(|&w| w < n_ctx);
        let n_kv_dim = n_kv_head
            .checked_mul(head_dim)
            .ok_or_else(|| Error::OutOfMemory(format!("{n_kv_head} heads of {head_dim}")))?;
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
            head_dim,
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

    /// Stores the key and value of position `pos` in `layer` (all heads, `n_kv_dim` values
    /// each).
    pub fn store(&mut self, layer: usize, pos: usize, k: &[f32], v: &[f32]) {
        let hd = self.head_dim;
        for (h, (k, v)) in k.chunks_exact(hd).zip(v.chunks_exact(hd)).enumerate() {
            let at = self.at(h, pos);
            self.k[layer].write(at, k);
            self.v[layer].write(at, v);
        }
    }

    /// Where the row of kv head `h` for position `pos` starts.
    fn at(&self, h: usize, pos: usize) -> usize {
        (h * self.n_slots + pos % self.n_slots) * self.head_dim
    }

    /// Reads the key of kv head `h` at position `pos` in `layer` (`dst.len()` = head dim).
    pub fn key(&self, layer: usize, pos: usize, h: usize, dst: &mut [f32]) {
        debug_assert_eq!(dst.len(), self.head_dim);
        self.k[layer].read(self.at(h, pos), dst);
    }

    /// Reads the value of kv head `h` at position `pos` in `layer`, as [`KvCache::key`].
    pub fn value(&self, layer: usize, pos: usize, h: usize, dst: &mut [f32]) {
        debug_assert_eq!(dst.len(), self.head_dim);
        self.v[layer].read(self.at(h, pos), dst);
    }

    /// The f16 keys and values of kv head `h` of `layer` for positions `lo..=hi` (`lo <=
    /// hi`), as stored: rows of `head_dim` values, one per position, back to back. `None` for
    /// an f32 cache, or where the positions' slots wrap around the rolling buffer (they are
    /// not one run).
    pub fn f16_rows(
        &self,
        layer: usize,
        lo: usize,
        hi: usize,
        h: usize,
    ) -> Option<(&[f16], &[f16])> {
        debug_assert!(lo <= hi && h * self.head_dim < self.n_kv_dim);
        let (s0, s1) = (lo % self.n_slots, hi % self.n_slots);
        if s1 < s0 || s1 - s0 != hi - lo {
            return None;
        }
        let range = self.at(h, lo)..self.at(h, hi) + self.head_dim;
        match (&self.k[layer], &self.v[layer]) {
            (Store::F16(k), Store::F16(v)) => Some((&k[range.clone()], &v[range])),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `f16_rows` gives one head's stored rows of a run of positions, back to back, and
    /// nothing where the rolling buffer wraps or the cache is f32; `key` and `value` read the
    /// same rows.
    #[test]
    fn f16_rows_are_one_run_or_none() {
        // Window 4, batches of 2: 6 slots; two heads of 3 values.
        let mut c = KvCache::new(KvType::F16, 1, 2, 3, 100, Some(4), 2).unwrap();
        for p in 0..8 {
            let k: [f32; 6] = std::array::from_fn(|i| (10 * i + p) as f32);
            c.store(0, p, &k, &k.map(|x| -x));
        }
        let (k, v) = c.f16_rows(0, 2, 5, 1).unwrap();
        let got: Vec<f32> = k.iter().map(|h| h.to_f32()).collect();
        let want: Vec<f32> = (2..=5)
            .flat_map(|p| [30 + p, 40 + p, 50 + p].map(|x| x as f32))
            .collect();
        assert_eq!(got, want);
        assert_eq!(v[4].to_f32(), -43.0);
        let mut row = [0f32; 3];
        c.value(0, 3, 1, &mut row);
        assert_eq!(row, [-33.0, -43.0, -53.0]);
        c.key(0, 3, 0, &mut row);
        assert_eq!(row, [3.0, 13.0, 23.0]);
        // Positions 4..=7 sit in slots 4, 5, 0, 1.
        assert!(c.f16_rows(0, 4, 7, 0).is_none());
        assert!(c.f16_rows(0, 6, 7, 0).is_some());
        let f = KvCache::new(KvType::F32, 1, 2, 3, 100, None, 2).unwrap();
        assert!(f.f16_rows(0, 0, 3, 0).is_none());
    }
}
