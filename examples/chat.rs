//! A minimal terminal chat over the library API.
//!
//! `cargo run --release --example chat -- target/fixtures/SmolLM2-135M-Instruct.Q4_1.gguf`

use std::io::{BufRead, Write};

use orcinus::chat::Message;
use orcinus::generate::{GenerateParams, Prompt};
use orcinus::model::{LoadOptions, Model, SessionOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: chat MODEL.gguf")?;
    let model = Model::load(&path, LoadOptions::default())?;
    let mut session = model.session(&SessionOptions::default())?;
    let mut history = Vec::new();
    let params = GenerateParams::default();
    eprint!("> ");
    for line in std::io::stdin().lock().lines() {
        history.push(Message::new("user", line?));
        let mut answer = String::new();
        for piece in session.generate(Prompt::Messages(&history), &params)? {
            let piece = piece?;
            print!("{}", piece.text);
            std::io::stdout().flush()?;
            answer.push_str(&piece.text);
        }
        println!();
        history.push(Message::new("assistant", answer.trim()));
        eprint!("> ");
    }
    Ok(())
}
