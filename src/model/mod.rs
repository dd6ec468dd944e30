//! Models: typed hyper-parameters, weights bound to the GGUF map, the graph, and sessions.
//!
//! A [`Model`] is immutable and `Send + Sync`: many [`Session`]s can share one behind an
//! `Arc`, each owning only its KV cache, scratch buffers and thread pool.

pub mod arch;
pub mod hparams;
pub mod kv_cache;
pub mod layers;
mod session;
pub mod weights;

use std::path::Path;
use std::sync::Arc;

pub use arch::llama::Logits;
pub use hparams::{Arch, Hparams};
pub use kv_cache::{KvCache, KvType};
pub use session::{Session, SessionOptions};
pub use weights::Weights;

use crate::chat::{Message, Template};
use crate::error::Result;
use crate::gguf::File;
use crate::tokenizer::Tokenizer;

/// Options for [`Model::load`].
#[derive(Default)]
pub struct LoadOptions {
    /// Overrides the model's sliding window: `Some(0)` turns it off, `Some(n)` sets it.
    pub sliding_window: Option<usize>,
    /// Called with the fraction loaded (0.0..=1.0) as loading progresses.
    pub progress: Option<Box<dyn FnMut(f32) + Send>>,
    /// Read the file into the process's memory instead of mapping it ([`File::read`]:
    /// `--no-mmap`): the whole file is read at load time and counted in the resident set, in
    /// huge pages whatever the page cache holds.
    pub no_mmap: bool,
    /// Lock the weights in RAM ([`File::lock`]: `--mlock`); loading fails if the OS refuses.
    pub mlock: bool,
}

impl std::fmt::Debug for LoadOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadOptions")
            .field("sliding_window", &self.sliding_window)
            .field("no_mmap", &self.no_mmap)
            .field("mlock", &self.mlock)
            .finish_non_exhaustive()
    }
}

/// A loaded model: weights (views into the mapped file), hyper-parameters, tokenizer and chat
/// template, all read from the GGUF file.
#[derive(Debug)]
pub struct Model {
    /// Hyper-parameters.
    pub hparams: Hparams,
    /// Weights.
    pub weights: Weights,
    /// The tokenizer rebuilt from the file's metadata.
    pub tokenizer: Tokenizer,
    /// The file's chat template (built-in ChatML when it has none).
    pub template: Template,
    file: Arc<File>,
}

impl Model {
    /// Memory-maps `path` (or reads it, with [`LoadOptions::no_mmap`]) and binds the model's
    /// weights (no weight is copied out of the file's bytes).
    pub fn load(path: impl AsRef<Path>, mut opts: LoadOptions) -> Result<Arc<Self>> {
        // Reading the file is most of a --no-mmap load: it gets this share of the progress.
        const READ_SHARE: f32 = 0.9;
        let file = if opts.no_mmap {
            let mut report = |done: u64, total: u64| {
                if let Some(p) = opts.progress.as_mut() {
                    p(READ_SHARE * done as f32 / total.max(1) as f32);
                }
            };
            let file = File::read(path, &mut report)?;
            if let Some(mut p) = opts.progress.take() {
                opts.progress = Some(Box::new(move |f| p(READ_SHARE + (1.0 - READ_SHARE) * f)));
            }
            file
        } else {
            File::open(path)?
        };
        if opts.mlock {
            file.lock()?;
        }
        Ok(Arc::new(Self::from_file(Arc::new(file), opts)?))
    }

    /// Binds a model to an open GGUF file.
    pub fn from_file(file: Arc<File>, mut opts: LoadOptions) -> Result<Self> {
        let mut hparams = Hparams::from_metadata(file.metadata())?;
        match opts.sliding_window {
            Some(0) => hparams.sliding_window = None,
            Some(w) => hparams.sliding_window = Some(w),
            None => {}
        }
        let mut report = |done: usize, total: usize| {
            if let Some(p) = opts.progress.as_mut() {
                p(done as f32 / total.max(1) as f32);
            }
        };
        let weights = Weights::load(&file, &hparams, &mut report)?;
        let tokenizer = Tokenizer::from_metadata(file.metadata())?;
        if tokenizer.vocab_size() != hparams.n_vocab {
            return Err(crate::Error::Unsupported(format!(
                "the tokenizer has {} tokens but the model's vocabulary is {}",
                tokenizer.vocab_size(),
                hparams.n_vocab
            )));
        }
        let template = Template::from_metadata(file.metadata())?;
        Ok(Model {
            hparams,
            weights,
            tokenizer,
            template,
            file,
        })
    }

    /// A new session over this model.
    pub fn session(self: &Arc<Self>, opts: &SessionOptions) -> Result<Session> {
        Session::new(self.clone(), opts)
    }

    /// Formats a conversation with the model's chat template.
    pub fn format_chat(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        self.template
            .render_for(&self.tokenizer, messages, add_generation_prompt)
    }

    /// The GGUF file the model was loaded from.
    pub fn file(&self) -> &Arc<File> {
        &self.file
    }
}
