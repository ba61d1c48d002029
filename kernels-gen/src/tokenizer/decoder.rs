//! A tokenizer's decoder as a list of steps, and the bytes each step leaves of one token (see
//! the parent module's doc for what each decoder means for a word).

#[cfg(test)]
use std::collections::HashMap;

use serde_json::Value;

use crate::Error;

/// One step of a decoder, as it acts on one token.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Step {
    /// Map each character through GPT-2's byte-to-unicode alphabet; fuses.
    ByteLevel,
    /// `<0xAB>` -> the byte 0xAB.
    ByteFallback,
    /// Replace every occurrence of a string.
    Replace { from: Vec<u8>, to: Vec<u8> },
    /// Concatenate all tokens into one piece.
    Fuse,
    /// Remove up to `start` leading `content` characters of each piece.
    Strip { content: char, start: usize },
    /// `replacement` -> space; dropped in the first piece when `drop_first`.
    Metaspace { replacement: char, drop_first: bool },
    /// No decoder: tokens are joined with spaces.
    JoinWithSpaces,
}

/// A decoder as a list of steps, with what it means for one token's bytes.
#[derive(Clone, Debug)]
pub(super) struct Plan {
    steps: Vec<Step>,
    names: Vec<String>,
    /// A `ByteFallback` step came before, with no `Fuse` or `ByteLevel` since: later steps see
    /// runs of byte tokens joined into one piece.
    byte_runs: bool,
    /// A `ByteFallback` or `ByteLevel` step came before: a token may be part of a character.
    splits_chars: bool,
    /// Characters that byte tokens must not spell (a later step would rewrite them).
    pub(super) forbidden: Vec<char>,
}

impl Plan {
    pub(super) fn from_json(decoder: &Value) -> Result<Plan, Error> {
        let mut plan = Plan {
            steps: Vec::new(),
            names: Vec::new(),
            byte_runs: false,
            splits_chars: false,
            forbidden: Vec::new(),
        };
        if decoder.is_null() {
            plan.steps.push(Step::JoinWithSpaces);
            plan.names.push("none (tokens joined with spaces)".into());
            return Ok(plan);
        }
        let mut fused = false;
        plan.push(decoder, &mut fused)?;
        Ok(plan)
    }

