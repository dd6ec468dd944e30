//! `orcinus quantize`: GGUF → GGUF, or a Hugging Face checkpoint → GGUF (`--hf`), with
//! llama.cpp's quantization mixes.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, bail};
use clap::Args;
use indicatif::ProgressBar;
use orcinus::convert::hf::HfCheckpoint;
use orcinus::gguf::File;
use orcinus::quantize::{self, FileType, ProgressFn, QuantizeOptions, Summary};

const AFTER_HELP: &str = "\
Two ways to call it:

  orcinus quantize IN.gguf OUT.gguf TYPE
      Requantize a GGUF file (F32/F16/BF16 input; quantized input needs --allow-requantize).

  orcinus quantize --hf DIR -o OUT.gguf --type TYPE
      Convert a Hugging Face checkpoint directory (LlamaForCausalLM or MistralForCausalLM:
      config.json, model.safetensors or model.safetensors.index.json + shards in F32/F16/BF16,
      and a SentencePiece tokenizer.model with tokenizer_config.json) to GGUF, quantized in the
      same pass. Tensors are converted one at a time, so memory stays far below the model size.

Norms stay F32; for F32/F16/BF16 every 2-D weight gets that type; the quantized types use
llama.cpp's per-tensor mix (output.weight Q6_K, some attn_v/ffn_down with more bits, 32-block
fallbacks for rows that are not a multiple of 256). The output is written as OUT.tmp-PID and
renamed when complete; on error or Ctrl-C nothing is left behind.";

/// `orcinus quantize` arguments.
#[derive(Args, Debug)]
#[command(after_help = AFTER_HELP)]
pub struct QuantizeArgs {
    /// The input GGUF file (F32, F16 or BF16; a quantized one needs --allow-requantize).
    #[arg(value_name = "IN.gguf", required_unless_present = "hf")]
    input: Option<PathBuf>,
    /// The output GGUF file (written as OUTPUT.tmp-PID, renamed when complete).
    #[arg(value_name = "OUT.gguf", conflicts_with = "output")]
    output_pos: Option<PathBuf>,
    /// File type: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K_S, Q3_K_M, Q3_K_L,
    /// Q4_K_S, Q4_K_M, Q5_K_S, Q5_K_M or Q6_K (Q3_K, Q4_K, Q5_K mean the _M mixes).
    #[arg(value_name = "TYPE", conflicts_with = "ftype")]
    ftype_pos: Option<FileType>,
    /// Convert the Hugging Face checkpoint in this directory instead of a GGUF file.
    #[arg(long, value_name = "DIR", conflicts_with = "input")]
    hf: Option<PathBuf>,
    /// The output GGUF file (instead of the second positional argument).
    #[arg(short = 'o', long, value_name = "OUT.gguf")]
    output: Option<PathBuf>,
    /// The file type (instead of the third positional argument).
    #[arg(long = "type", value_name = "TYPE")]
    ftype: Option<FileType>,
    /// Convert tensors that are already quantized (worse than starting from F16/F32).
    #[arg(long)]
    allow_requantize: bool,
    /// Threads (default: one per core).
    #[arg(short = 't', long, default_value_t = 0)]
    threads: usize,
    /// No progress bar.
    #[arg(short = 'q', long)]
    quiet: bool,
}

