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
    /// Text file to score (not needed with --kl-divergence, which reads the base file's tokens).
    #[arg(short = 'f', long, required_unless_present = "kl_divergence")]
    file: Option<PathBuf>,
    /// Chunks to score (default: all).
    #[arg(long)]
    chunks: Option<usize>,
    /// Also write this model's log-probabilities at every scored position to FILE, the base for
    /// a later --kl-divergence run of another (e.g. quantized) model.
    #[arg(long, value_name = "FILE", conflicts_with = "kl_divergence")]
    kl_divergence_base: Option<PathBuf>,
    /// Compare this model with the base FILE (from --kl-divergence-base) over the same tokens:
    /// KL-divergence per position (mean, median, p99, max), top-1 agreement, PPL ratio.
    #[arg(long, value_name = "FILE")]
    kl_divergence: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// `orcinus perplexity`: llama.cpp's method (see [`orcinus::generate::perplexity`]).
pub fn perplexity(a: PerplexityArgs) -> anyhow::Result<String> {
    let model = a.model.load(a.json)?;
    let mut session = model.session(&a.model.session_options())?;
    if let Some(base) = &a.kl_divergence {
        return kl_divergence(&mut session, base, &a);
    }
    let n_ctx = session.n_ctx();
    let file = a.file.as_ref().expect("clap requires --file here");
    let mut text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
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
    if let Some(out) = &a.kl_divergence_base {
        let ppl = orcinus::generate::write_kl_base(
            &mut session,
            &tokens,
            n_ctx,
            a.chunks,
            bos,
            out,
            |c| {
                if !quiet {
                    eprint!("\rchunk {c}");
                }
            },
        )?;
        let secs = t0.elapsed().as_secs_f64();
        if !quiet {
            eprintln!();
        }
        return Ok(if a.json {
            serde_json::to_string_pretty(
                &json!({"ppl": ppl, "kl_divergence_base": out, "seconds": secs}),
            )? + "\n"
        } else {
            format!(
                "PPL = {ppl:.4}\nbase log-probabilities written to {} in {secs:.1} s\n",
                out.display()
            )
        });
    }
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

/// `orcinus perplexity --kl-divergence BASE`.
fn kl_divergence(
    session: &mut orcinus::model::Session,
    base: &std::path::Path,
    a: &PerplexityArgs,
) -> anyhow::Result<String> {
    let mut b = orcinus::generate::KlBase::open(base)?;
    if b.n_ctx > session.n_ctx() {
        anyhow::bail!(
            "the base file's chunks are {} tokens, more than this context ({}): pass -c {}",
            b.n_ctx,
            session.n_ctx(),
            b.n_ctx
        );
    }
    let t0 = Instant::now();
    let quiet = a.json;
    let r = orcinus::generate::kl_divergence(session, &mut b, a.chunks, |c, kld| {
        if !quiet {
            eprint!("\r[{c}] mean KLD {kld:.6}");
        }
    })?;
    if !quiet {
        eprintln!();
    }
    let secs = t0.elapsed().as_secs_f64();
    Ok(if a.json {
        serde_json::to_string_pretty(&json!({
            "positions": r.count, "kld_mean": r.mean, "kld_mean_err": r.mean_err,
            "kld_median": r.median, "kld_p99": r.p99, "kld_p99_9": r.p999, "kld_max": r.max,
            "top1_agreement": r.top1_agree, "ppl": r.ppl, "ppl_base": r.ppl_base,
            "ppl_ratio": r.ppl / r.ppl_base, "ln_ppl_ratio": r.ln_ppl_ratio, "seconds": secs,
        }))? + "\n"
    } else {
        format!(
            "positions:        {}\n\
             Mean KLD:         {:.6} +/- {:.6}\n\
             Median KLD:       {:.6}\n\
             99.0% KLD:        {:.6}\n\
             99.9% KLD:        {:.6}\n\
             Maximum KLD:      {:.6}\n\
             Same top token:   {:.3} %\n\
             PPL(base):        {:.4}\n\
             PPL(this model):  {:.4}\n\
             PPL ratio:        {:.6}\n\
             ln(PPL ratio):    {:.6}\n",
            r.count,
            r.mean,
            r.mean_err,
            r.median,
            r.p99,
            r.p999,
            r.max,
            100.0 * r.top1_agree,
            r.ppl_base,
            r.ppl,
            r.ppl / r.ppl_base,
            r.ln_ppl_ratio
        )
    })
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
