//! The `orcinus` command-line tool.

mod bench;
mod common;
mod inspect;
mod quantize;
mod run;
mod synth;
mod tools;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Orcinus: run and inspect GGUF language models, in pure Rust.
#[derive(Parser)]
#[command(name = "orcinus", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print a GGUF file's version, metadata, tensor table and a summary.
    Inspect {
        /// The GGUF file.
        file: PathBuf,
        /// Print one JSON object (`version`, `metadata`, `tensors`, `summary`) instead of text.
        #[arg(long)]
        json: bool,
        /// Print metadata arrays in full in the text output (they are summarised otherwise).
        #[arg(long)]
        full: bool,
    },
    /// Generate text from a prompt (text on stdout, stats on stderr).
    Run(run::RunArgs),
    /// Chat interactively.
    Chat(run::ChatArgs),
    /// Print the token ids of a text.
    Tokenize(tools::TokenizeArgs),
    /// Print the exact prompt a conversation becomes with the model's chat template.
    Template(tools::TemplateArgs),
    /// Perplexity of a text file (llama.cpp's method).
    Perplexity(tools::PerplexityArgs),
    /// Write the logits at every prompt position as .npy.
    Logits(tools::LogitsArgs),
    /// Measure prompt and generation speed (llama-bench's method and output), and read bandwidth.
    Bench(bench::BenchArgs),
    /// Quantize a GGUF file, or convert a Hugging Face checkpoint (--hf), with llama.cpp's
    /// mixes (Q4_K_M, Q8_0, ...).
    Quantize(quantize::QuantizeArgs),
    /// Write a benchmark model: a real model's tensor shapes, types and metadata (e.g.
    /// Mistral-7B-OpenOrca), with random weights.
    Synth(synth::SynthArgs),
    /// Write one tensor, dequantized to float32, as a `.npy` file (numpy shape = reversed GGUF `ne`).
    Tensor {
        /// The GGUF file.
        file: PathBuf,
        /// Tensor name, e.g. `blk.0.attn_q.weight`.
        name: String,
        /// Output `.npy` path.
        #[arg(long, short)]
        out: PathBuf,
    },
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Inspect { file, json, full } => {
            let text = inspect::inspect(&file, json, full)?;
            print_out(&text)
        }
        Command::Tensor { file, name, out } => inspect::tensor_to_npy(&file, &name, &out),
        Command::Run(a) => run::run(a),
        Command::Chat(a) => run::chat(a),
        Command::Tokenize(a) => print_out(&tools::tokenize(a)?),
        Command::Template(a) => print_out(&tools::template(a)?),
        Command::Perplexity(a) => print_out(&tools::perplexity(a)?),
        Command::Logits(a) => print_out(&tools::logits(a)?),
        Command::Quantize(a) => print_out(&quantize::quantize(a)?),
        Command::Bench(a) => print_out(&bench::bench(a)?),
        Command::Synth(a) => print_out(&synth::synth(a)?),
    }
}

/// Writes to stdout; a closed pipe (`orcinus inspect f | head`) is not an error.
fn print_out(s: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(s.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

fn main() -> ExitCode {
    // A panic is a bug; still, report it in one line rather than a backtrace.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("orcinus: internal error: {info}");
    }));
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("orcinus: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
