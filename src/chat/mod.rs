//! Chat formatting: turns a conversation into the prompt text a model was trained on.
//!
//! A GGUF file usually carries its chat template as Hugging Face Jinja text under
//! `tokenizer.chat_template`; [`Template::from_metadata`] reads it and renders it with
//! [`minijinja`] under the semantics of `transformers`' `apply_chat_template` (see
//! [`JinjaTemplate`]). Files without a template get the built-in ChatML format.
//!
//! ```
//! use orcinus::chat::{Message, Template};
//!
//! let msgs = [Message::new("user", "Hi!")];
//! let prompt = Template::ChatMl.render(&msgs, true, "<s>", "</s>")?;
//! assert_eq!(prompt, "<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n");
//! # Ok::<(), orcinus::Error>(())
//! ```
//!
//! Templates come from model files, so they are untrusted: rendering cannot read files, runs
//! on a bounded budget of work and output ([`Limits`]), and every failure is an
//! [`Error::Template`] holding a [`TemplateError`], never a panic.

mod jinja;
mod pyjson;

use serde::{Deserialize, Serialize};

pub use jinja::JinjaTemplate;

use crate::error::{Error, Result};
use crate::gguf::Metadata;

/// Metadata key holding a model's default chat template (Hugging Face Jinja text).
pub const CHAT_TEMPLATE_KEY: &str = "tokenizer.chat_template";

/// One turn of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Message {
    /// Who speaks: usually `system`, `user` or `assistant` (templates may accept others).
    pub role: String,
    /// What they say.
    pub content: String,
}

impl Message {
    /// A message from `role` saying `content`.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// Bounds on one rendering of an untrusted Jinja template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest output in bytes; rendering more is [`TemplateError::OutputTooLong`].
    pub max_output_bytes: usize,
    /// minijinja fuel: one unit per instruction plus one per 64 bytes of data made or
    /// written, so it bounds both time and memory (about 64 bytes a unit). Running out is
    /// [`TemplateError::OutOfFuel`].
    pub fuel: u64,
    /// Deepest nesting of loops, conditionals and macro calls at run time.
    pub recursion: usize,
}

impl Limits {
    /// The defaults: 1 MiB of output; 2 million units of fuel, which bounds the data a
    /// render can build to ~128 MiB and its time to a few hundred milliseconds, yet is more
    /// than 10× what an 850 KB, 2,000-message ChatML conversation needs; recursion depth 200.
    pub const DEFAULT: Limits = Limits {
        max_output_bytes: 1 << 20,
        fuel: 2_000_000,
        recursion: 200,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Why a chat template could not be compiled or rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// The template text is not valid Jinja.
    #[error("syntax error: {0}")]
    Syntax(String),
    /// The template called `raise_exception(message)`, usually because it does not accept
    /// the conversation (e.g. roles that do not alternate).
    #[error("the template rejected the conversation: {0}")]
    Raised(String),
    /// The output grew past [`Limits::max_output_bytes`].
    #[error("output longer than {limit} bytes")]
    OutputTooLong {
        /// The limit in bytes.
        limit: usize,
    },
    /// Rendering did more work than [`Limits::fuel`] allows.
    #[error("rendering needs more than {fuel} units of fuel")]
    OutOfFuel {
        /// The fuel budget.
        fuel: u64,
    },
    /// Any other failure while rendering: an unknown filter or function, a type error, an
    /// undefined value used as an object, too deep recursion, a loader-less `include`...
    #[error("{0}")]
    Render(String),
}

impl From<TemplateError> for Error {
    fn from(e: TemplateError) -> Self {
        Error::Template(e)
    }
}

/// A chat format.
#[derive(Debug, Clone)]
pub enum Template {
    /// The built-in ChatML format: each message is
    /// `<|im_start|>{role}\n{content}<|im_end|>\n`, and the generation prompt is
    /// `<|im_start|>assistant\n`. Used by files that carry no template.
    ChatMl,
    /// A Hugging Face Jinja chat template, compiled.
    Jinja(JinjaTemplate),
}

impl Template {
    /// The chat format of a GGUF file: its `tokenizer.chat_template` (compiled with the
    /// default [`Limits`]) when present, otherwise [`Template::ChatMl`].
    ///
    /// Errors: [`Error::WrongType`] when the key is not a string, [`Error::Template`] with
    /// [`TemplateError::Syntax`] when the text is not valid Jinja.
    pub fn from_metadata(md: &Metadata) -> Result<Self> {
        if md.contains(CHAT_TEMPLATE_KEY) {
            Template::jinja(md.get_str(CHAT_TEMPLATE_KEY)?)
        } else {
            Ok(Template::ChatMl)
        }
    }

