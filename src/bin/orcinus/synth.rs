//! `orcinus synth`: a benchmark model with a real model's shapes and metadata, random weights.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, Context};
use clap::Args;
use orcinus::convert::spm::SpmModel;
use orcinus::quantize::FileType;
use orcinus::synth::{self, SynthOptions, SynthPreset, DEFAULT_SEED};

use crate::quantize::{human_bytes, progress_bar, render_types};

/// The tokenizer's file name among the fixtures.
const TOKENIZER: &str = "tokenizer.model.v1";

/// `orcinus synth` arguments.
#[derive(Args, Debug)]
pub struct SynthArgs {
    /// Model shape: mistral-7b (Mistral-7B-OpenOrca) or tiny (2 blocks, 256 wide; for tests).
    #[arg(long)]
    preset: SynthPreset,
    /// File type: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K_S, Q3_K_M, Q3_K_L,
    /// Q4_K_S, Q4_K_M, Q5_K_S, Q5_K_M or Q6_K (llama.cpp's mixes).
    #[arg(long = "type", value_name = "TYPE", default_value = "Q4_K_M")]
    ftype: FileType,
    /// The output GGUF file (written as OUTPUT.tmp-PID, renamed when complete).
    #[arg(short = 'o', long)]
    output: PathBuf,
    /// Seed of the random weights (the same seed gives the same file, byte for byte).
    #[arg(long, default_value_t = DEFAULT_SEED)]
    seed: u64,
    /// Mistral's SentencePiece tokenizer.model (default: tokenizer.model.v1 in
    /// $ORCINUS_FIXTURES, ./target/fixtures or the source tree's target/fixtures, where
    /// scripts/fetch-fixtures.sh puts it).
    #[arg(long, value_name = "PATH")]
    tokenizer: Option<PathBuf>,
    /// Threads (default: one per core).
    #[arg(short = 't', long, default_value_t = 0)]
    threads: usize,
    /// No progress bar.
    #[arg(short = 'q', long)]
    quiet: bool,
}

/// Where the fixtures' tokenizer may be, in the order they are tried.
fn tokenizer_candidates() -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(dir) = std::env::var_os("ORCINUS_FIXTURES") {
        v.push(PathBuf::from(dir).join(TOKENIZER));
    }
    v.push(Path::new("target/fixtures").join(TOKENIZER));
    v.push(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("target/fixtures")
            .join(TOKENIZER),
    );
    v
}

/// The tokenizer file to read: `--tokenizer`, else the first fixture that exists.
fn tokenizer_path(arg: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = arg {
        return Ok(p.to_path_buf());
    }
    let candidates = tokenizer_candidates();
    if let Some(p) = candidates.iter().find(|p| p.is_file()) {
        return Ok(p.clone());
    }
    let tried: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
    Err(anyhow!(
        "Mistral's tokenizer ({TOKENIZER}) not found (looked for {}): run \
         scripts/fetch-fixtures.sh to fetch it, or pass --tokenizer PATH",
        tried.join(", ")
    ))
}

/// `orcinus synth`: the summary to print on stdout.
pub fn synth(a: SynthArgs) -> anyhow::Result<String> {
    let t0 = Instant::now();
    let tok_path = tokenizer_path(a.tokenizer.as_deref())?;
    let tokenizer = SpmModel::read(&tok_path).with_context(|| {
        format!(
            "cannot read the tokenizer {} (run scripts/fetch-fixtures.sh or pass --tokenizer \
             PATH)",
            tok_path.display()
        )
    })?;
    let (bar, progress) = progress_bar(a.quiet)?;
    let opts = SynthOptions {
        seed: a.seed,
        threads: a.threads,
        progress: Some(progress),
    };
    let summary = synth::synth_to_path(a.preset, a.ftype, &tokenizer, &a.output, opts);
    bar.finish_and_clear();
    let s = summary.with_context(|| {
        format!(
            "cannot write {} ({} {})",
            a.output.display(),
            a.preset,
            a.ftype
        )
    })?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "wrote {} ({} {}, seed {}, random weights): {} ({}), {} params, {:.3} bits per weight, \
         in {:.1} s",
        a.output.display(),
        a.preset,
        s.ftype,
        a.seed,
        human_bytes(s.file_size),
        s.file_size,
        s.n_params,
        s.bits_per_weight,
        t0.elapsed().as_secs_f64()
    );
    render_types(&s, &mut out);
    Ok(out)
}
