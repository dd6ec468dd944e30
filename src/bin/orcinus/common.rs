//! Options shared by the commands that run a model.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use orcinus::model::{KvType, LoadOptions, Model, SessionOptions};

/// `-m`, `-t`, `-c` and friends.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// The GGUF model file.
    #[arg(short = 'm', long = "model")]
    pub model: PathBuf,
    /// Threads (default: one per core).
    #[arg(short = 't', long, default_value_t = 0)]
    pub threads: usize,
    /// Context length in tokens (default: 4096, capped by the model's).
    #[arg(short = 'c', long = "ctx-size", default_value_t = 0)]
    pub ctx: usize,
    /// Sliding-window attention width (overrides the model's; 0 turns it off).
    #[arg(long)]
    pub sliding_window: Option<usize>,
    /// KV cache type: f16 or f32.
    #[arg(long, default_value = "f16", value_parser = ["f16", "f32"])]
    pub kv_type: String,
    /// Prompt tokens per forward pass.
    #[arg(short = 'b', long = "batch-size", default_value_t = 512)]
    pub batch: usize,
    /// Read the model into memory instead of mapping it: a slower start, the whole file in
    /// this process's memory (in huge pages where the OS gives them, whatever the page cache
    /// holds).
    #[arg(long)]
    pub no_mmap: bool,
    /// Lock the model's weights in RAM so that the OS never pages them out (needs a
    /// locked-memory limit, `ulimit -l`, above the file's size).
    #[arg(long)]
    pub mlock: bool,
}

impl ModelArgs {
    /// Loads the model, with a progress bar on a terminal, and reports the time on stderr.
    pub fn load(&self, quiet: bool) -> anyhow::Result<Arc<Model>> {
        let t0 = Instant::now();
        let bar = indicatif::ProgressBar::new(1000);
        if quiet {
            bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        bar.set_style(
            indicatif::ProgressStyle::with_template("loading {msg} [{bar:40}] {percent}%")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_message(self.model.display().to_string());
        let b = bar.clone();
        let opts = LoadOptions {
            sliding_window: self.sliding_window,
            progress: Some(Box::new(move |f| b.set_position((f * 1000.0) as u64))),
            no_mmap: self.no_mmap,
            mlock: self.mlock,
        };
        let model = Model::load(&self.model, opts)
            .with_context(|| format!("cannot load {}", self.model.display()))?;
        bar.finish_and_clear();
        if !quiet {
            eprintln!(
                "loaded {} in {:.2} s",
                self.model.display(),
                t0.elapsed().as_secs_f64()
            );
        }
        Ok(model)
    }

    /// Session options from the flags.
    pub fn session_options(&self) -> SessionOptions {
        SessionOptions {
            n_ctx: self.ctx,
            kv_type: if self.kv_type == "f32" {
                KvType::F32
            } else {
                KvType::F16
            },
            threads: self.threads,
            batch: self.batch,
            ..SessionOptions::default()
        }
    }
}
