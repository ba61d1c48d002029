//! `welt query`: the automaton's mask and stop flag after given sequences, as JSONL.
//!
//! Input: one JSON object per line with a `"bytes"` array of integers 0..=255 — or, for a
//! custom tokenizer (`--tokenizer`), a `"tokens"` array of token ids — other fields are
//! ignored (so the oracle file can be fed as it is) and blank lines are skipped. A line holds
//! at most [`MAX_LINE_BYTES`] (1 MiB) before its newline; a longer one is an error. Output: one
//! line per input, `{"bytes": [...], "mask": "<hex>", "stop": bool, "reachable": bool}`
//! (`"tokens"` in token mode):
//!
//! - `mask`: the allowed next tokens after the sequence, as [`welt_runtime::Sequence::mask`]
//!   and `WordBatch::mask` give them, as a little-endian bitset in hex, `ceil(V / 8)` bytes (64
//!   hex digits for bytes; the layout of SEMANTICS.md). It is empty (all zeros) once the word
//!   is finished — after a stop (the word rule, EOS or a stop token: a stop is terminal), or
//!   at the decoder's word length limit — and after a token the mask forbade (the dead state);
//! - `stop`: the stop flag of the last token (the word rule matched, or the token is EOS or a
//!   stop token); false for an empty sequence and for a token after the dead state;
//! - `reachable`: whether welt could have generated the sequence — each token allowed at its
//!   step (so no token after a stop) and at most the word length limit of tokens.
//!
//! Lines are answered as they are read, so memory is a small multiple of the line limit
//! whatever the input's length. On a malformed line `welt query` stops with an error naming the
//! line, after the answers of the lines before it.

use std::fmt::{self, Write as _};
use std::io::{BufRead, Read, Write};

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserializer as _;
use welt_runtime::{Tables, DEAD};

/// The longest input line, in bytes before its newline: 1 MiB. A word at the largest word
/// length limit (65,535 tokens) with 6-digit ids takes under half of it.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// A malformed input line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for QueryError {}

/// The answer for one sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The allowed next tokens as `ceil(V / 8)` little-endian bytes.
    pub mask: Vec<u8>,
    /// The stop flag of the last token.
    pub stop: bool,
    /// Whether welt could have generated the sequence.
    pub reachable: bool,
}

/// Mask, stop and reachability after `tokens` (token ids; bytes for the byte decoder).
pub fn answer(tables: &Tables<'_>, tokens: &[u32]) -> Result<Answer, welt_runtime::Error> {
    let walk = tables.walk(tokens)?;
    // At the word length limit the word is finished and nothing is allowed, as in `Sequence`
    // and `WordBatch`. After a stop the walk is in the dead state already.
    let finished = tokens.len() >= usize::from(tables.max_word_len());
    let state = if finished { DEAD } else { walk.state };
    Ok(Answer {
        mask: tables.mask(state).as_bytes().to_vec(),
        stop: walk.stop,
        reachable: walk.reachable,
    })
}

/// What the input lines carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A `"bytes"` array (the byte decoder).
    Bytes,
    /// A `"tokens"` array of token ids (a custom tokenizer).
    Tokens,
}

impl Mode {
    fn key(self) -> &'static str {
        match self {
            Mode::Bytes => "bytes",
            Mode::Tokens => "tokens",
        }
    }
}

/// Parses one input line into its byte array.
pub fn parse_line(text: &str) -> Result<Vec<u8>, String> {
    Ok(parse_ids(text, Mode::Bytes, 256)?
        .into_iter()
        .map(|b| b as u8)
        .collect())
}

