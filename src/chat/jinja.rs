//! Hugging Face Jinja chat templates, rendered in a sandboxed minijinja environment.

use std::fmt;
use std::io;
use std::sync::Arc;

use minijinja::syntax::SyntaxConfig;
use minijinja::value::{Kwargs, Rest, ValueKind, ValueOrKwargs};
use minijinja::{
    escape_formatter, AutoEscape, Environment, Error, ErrorKind, Output, State, UndefinedBehavior,
    Value,
};

use super::{Limits, Message, TemplateError};
use crate::error::Result;

/// The name the template is stored under (it shows in error messages).
const NAME: &str = "chat_template";

/// A compiled Hugging Face chat template.
///
/// It renders as `transformers`' `apply_chat_template` does: Jinja with `trim_blocks` and
/// `lstrip_blocks` on, lenient undefined values, `break`/`continue`, the variables
/// `messages` (a list of `{role, content}` maps), `bos_token`, `eos_token` and
/// `add_generation_prompt`, the function `raise_exception(msg)`, a `tojson` filter that
/// writes what Python's `json.dumps` writes, and Python string, list and dict methods
/// (`.strip()`, `.startswith()`, `.split()`, `.items()`, ...) from `minijinja-contrib`'s
/// pycompat. Not provided: `strftime_now` (templates test `is defined` and fall back),
/// `{% generation %}` and file access: there is no loader, so `include`, `import` and
/// `extends` fail with [`TemplateError::Render`].
///
/// Each render runs under its [`Limits`]. Cloning is cheap (the compiled template is shared).
#[derive(Clone)]
pub struct JinjaTemplate {
    inner: Arc<Inner>,
}

struct Inner {
    /// The sandbox with the template compiled in it, under [`NAME`].
    env: Environment<'static>,
    source: String,
    limits: Limits,
}

impl fmt::Debug for JinjaTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JinjaTemplate")
            .field("source", &self.inner.source)
            .field("limits", &self.inner.limits)
            .finish()
    }
}

impl JinjaTemplate {
    /// Compiles `source` with the default [`Limits`].
    ///
    /// Errors: [`TemplateError::Syntax`] (as [`crate::Error::Template`]).
    pub fn new(source: &str) -> Result<Self> {
        Self::with_limits(source, Limits::default())
    }

    /// Compiles `source`; each render runs under `limits`.
    pub fn with_limits(source: &str, limits: Limits) -> Result<Self> {
        let mut env = sandbox(&limits)?;
        env.add_template_owned(NAME, source.to_string())
            .map_err(|e| classify(e, &limits, false))?;
        Ok(Self {
            inner: Arc::new(Inner {
                env,
                source: source.to_string(),
                limits,
            }),
        })
    }

    /// The template text.
    pub fn source(&self) -> &str {
        &self.inner.source
    }

    /// The bounds each render runs under.
    pub fn limits(&self) -> Limits {
        self.inner.limits
    }

    /// Renders `messages`; see [`super::Template::render`].
    pub fn render(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
        bos: &str,
        eos: &str,
    ) -> Result<String> {
        let Inner { env, limits, .. } = &*self.inner;
        let tmpl = env
            .get_template(NAME)
            .map_err(|e| classify(e, limits, false))?;
        let messages: Value = messages
            .iter()
            .map(|m| {
                Value::from_pairs([
                    ("role", Value::from(m.role.as_str())),
                    ("content", Value::from(m.content.as_str())),
                ])
            })
            .collect();
        let ctx = Value::from_pairs([
            ("messages", messages),
            ("bos_token", Value::from(bos)),
            ("eos_token", Value::from(eos)),
            ("add_generation_prompt", Value::from(add_generation_prompt)),
        ]);
        let mut out = LimitedWriter {
            buf: Vec::new(),
            limit: limits.max_output_bytes,
            exceeded: false,
        };
        match tmpl.render_captured_to(ctx, &mut out) {
            Ok(_) => String::from_utf8(out.buf)
                .map_err(|_| TemplateError::Render("output is not UTF-8".into()).into()),
            Err(e) => Err(classify(e, limits, out.exceeded).into()),
        }
    }
}

