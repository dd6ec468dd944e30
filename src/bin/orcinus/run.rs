//! `orcinus run` and `orcinus chat`.

use std::io::{BufRead, Write};

use clap::Args;
use orcinus::chat::Message;
use orcinus::generate::{FinishReason, GenerateParams, Generation, Prompt};
use orcinus::sampling::SamplingParams;

use crate::common::ModelArgs;

/// Sampling flags, with llama.cpp's defaults.
#[derive(Args, Debug, Clone)]
pub struct SamplingArgs {
    /// Temperature (0 = greedy).
    #[arg(long = "temp", default_value_t = 0.8)]
    pub temperature: f32,
    /// Top-k (0 = off).
    #[arg(long, default_value_t = 40)]
    pub top_k: usize,
    /// Top-p (1 = off).
    #[arg(long, default_value_t = 0.95)]
    pub top_p: f32,
    /// Min-p (0 = off).
    #[arg(long, default_value_t = 0.05)]
    pub min_p: f32,
    /// Repetition penalty (1 = off).
    #[arg(long, default_value_t = 1.0)]
    pub repeat_penalty: f32,
    /// Presence penalty.
    #[arg(long, default_value_t = 0.0)]
    pub presence_penalty: f32,
    /// Frequency penalty.
    #[arg(long, default_value_t = 0.0)]
    pub frequency_penalty: f32,
    /// Tokens the penalties look back over.
    #[arg(long, default_value_t = 64)]
    pub repeat_last_n: usize,
    /// RNG seed (same seed, same text).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Stop when this string appears (repeatable).
    #[arg(long)]
    pub stop: Vec<String>,
    /// Keep generating after an end-of-generation token.
    #[arg(long)]
    pub ignore_eos: bool,
}

impl SamplingArgs {
    fn params(&self, max_tokens: usize) -> GenerateParams {
        GenerateParams {
            max_tokens,
            sampling: SamplingParams {
                temperature: self.temperature,
                top_k: self.top_k,
                top_p: self.top_p,
                min_p: self.min_p,
                repeat_penalty: self.repeat_penalty,
                presence_penalty: self.presence_penalty,
                frequency_penalty: self.frequency_penalty,
                penalty_last_n: self.repeat_last_n,
                seed: self.seed,
            },
            stop: self.stop.clone(),
            stop_at_eog: !self.ignore_eos,
        }
    }
}

/// `orcinus run` flags.
#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// The prompt.
    #[arg(short = 'p', long)]
    prompt: String,
    /// Most tokens to generate.
    #[arg(short = 'n', long = "n-predict", default_value_t = 256)]
    n_predict: usize,
    /// Format the prompt as one user turn with the model's chat template.
    #[arg(long)]
    chat: bool,
    /// System message (with --chat).
    #[arg(long)]
    system: Option<String>,
    /// No load message, progress bar or stats on stderr.
    #[arg(short, long)]
    quiet: bool,
}

fn stream(gen: &mut Generation<'_>, out: &mut impl Write) -> anyhow::Result<String> {
    let mut text = String::new();
    for piece in gen.by_ref() {
        let piece = piece?;
        out.write_all(piece.text.as_bytes())?;
        out.flush()?;
        text.push_str(&piece.text);
    }
    Ok(text)
}

fn print_stats(gen: &Generation<'_>) {
    let s = gen.stats();
    eprintln!(
        "prompt: {} tokens ({} cached) in {:.2} s ({:.2} t/s) | generation: {} tokens in {:.2} s ({:.2} t/s) | stop: {:?}",
        s.prompt_tokens,
        s.cached_tokens,
        s.prompt_time.as_secs_f64(),
        s.prompt_tps(),
        s.generated_tokens,
        s.generation_time.as_secs_f64(),
        s.generation_tps(),
        gen.finish_reason().unwrap_or(FinishReason::Length)
    );
}

/// `orcinus run`: generated text on stdout, everything else on stderr.
pub fn run(a: RunArgs) -> anyhow::Result<()> {
    let model = a.model.load(a.quiet)?;
    let mut session = model.session(&a.model.session_options())?;
    let params = a.sampling.params(a.n_predict);
    let mut messages = Vec::new();
    if let Some(s) = &a.system {
        messages.push(Message::new("system", s.clone()));
    }
    messages.push(Message::new("user", a.prompt.clone()));
    let prompt = if a.chat {
        Prompt::Messages(&messages)
    } else {
        Prompt::Text(&a.prompt)
    };
    let mut gen = session.generate(prompt, &params)?;
    let mut stdout = std::io::stdout().lock();
    stream(&mut gen, &mut stdout)?;
    writeln!(stdout)?;
    if !a.quiet {
        print_stats(&gen);
    }
    Ok(())
}

/// `orcinus chat` flags.
#[derive(Args, Debug)]
pub struct ChatArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// System message.
    #[arg(long)]
    system: Option<String>,
    /// Most tokens per answer.
    #[arg(short = 'n', long = "n-predict", default_value_t = 1024)]
    n_predict: usize,
    /// Print generation speed after each answer.
    #[arg(long)]
    stats: bool,
}

const HELP: &str = "commands: /reset (forget the conversation), /system TEXT (set the system message and reset), /quit; Ctrl-C stops an answer, Ctrl-D exits";

/// `orcinus chat`: an interactive conversation.
pub fn chat(a: ChatArgs) -> anyhow::Result<()> {
    let model = a.model.load(false)?;
    let mut session = model.session(&a.model.session_options())?;
    let cancel = session.cancel_handle();
    ctrlc::set_handler(move || cancel.cancel())?;
    let params = a.sampling.params(a.n_predict);
    let mut system = a.system.clone();
    let mut history: Vec<Message> = Vec::new();
    eprintln!("{HELP}");
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        eprint!("> ");
        std::io::stderr().flush()?;
        let Some(line) = lines.next() else { break };
        let line = line?;
        let input = line.trim();
        if input.is_empty() {
            continue;
        }
        if input == "/quit" || input == "/exit" {
            break;
        }
        if input == "/reset" {
            history.clear();
            session.reset();
            eprintln!("(conversation cleared)");
            continue;
        }
        if let Some(rest) = input.strip_prefix("/system") {
            system = Some(rest.trim().to_string()).filter(|s| !s.is_empty());
            history.clear();
            session.reset();
            eprintln!("(system message set; conversation cleared)");
            continue;
        }
        if input.starts_with('/') {
            eprintln!("{HELP}");
            continue;
        }
        history.push(Message::new("user", input));
        let mut messages: Vec<Message> = system
            .iter()
            .map(|s| Message::new("system", s.clone()))
            .collect();
        messages.extend(history.iter().cloned());
        let result = {
            let mut gen = match session.generate(Prompt::Messages(&messages), &params) {
                Ok(g) => g,
                Err(e) => {
                    history.pop();
                    eprintln!("error: {e}");
                    continue;
                }
            };
            let mut stdout = std::io::stdout().lock();
            let text = stream(&mut gen, &mut stdout);
            writeln!(stdout)?;
            if gen.finish_reason() == Some(FinishReason::Cancelled) {
                eprintln!("(stopped)");
            }
            if a.stats {
                print_stats(&gen);
            }
            text
        };
        match result {
            Ok(text) => history.push(Message::new("assistant", text.trim().to_string())),
            Err(e) => {
                history.pop();
                eprintln!("error: {e:#}");
            }
        }
    }
    Ok(())
}
