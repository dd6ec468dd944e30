//! The write half shared by every conversion into GGUF: a planned list of tensors, each read
//! from some source bytes, converted a band of rows at a time (the rows of a band in parallel)
//! and streamed into a temporary file that is renamed over the output only when complete.
//!
//! Both [`super::quantize_file`] (GGUF → GGUF) and [`crate::convert::hf`] (safetensors → GGUF)
//! use it, so they share progress reports, cancellation, the summary and the no-partial-file
//! rule.

use std::io::Write;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::stream::{thread_pool, write_file, Progress};
use super::{FileType, PlannedTensor, ProgressFn, Summary};
use crate::error::{Error, Result};
use crate::gguf::{Metadata, TensorSpec, Value, Writer, DEFAULT_ALIGNMENT, KEY_ALIGNMENT};

/// Rows converted per parallel task.
pub(crate) const ROWS_PER_TASK: usize = 16;
/// Elements converted between two writes (and progress reports): bounds the memory a tensor
/// needs to one band of output plus one task's f32 rows per thread.
pub(crate) const BAND_ELEMENTS: usize = 4 << 20;

/// Where the output is written until it is complete: `OUT.tmp-<pid>`, beside `OUT`.
pub fn temp_path(output: &Path) -> PathBuf {
    let mut name = output.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{}", std::process::id()));
    output.with_file_name(name)
}

/// The order in which a source tensor's rows are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RowOrder {
    /// As stored.
    Identity,
    /// llama.cpp's `LlamaModel.permute(w, n_head, n_head)`: from Hugging Face's rotate-half
    /// RoPE layout to GGUF's interleaved one (see [`crate::convert::hf::rope_source_row`]).
    RopePermute {
        /// Heads the rows are split into (key/value heads for `k_proj`).
        n_head: usize,
    },
}

impl RowOrder {
    /// The source row that output row `r` of `nrows` comes from.
    fn source_row(self, r: usize, nrows: usize) -> usize {
        match self {
            RowOrder::Identity => r,
            RowOrder::RopePermute { n_head } => {
                crate::convert::hf::rope_source_row(r, nrows, n_head)
            }
        }
    }
}

/// One tensor's input: bytes of type [`PlannedTensor::from`], rows of `ne[0]` elements.
pub(crate) struct Source<'a> {
    /// The tensor's data.
    pub data: &'a [u8],
    /// Row order of the output.
    pub rows: RowOrder,
}

/// Removes the temporary file unless the write completed.
pub(crate) struct TempFile {
    pub(crate) path: PathBuf,
    pub(crate) done: bool,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// What [`write_gguf`] writes and how.
pub(crate) struct Job<'p, 's> {
    /// The output's metadata.
    pub metadata: &'p Metadata,
    /// The tensors, in output order.
    pub plan: &'p [PlannedTensor],
    /// The file type, for the summary.
    pub ftype: FileType,
    /// Bytes of the input files, for the summary.
    pub input_size: u64,
    /// Worker threads (0: one per core).
    pub threads: usize,
    /// Progress reports.
    pub progress: Option<ProgressFn<'s>>,
}

/// Writes `job` to `output` (through [`temp_path`]), reading each planned tensor through
/// `source`.
pub(crate) fn write_gguf<'d>(
    output: &Path,
    mut job: Job<'_, '_>,
    source: &mut dyn FnMut(&PlannedTensor) -> Result<Source<'d>>,
) -> Result<Summary> {
    let total = job.plan.iter().try_fold(0u64, |acc, t| {
        Ok::<_, Error>(acc + TensorSpec::new(t.name.clone(), &t.ne, t.from).size()?)
    })?;
    let pool = thread_pool(job.threads)?;
    let mut progress = Progress::new(job.progress.as_mut(), total);
    let file_size = write_file(output, job.metadata, job.plan, |w| {
        for t in job.plan {
            let src = source(t)?;
            progress.report(&t.name, 0)?;
            convert_tensor(t, &src, w, &pool, &mut |n| progress.report(&t.name, n))?;
        }
        Ok(())
    })?;
    Summary::new(job.ftype, job.plan, job.input_size, file_size)
}

/// The alignment of tensor data the writer uses for `md`.
pub(crate) fn alignment(md: &Metadata) -> u64 {
    match md.get(KEY_ALIGNMENT) {
        Some(Value::U32(a)) => u64::from(*a),
        _ => DEFAULT_ALIGNMENT,
    }
}

/// Writes tensor `t` (input `src`) to `w`, converting it a band of rows at a time, the rows of
/// a band in parallel on `pool`; `done(n)` is told each time `n` more input bytes are done.
fn convert_tensor<W: Write>(
    t: &PlannedTensor,
    src: &Source<'_>,
    w: &mut Writer<W>,
    pool: &rayon::ThreadPool,
    done: &mut dyn FnMut(u64) -> Result<()>,
) -> Result<()> {
    let n = usize::try_from(t.n_elements()).map_err(|_| orcinus_quant::QuantError::Overflow)?;
    if n == 0 {
        return Ok(()); // the writer has no data to take for an empty tensor
    }
    let ncols = t.ne[0] as usize;
    let nrows = n / ncols;
    let (src_row, dst_row) = (t.from.row_bytes(ncols)?, t.to.row_bytes(ncols)?);
    if src.data.len() != nrows * src_row {
        return Err(Error::Writer(format!(
            "`{}`: source has {} bytes, its shape needs {}",
            t.name,
            src.data.len(),
            nrows * src_row
        )));
    }
    if t.is_copy() && src.rows == RowOrder::Identity {
        w.write_tensor_data(src.data)?;
        return done(src.data.len() as u64);
    }
    let band_rows = (BAND_ELEMENTS / ncols).max(1);
    let (mut out, mut gathered) = (Vec::new(), Vec::new());
    for first in (0..nrows).step_by(band_rows) {
        let rows = band_rows.min(nrows - first);
        let band: &[u8] = match src.rows {
            RowOrder::Identity => &src.data[first * src_row..(first + rows) * src_row],
            order => {
                gathered.clear();
                for r in first..first + rows {
                    let s = order.source_row(r, nrows);
                    gathered.extend_from_slice(&src.data[s * src_row..(s + 1) * src_row]);
                }
                &gathered
            }
        };
        if t.is_copy() {
            w.write_data(band)?;
        } else {
            out.resize(rows * dst_row, 0u8);
            pool.install(|| {
                out.par_chunks_mut(ROWS_PER_TASK * dst_row)
                    .zip(band.par_chunks(ROWS_PER_TASK * src_row))
                    .try_for_each_init(Vec::new, |f32_rows, (dst, src)| {
                        f32_rows.resize(dst.len() / dst_row * ncols, 0f32);
                        t.from.dequantize(src, f32_rows)?;
                        t.to.quantize(f32_rows, dst)
                    })
            })?;
            w.write_data(&out)?;
        }
        done(band.len() as u64)?;
    }
    Ok(())
}
