//! Streaming pieces for writers that make tensor data on the fly (`orcinus synth`): a thread
//! pool, progress counting, a GGUF file written to a temporary name and renamed when complete,
//! and bands of f32 rows quantized in parallel.

use std::io::{BufWriter, Seek, Write};
use std::path::Path;

use rayon::prelude::*;

use super::pipeline::{alignment, temp_path, TempFile, BAND_ELEMENTS, ROWS_PER_TASK};
use super::{PlannedTensor, ProgressFn};
use crate::error::{Error, Result};
use crate::gguf::{Metadata, TensorSpec, Writer};
use crate::quant::GgmlType;

/// A rayon pool of `threads` workers (0: one per core).
pub(crate) fn thread_pool(threads: usize) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| Error::io("starting worker threads", std::io::Error::other(e)))
}

/// Adds up work done and hands it to a [`ProgressFn`], turning its `false` into
/// [`Error::Cancelled`].
pub(crate) struct Progress<'p, 'a> {
    callback: Option<&'p mut ProgressFn<'a>>,
    done: u64,
    total: u64,
}

impl<'p, 'a> Progress<'p, 'a> {
    /// Progress towards `total` units, reported to `callback`.
    pub(crate) fn new(callback: Option<&'p mut ProgressFn<'a>>, total: u64) -> Self {
        Progress {
            callback,
            done: 0,
            total,
        }
    }

    /// `n` more units done, in tensor `name`.
    pub(crate) fn report(&mut self, name: &str, n: u64) -> Result<()> {
        self.done += n;
        let go_on = match self.callback.as_mut() {
            Some(p) => p(name, self.done, self.total),
            None => true,
        };
        if go_on {
            Ok(())
        } else {
            Err(Error::Cancelled)
        }
    }
}

/// The sink tensor data is streamed into by [`write_file`].
pub(crate) type FileWriter = Writer<BufWriter<std::fs::File>>;

/// Writes a GGUF file with metadata `md` and the output types of `plan` to `output`:
/// `body` streams every tensor's data into the writer, in plan order. The file is written to
/// [`temp_path`]`(output)`, padded at the end to the alignment (as llama.cpp and gguf-py pad
/// it), synced and renamed to `output` only when complete; on any error (or cancellation) the
/// temporary file is removed and `output` is left untouched. Returns the file's size.
pub(crate) fn write_file(
    output: &Path,
    md: &Metadata,
    plan: &[PlannedTensor],
    body: impl FnOnce(&mut FileWriter) -> Result<()>,
) -> Result<u64> {
    let specs: Vec<TensorSpec> = plan
        .iter()
        .map(|t| TensorSpec::new(t.name.clone(), &t.ne, t.to))
        .collect();
    let tmp_path = temp_path(output);
    let out = std::fs::File::create(&tmp_path).map_err(|e| Error::io(tmp_path.display(), e))?;
    let mut tmp = TempFile {
        path: tmp_path,
        done: false,
    };
    let mut w = Writer::new(BufWriter::with_capacity(1 << 20, out), md, &specs)?;
    body(&mut w)?;

    let mut buf = w.finish()?;
    let io = |e| Error::io(tmp.path.display(), e);
    let end = buf.stream_position().map_err(io)?;
    let pad = end.next_multiple_of(alignment(md)) - end;
    buf.write_all(&vec![0u8; pad as usize]).map_err(io)?;
    let out = buf.into_inner().map_err(|e| io(e.into_error()))?;
    out.sync_all().map_err(io)?;
    drop(out);
    std::fs::rename(&tmp.path, output).map_err(|e| {
        Error::io(
            format_args!("renaming {} to {}", tmp.path.display(), output.display()),
            e,
        )
    })?;
    tmp.done = true;
    Ok(std::fs::metadata(output)
        .map_err(|e| Error::io(output.display(), e))?
        .len())
}

/// Writes a tensor of shape `ne` and type `to` to `w` from f32 rows that `fill(first_row,
/// rows)` produces (`rows` holds whole rows of `ne[0]` values, starting at row `first_row`):
/// a band of rows at a time, the rows of a band filled and quantized in parallel on `pool`,
/// [`ROWS_PER_TASK`] rows per task. Memory stays bounded by one band of output plus one
/// task's f32 rows per thread. `done(n)` is told each time `n` more rows are written.
pub(crate) fn write_rows<W: Write>(
    to: GgmlType,
    ne: &[u64],
    w: &mut Writer<W>,
    pool: &rayon::ThreadPool,
    fill: &(dyn Fn(usize, &mut [f32]) -> Result<()> + Sync),
    done: &mut dyn FnMut(usize) -> Result<()>,
) -> Result<()> {
    let n: u64 = ne.iter().product();
    let n = usize::try_from(n).map_err(|_| orcinus_quant::QuantError::Overflow)?;
    if n == 0 {
        return Ok(()); // the writer has no data to take for an empty tensor
    }
    let ncols = ne[0] as usize;
    let nrows = n / ncols;
    let dst_row = to.row_bytes(ncols)?;
    let band_rows = (BAND_ELEMENTS / ncols).max(1);
    let mut out = Vec::new();
    for first in (0..nrows).step_by(band_rows) {
        let rows = band_rows.min(nrows - first);
        out.resize(rows * dst_row, 0u8);
        pool.install(|| {
            out.par_chunks_mut(ROWS_PER_TASK * dst_row)
                .enumerate()
                .try_for_each_init(Vec::new, |f32_rows, (i, dst)| {
                    f32_rows.resize(dst.len() / dst_row * ncols, 0f32);
                    fill(first + i * ROWS_PER_TASK, f32_rows)?;
                    Ok::<_, Error>(to.quantize(f32_rows, dst)?)
                })
        })?;
        w.write_data(&out)?;
        done(rows)?;
    }
    Ok(())
}