/// Parses one input line into its ids (`"bytes"` or `"tokens"`), each below `limit`.
///
/// The line is parsed in one pass straight into the ids (other fields are skipped unbuilt), so
/// it takes about 4 bytes per id beside the text.
pub fn parse_ids(text: &str, mode: Mode, limit: u64) -> Result<Vec<u32>, String> {
    let mut de = serde_json::Deserializer::from_str(text);
    let line = Line {
        key: mode.key(),
        limit,
    };
    let ids = de.deserialize_any(line).and_then(|ids| de.end().map(|()| ids));
    ids.map_err(|e| {
        // The input line is the caller's; the column is serde_json's.
        let text = e.to_string();
        let at = format!(" at line {} column {}", e.line(), e.column());
        let what = text.strip_suffix(&at).unwrap_or(&text);
        match e.classify() {
            serde_json::error::Category::Data => format!("{what} (column {})", e.column()),
            _ => format!("not JSON: {what} (column {})", e.column()),
        }
    })
}

/// The line's object: the ids under `key`, every other field skipped.
struct Line {
    key: &'static str,
    limit: u64,
}

impl<'de> Visitor<'de> for Line {
    type Value = Vec<u32>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Vec<u32>, E> {
        Err(E::custom("expected a JSON object, not a string"))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<u32>, A::Error> {
        let mut ids = None;
        while let Some(k) = map.next_key::<String>()? {
            if k != self.key {
                map.next_value::<IgnoredAny>()?;
            } else if ids.is_some() {
                return Err(de::Error::custom(format!("\"{}\" appears twice", self.key)));
            } else {
                ids = Some(map.next_value_seed(Ids {
                    key: self.key,
                    limit: self.limit,
                })?);
            }
        }
        ids.ok_or_else(|| de::Error::custom(format!("missing \"{}\"", self.key)))
    }
}

/// The array under the key.
struct Ids {
    key: &'static str,
    limit: u64,
}

impl<'de> DeserializeSeed<'de> for Ids {
    type Value = Vec<u32>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Vec<u32>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Ids {
    type Value = Vec<u32>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an array (\"{}\" must be an array)", self.key)
    }
    // Not an array: say so without echoing the value (it may be a megabyte of string).
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Vec<u32>, E> {
        Err(E::custom(format!(
            "\"{}\" must be an array, not a string",
            self.key
        )))
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Vec<u32>, A::Error> {
        Err(de::Error::custom(format!(
            "\"{}\" must be an array, not an object",
            self.key
        )))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u32>, A::Error> {
        let mut ids = Vec::new();
        while let Some(id) = seq.next_element_seed(Id {
            key: self.key,
            limit: self.limit,
            at: ids.len(),
        })? {
            ids.push(id);
        }
        Ok(ids)
    }
}

/// One element of the array: an integer below `limit`.
struct Id {
    key: &'static str,
    limit: u64,
    at: usize,
}

impl Id {
    fn bad<E: de::Error>(&self, value: impl fmt::Display) -> E {
        E::custom(format!(
            "\"{}\"[{}] = {value} is not an integer in 0..{}",
            self.key, self.at, self.limit
        ))
    }
}

impl<'de> DeserializeSeed<'de> for Id {
    type Value = u32;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<u32, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Id {
    type Value = u32;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an integer in 0..{}", self.limit)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u32, E> {
        // Every limit is at most a vocabulary size, below 2^32.
        match u32::try_from(v) {
            Ok(id) if v < self.limit => Ok(id),
            _ => Err(self.bad(v)),
        }
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u32, E> {
        match u64::try_from(v) {
            Ok(v) => self.visit_u64(v),
            Err(_) => Err(self.bad(v)),
        }
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<u32, E> {
        // A number written with a fraction or an exponent (`1e2`, `1.0`), or too large for a
        // u64: printing the parsed float would show `100` or `18446744073709552000`, which reads
        // as if it were the integer given.
        Err(self.bad(format_args!(
            "{v:e} (written as a fraction, an exponent or past 2^64)"
        )))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<u32, E> {
        Err(self.bad(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<u32, E> {
        Err(self.bad(format_args!("a string of {} bytes", v.len())))
    }
    fn visit_unit<E: de::Error>(self) -> Result<u32, E> {
        Err(self.bad("null"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<u32, A::Error> {
        Err(self.bad("an array"))
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<u32, A::Error> {
        Err(self.bad("an object"))
    }
}

/// The output line for `bytes` (without the newline).
pub fn format_answer(bytes: &[u8], a: &Answer) -> String {
    let ids: Vec<u32> = bytes.iter().map(|&b| u32::from(b)).collect();
    format_ids(Mode::Bytes, &ids, a)
}

/// The output line for a sequence of ids (without the newline).
pub fn format_ids(mode: Mode, ids: &[u32], a: &Answer) -> String {
    let mut out = String::with_capacity(ids.len() * 4 + a.mask.len() * 2 + 48);
    let _ = write!(out, "{{\"{}\":[", mode.key());
    for (i, id) in ids.iter().enumerate() {
        let _ = write!(out, "{}{id}", if i == 0 { "" } else { "," });
    }
    let _ = write!(
        out,
        "],\"mask\":\"{}\",\"stop\":{},\"reachable\":{}}}",
        crate::to_hex(&a.mask),
        a.stop,
        a.reachable
    );
    out
}

/// Reads one line of at most [`MAX_LINE_BYTES`] into `buf`, without its newline (`\n` or
/// `\r\n`). `Ok(false)` at the end of the input; an `Err` message for a longer line, without
/// reading past the limit.
fn read_line(input: &mut impl BufRead, buf: &mut Vec<u8>) -> Result<bool, String> {
    buf.clear();
    let n = input
        .by_ref()
        .take(MAX_LINE_BYTES as u64 + 1)
        .read_until(b'\n', buf)
        .map_err(|e| format!("cannot read: {e}"))?;
    if n == 0 {
        return Ok(false);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
    } else if buf.len() > MAX_LINE_BYTES {
        return Err(format!(
            "longer than the limit of {MAX_LINE_BYTES} bytes (1 MiB) per line"
        ));
    }
    Ok(true)
}

/// Answers every line of `input` into one output string (see [`run_mode`]).
pub fn run(tables: &Tables<'_>, input: impl BufRead) -> Result<String, Box<dyn std::error::Error>> {
    let mut out = Vec::new();
    run_mode(tables, Mode::Bytes, input, &mut out)?;
    Ok(String::from_utf8(out).expect("the answers are ASCII"))
}

/// Answers each line of `input` (`"bytes"` or `"tokens"`) into `output` as it is read. On a
/// malformed or too long line it stops with a [`QueryError`] naming the line, after writing
/// (and flushing) the answers of the lines before it; a failed write is an `io::Error`.
pub fn run_mode(
    tables: &Tables<'_>,
    mode: Mode,
    mut input: impl BufRead,
    output: impl Write,
) -> Result<(), Box<dyn std::error::Error>> {
    let limit = match mode {
        Mode::Bytes => 256,
        Mode::Tokens => tables.vocab_size() as u64,
    };
    let mut output = std::io::BufWriter::new(output);
    let mut buf = Vec::new();
    let mut line = 0;
    let result = loop {
        line += 1;
        let bad = |message| QueryError { line, message };
        match read_line(&mut input, &mut buf) {
            Ok(false) => break Ok(()),
            Ok(true) => {}
            Err(message) => break Err(bad(message)),
        }
        let Ok(text) = std::str::from_utf8(&buf) else {
            break Err(bad("not UTF-8 text".into()));
        };
        if text.trim().is_empty() {
            continue;
        }
        let ids = match parse_ids(text, mode, limit) {
            Ok(ids) => ids,
            Err(message) => break Err(bad(message)),
        };
        let a = match answer(tables, &ids) {
            Ok(a) => a,
            Err(e) => break Err(bad(e.to_string())),
        };
        let mut text = format_ids(mode, &ids, &a);
        text.push('\n');
        output.write_all(text.as_bytes())?;
    };
    output.flush()?;
    Ok(result?)
}

/// [`run_mode`] for `"bytes"` input.
pub fn run_to(
    tables: &Tables<'_>,
    input: impl BufRead,
    output: impl Write,
) -> Result<(), Box<dyn std::error::Error>> {
    run_mode(tables, Mode::Bytes, input, output)
}
