//! Safetensors files, memory-mapped and validated: an 8-byte little-endian header length, a JSON
//! header (`{"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}`,
//! offsets relative to the end of the header), then the tensors' bytes.
//!
//! Every header field is checked before a tensor is handed out: the header's length is bounded
//! ([`MAX_HEADER_BYTES`]), each tensor's bytes must lie inside the file and agree with its
//! shape and dtype, and no two tensors may share bytes. A checkpoint may be one
//! `model.safetensors` or shards listed by `model.safetensors.index.json` ([`Checkpoint`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use orcinus_quant::GgmlType;
use serde_json::Value as Json;

use crate::{Error, Result};

/// Largest header accepted (the `safetensors` crate's limit, 100 MB).
pub const MAX_HEADER_BYTES: u64 = 100_000_000;
/// The single-file checkpoint's name.
pub const SINGLE_FILE: &str = "model.safetensors";
/// The sharded checkpoint's index.
pub const INDEX_FILE: &str = "model.safetensors.index.json";

/// One tensor of a safetensors file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorEntry {
    /// Element type (F32, F16 or BF16).
    pub ty: GgmlType,
    /// Shape, PyTorch order (the last dimension is contiguous).
    pub shape: Vec<u64>,
    /// Byte range in the file (absolute).
    pub range: std::ops::Range<usize>,
}

/// A memory-mapped, validated safetensors file.
pub struct SafeTensors {
    path: PathBuf,
    map: memmap2::Mmap,
    tensors: BTreeMap<String, TensorEntry>,
}

impl std::fmt::Debug for SafeTensors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SafeTensors")
            .field("path", &self.path)
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

