//! `orcinus tokenize`, `template`, `perplexity` and `logits`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Args;
use orcinus::chat::{Message, Template};
use orcinus::gguf::File;
use orcinus::tokenizer::Tokenizer;
use serde_json::json;

use crate::common::ModelArgs;

fn read_text(prompt: &Option<String>, file: &Option<PathBuf>) -> anyhow::Result<String> {
    match (prompt, file) {
        (Some(p), None) => Ok(p.clone()),
        (None, Some(f)) => {
            std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))
        }
        _ => bail!("give exactly one of -p TEXT or -f FILE"),
    }
}

/// `orcinus tokenize` flags.
#[derive(Args, Debug)]
pub struct TokenizeArgs {
    /// The GGUF model file (only its tokenizer metadata is used).
    #[arg(short = 'm', long = "model")]
    model: PathBuf,
    /// Text to tokenize.
    #[arg(short = 'p', long)]
    prompt: Option<String>,
    /// File to tokenize.
    #[arg(short = 'f', long)]
    file: Option<PathBuf>,
    /// Tokenize each line separately (one result per line).
    #[arg(long)]
    lines: bool,
    /// Do not add BOS even when the model asks for it.
    #[arg(long)]
    no_bos: bool,
    /// Match special-token strings (`<|im_start|>`, ...) in the text as single tokens.
    #[arg(long)]
    parse_special: bool,
    /// Print JSON arrays of ids (one per line with --lines) instead of `id 'piece'` lines.
    #[arg(long)]
    json: bool,
}

fn load_tokenizer(path: &PathBuf) -> anyhow::Result<(File, Tokenizer)> {
    let f = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let t = Tokenizer::from_metadata(f.metadata())?;
    Ok((f, t))
}

/// `orcinus tokenize`.
pub fn tokenize(a: TokenizeArgs) -> anyhow::Result<String> {
    let (_f, tok) = load_tokenizer(&a.model)?;
    let text = read_text(&a.prompt, &a.file)?;
    let bos = tok.add_bos_default() && !a.no_bos;
    let inputs: Vec<&str> = if a.lines {
        text.lines().collect()
    } else {
        vec![text.as_str()]
    };
    let mut out = String::new();
    for input in inputs {
        let ids = tok.encode(input, bos, a.parse_special)?;
        if a.json {
            out.push_str(&serde_json::to_string(&ids)?);
            out.push('\n');
        } else {
            for id in ids {
                let piece = String::from_utf8_lossy(&tok.token_bytes(id)).into_owned();
                out.push_str(&format!("{id:>6} {piece:?}\n"));
            }
            if a.lines {
                out.push('\n');
            }
        }
    }
    Ok(out)
}

/// `orcinus template` flags.
#[derive(Args, Debug)]
pub struct TemplateArgs {
    /// The GGUF model file (its chat template and tokenizer are used).
    #[arg(short = 'm', long = "model")]
    model: PathBuf,
    /// JSON file with a list of {"role", "content"} messages (default: a short example).
    #[arg(long)]
    messages: Option<PathBuf>,
    /// Do not open an assistant turn at the end.
    #[arg(long)]
    no_generation_prompt: bool,
    /// Also print the token ids the model gets.
    #[arg(long)]
    ids: bool,
}

/// `orcinus template`: the exact prompt text (and ids) a conversation becomes.
pub fn template(a: TemplateArgs) -> anyhow::Result<String> {
    let (f, tok) = load_tokenizer(&a.model)?;
    let template = Template::from_metadata(f.metadata())?;
    let messages: Vec<Message> = match &a.messages {
        Some(p) => {
            let s = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            serde_json::from_str(&s).with_context(|| {
                format!("{}: expected a JSON list of {{role, content}}", p.display())
            })?
        }
        None => vec![
            Message::new("system", "You are a helpful assistant."),
            Message::new("user", "What is the capital of France?"),
        ],
    };
    let text = template.render_for(&tok, &messages, !a.no_generation_prompt)?;
    let mut out = text.clone();
    if a.ids {
        let ids = tok.encode(&text, false, true)?;
        out.push_str(&format!("\n{}\n", serde_json::to_string(&ids)?));
    }
    Ok(out)
}

/// `orcinus perplexity` flags.
#[derive(Args, Debug)]
pub struct PerplexityArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Text file to score.
    #[arg(short = 'f', long)]
    file: PathBuf,
    /// Chunks to score (default: all).
    #[arg(long)]
    chunks: Option<usize>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// `orcinus perplexity`: llama.cpp's method (see [`orcinus::generate::perplexity`]).
pub fn perplexity(a: PerplexityArgs) -> anyhow::Result<String> {
    let model = a.model.load(a.json)?;
    let mut session = model.session(&a.model.session_options())?;
    let n_ctx = session.n_ctx();
    let mut text = std::fs::read_to_string(&a.file)
        .with_context(|| format!("cannot read {}", a.file.display()))?;
    // As llama-perplexity: one trailing newline of the file is dropped.
    if text.ends_with('\n') {
        text.pop();
    }
    let tok = &model.tokenizer;
    let add_bos = tok.add_bos_default();
    let tokens = tok.encode(&text, add_bos, false)?;
    let bos = if add_bos { tok.bos_id() } else { None };
    let t0 = Instant::now();
    let mut line = String::new();
    let quiet = a.json;
    let r =
        orcinus::generate::perplexity(&mut session, &tokens, n_ctx, a.chunks, bos, |c, ppl| {
            if !quiet {
                line.push_str(&format!("[{c}]{ppl:.4},"));
                eprint!("\r{line}");
            }
        })?;
    if !quiet {
        eprintln!();
    }
    let secs = t0.elapsed().as_secs_f64();
    if a.json {
        Ok(serde_json::to_string_pretty(&json!({
            "ppl": r.ppl, "ppl_err": r.stderr, "chunks": r.n_chunk, "n_ctx": n_ctx,
            "tokens_scored": r.count, "running": r.running, "seconds": secs,
        }))? + "\n")
    } else {
        Ok(format!(
            "chunks: {} of {n_ctx} tokens, {} tokens scored in {secs:.1} s\nPPL = {:.4} +/- {:.5}\n",
            r.n_chunk, r.count, r.ppl, r.stderr
        ))
    }
}

/// `orcinus logits` flags.
#[derive(Args, Debug)]
pub struct LogitsArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// The prompt (BOS added as the model asks; special tokens are not parsed unless --parse-special).
    #[arg(short = 'p', long)]
    prompt: String,
    /// Match special-token strings in the prompt.
    #[arg(long)]
    parse_special: bool,
    /// Output .npy path: float32, shape (n_tokens, n_vocab).
    #[arg(long, short)]
    out: PathBuf,
}

/// `orcinus logits`: the logits at every prompt position.
pub fn logits(a: LogitsArgs) -> anyhow::Result<String> {
    let model = a.model.load(true)?;
    let mut session = model.session(&a.model.session_options())?;
    let tok = &model.tokenizer;
    let ids = tok.encode(&a.prompt, tok.add_bos_default(), a.parse_special)?;
    let logits = session.eval_all(&ids)?;
    let file = std::fs::File::create(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;
    orcinus::npy::write_f32(
        std::io::BufWriter::new(file),
        &[ids.len() as u64, model.hparams.n_vocab as u64],
        &logits,
    )?;
    Ok(format!("{}\n", serde_json::to_string(&ids)?))
}