/// What to read.
#[derive(Clone, Copy)]
enum Input<'a> {
    Gguf(&'a Path),
    Hf(&'a Path),
}

/// `orcinus quantize`: the summary to print on stdout.
pub fn quantize(a: QuantizeArgs) -> anyhow::Result<String> {
    let t0 = Instant::now();
    let input = match (&a.hf, &a.input) {
        (Some(dir), _) => Input::Hf(dir),
        (None, Some(f)) => Input::Gguf(f),
        (None, None) => bail!("give an input: IN.gguf, or --hf DIR"),
    };
    let in_path = match input {
        Input::Gguf(p) | Input::Hf(p) => p,
    };
    let output = a
        .output
        .as_deref()
        .or(a.output_pos.as_deref())
        .ok_or_else(|| anyhow!("give an output file: OUT.gguf or -o OUT.gguf"))?;
    let ftype = a
        .ftype
        .or(a.ftype_pos)
        .ok_or_else(|| anyhow!("give a file type: TYPE or --type TYPE (e.g. Q4_K_M, F16)"))?;
    // The library's messages name the file already; formatting the error with `{e}` rather
    // than as a context chain keeps it to one clear line.
    let failed = |e: orcinus::Error| {
        let verb = match input {
            Input::Gguf(_) => "quantize",
            Input::Hf(_) => "convert",
        };
        anyhow!(
            "cannot {verb} {} to {}: {e}",
            in_path.display(),
            output.display()
        )
    };
    if let (Input::Gguf(path), true) = (&input, a.allow_requantize) {
        let f = File::open(path).map_err(failed)?;
        let plan = quantize::plan(&f, ftype).map_err(failed)?;
        let n = plan.iter().filter(|t| t.requantizes()).count();
        if n > 0 {
            eprintln!(
                "orcinus: warning: requantizing {n} already-quantized tensors of {}: expect lower \
                 quality than quantizing from an F16/F32 file",
                path.display()
            );
        }
    }
    // Open (and check) a checkpoint before the progress bar appears.
    let checkpoint = match input {
        Input::Hf(dir) => Some(HfCheckpoint::open(dir).map_err(failed)?),
        Input::Gguf(_) => None,
    };

    let (bar, progress) = progress_bar(a.quiet)?;
    let opts = QuantizeOptions {
        threads: a.threads,
        allow_requantize: a.allow_requantize,
        progress: Some(progress),
    };
    let summary = match (&checkpoint, input) {
        (Some(c), _) => c.convert(output, ftype, opts),
        (None, Input::Gguf(path)) => quantize::quantize_file(path, output, ftype, opts),
        (None, Input::Hf(_)) => unreachable!("opened above"),
    };
    bar.finish_and_clear();
    let summary = summary.map_err(failed)?;
    Ok(render(output, &summary, t0.elapsed().as_secs_f64()))
}

/// A progress bar over bytes (hidden with `quiet`) and the library progress callback that
/// drives it. Ctrl-C makes the callback return `false`: the library stops at the next band of
/// rows and removes its temporary file.
pub fn progress_bar(quiet: bool) -> anyhow::Result<(ProgressBar, ProgressFn<'static>)> {
    let bar = ProgressBar::new(0);
    if quiet {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg:32!} [{bar:30}] {bytes}/{total_bytes} ({binary_bytes_per_sec}, ETA {eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    ctrlc::set_handler(move || s.store(true, Ordering::SeqCst))?;
    let b = bar.clone();
    let progress: ProgressFn<'static> = Box::new(move |name, done, total| {
        b.set_length(total);
        b.set_position(done);
        b.set_message(name.to_string());
        !stop.load(Ordering::SeqCst)
    });
    Ok((bar, progress))
}

fn render(output: &Path, s: &Summary, secs: f64) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "wrote {} ({}): {} ({}), {:.3} bits per weight, from {} in {secs:.1} s",
        output.display(),
        s.ftype,
        human_bytes(s.file_size),
        s.file_size,
        s.bits_per_weight,
        human_bytes(s.input_size),
    );
    render_types(s, &mut out);
    out
}

/// The summary's lines per output type, and the counts of requantized and fallen-back tensors.
pub fn render_types(s: &Summary, out: &mut String) {
    for c in &s.by_type {
        let _ = writeln!(
            out,
            "  {:<5} {:>4} tensors {:>12} bytes ({:>10}) {:>6.2}% of params",
            c.ty.name(),
            c.tensors,
            c.bytes,
            human_bytes(c.bytes),
            100.0 * c.params as f64 / (s.n_params as f64).max(1.0)
        );
    }
    if s.n_requantized > 0 {
        let _ = writeln!(out, "  {} tensors requantized", s.n_requantized);
    }
    if s.n_fallback > 0 {
        let _ = writeln!(
            out,
            "  {} tensors fell back to a 32-block type (rows not a multiple of 256)",
            s.n_fallback
        );
    }
}

/// `b` bytes in B, KiB, MiB or GiB.
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.2} {}", UNITS[u])
}
