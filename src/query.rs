//! `welt query`: the automaton's mask and stop flag after given sequences, as JSONL.
//!
//! Input: one JSON object per line with a `"bytes"` array of integers 0..=255 — or, for a
//! custom tokenizer (`--tokenizer`), a `"tokens"` array of token ids — other fields are
//! ignored (so the oracle file can be fed as it is) and blank lines are skipped. Output: one
//! line per input, `{"bytes": [...], "mask": "<hex>", "stop": bool, "reachable": bool}`
//! (`"tokens"` in token mode):
//!
//! - `mask`: the allowed next tokens after the sequence as a little-endian bitset in hex,
//!   `ceil(V / 8)` bytes (64 hex digits for bytes; the layout of SEMANTICS.md);
//! - `stop`: the stop flag of the last token (the word rule, or the token is EOS);
//! - `reachable`: whether welt could have generated the sequence — each token allowed at its
//!   step and no stop before the last one.
//!
//! Any byte array is valid input. For an unreachable one the automaton runs on: after a stop
//! it continues as if the row had not stopped, and after a byte its mask forbids it is in the
//! dead state, whose mask is empty (all zeros) and whose stop flag is false.

use std::fmt;
use std::io::{BufRead, Write};

use serde_json::Value;
use welt_runtime::Tables;

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
    Ok(Answer {
        mask: tables.mask(walk.state).as_bytes().to_vec(),
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
pub fn parse_ids(text: &str, mode: Mode, limit: u64) -> Result<Vec<u32>, String> {
    let key = mode.key();
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let arr = v
        .as_object()
        .ok_or("expected a JSON object")?
        .get(key)
        .ok_or_else(|| format!("missing \"{key}\""))?
        .as_array()
        .ok_or_else(|| format!("\"{key}\" must be an array"))?;
    arr.iter()
        .enumerate()
        .map(|(i, x)| {
            x.as_u64()
                .filter(|&b| b < limit)
                .map(|b| b as u32)
                .ok_or_else(|| format!("\"{key}\"[{i}] = {x} is not an integer in 0..{limit}"))
        })
        .collect()
}

/// The output line for `bytes` (without the newline).
pub fn format_answer(bytes: &[u8], a: &Answer) -> String {
    let ids: Vec<u32> = bytes.iter().map(|&b| u32::from(b)).collect();
    format_ids(Mode::Bytes, &ids, a)
}

/// The output line for a sequence of ids (without the newline).
pub fn format_ids(mode: Mode, ids: &[u32], a: &Answer) -> String {
    let list: Vec<String> = ids.iter().map(|b| b.to_string()).collect();
    format!(
        "{{\"{}\":[{}],\"mask\":\"{}\",\"stop\":{},\"reachable\":{}}}",
        mode.key(),
        list.join(","),
        crate::to_hex(&a.mask),
        a.stop,
        a.reachable
    )
}

/// Answers every line of `input` into one output string. Reads everything first: on a
/// malformed line nothing is written and the error names the line.
pub fn run(tables: &Tables<'_>, input: impl BufRead) -> Result<String, Box<dyn std::error::Error>> {
    run_mode(tables, Mode::Bytes, input)
}

/// [`run`] for `"bytes"` or `"tokens"` input.
pub fn run_mode(
    tables: &Tables<'_>,
    mode: Mode,
    input: impl BufRead,
) -> Result<String, Box<dyn std::error::Error>> {
    let limit = match mode {
        Mode::Bytes => 256,
        Mode::Tokens => tables.vocab_size() as u64,
    };
    let mut out = String::new();
    for (i, line) in input.lines().enumerate() {
        let line = line.map_err(|e| QueryError {
            line: i + 1,
            message: format!("cannot read: {e}"),
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let ids = parse_ids(&line, mode, limit).map_err(|message| QueryError { line: i + 1, message })?;
        let a = answer(tables, &ids).map_err(|e| QueryError {
            line: i + 1,
            message: e.to_string(),
        })?;
        out.push_str(&format_ids(mode, &ids, &a));
        out.push('\n');
    }
    Ok(out)
}

/// [`run`], then writes the whole answer.
pub fn run_to(
    tables: &Tables<'_>,
    input: impl BufRead,
    mut output: impl Write,
) -> Result<(), Box<dyn std::error::Error>> {
    let out = run(tables, input)?;
    output.write_all(out.as_bytes())?;
    output.flush()?;
    Ok(())
}