    /// Compiles Jinja `source` with the default [`Limits`].
    pub fn jinja(source: &str) -> Result<Self> {
        Ok(Template::Jinja(JinjaTemplate::new(source)?))
    }

    /// Renders `messages` to prompt text. `add_generation_prompt` appends the text that
    /// opens the assistant's reply; `bos` and `eos` are the model's BOS and EOS token
    /// strings (templates may write them; ChatML does not).
    pub fn render(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
        bos: &str,
        eos: &str,
    ) -> Result<String> {
        match self {
            Template::ChatMl => Ok(render_chatml(messages, add_generation_prompt)),
            Template::Jinja(t) => t.render(messages, add_generation_prompt, bos, eos),
        }
    }

    /// [`Template::render`] with the BOS and EOS token strings of `tok` (empty when the
    /// tokenizer has none).
    pub fn render_for(
        &self,
        tok: &crate::tokenizer::Tokenizer,
        messages: &[Message],
        add_generation_prompt: bool,
    ) -> Result<String> {
        let name = |id: Option<u32>| id.and_then(|i| tok.token_str(i)).unwrap_or("");
        self.render(
            messages,
            add_generation_prompt,
            name(tok.bos_id()),
            name(tok.eos_id()),
        )
    }
}

/// The built-in ChatML rendering (see [`Template::ChatMl`]).
fn render_chatml(messages: &[Message], add_generation_prompt: bool) -> String {
    const START: &str = "<|im_start|>";
    const END: &str = "<|im_end|>\n";
    const GEN: &str = "<|im_start|>assistant\n";
    let len: usize = messages
        .iter()
        .map(|m| START.len() + m.role.len() + 1 + m.content.len() + END.len())
        .sum();
    let mut out = String::with_capacity(len + GEN.len());
    for m in messages {
        out.push_str(START);
        out.push_str(&m.role);
        out.push('\n');
        out.push_str(&m.content);
        out.push_str(END);
    }
    if add_generation_prompt {
        out.push_str(GEN);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::Value;

    #[test]
    fn chatml_empty_and_generation_prompt() {
        assert_eq!(render_chatml(&[], false), "");
        assert_eq!(render_chatml(&[], true), "<|im_start|>assistant\n");
        let m = [Message::new("user", "a\nb")];
        assert_eq!(
            render_chatml(&m, false),
            "<|im_start|>user\na\nb<|im_end|>\n"
        );
    }

    #[test]
    fn from_metadata_chooses_format() {
        let mut md = Metadata::new();
        assert!(matches!(Template::from_metadata(&md), Ok(Template::ChatMl)));
        md.insert(CHAT_TEMPLATE_KEY, Value::U32(3));
        assert!(matches!(
            Template::from_metadata(&md),
            Err(Error::WrongType { .. })
        ));
        md.insert(CHAT_TEMPLATE_KEY, Value::String("{{ bos_token }}x".into()));
        let t = Template::from_metadata(&md).unwrap();
        assert!(matches!(t, Template::Jinja(_)));
        assert_eq!(t.render(&[], false, "<s>", "</s>").unwrap(), "<s>x");
        md.insert(CHAT_TEMPLATE_KEY, Value::String("{% if %}".into()));
        assert!(matches!(
            Template::from_metadata(&md),
            Err(Error::Template(TemplateError::Syntax(_)))
        ));
    }

    #[test]
    fn message_serde_round_trip() {
        let m = Message::new("user", "hé \"x\"");
        let s = serde_json::to_string(&m).unwrap();
        assert_eq!(s, r#"{"role":"user","content":"hé \"x\""}"#);
        assert_eq!(serde_json::from_str::<Message>(&s).unwrap(), m);
    }
}
