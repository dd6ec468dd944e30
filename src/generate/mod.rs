//! Text generation over a [`Session`]: prompt → prefill → (sample → decode_step)* → text.
//!
//! ```no_run
//! use orcinus::generate::{GenerateParams, Prompt};
//! use orcinus::model::{LoadOptions, Model, SessionOptions};
//! use orcinus::chat::Message;
//!
//! let model = Model::load("model.gguf", LoadOptions::default())?;
//! let mut session = model.session(&SessionOptions::default())?;
//! let messages = [Message::new("user", "What is the capital of France?")];
//! let mut gen = session.generate(Prompt::Messages(&messages), &GenerateParams::default())?;
//! for piece in &mut gen {
//!     print!("{}", piece?.text);
//! }
//! # Ok::<(), orcinus::Error>(())
//! ```

mod kld;
mod perplexity;
mod stop;
mod utf8;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::chat::Message;
use crate::error::{Error, Result};
use crate::model::Session;
use crate::sampling::{Sampler, SamplingParams};

pub use kld::{compare as kl_divergence, write_base as write_kl_base, KlBase, KlStats};
pub use perplexity::{perplexity, Perplexity};
pub use stop::StopMatcher;
pub use utf8::Utf8Buffer;

/// What to generate from.
#[derive(Debug, Clone, Copy)]
pub enum Prompt<'a> {
    /// Raw text; BOS is added when the model's metadata asks for it (as llama.cpp does) and
    /// special-token strings in it are not parsed.
    Text(&'a str),
    /// A conversation, formatted with the model's chat template and an assistant turn opened;
    /// special tokens in the formatted prompt are parsed.
    Messages(&'a [Message]),
    /// Token ids, evaluated as they are.
    Tokens(&'a [u32]),
}

/// Generation parameters.
#[derive(Debug, Clone)]
pub struct GenerateParams {
    /// Most new tokens to generate.
    pub max_tokens: usize,
    /// Sampling.
    pub sampling: SamplingParams,
    /// Stop when the generated text contains one of these (it is not returned).
    pub stop: Vec<String>,
    /// Stop at an end-of-generation token (EOS, `<|im_end|>`, ...).
    pub stop_at_eog: bool,
}

impl Default for GenerateParams {
    fn default() -> Self {
        GenerateParams {
            max_tokens: 512,
            sampling: SamplingParams::default(),
            stop: Vec::new(),
            stop_at_eog: true,
        }
    }
}

/// One generated piece of text and the token it came from (text may be empty while a
/// multi-byte character is incomplete, or held back while it may start a stop string).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    /// Token id.
    pub id: u32,
    /// Decoded text ready to show.
    pub text: String,
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// An end-of-generation token.
    Eog,
    /// `max_tokens` reached.
    Length,
    /// A stop string.
    Stop,
    /// Cancelled through a [`CancelHandle`].
    Cancelled,
}

/// Timing and counts of one generation.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Prompt tokens evaluated (after reusing the cached prefix).
    pub prompt_tokens: usize,
    /// Prompt tokens found already in the cache.
    pub cached_tokens: usize,
    /// Time spent evaluating the prompt.
    pub prompt_time: Duration,
    /// Tokens generated.
    pub generated_tokens: usize,
    /// Time spent generating.
    pub generation_time: Duration,
}

impl Stats {
    /// Prompt tokens per second.
    pub fn prompt_tps(&self) -> f64 {
        self.prompt_tokens as f64 / self.prompt_time.as_secs_f64().max(1e-9)
    }
    /// Generated tokens per second.
    pub fn generation_tps(&self) -> f64 {
        self.generated_tokens as f64 / self.generation_time.as_secs_f64().max(1e-9)
    }
}

/// Stops a running generation from another thread (e.g. a Ctrl-C handler).
#[derive(Debug, Clone, Default)]
pub struct CancelHandle(Arc<AtomicBool>);