/// The environment every chat template runs in: HF's settings, no loader, bounded.
fn sandbox(limits: &Limits) -> Result<Environment<'static>, TemplateError> {
    let mut env = Environment::new();
    env.set_syntax(
        SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .map_err(|e| TemplateError::Render(e.to_string()))?,
    );
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_formatter(python_formatter);
    env.set_undefined_behavior(UndefinedBehavior::Lenient);
    env.set_fuel(Some(limits.fuel));
    env.set_recursion_limit(limits.recursion);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    minijinja_contrib::add_to_environment(&mut env);
    env.add_function("raise_exception", raise_exception);
    env.add_filter("truncate", truncate);
    env.add_filter("tojson", super::pyjson::filter(limits.max_output_bytes));
    Ok(env)
}

/// Prints `{{ true }}`, `{{ false }}` and `{{ none }}` as Python does (`True`, `False`,
/// `None`); everything else as minijinja does.
fn python_formatter(out: &mut Output, state: &mut State, value: &Value) -> Result<(), Error> {
    let text = match value.kind() {
        ValueKind::Bool if value.is_true() => "True",
        ValueKind::Bool => "False",
        ValueKind::None => "None",
        _ => return escape_formatter(out, state, value),
    };
    out.write_str(text)
        .map_err(|_| Error::from(ErrorKind::WriteFailure))
}

/// Jinja2's `truncate(s, length=255, killwords=False, end='...', leeway=5)`, taking its
/// arguments by position or keyword (minijinja-contrib's takes keywords only).
fn truncate(state: &mut State, value: &Value, args: Rest<ValueOrKwargs>) -> Result<Value, Error> {
    const NAMES: [&str; 4] = ["length", "killwords", "end", "leeway"];
    let mut named: Vec<(String, Value)> = Vec::new();
    let mut positional = NAMES.iter();
    for arg in args.0 {
        let v = arg.into_value();
        if v.is_kwargs() {
            let kw = Kwargs::try_from(v)?;
            for k in kw.args() {
                named.push((k.to_string(), kw.get::<Value>(k)?));
            }
        } else {
            let name = positional
                .next()
                .ok_or_else(|| Error::from(ErrorKind::TooManyArguments))?;
            named.push((name.to_string(), v));
        }
    }
    minijinja_contrib::filters::truncate(state, value, named.into_iter().collect())
}

/// The message of a `raise_exception` call, carried as the minijinja error's source.
#[derive(Debug)]
struct Raised(String);

impl fmt::Display for Raised {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Raised {}

fn raise_exception(msg: Value) -> Result<Value, Error> {
    let msg = match msg.as_str() {
        Some(s) => s.to_string(),
        None => msg.to_string(),
    };
    Err(Error::new(ErrorKind::InvalidOperation, msg.clone()).with_source(Raised(msg)))
}

/// Maps a minijinja error to ours. `exceeded`: the output writer hit its limit.
fn classify(e: Error, limits: &Limits, exceeded: bool) -> TemplateError {
    if exceeded {
        return TemplateError::OutputTooLong {
            limit: limits.max_output_bytes,
        };
    }
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(s) = src {
        if let Some(r) = s.downcast_ref::<Raised>() {
            return TemplateError::Raised(r.0.clone());
        }
        src = s.source();
    }
    match e.kind() {
        ErrorKind::SyntaxError => {
            let detail = e.detail().unwrap_or("invalid template");
            match e.line() {
                Some(line) => TemplateError::Syntax(format!("{detail} (line {line})")),
                None => TemplateError::Syntax(detail.to_string()),
            }
        }
        ErrorKind::OutOfFuel => TemplateError::OutOfFuel { fuel: limits.fuel },
        _ => TemplateError::Render(e.to_string()),
    }
}

/// Collects output, refusing to grow past `limit` bytes.
struct LimitedWriter {
    buf: Vec<u8>,
    limit: usize,
    exceeded: bool,
}

impl io::Write for LimitedWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len().saturating_add(data.len()) > self.limit {
            self.exceeded = true;
            return Err(io::Error::other("chat template output limit reached"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
