//! Streaming UTF-8: never emit half a character.

/// Collects token bytes and releases only complete UTF-8 characters. Invalid sequences
/// (not merely incomplete ones) come out as U+FFFD.
#[derive(Debug, Clone, Default)]
pub struct Utf8Buffer {
    pending: Vec<u8>,
}

impl Utf8Buffer {
    /// Adds `bytes`; returns the text that is complete.
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    out.push_str(s);
                    self.pending.clear();
                    return out;
                }
                Err(e) => {
                    let good = e.valid_up_to();
                    out.push_str(std::str::from_utf8(&self.pending[..good]).expect("valid prefix"));
                    match e.error_len() {
                        // Incomplete character at the end: wait for more bytes.
                        None => {
                            self.pending.drain(..good);
                            return out;
                        }
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..good + bad);
                        }
                    }
                }
            }
        }
    }

    /// Ends the stream: whatever is left, lossily.
    pub fn finish(&mut self) -> String {
        let s = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_multibyte_characters() {
        let text = "a🦀é世";
        let mut b = Utf8Buffer::default();
        let mut out = String::new();
        for byte in text.as_bytes() {
            let piece = b.push(&[*byte]);
            assert!(text.starts_with(&(out.clone() + &piece)));
            out += &piece;
        }
        assert_eq!(out, text);
        assert_eq!(b.push(&[0xff, b'x']), "\u{fffd}x");
        assert_eq!(b.push(&[0xe4, 0xb8]), "");
        assert_eq!(b.finish(), "\u{fffd}");
    }
}