impl CancelHandle {
    /// Asks the generation to stop after the current token.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    /// Whether cancellation was asked for.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
    fn clear(&self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// Formats and tokenizes a prompt the way [`Session::generate`] does.
pub fn prompt_tokens(session: &Session, prompt: Prompt<'_>) -> Result<Vec<u32>> {
    let model = session.model();
    let tok = &model.tokenizer;
    match prompt {
        Prompt::Text(t) => tok.encode(t, tok.add_bos_default(), false),
        Prompt::Messages(m) => {
            let text = model.format_chat(m, true)?;
            // Templates write BOS themselves when they want it (e.g. `{{ bos_token }}`).
            tok.encode(&text, false, true)
        }
        Prompt::Tokens(t) => Ok(t.to_vec()),
    }
}

impl Session {
    /// Starts generating from `prompt`. Tokens already in this session's cache that match the
    /// start of the prompt are reused (multi-turn chat only evaluates the new turn).
    pub fn generate<'s>(
        &'s mut self,
        prompt: Prompt<'_>,
        params: &GenerateParams,
    ) -> Result<Generation<'s>> {
        let tokens = prompt_tokens(self, prompt)?;
        if tokens.is_empty() {
            return Err(Error::Unsupported("empty prompt".into()));
        }
        let cancel = self.cancel_handle();
        cancel.clear();
        let t0 = Instant::now();
        let (logits, cached) = self.prefill_reusing(&tokens)?;
        let stats = Stats {
            prompt_tokens: tokens.len() - cached,
            cached_tokens: cached,
            prompt_time: t0.elapsed(),
            ..Stats::default()
        };
        Ok(Generation {
            sampler: Sampler::new(params.sampling),
            stop: StopMatcher::new(&params.stop),
            max_tokens: params.max_tokens,
            stop_at_eog: params.stop_at_eog,
            decoder: Utf8Buffer::default(),
            logits: Some(logits),
            finished: None,
            stats,
            cancel,
            session: self,
            history_seeded: false,
            prompt: tokens,
        })
    }
}

/// A running generation: an iterator of [`Piece`]s.
pub struct Generation<'s> {
    session: &'s mut Session,
    sampler: Sampler,
    stop: StopMatcher,
    decoder: Utf8Buffer,
    max_tokens: usize,
    stop_at_eog: bool,
    logits: Option<Vec<f32>>,
    finished: Option<FinishReason>,
    stats: Stats,
    cancel: CancelHandle,
    prompt: Vec<u32>,
    history_seeded: bool,
}

impl Generation<'_> {
    /// Timing and counts so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Why generation ended (`None` while it runs).
    pub fn finish_reason(&self) -> Option<FinishReason> {
        self.finished
    }

    /// A handle that cancels this generation.
    pub fn cancel_handle(&self) -> CancelHandle {
        self.cancel.clone()
    }

    fn finish(&mut self, why: FinishReason) -> Option<Result<Piece>> {
        self.finished = Some(why);
        // Flush text held back for a possible stop string or an incomplete character.
        let tail = self.decoder.finish();
        let text = self.stop.flush(&tail);
        (!text.is_empty()).then_some(Ok(Piece { id: u32::MAX, text }))
    }

    fn step(&mut self) -> Result<Option<Piece>> {
        if !self.history_seeded {
            // Repetition penalties look at the prompt too, as llama.cpp's do.
            for &t in &self.prompt {
                self.sampler.accept(t);
            }
            self.history_seeded = true;
        }
        let Some(mut logits) = self.logits.take() else {
            return Ok(None);
        };
        let id = self.sampler.sample(&mut logits);
        self.sampler.accept(id);
        let t0 = Instant::now();
        let model = self.session.model().clone();
        let tok = &model.tokenizer;
        if self.stop_at_eog && tok.is_eog(id) {
            self.finished = Some(FinishReason::Eog);
            return Ok(None);
        }
        self.stats.generated_tokens += 1;
        let raw = if tok.is_control(id) {
            String::new()
        } else {
            self.decoder.push(&tok.token_bytes(id))
        };
        let (text, hit) = self.stop.push(&raw);
        if hit {
            self.finished = Some(FinishReason::Stop);
            return Ok(Some(Piece { id, text }));
        }
        // The last token is not evaluated when generation ends here; a follow-up prompt that
        // contains it simply evaluates it then.
        if self.stats.generated_tokens >= self.max_tokens {
            self.finished = Some(FinishReason::Length);
        } else if self.cancel.is_cancelled() {
            self.finished = Some(FinishReason::Cancelled);
        } else {
            // The sampled vector is reused for the next step's logits (no allocation).
            self.session.decode_step_into(id, &mut logits)?;
            self.logits = Some(logits);
        }
        self.stats.generation_time += t0.elapsed();
        Ok(Some(Piece { id, text }))
    }
}

impl Iterator for Generation<'_> {
    type Item = Result<Piece>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished.is_some() {
            return None;
        }
        match self.step() {
            Ok(Some(p)) => Some(Ok(p)),
            Ok(None) => {
                let why = self.finished.unwrap_or(FinishReason::Eog);
                self.finish(why)
            }
            Err(e) => {
                self.finished = Some(FinishReason::Cancelled);
                Some(Err(e))
            }
        }
    }
}
