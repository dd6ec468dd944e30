//! `orcinus quantize`: GGUF → GGUF with llama.cpp's quantization mixes.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::anyhow;
use clap::Args;
use indicatif::ProgressBar;
use orcinus::gguf::File;
use orcinus::quantize::{self, FileType, ProgressFn, QuantizeOptions, Summary};

/// `orcinus quantize` arguments.
#[derive(Args, Debug)]
pub struct QuantizeArgs {
    /// The input GGUF file (F32, F16 or BF16; a quantized one needs --allow-requantize).
    input: PathBuf,
    /// The output GGUF file (written as OUTPUT.tmp-PID, renamed when complete).
    output: PathBuf,
    /// File type: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K_S, Q3_K_M, Q3_K_L,
    /// Q4_K_S, Q4_K_M, Q5_K_S, Q5_K_M or Q6_K (Q3_K, Q4_K, Q5_K mean the _M mixes).
    #[arg(value_name = "TYPE")]
    ftype: FileType,
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

/// `orcinus quantize`: the summary to print on stdout.
pub fn quantize(a: QuantizeArgs) -> anyhow::Result<String> {
    let t0 = Instant::now();
    // The library's messages name the file already; formatting the error with `{e}` rather
    // than as a context chain keeps it to one clear line.
    let failed = |e: orcinus::Error| {
        anyhow!(
            "cannot quantize {} to {}: {e}",
            a.input.display(),
            a.output.display()
        )
    };
    if a.allow_requantize {
        let f = File::open(&a.input).map_err(failed)?;
        let plan = quantize::plan(&f, a.ftype).map_err(failed)?;
        let n = plan.iter().filter(|t| t.requantizes()).count();
        if n > 0 {
            eprintln!(
                "orcinus: warning: requantizing {n} already-quantized tensors of {}: expect lower \
                 quality than quantizing from an F16/F32 file",
                a.input.display()
            );
        }
    }

    let (bar, progress) = progress_bar(a.quiet)?;
    let opts = QuantizeOptions {
        threads: a.threads,
        allow_requantize: a.allow_requantize,
        progress: Some(progress),
    };
    let summary = quantize::quantize_file(&a.input, &a.output, a.ftype, opts);
    bar.finish_and_clear();
    let summary = summary.map_err(failed)?;
    Ok(render(&a, &summary, t0.elapsed().as_secs_f64()))
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

fn render(a: &QuantizeArgs, s: &Summary, secs: f64) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "wrote {} ({}): {} ({}), {:.3} bits per weight, from {} in {secs:.1} s",
        a.output.display(),
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
