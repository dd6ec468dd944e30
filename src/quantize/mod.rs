//! Quantizing GGUF files: llama.cpp's mixes ([`mix`]) written with the reference quantizers.
//!
//! [`quantize_file`] streams one GGUF file into another: metadata copied (with
//! `general.file_type` and `general.quantization_version` updated), then each tensor
//! dequantized to f32 and quantized to the type the mix chooses, a band of rows at a time and
//! the rows of a band in parallel, so memory stays bounded whatever the model's size. Tensors
//! whose type does not change are copied byte for byte. The output is written to
//! `OUT.tmp-<pid>` and renamed to `OUT` only when complete; on any error the temporary file is
//! removed.
//!
//! The quantized bytes are exactly those of [`GgmlType::quantize`] (ggml's reference
//! quantizers, which llama.cpp's `quantize` uses without an importance matrix) applied to the
//! source tensor dequantized with [`GgmlType::dequantize`]. Keys and tensors are laid out as
//! llama.cpp's `llama_model_quantize` lays them out (the two keys it sets last, tensors in
//! (block, name) order), so for the same input and file type the output file is the same, byte
//! for byte, as llama.cpp's.
//!
//! ```no_run
//! use orcinus::quantize::{quantize_file, FileType, QuantizeOptions};
//! let s = quantize_file(
//!     "model-f16.gguf".as_ref(),
//!     "model-q4_k_m.gguf".as_ref(),
//!     FileType::Q4KM,
//!     QuantizeOptions::default(),
//! )?;
//! println!("{:.2} bits per weight", s.bits_per_weight);
//! # Ok::<(), orcinus::Error>(())
//! ```

pub mod mix;
mod pipeline;
mod stream;

use std::path::Path;

use orcinus_quant::GgmlType;

pub use mix::{
    allows_quantization, fallback_type, preferred_type, tensor_type, use_more_bits, FileType,
    MixContext,
};

use crate::error::{Error, Result};
use crate::gguf::{File, Metadata, TensorSpec, Value};
pub use pipeline::temp_path;
pub(crate) use pipeline::{write_gguf, Job, RowOrder, Source};
pub(crate) use stream::{thread_pool, write_file, write_rows, Progress};

/// `general.file_type`: the file's [`FileType`] id.
pub const KEY_FILE_TYPE: &str = "general.file_type";
/// `general.quantization_version`: the version of the block formats.
pub const KEY_QUANTIZATION_VERSION: &str = "general.quantization_version";
/// ggml's `GGML_QNT_VERSION`, which llama.cpp's quantizer writes.
pub const QUANTIZATION_VERSION: u32 = 2;
/// Keys of split files, which describe the input's split, not the output.
const SPLIT_KEYS: [&str; 3] = ["split.no", "split.count", "split.tensors.count"];

/// What happens to one tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedTensor {
    /// Tensor name.
    pub name: String,
    /// Dimensions, GGUF order (`ne[0]` is the row length).
    pub ne: Vec<u64>,
    /// Its type in the input.
    pub from: GgmlType,
    /// Its type in the output.
    pub to: GgmlType,
    /// The type the mix chose when the row length made it fall back to `to`.
    pub fallback_from: Option<GgmlType>,
}

impl PlannedTensor {
    /// What happens to tensor `name` of shape `ne` and type `from` when its model (`ctx`) is
    /// written as `ftype`: tensors that are never quantized (norms, 1-D tensors: see
    /// [`allows_quantization`]) keep their type, as in llama.cpp; the others get
    /// [`tensor_type`].
    pub fn new(name: &str, ne: &[u64], from: GgmlType, ftype: FileType, ctx: &MixContext) -> Self {
        let (to, fallback_from) = if allows_quantization(name, ne) {
            let preferred = preferred_type(ftype, name, ne, ctx);
            let to = fallback_type(preferred, ne[0]);
            (to, (to != preferred).then_some(preferred))
        } else {
            (from, None)
        };
        PlannedTensor {
            name: name.to_string(),
            ne: ne.to_vec(),
            from,
            to,
            fallback_from,
        }
    }

    /// Whether the tensor is copied unchanged (same type in and out).
    pub fn is_copy(&self) -> bool {
        self.from == self.to
    }

    /// Whether an already-quantized tensor is converted (which loses quality).
    pub fn requantizes(&self) -> bool {
        self.from.is_quantized() && !self.is_copy()
    }

    /// Number of elements.
    pub fn n_elements(&self) -> u64 {
        self.ne.iter().product()
    }

    /// Bytes of the tensor in the output.
    pub fn output_bytes(&self) -> Result<u64> {
        TensorSpec::new(self.name.clone(), &self.ne, self.to).size()
    }
}

/// llama.cpp's tensor order in a quantized file (its `weight_name_comparer`): tensors outside
/// the blocks first, then block by block, by name within each.
pub(crate) fn output_order(name: &str) -> (i64, &str) {
    (mix::layer_of(name).map_or(-1, |l| l as i64), name)
}

/// The type every tensor of `file` gets when it is written as `ftype`, in output order (see
/// the [module docs](self) and [`PlannedTensor::new`]).
pub fn plan(file: &File, ftype: FileType) -> Result<Vec<PlannedTensor>> {
    let mut infos: Vec<_> = file.tensor_infos().iter().collect();
    infos.sort_by(|a, b| output_order(&a.name).cmp(&output_order(&b.name)));
    let ctx = MixContext::from_metadata(file.metadata(), infos.iter().map(|t| t.name.as_str()))?;
    Ok(infos
        .into_iter()
        .map(|t| PlannedTensor::new(&t.name, &t.ne, t.ty, ftype, &ctx))
        .collect())
}

