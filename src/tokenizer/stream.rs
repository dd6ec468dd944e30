//! Incremental detokenization for streaming generated text.

use super::Tokenizer;

/// Turns ids into text one at a time, never emitting a broken UTF-8 sequence: bytes of a
/// character split across tokens (byte-fallback tokens, byte-level BPE pieces of emoji or CJK)
/// are held back until the character is complete. The concatenation of every
/// [`push`](Self::push) and the final [`finish`](Self::finish) equals
/// [`Tokenizer::decode`] of all the ids (including its leading-space removal).
///
/// ```no_run
/// # fn demo(tok: &orcinus::tokenizer::Tokenizer, ids: &[u32]) {
/// let mut dec = tok.stream_decoder();
/// for &id in ids {
///     print!("{}", dec.push(id));
/// }
/// print!("{}", dec.finish());
/// # }
/// ```
#[derive(Debug)]
pub struct StreamDecoder<'a> {
    tok: &'a Tokenizer,
    /// Bytes not yet emitted: at most an incomplete UTF-8 sequence after each `push`.
    pending: Vec<u8>,
    /// Whether no id has been pushed yet.
    first: bool,
}

impl<'a> StreamDecoder<'a> {
    /// A decoder at the start of a text.
    pub fn new(tok: &'a Tokenizer) -> Self {
        Self {
            tok,
            pending: Vec::new(),
            first: true,
        }
    }

    /// Adds `id` and returns the text that is now complete (possibly empty). Invalid byte
    /// sequences (ones no later byte can complete) become U+FFFD, as in `decode`.
    pub fn push(&mut self, id: u32) -> String {
        self.pending
            .extend_from_slice(self.tok.piece(id, self.first));
        self.first = false;
        let mut out = String::new();
        let mut rest: &[u8] = &self.pending;
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    out.push_str(s);
                    rest = &[];
                    break;
                }
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    // the first `valid_up_to` bytes are valid UTF-8 by definition
                    out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                    match e.error_len() {
                        // an incomplete sequence at the end: wait for more bytes
                        None => {
                            rest = after;
                            break;
                        }
                        Some(n) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            rest = &after[n..];
                        }
                    }
                }
            }
        }
        let keep = rest.len();
        let len = self.pending.len();
        self.pending.drain(..len - keep);
        out
    }

    /// Whether bytes of an unfinished character are held back.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Ends the text: returns the bytes still held back (an unfinished character becomes
    /// U+FFFD) and resets the decoder, so the next `push` starts a new text.
    pub fn finish(&mut self) -> String {
        let rest = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        self.first = true;
        rest
    }
}