    fn push(&mut self, d: &Value, fused: &mut bool) -> Result<(), Error> {
        let ty = d.get("type").and_then(Value::as_str).unwrap_or("?");
        let str_field = |k: &str| d.get(k).and_then(Value::as_str);
        let char_field = |k: &str| -> Result<char, Error> {
            let s = str_field(k).unwrap_or("");
            let mut it = s.chars();
            match (it.next(), it.next()) {
                (Some(c), None) => Ok(c),
                _ => Err(Error::new(format!("decoder {ty}: `{k}` must be one character"))),
            }
        };
        match ty {
            "Sequence" => {
                let list = d
                    .get("decoders")
                    .and_then(Value::as_array)
                    .ok_or_else(|| Error::new("decoder Sequence without a `decoders` list".to_string()))?;
                for sub in list {
                    self.push(sub, fused)?;
                }
                return Ok(());
            }
            "ByteLevel" | "ByteFallback" if *fused => {
                return Err(Error::new(format!(
                "unsupported decoder: {ty} after Fuse or ByteLevel (it would act on the whole word at once)"
            )))
            }
            "ByteLevel" if self.byte_runs => {
                return Err(Error::new(
                    "unsupported decoder: ByteLevel after ByteFallback (it would reread runs of byte tokens)",
                ))
            }
            "ByteLevel" => {
                self.splits_chars = true;
                self.steps.push(Step::ByteLevel);
                *fused = true;
                self.byte_runs = false;
            }
            "ByteFallback" => {
                self.steps.push(Step::ByteFallback);
                self.byte_runs = true;
                self.splits_chars = true;
            }
            "Fuse" => {
                self.steps.push(Step::Fuse);
                *fused = true;
                self.byte_runs = false;
            }
            "Replace" => {
                let pattern = d.get("pattern");
                let from = match pattern.and_then(|p| p.get("String")).and_then(Value::as_str) {
                    Some(s) => s.to_string(),
                    None => {
                        return Err(Error::new(
                            "unsupported decoder Replace with a regex pattern (only string patterns are supported)",
                        ))
                    }
                };
                if from.is_empty() {
                    return Err(Error::new("decoder Replace with an empty pattern"));
                }
                if *fused && from.chars().count() > 1 {
                    return Err(Error::new(
                        "unsupported decoder: Replace of a multi-character pattern after Fuse (it could span tokens)",
                    ));
                }
                if self.byte_runs || *fused {
                    let mut chars = from.chars();
                    match (chars.next(), chars.next()) {
                        // One byte: replacing it in each token is replacing it in the run or
                        // the word. A longer character may be split across tokens: forbid
                        // that (whole in one token, it is replaced in that token's bytes).
                        (Some(c), None) if c.is_ascii() => {}
                        (Some(c), None) => self.forbidden.push(c),
                        _ => return Err(Error::new(
                            "unsupported decoder: Replace of a multi-character pattern after ByteFallback \
                                 (it could span byte tokens)",
                        )),
                    }
                }
                let to = str_field("content").unwrap_or("").to_string();
                self.steps.push(Step::Replace {
                    from: from.into_bytes(),
                    to: to.into_bytes(),
                });
            }
            "Strip" => {
                let content = char_field("content")?;
                let start = d.get("start").and_then(Value::as_u64).unwrap_or(0) as usize;
                let stop = d.get("stop").and_then(Value::as_u64).unwrap_or(0);
                if stop != 0 {
                    return Err(Error::new(
                        "unsupported decoder: Strip of trailing characters (it depends on the end of the word)",
                    ));
                }
                if self.byte_runs && start > 0 {
                    return Err(Error::new(
                        "unsupported decoder: Strip of leading characters after ByteFallback and before Fuse \
                         (it strips runs of byte tokens, not each token)",
                    ));
                }
                if *fused && start > 1 {
                    return Err(Error::new(
                        "unsupported decoder: Strip of more than one leading character after Fuse",
                    ));
                }
                if *fused && start > 0 && self.splits_chars && !content.is_ascii() {
                    return Err(Error::new(
                        "unsupported decoder: Strip of a multi-byte character after Fuse (tokens may split it)",
                    ));
                }
                self.steps.push(Step::Strip { content, start });
            }
            "Metaspace" => {
                if *fused {
                    return Err(Error::new("unsupported decoder: Metaspace after Fuse"));
                }
                let replacement = char_field("replacement")?;
                if self.byte_runs {
                    // Byte tokens spelling it would become a space, or nothing in the first run.
                    self.forbidden.push(replacement);
                }
                let scheme = match (
                    str_field("prepend_scheme"),
                    d.get("add_prefix_space").and_then(Value::as_bool),
                ) {
                    (Some(s), _) => s.to_string(),
                    (None, Some(false)) => "never".into(),
                    (None, _) => "always".into(),
                };
                self.steps.push(Step::Metaspace {
                    replacement,
                    drop_first: scheme != "never",
                });
            }
            other => {
                return Err(Error::new(format!(
                "unsupported decoder {other} (supported: ByteLevel, ByteFallback, Metaspace, Replace, Fuse, \
                     Strip, Sequence, or none)"
            )))
            }
        }
        self.names.push(ty.to_string());
        Ok(())
    }

    pub(super) fn describe(&self) -> String {
        self.names.join(" + ")
    }

    /// The bytes `token` contributes to a word, as the first token or elsewhere. `None` for a
    /// first token that is empty where a `Strip` after `Fuse` would strip the word's start: the
    /// strip would then fall on the next token, which the automaton does not model.
    pub(super) fn bytes(&self, token: &str, first: bool) -> Option<Vec<u8>> {
        let mut bytes = token.as_bytes().to_vec();
        let mut fused = false;
        // A byte token: the run it belongs to is one piece for later steps; characters they
        // would rewrite in it are forbidden instead (see the module doc).
        let mut byte_token = false;
        for step in &self.steps {
            match step {
                Step::ByteLevel => {
                    if let Some(mapped) = std::str::from_utf8(&bytes).ok().and_then(byte_level_decode) {
                        bytes = mapped;
                    }
                    fused = true;
                }
                Step::ByteFallback => {
                    if !fused {
                        if let Some(b) = byte_fallback(&bytes) {
                            bytes = vec![b];
                            byte_token = true;
                        }
                    }
                }
                Step::Replace { from, to } => bytes = replace_all(&bytes, from, to),
                Step::Fuse => fused = true,
                Step::Strip { content, start } => {
                    if fused && first && *start > 0 && bytes.is_empty() {
                        return None;
                    }
                    // Before Fuse every token is a piece; after it only the word's start is.
                    if !fused || first {
                        let mut buf = [0u8; 4];
                        let c = content.encode_utf8(&mut buf).as_bytes();
                        let mut n = 0;
                        while n < *start && bytes.starts_with(c) {
                            bytes.drain(..c.len());
                            n += 1;
                        }
                    }
                }
                Step::Metaspace {
                    replacement,
                    drop_first,
                } => {
                    let mut buf = [0u8; 4];
                    let r = replacement.encode_utf8(&mut buf).as_bytes();
                    let to: &[u8] = if first && *drop_first { b"" } else { b" " };
                    if !byte_token {
                        bytes = replace_all(&bytes, r, to);
                    }
                }
                Step::JoinWithSpaces => {
                    if !first {
                        bytes.insert(0, b' ');
                    }
                }
            }
        }
        Some(bytes)
    }
}