/// Called as the work progresses with the current tensor's name, the input tensor bytes done
/// so far and their total. Returning `false` cancels the quantization ([`Error::Cancelled`]).
pub type ProgressFn<'a> = Box<dyn FnMut(&str, u64, u64) -> bool + 'a>;

/// How to quantize.
#[derive(Default)]
pub struct QuantizeOptions<'a> {
    /// Worker threads (0: one per core).
    pub threads: usize,
    /// Convert tensors that are already quantized (refused otherwise with
    /// [`Error::Requantize`]: the result is worse than quantizing from F16/F32).
    pub allow_requantize: bool,
    /// Progress reports (at least once per tensor); see [`ProgressFn`].
    pub progress: Option<ProgressFn<'a>>,
}

impl std::fmt::Debug for QuantizeOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuantizeOptions")
            .field("threads", &self.threads)
            .field("allow_requantize", &self.allow_requantize)
            .finish_non_exhaustive()
    }
}

/// Tensors and bytes of one type in the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypeCount {
    /// The type.
    pub ty: GgmlType,
    /// Tensors of this type.
    pub tensors: usize,
    /// Their data bytes.
    pub bytes: u64,
    /// Their elements.
    pub params: u64,
}

/// What [`quantize_file`] (or [`crate::convert::hf::convert`]) wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// The file type written.
    pub ftype: FileType,
    /// Size of the input file in bytes.
    pub input_size: u64,
    /// Size of the output file in bytes.
    pub file_size: u64,
    /// Elements of all tensors.
    pub n_params: u64,
    /// Bytes of tensor data in the output (without padding).
    pub tensor_bytes: u64,
    /// `tensor_bytes * 8 / n_params`, as llama.cpp reports it.
    pub bits_per_weight: f64,
    /// Tensors, bytes and elements per output type, in type-table order.
    pub by_type: Vec<TypeCount>,
    /// Tensors that were already quantized and were converted.
    pub n_requantized: usize,
    /// Tensors whose rows were not whole blocks of the mix's type (see [`fallback_type`]).
    pub n_fallback: usize,
}

impl Summary {
    pub(crate) fn new(
        ftype: FileType,
        plan: &[PlannedTensor],
        input_size: u64,
        file_size: u64,
    ) -> Result<Self> {
        let mut by_type: Vec<TypeCount> = Vec::new();
        for t in plan {
            let bytes = t.output_bytes()?;
            let i = match by_type.iter().position(|c| c.ty == t.to) {
                Some(i) => i,
                None => {
                    by_type.push(TypeCount {
                        ty: t.to,
                        tensors: 0,
                        bytes: 0,
                        params: 0,
                    });
                    by_type.len() - 1
                }
            };
            let c = &mut by_type[i];
            c.tensors += 1;
            c.bytes += bytes;
            c.params += t.n_elements();
        }
        by_type.sort_by_key(|c| c.ty);
        let n_params = plan.iter().map(PlannedTensor::n_elements).sum();
        let tensor_bytes = by_type.iter().map(|c| c.bytes).sum();
        Ok(Summary {
            ftype,
            input_size,
            file_size,
            n_params,
            tensor_bytes,
            bits_per_weight: tensor_bytes as f64 * 8.0 / (n_params as f64).max(1.0),
            by_type,
            n_requantized: plan.iter().filter(|t| t.requantizes()).count(),
            n_fallback: plan.iter().filter(|t| t.fallback_from.is_some()).count(),
        })
    }
}

/// The output's metadata: the input's without split keys, then
/// `general.quantization_version` and `general.file_type`, last, as llama.cpp sets them.
pub fn output_metadata(input: &Metadata, ftype: FileType) -> Metadata {
    let mut md = Metadata::new();
    let set_below = [KEY_QUANTIZATION_VERSION, KEY_FILE_TYPE];
    for (k, v) in input.iter() {
        if !SPLIT_KEYS.contains(&k) && !set_below.contains(&k) {
            md.insert(k, v.clone());
        }
    }
    md.insert(KEY_QUANTIZATION_VERSION, Value::U32(QUANTIZATION_VERSION));
    md.insert(KEY_FILE_TYPE, Value::U32(ftype.id()));
    md
}

/// Quantizes the GGUF file `input` into `output` as `ftype` (see the [module docs](self)).
pub fn quantize_file(
    input: &Path,
    output: &Path,
    ftype: FileType,
    mut opts: QuantizeOptions<'_>,
) -> Result<Summary> {
    let file = File::open(input)?;
    let plan = plan(&file, ftype)?;
    if !opts.allow_requantize {
        if let Some(t) = plan.iter().find(|t| t.requantizes()) {
            return Err(Error::Requantize {
                tensor: t.name.clone(),
                ty: t.from,
            });
        }
    }
    let md = output_metadata(file.metadata(), ftype);
    let job = Job {
        metadata: &md,
        plan: &plan,
        ftype,
        input_size: file.len(),
        threads: opts.threads,
        progress: opts.progress.take(),
    };
    // Each tensor's pages are released once the next one is asked for (it is written by then),
    // so the resident set stays about one tensor wide however big the input is.
    let mut previous: Option<&[u8]> = None;
    let result = pipeline::write_gguf(output, job, &mut |t| {
        let data = file.tensor(&t.name)?.data;
        if let Some(p) = previous.replace(data) {
            file.release(p);
        }
        Ok(Source {
            data,
            rows: RowOrder::Identity,
        })
    });
    if let Some(p) = previous {
        file.release(p);
    }
    result
}
