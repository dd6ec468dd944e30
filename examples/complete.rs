//! Greedy text completion over the library API.
//!
//! `cargo run --release --example complete -- MODEL.gguf "Once upon a time"`

use orcinus::generate::{GenerateParams, Prompt};
use orcinus::model::{LoadOptions, Model, SessionOptions};
use orcinus::sampling::SamplingParams;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: complete MODEL.gguf PROMPT")?;
    let prompt = args
        .next()
        .unwrap_or_else(|| "Once upon a time".to_string());
    let model = Model::load(&path, LoadOptions::default())?;
    let mut session = model.session(&SessionOptions::default())?;
    let params = GenerateParams {
        max_tokens: 64,
        sampling: SamplingParams::greedy(),
        ..GenerateParams::default()
    };
    print!("{prompt}");
    let mut gen = session.generate(Prompt::Text(&prompt), &params)?;
    for piece in &mut gen {
        print!("{}", piece?.text);
    }
    println!();
    eprintln!("{:?}", gen.stats());
    Ok(())
}