impl SafeTensors {
    /// Maps and validates the file at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let f = std::fs::File::open(path).map_err(|e| Error::io(path.display(), e))?;
        // SAFETY: the map is read-only and private to this process. Another process truncating
        // or rewriting the file while it is mapped would be undefined behaviour; as for every
        // mmap-based loader, users must not modify a checkpoint while it is converted.
        let map = unsafe { memmap2::Mmap::map(&f) }.map_err(|e| Error::io(path.display(), e))?;
        let tensors = parse_header(&map).map_err(|m| Error::checkpoint(path, m))?;
        Ok(SafeTensors {
            path: path.to_path_buf(),
            map,
            tensors,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's tensors by name.
    pub fn tensors(&self) -> &BTreeMap<String, TensorEntry> {
        &self.tensors
    }

    /// The bytes of tensor `e` (an entry of this file).
    pub fn data(&self, e: &TensorEntry) -> &[u8] {
        &self.map[e.range.clone()]
    }

    /// Drops the pages of tensor `e` from this process's resident set (best effort), so that
    /// a conversion that has read a tensor does not keep it resident: the resident set stays
    /// about one tensor wide whatever the model's size. Reading the bytes again re-reads them
    /// from the file.
    pub fn release(&self, e: &TensorEntry) {
        #[cfg(unix)]
        {
            // SAFETY: the map is a read-only private mapping of a file this process never
            // writes, so its pages are never dirty: MADV_DONTNEED only discards clean copies,
            // and a later access (through any slice still borrowed) faults the same file
            // contents back in. memmap2 aligns the range to pages; neighbouring bytes that
            // share a page are re-read the same way.
            let _ = unsafe {
                self.map.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    e.range.start,
                    e.range.len(),
                )
            };
        }
        #[cfg(not(unix))]
        let _ = e;
    }

    /// The file's size in bytes.
    pub fn len(&self) -> u64 {
        self.map.len() as u64
    }

    /// Whether the file is empty (never, once opened).
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// The ggml type of a safetensors dtype, or a message naming it.
fn dtype(name: &str) -> std::result::Result<GgmlType, String> {
    match name {
        "F32" => Ok(GgmlType::F32),
        "F16" => Ok(GgmlType::F16),
        "BF16" => Ok(GgmlType::BF16),
        other => Err(format!(
            "unsupported dtype {other} (supported: F32, F16, BF16)"
        )),
    }
}

/// Validates the header of the safetensors bytes `b`; the error is a message without the path.
pub fn parse_header(b: &[u8]) -> std::result::Result<BTreeMap<String, TensorEntry>, String> {
    let len_bytes: [u8; 8] = b
        .get(..8)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| format!("truncated: {} bytes, not even a header length", b.len()))?;
    let n = u64::from_le_bytes(len_bytes);
    if n > MAX_HEADER_BYTES {
        return Err(format!(
            "header length {n} exceeds the {MAX_HEADER_BYTES}-byte limit (corrupt file?)"
        ));
    }
    let data_start = 8 + n as usize;
    let header = b.get(8..data_start).ok_or_else(|| {
        format!(
            "truncated: the header needs {n} bytes, the file has {} after the length",
            b.len() - 8
        )
    })?;
    let json: Json =
        serde_json::from_slice(header).map_err(|e| format!("header is not valid JSON: {e}"))?;
    let obj = json.as_object().ok_or("header is not a JSON object")?;
    let data_len = (b.len() - data_start) as u64;
    let mut tensors = BTreeMap::new();
    for (name, v) in obj {
        if name == "__metadata__" {
            continue;
        }
        let bad = |what: &str| format!("tensor `{name}`: {what}");
        let t = v.as_object().ok_or_else(|| bad("entry is not an object"))?;
        let ty = t
            .get("dtype")
            .and_then(Json::as_str)
            .ok_or_else(|| bad("no dtype"))
            .and_then(|d| dtype(d).map_err(|m| bad(&m)))?;
        let shape: Vec<u64> = t
            .get("shape")
            .and_then(Json::as_array)
            .and_then(|a| a.iter().map(Json::as_u64).collect())
            .ok_or_else(|| bad("shape is not a list of non-negative integers"))?;
        let offsets: Vec<u64> = t
            .get("data_offsets")
            .and_then(Json::as_array)
            .and_then(|a| a.iter().map(Json::as_u64).collect())
            .filter(|o: &Vec<u64>| o.len() == 2)
            .ok_or_else(|| bad("data_offsets is not [begin, end]"))?;
        let (begin, end) = (offsets[0], offsets[1]);
        if begin > end || end > data_len {
            return Err(bad(&format!(
                "data_offsets [{begin}, {end}) out of range (the data section has {data_len} bytes)"
            )));
        }
        let size = shape
            .iter()
            .try_fold(ty.type_size() as u64, |a, &d| a.checked_mul(d))
            .ok_or_else(|| bad("element count overflows"))?;
        if size != end - begin {
            return Err(bad(&format!(
                "shape {shape:?} of {ty} needs {size} bytes, data_offsets span {}",
                end - begin
            )));
        }
        let range = data_start + begin as usize..data_start + end as usize;
        tensors.insert(name.clone(), TensorEntry { ty, shape, range });
    }
    let mut spans: Vec<(&str, &std::ops::Range<usize>)> = tensors
        .iter()
        .filter(|(_, e)| !e.range.is_empty())
        .map(|(k, e)| (k.as_str(), &e.range))
        .collect();
    spans.sort_by_key(|(_, r)| r.start);
    for w in spans.windows(2) {
        if w[1].1.start < w[0].1.end {
            return Err(format!("tensors `{}` and `{}` overlap", w[0].0, w[1].0));
        }
    }
    Ok(tensors)
}

/// All the safetensors files of a checkpoint, and which file holds each tensor.
#[derive(Debug)]
pub struct Checkpoint {
    files: Vec<SafeTensors>,
    /// Tensor name → index in `files`.
    index: BTreeMap<String, usize>,
}

impl Checkpoint {
    /// Opens `dir/model.safetensors`, or the shards `dir/model.safetensors.index.json` lists.
    pub fn open(dir: &Path) -> Result<Self> {
        let index_path = dir.join(INDEX_FILE);
        let single = dir.join(SINGLE_FILE);
        let shard_names: Vec<String> = if index_path.is_file() {
            let text = std::fs::read_to_string(&index_path)
                .map_err(|e| Error::io(index_path.display(), e))?;
            let json: Json = serde_json::from_str(&text)
                .map_err(|e| Error::checkpoint(&index_path, format!("invalid JSON: {e}")))?;
            let map = json
                .get("weight_map")
                .and_then(Json::as_object)
                .ok_or_else(|| Error::checkpoint(&index_path, "no `weight_map` object"))?;
            let mut names: Vec<String> = Vec::new();
            for (t, f) in map {
                let f = f.as_str().ok_or_else(|| {
                    Error::checkpoint(&index_path, format!("`{t}` maps to {f}, not a file name"))
                })?;
                if f.contains(['/', '\\']) || f == ".." {
                    return Err(Error::checkpoint(
                        &index_path,
                        format!("shard name `{f}` is not a plain file name"),
                    ));
                }
                if !names.iter().any(|n| n == f) {
                    names.push(f.to_string());
                }
            }
            names.sort();
            names
        } else if single.is_file() {
            vec![SINGLE_FILE.to_string()]
        } else {
            return Err(Error::checkpoint(
                dir,
                format!("neither {SINGLE_FILE} nor {INDEX_FILE} found"),
            ));
        };
        let mut files = Vec::with_capacity(shard_names.len());
        let mut index = BTreeMap::new();
        for (i, name) in shard_names.iter().enumerate() {
            let f = SafeTensors::open(&dir.join(name))?;
            for t in f.tensors().keys() {
                if index.insert(t.clone(), i).is_some() {
                    return Err(Error::checkpoint(
                        f.path(),
                        format!("tensor `{t}` is in more than one shard"),
                    ));
                }
            }
            files.push(f);
        }
        Ok(Checkpoint { files, index })
    }