fn byte_fallback(b: &[u8]) -> Option<u8> {
    if b.len() == 6 && b.starts_with(b"<0x") && b[5] == b'>' {
        u8::from_str_radix(std::str::from_utf8(&b[3..5]).ok()?, 16).ok()
    } else {
        None
    }
}

fn replace_all(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hay.len());
    let mut i = 0;
    while i < hay.len() {
        if hay[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(hay[i]);
            i += 1;
        }
    }
    out
}

/// GPT-2's byte-to-unicode alphabet: the character that stands for each byte. Printable
/// Latin-1 bytes stand for themselves, the other 68 bytes are U+0100.. in byte order.
pub(crate) fn gpt2_alphabet() -> [char; 256] {
    let mut out = ['\0'; 256];
    let mut n = 0u32;
    for b in 0..=255u8 {
        out[b as usize] = if matches!(b, 0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF) {
            char::from(b)
        } else {
            n += 1;
            char::from_u32(255 + n).expect("U+0100..U+0143")
        };
    }
    out
}

#[cfg(test)]
fn byte_level_alphabet() -> HashMap<char, u8> {
    gpt2_alphabet()
        .iter()
        .enumerate()
        .map(|(b, &c)| (c, b as u8))
        .collect()
}

fn byte_level_decode(token: &str) -> Option<Vec<u8>> {
    // The alphabet's characters are all below U+0144: a table indexed by character, since
    // hashing each character costs more than the rest of reading a vocabulary unoptimized.
    static BYTE_OF: std::sync::OnceLock<[Option<u8>; 0x144]> = std::sync::OnceLock::new();
    let byte_of = BYTE_OF.get_or_init(|| {
        let mut t = [None; 0x144];
        for (b, &c) in gpt2_alphabet().iter().enumerate() {
            t[c as usize] = Some(b as u8);
        }
        t
    });
    let mut out = Vec::with_capacity(token.len());
    for c in token.chars() {
        out.push(byte_of.get(c as usize).copied().flatten()?);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_level_alphabet_is_gpt2s() {
        let a = byte_level_alphabet();
        assert_eq!(a.len(), 256);
        assert_eq!(a[&'Ġ'], b' ');
        assert_eq!(a[&'Ċ'], b'\n');
        assert_eq!(a[&'A'], b'A');
        assert_eq!(a[&'\u{100}'], 0x00);
        assert_eq!(a[&'\u{143}'], 0xAD);
        assert_eq!(byte_level_decode("ĠhÃ©"), Some(b" h\xc3\xa9".to_vec()));
    }

    #[test]
    fn llama2_style_decoder() {
        let d: Value = serde_json::from_str(
            r#"{"type":"Sequence","decoders":[
                {"type":"Replace","pattern":{"String":"▁"},"content":" "},
                {"type":"ByteFallback"},{"type":"Fuse"},
                {"type":"Strip","content":" ","start":1,"stop":0}]}"#,
        )
        .unwrap();
        let p = Plan::from_json(&d).unwrap();
        assert_eq!(p.bytes("▁hello", false).unwrap(), b" hello");
        assert_eq!(p.bytes("▁hello", true).unwrap(), b"hello");
        assert_eq!(p.bytes("<0xE4>", true).unwrap(), b"\xe4");
        assert_eq!(p.bytes("▁", true).unwrap(), b"");
    }

    #[test]
    fn metaspace_drops_every_replacement_of_the_first_token() {
        let d: Value = serde_json::from_str(
            r#"{"type":"Metaspace","replacement":"▁","prepend_scheme":"always","split":true}"#,
        )
        .unwrap();
        let p = Plan::from_json(&d).unwrap();
        assert_eq!(p.bytes("▁a▁b", true).unwrap(), b"ab");
        assert_eq!(p.bytes("▁a▁b", false).unwrap(), b" a b");
    }

    #[test]
    fn unsupported_decoders_are_named() {
        for (json, needle) in [
            (
                r###"{"type":"WordPiece","prefix":"##","cleanup":true}"###,
                "WordPiece",
            ),
            (r#"{"type":"Strip","content":" ","start":0,"stop":1}"#, "trailing"),
            (
                r#"{"type":"Replace","pattern":{"Regex":"x"},"content":" "}"#,
                "regex",
            ),
        ] {
            let e = Plan::from_json(&serde_json::from_str(json).unwrap()).unwrap_err();
            assert!(e.message().contains(needle), "{e}");
        }
    }
}