    /// Tensor names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.index.keys().map(String::as_str)
    }

    /// The entry of tensor `name` and its bytes.
    pub fn get(&self, name: &str) -> Option<(&TensorEntry, &[u8])> {
        let f = &self.files[*self.index.get(name)?];
        let e = &f.tensors()[name];
        Some((e, f.data(e)))
    }

    /// Drops the pages of tensor `name` from the resident set ([`SafeTensors::release`]).
    pub fn release(&self, name: &str) {
        if let Some(&i) = self.index.get(name) {
            let f = &self.files[i];
            f.release(&f.tensors()[name]);
        }
    }

    /// Total size of the files in bytes.
    pub fn size(&self) -> u64 {
        self.files.iter().map(SafeTensors::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(header: &str, data: usize) -> Vec<u8> {
        let mut b = (header.len() as u64).to_le_bytes().to_vec();
        b.extend_from_slice(header.as_bytes());
        b.resize(b.len() + data, 0);
        b
    }

    #[test]
    fn reads_a_valid_header() {
        let h = r#"{"__metadata__":{"format":"pt"},"a":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,12]},"b":{"dtype":"F32","shape":[1],"data_offsets":[12,16]}}"#;
        let t = parse_header(&file(h, 16)).unwrap();
        assert_eq!(t["a"].ty, GgmlType::BF16);
        assert_eq!(t["a"].shape, [2, 3]);
        assert_eq!(t["b"].range, 8 + h.len() + 12..8 + h.len() + 16);
    }

    #[test]
    fn refuses_malformed_headers() {
        let cases = [
            (file("", 0)[..4].to_vec(), "truncated"),
            (u64::MAX.to_le_bytes().to_vec(), "exceeds"),
            ((1000u64).to_le_bytes().to_vec(), "truncated"),
            (file("{nope", 0), "not valid JSON"),
            (file("[]", 0), "not a JSON object"),
            (
                file(
                    r#"{"a":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}"#,
                    8,
                ),
                "dtype I64",
            ),
            (
                file(
                    r#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#,
                    8,
                ),
                "needs 12",
            ),
            (
                file(
                    r#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#,
                    8,
                ),
                "out of range",
            ),
            (
                file(
                    r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
                    12,
                ),
                "overlap",
            ),
            (
                file(
                    r#"{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#,
                    8,
                ),
                "shape",
            ),
        ];
        for (bytes, want) in cases {
            let e = parse_header(&bytes).unwrap_err();
            assert!(e.contains(want), "{e:?} should mention {want:?}");
        }
    }
}
